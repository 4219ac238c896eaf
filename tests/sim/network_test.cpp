// The network model on its own, without nodes: reachability, loss rates,
// latency and the TCP timing model.
#include "network.hpp"

#include <gtest/gtest.h>

namespace mesh::sim {
namespace {

using namespace std::chrono_literals;

Network make(NetworkOptions o = {}, std::size_t n = 4, std::uint64_t seed = 1) {
  Network net(o, seed);
  net.resize(n);
  return net;
}

TEST(SimNetwork, PartitionsSeparateGroupsAndUnnamedNodesStayTogether) {
  Network net = make({}, 6);
  net.partition({{0, 1}, {2, 3}});
  EXPECT_TRUE(net.reachable(0, 1));
  EXPECT_TRUE(net.reachable(2, 3));
  EXPECT_FALSE(net.reachable(1, 2));
  EXPECT_FALSE(net.reachable(3, 0));
  EXPECT_TRUE(net.reachable(4, 5));  // not named: group 0
  EXPECT_FALSE(net.reachable(4, 0));
  net.heal();
  EXPECT_TRUE(net.reachable(1, 2));
  EXPECT_TRUE(net.reachable(4, 0));
}

TEST(SimNetwork, BlockIsOneWay) {
  Network net = make();
  net.block(0, 1);
  EXPECT_FALSE(net.reachable(0, 1));
  EXPECT_TRUE(net.reachable(1, 0));
  EXPECT_TRUE(net.drop_packet(0, 1));
  EXPECT_FALSE(net.drop_packet(1, 0));
  net.unblock(0, 1);
  EXPECT_TRUE(net.reachable(0, 1));
}

TEST(SimNetwork, LossRateMatchesTheProbabilityAndCombinesPerNode) {
  NetworkOptions o;
  o.loss = 0.2;
  Network net = make(o);
  int dropped = 0;
  constexpr int kN = 20000;
  for (int k = 0; k < kN; ++k) dropped += net.drop_packet(0, 1) ? 1 : 0;
  EXPECT_NEAR(static_cast<double>(dropped) / kN, 0.2, 0.015);

  // 1 - 0.8 x 0.5 x 0.5 = 0.8
  net.set_node_loss(2, 0.5, 0.0);
  net.set_node_loss(3, 0.0, 0.5);
  EXPECT_DOUBLE_EQ(net.loss(2, 3), 1.0 - 0.8 * 0.5 * 0.5);
  EXPECT_DOUBLE_EQ(net.loss(3, 2), 0.2);
}

TEST(SimNetwork, LatencyIsLinkBasePlusJitter) {
  NetworkOptions o;  // 200 us +- 50 %, exponential jitter with mean 100 us
  Network net = make(o);
  double sum = 0;
  Duration lo = Duration::max();
  constexpr int kN = 20000;
  for (int k = 0; k < kN; ++k) {
    const Duration d = net.packet_latency(0, 1, 0);
    lo = std::min(lo, d);
    sum += static_cast<double>(d.count());
  }
  EXPECT_GE(lo, 100us);
  EXPECT_LE(lo, 300us + 5us);
  // The minimum over many samples is about the link base; the mean is base
  // plus the jitter's mean.
  EXPECT_NEAR(sum / kN - static_cast<double>(lo.count()), 100.0, 10.0);
}

TEST(SimNetwork, ExplicitReorderingDelaysSomePackets) {
  NetworkOptions o;
  o.jitter_mean = 0us;
  o.link_spread = 0;
  o.reorder = 0.5;
  o.reorder_delay = 10ms;
  Network net = make(o);
  int late = 0;
  for (int k = 0; k < 1000; ++k) late += net.packet_latency(0, 1, 0) > 250us ? 1 : 0;
  EXPECT_GT(late, 400);
  EXPECT_LT(late, 600);
  EXPECT_GT(net.counters().reordered, 400u);
}

TEST(SimNetwork, MtuTruncatesOrDrops) {
  NetworkOptions o;
  o.mtu = 100;
  Network net = make(o);
  swim::Bytes b(150, 7);
  EXPECT_TRUE(net.apply_mtu(b));
  EXPECT_EQ(b.size(), 100u);
  net.set_mtu(100, MtuPolicy::Drop);
  swim::Bytes c(150, 7);
  EXPECT_FALSE(net.apply_mtu(c));
  swim::Bytes d(100, 7);
  EXPECT_TRUE(net.apply_mtu(d));
  EXPECT_EQ(net.counters().truncated, 1u);
  EXPECT_EQ(net.counters().dropped_mtu, 1u);
}

TEST(SimNetwork, StreamToUnreachableFailsAtTheConnectTimeout) {
  NetworkOptions o;
  o.connect_timeout = 3s;
  Network net = make(o);
  net.block(1, 0);  // SYN-ACK cannot come back
  const Time now{std::chrono::hours(1)};
  auto t = net.stream_timing(now, 0, 1, 100, now + o.connect_timeout, now + 10s);
  EXPECT_FALSE(t.connected);
  EXPECT_EQ(t.fail_at, now + 3s);
  // A deadline before the connect timeout wins.
  t = net.stream_timing(now, 0, 1, 100, now + o.connect_timeout, now + 1s);
  EXPECT_FALSE(t.connected);
  EXPECT_EQ(t.fail_at, now + 1s);
}

TEST(SimNetwork, StreamWithoutLossTakesOneAndAHalfRoundTrips) {
  NetworkOptions o;
  o.jitter_mean = 0us;
  o.link_spread = 0;
  o.bandwidth_bytes_per_s = 0;
  Network net = make(o);
  const Time now{std::chrono::hours(1)};
  auto t = net.stream_timing(now, 0, 1, 100, now + 10s, now + 10s);
  ASSERT_TRUE(t.connected);
  EXPECT_EQ(t.request_arrives, now + 600us);
  auto r = net.reply_arrival(now, 1, 0, 100, now + 10s);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(*r, now + 200us);
  EXPECT_FALSE(net.reply_arrival(now, 1, 0, 100, now + 100us).has_value());
}

TEST(SimNetwork, LossMakesStreamsSlowerNotLossy) {
  NetworkOptions o;
  o.loss = 0.3;
  o.jitter_mean = 0us;
  o.link_spread = 0;
  o.bandwidth_bytes_per_s = 0;
  Network net = make(o);
  const Time now{std::chrono::hours(1)};
  int connected = 0;
  int slow = 0;
  for (int k = 0; k < 2000; ++k) {
    auto t = net.stream_timing(now, 0, 1, 100, now + 10s, now + 10s);
    if (!t.connected) continue;
    ++connected;
    if (t.request_arrives - now >= 200ms) ++slow;
  }
  // A SYN round trip is lost with 1 - 0.7^2 = 0.51; six losses in a row
  // (1 + 2 + 4 + 8 s > 10 s after four) are needed to fail.
  EXPECT_GT(connected, 1800);
  EXPECT_GT(slow, 1000);
  EXPECT_GT(net.counters().tcp_retransmits, 1000u);
}

TEST(SimNetwork, SameSeedSameDecisions) {
  NetworkOptions o;
  o.loss = 0.3;
  Network a = make(o, 4, 42);
  Network b = make(o, 4, 42);
  for (int k = 0; k < 1000; ++k) {
    ASSERT_EQ(a.drop_packet(0, 1), b.drop_packet(0, 1));
    ASSERT_EQ(a.packet_latency(1, 2, 10), b.packet_latency(1, 2, 10));
  }
}

}  // namespace
}  // namespace mesh::sim
