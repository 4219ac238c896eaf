// The simulator itself: determinism, addressing, the paused-node inbox, the
// damage the network does (duplication, reordering, truncation) and streams
// that fail.
#include <gtest/gtest.h>

#include "sim_run.hpp"
#include "sim_test_util.hpp"

namespace mesh::sim::test {
namespace {

// A run that touches every kind of event: joins, loss, duplication,
// reordering, a crash, a pause and a restart.
std::uint64_t eventful_run(std::uint64_t seed, std::uint64_t* sim_events = nullptr) {
  Cluster c(options_for(seed));
  c.add_nodes(8);
  c.join_all_through({0});
  c.run_for(10s);
  c.set_loss(0.1);
  c.set_duplicate(0.02);
  c.set_reorder(0.05, 5ms);
  c.crash(5);
  c.pause(3);
  c.run_for(2s);
  c.resume(3);
  c.block(1, 2);
  c.run_for(30s);
  c.heal();
  c.restart(5);
  c.run_for(20s);
  if (sim_events != nullptr) *sim_events = c.counters().sim_events;
  return c.trace_hash();
}

TEST(SimCluster, SameSeedGivesTheSameTrace) {
  for (auto seed : test_seeds()) {
    MESH_SEED_TRACE(seed);
    std::uint64_t events_a = 0;
    std::uint64_t events_b = 0;
    const auto a = eventful_run(seed, &events_a);
    const auto b = eventful_run(seed, &events_b);
    EXPECT_EQ(a, b);
    EXPECT_EQ(events_a, events_b);
    EXPECT_GT(events_a, 1000u);
    EXPECT_NE(a, eventful_run(seed + 1000));
  }
}

TEST(SimCluster, NodesHaveSyntheticNamesAndAddresses) {
  Cluster c;
  c.add_nodes(300);
  EXPECT_EQ(c.name(0), "n0");
  EXPECT_EQ(c.address(0), swim::Address::v4(10, 0, 0, 1, 7946));
  EXPECT_EQ(c.address(299), swim::Address::v4(10, 0, 1, 44, 7946));
  EXPECT_EQ(c.status(7), NodeStatus::Created);
}

// S1..S5 join through S1 and see each other alive, and what their events
// said matches what their member lists say.
TEST(SimCluster, FiveNodesConvergeAndEventsMatchMemberLists) {
  for (auto seed : test_seeds()) {
    MESH_SEED_TRACE(seed);
    Cluster c(options_for(seed));
    ASSERT_TRUE(form_cluster(c, 5, 10s));
    c.run_for(30s);
    EXPECT_TRUE(c.all_see_alive());
    EXPECT_EQ(c.check_views_for_test(), "");
    EXPECT_EQ(c.count_events(EventKind::Suspect), 0u);
    EXPECT_EQ(c.total_node_stats().decode_errors_total(), 0u);
    EXPECT_EQ(c.counters().stream_need_more, 0u);
    EXPECT_EQ(c.counters().packets_oversize, 0u);
    EXPECT_EQ(c.counters().deadline_not_advanced, 0u);
    EXPECT_GT(c.counters().streams_replied, 0u);  // the joins were push/pulls
  }
}

// S3 is stopped (SIGSTOP) for two seconds: what was sent to it waits in its
// socket buffer and is read when it continues.
TEST(SimCluster, PausedNodeReadsItsQueuedPacketsOnResume) {
  for (auto seed : test_seeds()) {
    MESH_SEED_TRACE(seed);
    Cluster c(options_for(seed));
    ASSERT_TRUE(form_cluster(c, 3, 10s));
    const auto received = c.node(2).stats().packets_received;
    c.pause(2);
    c.run_for(2s);
    EXPECT_EQ(c.node(2).stats().packets_received, received);
    EXPECT_GT(c.counters().packets_queued_paused, 0u);
    c.resume(2);
    EXPECT_GT(c.node(2).stats().packets_received, received);
  }
}

// Every packet may arrive twice and some very late: SWIM does not care.
TEST(SimCluster, DuplicationAndReorderingCauseNoSuspicion) {
  for (auto seed : test_seeds()) {
    MESH_SEED_TRACE(seed);
    Cluster c(options_for(seed));
    c.set_duplicate(0.2);
    c.set_reorder(0.2, 20ms);
    ASSERT_TRUE(form_cluster(c, 8, 20s));
    c.run_for(60s);
    EXPECT_EQ(c.count_events(EventKind::Suspect), 0u);
    EXPECT_EQ(c.false_deaths(), 0u);
    EXPECT_EQ(c.total_node_stats().decode_errors_total(), 0u);
    EXPECT_GT(c.network_counters().duplicated, 100u);
  }
}

// A path MTU of 300 bytes cuts gossip compounds: the ping at their head
// survives and the cut parts are counted, and the cluster still forms (push/
// pull runs over TCP, which the MTU does not limit).
TEST(SimCluster, TruncationAtTheMtuIsTolerated) {
  for (auto seed : test_seeds()) {
    MESH_SEED_TRACE(seed);
    Cluster c(options_for(seed));
    c.set_mtu(300, MtuPolicy::Truncate);
    ASSERT_TRUE(form_cluster(c, 12, 120s));
    c.run_for(30s);
    EXPECT_GT(c.network_counters().truncated, 0u);
    EXPECT_EQ(c.false_deaths(), 0u);
  }
}

// S3 joins through S2, which has crashed: the join times out. S3 retries
// every 5 s (as Serf's retry_join does); once S2 is back, S3 gets in.
TEST(SimCluster, JoinThroughACrashedSeedFailsAndARetrySucceeds) {
  for (auto seed : test_seeds()) {
    MESH_SEED_TRACE(seed);
    ClusterOptions o = options_for(seed);
    o.retry_join_interval = 5s;
    Cluster c(o);
    c.add_nodes(3);
    c.start(0);
    c.join(1, {0});
    ASSERT_TRUE(c.wait_until([&] { return c.all_see_alive(); }, 10s));
    c.crash(1);
    c.join(2, {1});
    c.run_for(12s);
    EXPECT_GT(c.counters().join_failures, 0u);
    EXPECT_GT(c.counters().streams_failed, 0u);
    EXPECT_NE(c.state_of(2, 0), MemberState::Alive);
    c.restart(1, {0});
    EXPECT_TRUE(c.wait_until([&] { return c.all_see_alive(); }, 30s));
  }
}

// swim-sim's driver on a small cluster: it converges, detects its kill and
// reports no codec trouble.
TEST(SimCluster, SwimSimRunReportsItsFigures) {
  RunOptions o;
  o.nodes = 10;
  o.duration_s = 60;
  o.kill = 1;
  o.seed = test_seeds({7})[0];
  MESH_SEED_TRACE(o.seed);
  const RunReport r = run_simulation(o);
  EXPECT_TRUE(r.converged);
  EXPECT_EQ(r.killed, 1u);
  EXPECT_EQ(r.detected, 1u);
  EXPECT_GT(r.detect_s_max, 0.0);
  EXPECT_EQ(r.false_deaths, 0u);
  EXPECT_EQ(r.decode_errors, 0u);
  EXPECT_GT(r.packets_per_node_per_s, 0.0);
  const std::string json = to_json(r);
  for (const char* key :
       {"\"nodes\"", "\"loss\"", "\"seed\"", "\"profile\"", "\"converge_s\"", "\"false_deaths\"",
        "\"detect_s_p50\"", "\"detect_s_max\"", "\"packets_per_node_per_s\"",
        "\"bytes_per_node_per_s\"", "\"wall_s\"", "\"speedup\""}) {
    EXPECT_NE(json.find(key), std::string::npos) << key;
  }
  EXPECT_EQ(json.front(), '{');
  EXPECT_EQ(json.back(), '}');
}

}  // namespace
}  // namespace mesh::sim::test
