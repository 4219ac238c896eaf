// Connections follow membership: Membership + Transport + PeerLink nodes on
// 127.0.0.1. S1 starts alone; S2 and S3 join through it. Their transports
// learn each other from the "zmq" tag, requests flow, and when S3 dies (its
// SWIM stops, its transport stays up and silent) the request S1 has
// pending at S3 ends with PeerDead as soon as SWIM declares S3 dead, long
// before the request's own timeout.
#include <gtest/gtest.h>

#include <algorithm>
#include <future>
#include <memory>
#include <string>

#include "harness.hpp"
#include "mesh/peer_link.hpp"

namespace mesh {
namespace {

using namespace std::chrono_literals;
using swim::test::eventually;
using transport::ErrorCode;

std::vector<std::uint8_t> bytes(std::string_view s) { return {s.begin(), s.end()}; }

struct LinkedNode {
  explicit LinkedNode(const std::string& name) {
    transport::TransportOptions options;
    options.node_name = name;
    t = std::make_unique<transport::Transport>(options);
    link = std::make_unique<PeerLink>(*t);
    m = std::make_unique<swim::Membership>(io.io(), swim::test::local_config(name),
                                           swim::test::loopback(), 7);
    m->on_event([this](const swim::MemberEvent& e) { link->on_member_event(e); });
    m->start({{kZmqPortTag, std::to_string(t->bound_port())}});
    echo = t->open_inbox("echo");
    echo_thread = std::thread([this] {
      while (auto in = echo->pop()) {
        if (in->is_request()) t->respond(*in, in->envelope.payload);
      }
    });
  }
  ~LinkedNode() {
    if (m) m.reset();
    echo->close();
    echo_thread.join();
    io.stop();
  }
  bool has_peer(const std::string& name) const {
    const auto p = t->peers();
    return std::find(p.begin(), p.end(), name) != p.end();
  }

  swim::test::IoThreads io;
  std::unique_ptr<transport::Transport> t;
  std::unique_ptr<PeerLink> link;
  std::unique_ptr<swim::Membership> m;
  std::shared_ptr<transport::Inbox> echo;
  std::thread echo_thread;
};

transport::OutMessage to(const std::string& node, const std::string& target, std::string_view body) {
  transport::OutMessage msg;
  msg.to = {node, target};
  msg.sender_agent = "tester";
  msg.payload = bytes(body);
  return msg;
}

TEST(PeerLink, TransportAddressFromTags) {
  swim::Member m;
  m.name = "n1";
  m.addr = swim::Address::v4(10, 0, 0, 7, 7946);
  auto peer = transport_address(m, {{"zmq", "8946"}, {"zkey", "abc"}});
  ASSERT_TRUE(peer);
  EXPECT_EQ(peer->name, "n1");
  EXPECT_EQ(peer->host, "10.0.0.7");
  EXPECT_EQ(peer->port, 8946);
  EXPECT_EQ(peer->curve_public_key, "abc");
  EXPECT_FALSE(transport_address(m, {}));
  for (const char* bad : {"", "0", "65536", "12x", "-1", " 80"}) {
    EXPECT_FALSE(transport_address(m, {{"zmq", bad}})) << bad;
  }
}

TEST(PeerLink, ConnectionsFollowMembershipAndDeathFailsPendingRequests) {
  LinkedNode s1("s1"), s2("s2"), s3("s3");
  const auto seed = swim::test::seed_of(*s1.m);
  s2.m->join({seed});
  s3.m->join({seed});

  ASSERT_TRUE(eventually([&] {
    return s1.has_peer("s2") && s1.has_peer("s3") && s2.has_peer("s3") && s3.has_peer("s1");
  })) << "transport peers did not follow membership";
  // Requests flow both ways once connected (the first may race the handshake).
  ASSERT_TRUE(eventually([&] { return s1.t->request(to("s2", "echo", "a"), 2s).ok(); }));
  ASSERT_TRUE(eventually([&] { return s3.t->request(to("s1", "echo", "b"), 2s).ok(); }));

  // S3 opens an inbox nobody serves, so S1's request stays pending.
  auto stuck = s3.t->open_inbox("stuck");
  auto pending = s1.t->request_future(to("s3", "stuck", "wait"), 60s);
  ASSERT_TRUE(eventually([&] { return stuck->size() == 1; }));

  // S3's SWIM stops without a leave: the others find it dead (local
  // profile: seconds). Its transport stays up, so only membership can
  // fail the request.
  s3.m->shutdown();
  ASSERT_EQ(pending.wait_for(45s), std::future_status::ready) << "request not failed by membership";
  const auto reply = pending.get();
  EXPECT_EQ(reply.error, ErrorCode::PeerDead) << transport::to_string(reply.error);
  EXPECT_FALSE(s1.has_peer("s3"));
  EXPECT_EQ(s1.t->notify(to("s3", "echo", "late")), ErrorCode::PeerDead);
  EXPECT_TRUE(s1.t->request(to("s2", "echo", "still"), 10s).ok());
}

TEST(PeerLink, LeftMemberIsDropped) {
  LinkedNode s1("s1"), s2("s2");
  s2.m->join({swim::test::seed_of(*s1.m)});
  ASSERT_TRUE(eventually([&] { return s1.has_peer("s2"); }));
  ASSERT_TRUE(s2.m->leave(5s));
  ASSERT_TRUE(eventually([&] { return !s1.has_peer("s2"); }));
  EXPECT_EQ(s1.t->notify(to("s2", "echo", "gone")), ErrorCode::PeerDead);
}

}  // namespace
}  // namespace mesh
