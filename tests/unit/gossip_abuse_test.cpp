// Gossip under abuse, one node at a time (swim/DESIGN.md, "Hostile
// gossip"): the admission of unknown members, the verification of new
// members, probing and health while phantoms are around, and who may take
// a name.
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "mesh/swim/codec.hpp"
#include "mesh/swim/node.hpp"
#include "node_fixture.hpp"

namespace mesh::swim {
namespace {

using namespace test;  // NOLINT: the fixture

std::string phantom(int i) { return "phantom-" + std::to_string(i); }

// A phantom at 10.0.<hi>.<lo>: nothing answers there.
Alive phantom_alive(int i) {
  Alive a = alive_msg(phantom(i), 0, 1);
  a.addr = {10, 0, static_cast<std::uint8_t>(100 + i / 250), static_cast<std::uint8_t>(1 + i % 250)};
  return a;
}

class NodeGossipAbuse : public NodeTest {
 protected:
  // `count` phantoms announced by `from`, packed 200 to a compound packet
  // as an attacker would.
  void announce(int first, int count, std::uint8_t from) {
    for (int base = first; base < first + count; base += 200) {
      std::vector<Bytes> parts;
      for (int i = base; i < std::min(first + count, base + 200); ++i) {
        Bytes b;
        encode(PacketMessage{phantom_alive(i)}, b);
        parts.push_back(std::move(b));
      }
      feed_bytes(make_compound(parts), from);
    }
  }
  std::size_t probes_to(const Address& a) const {
    std::size_t n = 0;
    for (const auto& s : sent_)
      if (s.to == a)
        for (const auto& m : s.messages) n += std::holds_alternative<Ping>(m) ? 1 : 0;
    return n;
  }
  const NodeStats& stats() const { return node_.stats(); }
};

TEST_F(NodeGossipAbuse, OneSourceGetsItsBurstThenItsRate) {
  const Config& c = node_.config();
  const auto burst = static_cast<int>(c.new_member_burst_per_source);
  announce(0, burst + 100, 9);
  EXPECT_EQ(node_.num_members(), 1u + static_cast<std::size_t>(burst));
  EXPECT_EQ(stats().members_rate_limited, 100u);
  // One second later the source has earned rate-per-source more.
  now_ += seconds(1);
  announce(10000, 100, 9);
  EXPECT_EQ(node_.num_members(), 1u + static_cast<std::size_t>(burst + c.new_member_rate_per_source));
  // Another source has its own budget.
  announce(20000, 10, 8);
  EXPECT_EQ(node_.num_members(), 11u + static_cast<std::size_t>(burst + c.new_member_rate_per_source));
}

TEST_F(NodeGossipAbuse, AllSourcesTogetherGetTheTotalBurst) {
  const auto total = static_cast<std::size_t>(node_.config().new_member_burst);
  for (std::uint8_t src = 10; src < 20; ++src) announce(1000 * src, 250, src);
  EXPECT_EQ(node_.num_members(), 1u + total);
  EXPECT_EQ(stats().members_rate_limited, 2500u - total);
}

TEST_F(NodeGossipAbuse, KnownMembersAreNeverRateLimited) {
  add_peers();
  announce(0, 300, 9);  // spends the budget of source 9
  const auto before = stats().members_rate_limited;
  Bytes b;
  encode(PacketMessage{alive_msg("b", 2, 7)}, b);
  feed_bytes(b, 9);
  EXPECT_EQ(node_.member("b")->incarnation, 7u);
  EXPECT_EQ(stats().members_rate_limited, before);
}

PushPull big_push_pull(int n) {
  PushPull pp;
  for (int i = 0; i < n; ++i) {
    Alive a = phantom_alive(i);
    pp.nodes.push_back(PushNodeState{a.node, a.addr, a.port, {}, 1, MemberState::Alive, a.vsn});
  }
  return pp;
}

// A node joining a big cluster learns all of it from the push/pull it opens.
TEST_F(NodeGossipAbuse, APushPullWeOpenedIsNotRateLimited) {
  node_.join(now_, {addr(2)});
  drain();
  ASSERT_EQ(streams_.size(), 1u);
  node_.on_stream_reply(now_, streams_[0].id, encode_stream(StreamMessage{big_push_pull(2000)}, false));
  drain();
  EXPECT_EQ(node_.num_members(), 2001u);
  EXPECT_EQ(stats().members_rate_limited, 0u);
}

TEST_F(NodeGossipAbuse, APushPullOpenedToUsIsRateLimitedByItsPeer) {
  auto answer = node_.on_stream(now_, addr(9), encode_stream(StreamMessage{big_push_pull(2000)}, false));
  drain();
  EXPECT_EQ(answer.status, StreamAnswer::Status::Reply);
  EXPECT_EQ(node_.num_members(), 1u + static_cast<std::size_t>(node_.config().new_member_burst_per_source));
}

TEST_F(NodeGossipAbuse, UnverifiedMembersAreCappedForEverySource) {
  Config c = make_config();
  c.max_unverified_members = 50;
  node_ = Node(c, 3);
  node_.start(now_);
  node_.join(now_, {addr(2)});
  drain();
  ASSERT_FALSE(streams_.empty());
  node_.on_stream_reply(now_, streams_.back().id, encode_stream(StreamMessage{big_push_pull(80)}, false));
  drain();
  EXPECT_EQ(node_.num_members(), 51u);
  EXPECT_EQ(stats().members_over_unverified, 30u);
}

TEST_F(NodeGossipAbuse, ANewMemberIsPingedAndVerifiedByItsAnswer) {
  Config c = make_config();
  c.probe_interval = seconds(100);  // no probe gets there first
  c.probe_timeout = seconds(50);
  node_ = Node(c, 3);
  node_.start(now_);
  responders_ = {addr(2)};
  feed(alive_msg("b", 2, 1));
  EXPECT_FALSE(node_.member("b")->verified);
  EXPECT_EQ(probes_to(addr(2)), 0u) << "the ping waits, so that acks do not burn fresh gossip";
  advance(seconds(300));
  EXPECT_TRUE(node_.member("b")->verified);
  EXPECT_EQ(state_of("b"), MemberState::Alive);
  EXPECT_EQ(stats().verify_failed, 0u);
}

TEST_F(NodeGossipAbuse, ANewMemberThatNeverAnswersIsSuspectedWithoutHurtingHealth) {
  announce(0, 1, 9);
  ASSERT_NE(node_.member(phantom(0)), nullptr);
  EXPECT_FALSE(node_.member(phantom(0))->verified);
  advance(4 * node_.config().probe_interval);
  EXPECT_EQ(state_of(phantom(0)), MemberState::Suspect);
  EXPECT_EQ(node_.health_score(), 0);
}

// A path that drops our pings but not the helpers' must not get a real new
// member suspected: verification goes indirect first, as a probe does.
TEST_F(NodeGossipAbuse, VerificationGoesIndirectBeforeSuspecting) {
  add_peers();
  feed(alive_msg("e", 5, 1), 2);
  // E never gets A's pings; the helpers reach it and relay its ack.
  std::set<std::uint32_t> relayed;
  for (int step = 0; step < 100; ++step) {
    advance(milliseconds(100));
    for (const auto& ind : sent_of<IndirectPing>())
      if (ind.node == "e" && relayed.insert(ind.seq_no).second) feed(Ack{ind.seq_no, {}}, 3);
  }
  EXPECT_FALSE(relayed.empty());
  EXPECT_TRUE(node_.member("e")->verified);
  EXPECT_EQ(state_of("e"), MemberState::Alive);
  EXPECT_FALSE(has_event(EventKind::Suspect, "e"));
  EXPECT_EQ(stats().verify_failed, 0u);
}

// Finding 6 of issue 11: thousands of announced phantoms drove the health
// score up and starved the probing of real members.
TEST_F(NodeGossipAbuse, PhantomsNeitherRaiseHealthNorStarveRealMembers) {
  add_peers();
  for (std::uint8_t src = 10; src < 20; ++src) announce(1000 * src, 250, src);
  ASSERT_GT(node_.num_members(), 1000u);
  clear();
  advance(seconds(60));
  EXPECT_EQ(node_.health_score(), 0);
  // Verified members keep at least half of the probe rate between them:
  // 60 probes in 60 s, 30 for b, c and d, about 10 each.
  for (std::uint8_t p = 2; p <= 4; ++p) EXPECT_GE(probes_to(addr(p)), 6u) << int(p);
  EXPECT_EQ(state_of("b"), MemberState::Alive);
  // Gossip went to the real members, not to phantoms.
  std::size_t to_real = 0, to_phantoms = 0;
  for (const auto& s : sent_)
    for (const auto& m : s.messages)
      if (std::holds_alternative<Suspect>(m) || std::holds_alternative<Dead>(m))
        (s.to.ip[2] >= 100 ? to_phantoms : to_real) += 1;
  EXPECT_GT(to_real, 10 * to_phantoms);
  // And every phantom is dead by now, then reaped.
  for (int i = 10000; i < 10010; ++i) {
    const Member* m = node_.member(phantom(i));
    if (m != nullptr) {
      EXPECT_EQ(m->state, MemberState::Dead) << phantom(i);
    }
  }
  advance(node_.config().gossip_to_the_dead_time + seconds(10));
  EXPECT_EQ(node_.num_members(), 4u);
  EXPECT_EQ(node_.health_score(), 0);
}

// Finding 6: "a forged leave followed by an alive at another address took
// over a live node's name".
TEST_F(NodeGossipAbuse, AForgedLeaveCannotHandTheNameToAnotherAddress) {
  add_peers();
  feed(Dead{1, "b", "b"}, /*from=*/9);
  EXPECT_EQ(state_of("b"), MemberState::Left);
  // B is told at once, so that it can refute.
  auto notices = sent_of<Dead>(addr(2));
  ASSERT_EQ(notices.size(), 1u);
  EXPECT_EQ(stats().leave_notices_sent, 1u);
  // The impostor's alive, however high its incarnation, is a conflict.
  feed(alive_msg("b", 9, 1000), 9);
  EXPECT_TRUE(has_event(EventKind::Conflict, "b"));
  EXPECT_EQ(node_.member("b")->addr, addr(2));
  // B's refutation from its own address brings it back.
  feed(alive_msg("b", 2, 2), 2);
  EXPECT_EQ(state_of("b"), MemberState::Alive);
  EXPECT_EQ(node_.member("b")->addr, addr(2));
  advance(seconds(60));
  feed(alive_msg("b", 9, 2000), 9);
  EXPECT_EQ(node_.member("b")->addr, addr(2));
  EXPECT_EQ(state_of("b"), MemberState::Alive);
}

// If an impostor's address got a name anyway (it left long ago, say), the
// name is given back to its owner as soon as the impostor is dead.
TEST_F(NodeGossipAbuse, ADeadNeverVerifiedAddressFreesTheNameAtOnce) {
  feed(alive_msg("b", 9, 5), 9);  // B at 10.0.0.9 answers nothing
  advance(seconds(20));
  ASSERT_EQ(state_of("b"), MemberState::Dead);
  responders_ = {addr(2)};
  feed(alive_msg("b", 2, 6), 2);
  EXPECT_EQ(state_of("b"), MemberState::Alive);
  EXPECT_EQ(node_.member("b")->addr, addr(2));
  advance(seconds(4));
  EXPECT_TRUE(node_.member("b")->verified);
}

TEST_F(NodeGossipAbuse, OurNameClaimedElsewhereIsOutbid) {
  const auto inc = node_.incarnation();
  feed(alive_msg("a", 9, inc + 3), 9);
  EXPECT_TRUE(has_event(EventKind::Conflict, "a"));
  EXPECT_GT(node_.incarnation(), inc + 3);
  EXPECT_EQ(node_.member("a")->addr, addr(1));
  EXPECT_GT(stats().refutations, 0u);
}

}  // namespace
}  // namespace mesh::swim
