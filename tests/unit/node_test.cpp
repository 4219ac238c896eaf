// Single-node state transitions: hand-fed packets, hand-set time.
//
// The node under test is A (10.0.0.1). Peers B, C, D exist only as the
// packets the tests write on their behalf.
#include <gtest/gtest.h>

#include <algorithm>
#include <optional>
#include <set>
#include <string>
#include <variant>

#include "mesh/swim/codec.hpp"
#include "mesh/swim/node.hpp"
#include "node_fixture.hpp"

namespace mesh::swim {
namespace {

using namespace test;  // NOLINT: the fixture

TEST_F(NodeTest, StartMakesSelfAliveAtIncarnationOne) {
  Node n(make_config(), 1);
  n.start(now_);
  ASSERT_NE(n.member("a"), nullptr);
  EXPECT_EQ(n.member("a")->state, MemberState::Alive);
  EXPECT_EQ(n.member("a")->incarnation, 1u);
  EXPECT_EQ(n.member("a")->vsn, (Vsn{1, 5, 2, 2, 5, 5}));
  EXPECT_LT(n.next_deadline(), now_ + seconds(31));
  auto ev = n.drain_events();
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].kind, EventKind::Joined);
}

TEST_F(NodeTest, AliveAddsMemberAndIsRebroadcast) {
  feed(alive_msg("b", 2, 1, {'x'}));
  EXPECT_TRUE(has_event(EventKind::Joined, "b"));
  EXPECT_EQ(state_of("b"), MemberState::Alive);
  EXPECT_EQ(node_.member("b")->meta, Bytes{'x'});
  EXPECT_EQ(node_.num_members(), 2u);
  // The alive message rides on the next gossip.
  clear();
  advance(seconds(1));
  // (After our own alive from the start: a node's news about itself goes
  // first.)
  auto alive = sent_of<Alive>();
  EXPECT_TRUE(std::any_of(alive.begin(), alive.end(), [](const Alive& a) { return a.node == "b"; }));
}

TEST_F(NodeTest, AliveWithSameIncarnationIsIgnoredHigherUpdatesMeta) {
  feed(alive_msg("b", 2, 1, {'x'}));
  clear();
  feed(alive_msg("b", 2, 1, {'y'}));
  EXPECT_TRUE(events_.empty());
  EXPECT_EQ(node_.member("b")->meta, Bytes{'x'});
  feed(alive_msg("b", 2, 2, {'y'}));
  EXPECT_TRUE(has_event(EventKind::Updated, "b"));
  EXPECT_EQ(node_.member("b")->meta, Bytes{'y'});
  EXPECT_EQ(node_.member("b")->incarnation, 2u);
}

TEST_F(NodeTest, AliveWithBadVersionsOrAddressIsDroppedAndCounted) {
  feed(alive_msg("b", 2, 1, {}, {0, 5, 2, 2, 5, 5}));  // pmin 0
  feed(alive_msg("c", 3, 1, {}, {1, 5, 2}));           // short Vsn
  Alive bad_addr = alive_msg("d", 4, 1);
  bad_addr.addr = {1, 2, 3};
  feed(bad_addr);
  EXPECT_EQ(node_.member("b"), nullptr);
  EXPECT_EQ(node_.member("c"), nullptr);
  EXPECT_EQ(node_.member("d"), nullptr);
  EXPECT_EQ(node_.stats().decode_errors[static_cast<int>(DecodeError::Malformed)], 3u);
}

TEST_F(NodeTest, ProbeSendsPingAndAckKeepsMemberAlive) {
  responders_ = {addr(2)};  // B answers the ping that verifies it
  feed(alive_msg("b", 2, 1));
  responders_.clear();
  clear();
  advance(seconds(1));  // the first probe tick falls within one interval
  auto pings = sent_of<Ping>(addr(2));
  ASSERT_EQ(pings.size(), 1u);
  EXPECT_EQ(pings[0].node, "b");
  EXPECT_EQ(pings[0].source_node, "a");
  EXPECT_EQ(pings[0].source_port, 7946);
  EXPECT_EQ(pings[0].source_addr, (Bytes{10, 0, 0, 1}));
  feed(Ack{pings[0].seq_no, {}});
  responders_ = {addr(2)};
  advance(seconds(5));
  EXPECT_EQ(state_of("b"), MemberState::Alive);
  EXPECT_EQ(node_.health_score(), 0);
  EXPECT_EQ(node_.stats().probes_failed, 0u);
}

TEST_F(NodeTest, PingToBProtocol5CarriesCrc) {
  feed(alive_msg("b", 2, 1));
  clear();
  advance(seconds(1));
  ASSERT_FALSE(sent_.empty());
  EXPECT_TRUE(sent_[0].crc);
  // A peer that only speaks protocol 4 gets no CRC.
  Node n(make_config(), 3);
  n.start(now_);
  Bytes b;
  encode(PacketMessage{alive_msg("b", 2, 1, {}, {1, 4, 2, 2, 5, 5})}, b);
  n.on_packet(now_, addr(2), b);
  n.drain_packets();
  n.on_timer(now_ + seconds(1));
  auto out = n.drain_packets();
  ASSERT_FALSE(out.empty());
  EXPECT_NE(out[0].bytes[0], 12);
}

TEST_F(NodeTest, FailedProbeGoesIndirectThenSuspects) {
  add_peers();
  responders_.clear();
  // Find the first probe and who it targets.
  advance(seconds(1));
  ASSERT_FALSE(sent_of<Ping>().empty());
  const Ping first = sent_of<Ping>()[0];
  const std::string target = first.node;
  clear();
  silence(target);
  // After the probe timeout: indirect pings to the two other members, each
  // asking for a nack (protocol 5 >= 4), and a TCP ping to the target.
  advance(milliseconds(500));
  auto ind = sent_of<IndirectPing>();
  ASSERT_EQ(ind.size(), 2u);
  for (const auto& i : ind) {
    EXPECT_EQ(i.node, target);
    EXPECT_EQ(i.seq_no, first.seq_no);
    EXPECT_TRUE(i.nack);
  }
  ASSERT_EQ(streams_.size(), 1u);
  EXPECT_EQ(streams_[0].kind, StreamKind::Ping);
  node_.on_stream_failed(now_, streams_[0].id);
  // One nack arrives, the other doesn't: health worsens by one.
  feed(Nack{first.seq_no});
  advance(milliseconds(500));
  EXPECT_EQ(state_of(target), MemberState::Suspect);
  EXPECT_TRUE(has_event(EventKind::Suspect, target));
  // +1 for the missing nack, -1 for the next probe (of a peer that answers),
  // which starts at the same instant as this one's deadline.
  EXPECT_EQ(node_.health_score(), 0);
  EXPECT_EQ(node_.stats().probes_failed, 1u);
  EXPECT_EQ(node_.stats().suspicions_raised, 1u);
}

TEST_F(NodeTest, IndirectAckPreventsSuspicion) {
  add_peers();
  responders_.clear();
  advance(seconds(1));
  const Ping first = sent_of<Ping>()[0];
  silence(first.node);
  advance(milliseconds(600));
  feed(Ack{first.seq_no, {}}, 3);  // relayed by a peer
  advance(seconds(2));
  EXPECT_EQ(state_of(first.node), MemberState::Alive);
  EXPECT_EQ(node_.stats().suspicions_raised, 0u);
}

TEST_F(NodeTest, TcpPingSuccessPreventsSuspicion) {
  add_peers();
  responders_.clear();
  advance(seconds(1));
  const Ping first = sent_of<Ping>()[0];
  silence(first.node);
  advance(milliseconds(500));
  ASSERT_EQ(streams_.size(), 1u);
  auto req = decode_stream(streams_[0].bytes);
  ASSERT_TRUE(req.ok());
  const auto& ping = std::get<Ping>(req->message);
  EXPECT_EQ(ping.seq_no, first.seq_no);
  node_.on_stream_reply(now_, streams_[0].id,
                        encode_stream(StreamMessage{Ack{ping.seq_no, {}}}, true));
  advance(seconds(1));
  EXPECT_EQ(state_of(first.node), MemberState::Alive);
}

TEST_F(NodeTest, SuspicionTimesOutIntoDeathAndConfirmationsShortenIt) {
  add_peers();
  // n = 4, SuspicionMult 4: min = 4 x max(1, log10 4) x 1 s = 4 s; k = 2, so
  // it starts at max = 6 x 4 s = 24 s.
  feed(Suspect{1, "b", "c"});
  EXPECT_EQ(state_of("b"), MemberState::Suspect);
  advance(seconds(23));
  EXPECT_EQ(state_of("b"), MemberState::Suspect);
  advance(seconds(2));
  EXPECT_EQ(state_of("b"), MemberState::Dead);
  EXPECT_TRUE(has_event(EventKind::Dead, "b"));

  // C: two independent confirmations bring it down to the 4 s minimum.
  feed(Suspect{1, "c", "b"});
  feed(Suspect{1, "c", "d"});
  feed(Suspect{1, "c", "a"});
  advance(seconds(3));
  EXPECT_EQ(state_of("c"), MemberState::Suspect);
  advance(seconds(2));
  EXPECT_EQ(state_of("c"), MemberState::Dead);
}

TEST_F(NodeTest, SuspectWithOlderIncarnationIsIgnored) {
  feed(alive_msg("b", 2, 5));
  feed(Suspect{4, "b", "c"});
  EXPECT_EQ(state_of("b"), MemberState::Alive);
}

TEST_F(NodeTest, StaleAccusationIsAnsweredWithTheNewerAlive) {
  add_peers();
  feed(alive_msg("b", 2, 3));
  clear();
  // C still believes B is suspect at incarnation 1: tell C what we know.
  auto told = [&](std::uint8_t to) {
    auto alive = sent_of<Alive>(addr(to));
    return std::any_of(alive.begin(), alive.end(),
                       [](const Alive& a) { return a.node == "b" && a.incarnation == 3; });
  };
  feed(Suspect{1, "b", "c"}, 3);
  EXPECT_TRUE(told(3));
  EXPECT_EQ(node_.stats().corrections_sent, 1u);
  EXPECT_EQ(state_of("b"), MemberState::Alive);
  clear();
  feed(Dead{2, "b", "d"}, 4);
  EXPECT_TRUE(told(4));
  EXPECT_EQ(node_.stats().corrections_sent, 2u);
  // An accusation at the current incarnation is news, not stale.
  feed(Suspect{3, "b", "c"}, 3);
  EXPECT_EQ(node_.stats().corrections_sent, 2u);
  EXPECT_EQ(state_of("b"), MemberState::Suspect);
}

TEST_F(NodeTest, SuspectMemberRecoversOnHigherAlive) {
  add_peers();
  feed(Suspect{1, "b", "c"});
  feed(alive_msg("b", 2, 2));
  EXPECT_EQ(state_of("b"), MemberState::Alive);
  EXPECT_TRUE(has_event(EventKind::Recovered, "b"));
  advance(seconds(60));
  EXPECT_NE(state_of("b"), MemberState::Dead);
}

TEST_F(NodeTest, SuspicionAboutSelfIsRefuted) {
  add_peers();
  feed(Suspect{1, "a", "b"});
  EXPECT_EQ(node_.incarnation(), 2u);
  EXPECT_EQ(node_.member("a")->state, MemberState::Alive);
  EXPECT_EQ(node_.health_score(), 1);
  EXPECT_EQ(node_.stats().refutations, 1u);
  advance(seconds(1));
  auto alive = sent_of<Alive>();
  ASSERT_FALSE(alive.empty());
  EXPECT_EQ(alive[0].node, "a");
  EXPECT_EQ(alive[0].incarnation, 2u);
}

TEST_F(NodeTest, DeathAboutSelfIsRefutedAboveTheAccusation) {
  add_peers();
  feed(Dead{9, "a", "b"});
  EXPECT_EQ(node_.incarnation(), 10u);
  EXPECT_EQ(node_.member("a")->state, MemberState::Alive);
}

TEST_F(NodeTest, AliveAboutSelfWithOtherMetaIsRefuted) {
  add_peers();
  feed(alive_msg("a", 1, 1, {'z'}));
  EXPECT_EQ(node_.incarnation(), 2u);
  EXPECT_TRUE(node_.member("a")->meta.empty());
}

TEST_F(NodeTest, DeadMessageDeclaresDeadAndFromItselfMeansLeft) {
  add_peers();
  feed(Dead{1, "b", "c"});
  EXPECT_EQ(state_of("b"), MemberState::Dead);
  EXPECT_TRUE(has_event(EventKind::Dead, "b"));
  feed(Dead{1, "c", "c"});
  EXPECT_EQ(state_of("c"), MemberState::Left);
  EXPECT_TRUE(has_event(EventKind::Left, "c"));
  // A dead node comes back with a higher incarnation: joined again.
  clear();
  feed(alive_msg("b", 2, 2));
  EXPECT_TRUE(has_event(EventKind::Joined, "b"));
}

// Serf's force-leave as each member applies it: only a dead member turns
// left (with its event); alive, suspect, left, unknown and self stay as
// they are. A dead message about it afterwards changes nothing.
TEST_F(NodeTest, ForceLeftTurnsOnlyADeadMemberLeft) {
  add_peers();
  EXPECT_FALSE(node_.force_left(now_, "b"));  // alive
  EXPECT_FALSE(node_.force_left(now_, "a"));  // ourself
  EXPECT_FALSE(node_.force_left(now_, "nobody"));
  feed(Dead{1, "b", "c"});
  ASSERT_EQ(state_of("b"), MemberState::Dead);
  clear();
  EXPECT_TRUE(node_.force_left(now_, "b"));
  drain();
  EXPECT_EQ(state_of("b"), MemberState::Left);
  EXPECT_TRUE(has_event(EventKind::Left, "b"));
  clear();
  EXPECT_FALSE(node_.force_left(now_, "b"));  // left already
  feed(Dead{1, "b", "c"});
  EXPECT_EQ(state_of("b"), MemberState::Left);
  EXPECT_FALSE(has_event(EventKind::Dead, "b"));
  // Back with a higher incarnation: a new life, alive.
  feed(alive_msg("b", 2, 2));
  EXPECT_EQ(state_of("b"), MemberState::Alive);
}

TEST_F(NodeTest, PingIsAnsweredAtItsSourceAddress) {
  Ping p;
  p.seq_no = 77;
  p.node = "a";
  p.source_addr = {10, 0, 0, 9};
  p.source_port = 8000;
  p.source_node = "z";
  feed(p, 2);
  auto acks = sent_of<Ack>(Address::v4(10, 0, 0, 9, 8000));
  ASSERT_EQ(acks.size(), 1u);
  EXPECT_EQ(acks[0].seq_no, 77u);
  // Without a source address the answer goes where the packet came from.
  clear();
  feed(Ping{78, "", {}, 0, {}}, 5);
  ASSERT_EQ(sent_of<Ack>(addr(5)).size(), 1u);
}

TEST_F(NodeTest, PingForAnotherNameIsDroppedAndCounted) {
  feed(Ping{5, "not-a", {}, 0, {}});
  EXPECT_TRUE(sent_of<Ack>().empty());
  EXPECT_EQ(node_.stats().ping_wrong_node, 1u);
}

TEST_F(NodeTest, IndirectPingIsForwardedAndTheAckRelayed) {
  add_peers();
  IndirectPing ind;
  ind.seq_no = 500;
  ind.target = {10, 0, 0, 3};
  ind.port = 7946;
  ind.node = "c";
  ind.nack = true;
  ind.source_addr = {10, 0, 0, 2};
  ind.source_port = 7946;
  ind.source_node = "b";
  feed(ind, 2);
  auto fwd = sent_of<Ping>(addr(3));
  ASSERT_EQ(fwd.size(), 1u);
  EXPECT_EQ(fwd[0].node, "c");
  feed(Ack{fwd[0].seq_no, {}}, 3);
  auto acks = sent_of<Ack>(addr(2));
  ASSERT_EQ(acks.size(), 1u);
  EXPECT_EQ(acks[0].seq_no, 500u);
  advance(seconds(1));
  EXPECT_TRUE(sent_of<Nack>().empty());
}

TEST_F(NodeTest, IndirectPingUnansweredSendsNack) {
  add_peers();
  IndirectPing ind;
  silence("c");
  ind.seq_no = 501;
  ind.target = {10, 0, 0, 3};
  ind.port = 7946;
  ind.node = "c";
  ind.nack = true;
  feed(ind, 2);
  advance(milliseconds(499));
  EXPECT_TRUE(sent_of<Nack>().empty());
  advance(milliseconds(2));
  auto nacks = sent_of<Nack>(addr(2));
  ASSERT_EQ(nacks.size(), 1u);
  EXPECT_EQ(nacks[0].seq_no, 501u);
}

TEST_F(NodeTest, ProbeOfSuspectCarriesTheSuspicion) {
  feed(alive_msg("b", 2, 1));
  feed(Suspect{1, "b", "c"});
  clear();
  advance(seconds(1));
  auto pings = sent_of<Ping>(addr(2));
  auto sus = sent_of<Suspect>(addr(2));
  ASSERT_EQ(pings.size(), 1u);
  EXPECT_TRUE(std::any_of(sus.begin(), sus.end(), [](const Suspect& x) {
    return x.node == "b" && x.from == "a";
  }));
  // Both travel in the same packet.
  ASSERT_FALSE(sent_.empty());
  EXPECT_GE(sent_[0].messages.size(), 2u);
}

TEST_F(NodeTest, NameConflictIsReportedAndIgnoredUnlessTheOwnerLeft) {
  add_peers();
  Alive other = alive_msg("b", 9, 5);
  feed(other);
  EXPECT_TRUE(has_event(EventKind::Conflict, "b"));
  EXPECT_EQ(node_.member("b")->addr, addr(2));
  EXPECT_EQ(node_.stats().conflicts, 1u);
  // Once B has left, and left_node_reclaim_time has passed, its name may be
  // taken by the new address.
  feed(Dead{1, "b", "b"});
  feed(other);
  EXPECT_EQ(node_.member("b")->addr, addr(2)) << "too early";
  advance(node_.config().left_node_reclaim_time);
  clear();
  feed(other);
  EXPECT_EQ(node_.member("b")->addr, addr(9));
  EXPECT_TRUE(has_event(EventKind::Joined, "b"));
}

TEST_F(NodeTest, DeadNameIsReclaimableAfterTheConfiguredTime) {
  Config c = make_config();
  c.dead_node_reclaim_time = seconds(10);
  Node n(c, 5);
  n.start(now_);
  Bytes b;
  encode(PacketMessage{alive_msg("b", 2, 1)}, b);
  n.on_packet(now_, addr(2), b);
  // B pings A, which verifies it (a never verified dead name may be taken
  // at once; see NodeGossipAbuse).
  Ping ping;
  ping.seq_no = 1;
  ping.node = "a";
  ping.source_addr = {10, 0, 0, 2};
  ping.source_port = 7946;
  ping.source_node = "b";
  b.clear();
  encode(PacketMessage{ping}, b);
  n.on_packet(now_, addr(2), b);
  ASSERT_TRUE(n.member("b")->verified);
  b.clear();
  encode(PacketMessage{Dead{1, "b", "c"}}, b);
  n.on_packet(now_, addr(3), b);
  b.clear();
  encode(PacketMessage{alive_msg("b", 9, 1)}, b);
  n.on_packet(now_ + seconds(5), addr(9), b);
  EXPECT_EQ(n.member("b")->addr, addr(2));
  n.on_packet(now_ + seconds(11), addr(9), b);
  EXPECT_EQ(n.member("b")->addr, addr(9));
  EXPECT_EQ(n.member("b")->state, MemberState::Alive);
}

TEST_F(NodeTest, MetaUpdateRaisesIncarnationAndIsBroadcast) {
  add_peers();
  EXPECT_TRUE(node_.set_meta(now_, {'m', '1'}));
  EXPECT_EQ(node_.incarnation(), 2u);
  EXPECT_EQ(node_.member("a")->meta, (Bytes{'m', '1'}));
  advance(seconds(1));
  auto alive = sent_of<Alive>();
  ASSERT_FALSE(alive.empty());
  EXPECT_EQ(alive[0].meta, (Bytes{'m', '1'}));
  EXPECT_FALSE(node_.set_meta(now_, Bytes(513, 'x')));
  EXPECT_EQ(node_.incarnation(), 2u);
}

TEST_F(NodeTest, IncomingPushPullIsAnsweredWithOurStateThenMerged) {
  feed(alive_msg("b", 2, 1));
  PushPull pp;
  pp.join = true;
  pp.nodes.push_back({"c", {10, 0, 0, 3}, 7946, {}, 3, MemberState::Alive, {1, 5, 2, 2, 5, 5}});
  pp.nodes.push_back({"d", {10, 0, 0, 4}, 7946, {}, 1, MemberState::Alive, {1, 5, 2, 2, 5, 5}});
  pp.nodes.push_back({"b", {10, 0, 0, 2}, 7946, {}, 1, MemberState::Dead, {1, 5, 2, 2, 5, 5}});
  pp.user_state = {'u'};
  Bytes bytes = encode_stream(StreamMessage{pp}, true);
  // A prefix needs more bytes.
  auto partial = node_.on_stream(now_, addr(3), ByteView(bytes).first(bytes.size() / 2));
  EXPECT_EQ(partial.status, StreamAnswer::Status::NeedMore);
  auto answer = node_.on_stream(now_, addr(3), bytes);
  ASSERT_EQ(answer.status, StreamAnswer::Status::Reply);
  auto reply = decode_stream(answer.reply);
  ASSERT_TRUE(reply.ok());
  const auto& ours = std::get<PushPull>(reply->message);
  EXPECT_TRUE(ours.join);
  EXPECT_EQ(ours.nodes.size(), 2u);  // a and b: the state before the merge
  drain();
  EXPECT_EQ(state_of("c"), MemberState::Alive);
  EXPECT_EQ(node_.member("c")->incarnation, 3u);
  EXPECT_EQ(state_of("d"), MemberState::Alive);
  // A remote "dead" only makes B suspect here.
  EXPECT_EQ(state_of("b"), MemberState::Suspect);
  auto user = node_.drain_user_data();
  ASSERT_EQ(user.size(), 1u);
  EXPECT_EQ(user[0].kind, UserData::Kind::RemoteState);
  EXPECT_TRUE(user[0].join);
}

TEST_F(NodeTest, PushPullWithIncompatibleVersionIsNotMerged) {
  PushPull pp;
  pp.nodes.push_back({"c", {10, 0, 0, 3}, 7946, {}, 1, MemberState::Alive, {6, 7, 6, 2, 5, 5}});
  auto answer = node_.on_stream(now_, addr(3), encode_stream(StreamMessage{pp}, false));
  EXPECT_EQ(answer.status, StreamAnswer::Status::Reply);
  EXPECT_EQ(node_.member("c"), nullptr);
  EXPECT_EQ(node_.stats().push_pull_rejected, 1u);
}

TEST_F(NodeTest, JoinPushPullsWithEachSeedAndReportsOutcomes) {
  node_.join(now_, {addr(2), addr(3)});
  drain();
  ASSERT_EQ(streams_.size(), 2u);
  for (const auto& s : streams_) {
    EXPECT_EQ(s.kind, StreamKind::Join);
    auto req = decode_stream(s.bytes);
    ASSERT_TRUE(req.ok());
    EXPECT_TRUE(std::get<PushPull>(req->message).join);
  }
  PushPull pp;
  pp.join = true;
  pp.nodes.push_back({"b", {10, 0, 0, 2}, 7946, {}, 1, MemberState::Alive, {1, 5, 2, 2, 5, 5}});
  node_.on_stream_reply(now_, streams_[0].id, encode_stream(StreamMessage{pp}, true));
  node_.on_stream_failed(now_, streams_[1].id);
  auto results = node_.drain_join_results();
  ASSERT_EQ(results.size(), 2u);
  EXPECT_TRUE(results[0].ok);
  EXPECT_FALSE(results[1].ok);
  EXPECT_EQ(state_of("b"), MemberState::Alive);
}

TEST_F(NodeTest, UnansweredJoinTimesOutByItself) {
  node_.join(now_, {addr(2)});
  drain();
  advance(seconds(11));
  auto results = node_.drain_join_results();
  ASSERT_EQ(results.size(), 1u);
  EXPECT_FALSE(results[0].ok);
}

TEST_F(NodeTest, StreamPingIsAnsweredWithAck) {
  auto answer =
      node_.on_stream(now_, addr(2), encode_stream(StreamMessage{Ping{9, "a", {}, 0, {}}}, true));
  ASSERT_EQ(answer.status, StreamAnswer::Status::Reply);
  auto reply = decode_stream(answer.reply);
  ASSERT_TRUE(reply.ok());
  EXPECT_EQ(std::get<Ack>(reply->message).seq_no, 9u);
}

TEST_F(NodeTest, LeaveBroadcastsOwnDeathAndCompletesAfterTransmission) {
  add_peers();
  node_.leave(now_);
  EXPECT_TRUE(node_.has_left());
  EXPECT_EQ(node_.member("a")->state, MemberState::Left);
  EXPECT_FALSE(node_.leave_done());
  advance(seconds(10));
  auto dead = sent_of<Dead>();
  ASSERT_FALSE(dead.empty());
  EXPECT_EQ(dead[0].node, "a");
  EXPECT_EQ(dead[0].from, "a");
  EXPECT_TRUE(node_.leave_done());
  // A left node ignores claims that it is alive.
  feed(alive_msg("a", 1, 50));
  EXPECT_EQ(node_.member("a")->state, MemberState::Left);
}

// The intent is reported sent once it went out its retransmit limit
// (4 x ceil(log10(4 + 1)) = 4 for four members), no sooner; a newer
// intent replacing it starts the count again.
TEST_F(NodeTest, LeaveIntentIsReportedSentAfterItsRetransmitLimit) {
  add_peers();
  const int limit = retransmit_limit(node_.config().retransmit_mult, node_.num_members());
  ASSERT_EQ(limit, 4);
  node_.queue_leave_intent({'i', '1'}, "leave");
  node_.queue_leave_intent({'i', '2'}, "leave");  // replaces i1
  EXPECT_FALSE(node_.leave_intent_sent());
  auto sent_i2 = [&] {
    int n = 0;
    for (const auto& m : sent_of<UserMsg>()) {
      EXPECT_EQ(m.payload, (Bytes{'i', '2'}));
      ++n;
    }
    return n;
  };
  for (int step = 0; step < 100 && !node_.leave_intent_sent(); ++step) {
    EXPECT_LT(sent_i2(), limit);
    advance(milliseconds(10));
  }
  EXPECT_TRUE(node_.leave_intent_sent());
  EXPECT_EQ(sent_i2(), limit);
  // Nothing more of it goes out.
  advance(seconds(2));
  EXPECT_EQ(sent_i2(), limit);
}

// The node queues its death the moment the leave intent is sent its last
// time: the rest of that gossip round
// carries the death (Serf's Leave queues it while memberlist's round goes
// on), instead of the next round.
TEST_F(NodeTest, LeaveAfterIntentSendsTheDeathInTheRoundThatFinishedTheIntent) {
  Config c = make_config();
  c.probe_interval = seconds(3600);  // only gossip carries the intent
  c.push_pull_interval = seconds(3600);
  Node n(c, 5);
  n.start(now_);
  for (std::uint8_t i = 2; i <= 4; ++i) {
    Bytes b;
    encode(PacketMessage{alive_msg(std::string(1, static_cast<char>('a' + i - 1)), i, 1)}, b);
    n.on_packet(now_, addr(i), b);
  }
  // Let the alives go out, so that the intent's packets carry nothing else.
  for (Time t = now_; t < now_ + seconds(3); t += milliseconds(10)) n.on_timer(t);
  n.drain_packets();
  ASSERT_EQ(retransmit_limit(c.retransmit_mult, n.num_members()), 4);
  n.queue_leave_intent({'i'}, "leave");
  int intents = 0;
  std::optional<Time> intent_out, first_dead;
  for (Time t = now_ + seconds(3); t < now_ + seconds(5) && !first_dead; t += milliseconds(1)) {
    n.on_timer(t);
    for (auto& p : n.drain_packets()) {
      auto d = decode_packet(p.bytes);
      ASSERT_TRUE(d.ok());
      for (const auto& m : d->messages) {
        if (std::holds_alternative<UserMsg>(m) && ++intents == 4) intent_out = t;
        if (const auto* dead = std::get_if<Dead>(&m);
            dead != nullptr && dead->node == "a" && dead->from == "a" && !first_dead)
          first_dead = t;
      }
    }
  }
  EXPECT_TRUE(n.leave_intent_sent());
  EXPECT_TRUE(n.has_left());
  ASSERT_TRUE(intent_out.has_value());
  ASSERT_TRUE(first_dead.has_value());
  // Three peers a round: copies 1-3 in one round, the 4th and the death in
  // the next.
  EXPECT_EQ(*first_dead, *intent_out);
}

TEST_F(NodeTest, LeaveAloneIsDoneAtOnce) {
  node_.leave(now_);
  EXPECT_TRUE(node_.leave_done());
}

TEST_F(NodeTest, DeadMembersAreGossipedToForAWhileThenReaped) {
  add_peers();
  feed(Dead{1, "b", "c"});
  clear();
  advance(seconds(20));
  // Within GossipToTheDeadTime (30 s) B still receives gossip.
  bool gossiped_to_b = std::any_of(sent_.begin(), sent_.end(), [](const Sent& s) {
    return s.to == addr(2) && !s.messages.empty() && !std::holds_alternative<Ping>(s.messages[0]);
  });
  EXPECT_TRUE(gossiped_to_b);
  EXPECT_NE(node_.member("b"), nullptr);
  // Later it is reaped at the end of a probe round.
  advance(seconds(30));
  EXPECT_EQ(node_.member("b"), nullptr);
  EXPECT_EQ(node_.num_members(), 3u);
}

// memberlist's probe ticker keeps its interval whatever the health score;
// the score stretches how long a probe waits before it suspects. So a
// degraded node keeps probing live members every second (each success
// lowers the score by one), and a failing probe at a score of 2 waits 3 s.
TEST_F(NodeTest, AwarenessStretchesAFailingProbeButNotTheCadence) {
  add_peers();
  // Three refutations push the health score to 3.
  feed(Suspect{1, "a", "b"});
  feed(Suspect{2, "a", "b"});
  feed(Suspect{3, "a", "b"});
  ASSERT_EQ(node_.health_score(), 3);
  clear();
  const std::uint64_t probes_before = node_.stats().probes;
  advance(seconds(3) + milliseconds(999));
  // Every peer answers at once: a probe each second, not one each 4 s.
  EXPECT_GE(node_.stats().probes - probes_before, 3u);
  EXPECT_EQ(node_.health_score(), 0);

  // Back to a score of 2; then nobody answers.
  feed(Suspect{4, "a", "b"});
  feed(Suspect{5, "a", "b"});
  ASSERT_EQ(node_.health_score(), 2);
  responders_.clear();
  clear();
  std::string target;
  while (target.empty()) {
    advance(milliseconds(10));
    for (const auto& s : sent_)
      for (const auto& m : s.messages)
        if (const auto* p = std::get_if<Ping>(&m); p != nullptr && target.empty()) target = p->node;
  }
  const std::uint64_t probes_at_first = node_.stats().probes;
  // The probe waits (2 + 1) x 1 s before suspecting, and no other probe
  // starts meanwhile.
  advance(seconds(3) - milliseconds(20));
  EXPECT_EQ(state_of(target), MemberState::Alive);
  EXPECT_EQ(node_.stats().probes, probes_at_first);
  advance(milliseconds(20));
  EXPECT_EQ(state_of(target), MemberState::Suspect);
}

TEST_F(NodeTest, GarbageIsCountedNeverFatal) {
  feed_bytes({});
  feed_bytes({200});
  feed_bytes({0, 0xc1});
  feed_bytes({7, 3, 0});
  feed_bytes({12, 0, 0, 0, 0, 4});
  const auto& s = node_.stats();
  EXPECT_GE(s.decode_errors_total(), 5u);
  EXPECT_EQ(node_.member("a")->state, MemberState::Alive);
  auto answer = node_.on_stream(now_, addr(2), Bytes{6, 0xc1});
  EXPECT_EQ(answer.status, StreamAnswer::Status::Close);
}

TEST_F(NodeTest, UserMessagesAndBroadcasts) {
  add_peers();
  feed(UserMsg{{'h', 'i'}});
  auto user = node_.drain_user_data();
  ASSERT_EQ(user.size(), 1u);
  EXPECT_EQ(user[0].payload, (Bytes{'h', 'i'}));
  node_.queue_user_broadcast({'u', '1'}, "k");
  node_.queue_user_broadcast({'u', '2'}, "k");  // replaces u1
  advance(seconds(2));
  auto msgs = sent_of<UserMsg>();
  ASSERT_FALSE(msgs.empty());
  for (const auto& m : msgs) EXPECT_EQ(m.payload, (Bytes{'u', '2'}));
}

// Before a suspicion runs out the node tells the suspect and a few members,
// one probe timeout ahead of the deadline. Here B was refuted and we missed
// every copy of the refutation: the newer alive that comes back saves B.
TEST_F(NodeTest, SuspicionAboutToRunOutAsksAroundFirstAndANewerAliveSavesTheMember) {
  add_peers();
  // n = 4: max = 24 s (SuspicionTimesOutIntoDeathAndConfirmationsShortenIt).
  feed(Suspect{1, "b", "c"});
  advance(seconds(23) + milliseconds(499));
  EXPECT_EQ(node_.stats().last_calls, 0u);
  clear();
  advance(milliseconds(1));
  EXPECT_EQ(state_of("b"), MemberState::Suspect);
  EXPECT_FALSE(has_event(EventKind::Dead, "b"));
  // The last call: our suspicion, to B itself and to the others.
  auto to_b = sent_of<Suspect>(addr(2));
  ASSERT_FALSE(to_b.empty());
  EXPECT_EQ(to_b[0].node, "b");
  EXPECT_EQ(to_b[0].from, "a");
  EXPECT_FALSE(sent_of<Suspect>(addr(3)).empty());
  EXPECT_FALSE(sent_of<Suspect>(addr(4)).empty());
  EXPECT_EQ(node_.stats().last_calls, 1u);
  // C answers with the alive it holds (correct_stale).
  advance(milliseconds(300));
  feed(alive_msg("b", 2, 2), 3);
  advance(seconds(5));
  EXPECT_EQ(state_of("b"), MemberState::Alive);
  EXPECT_FALSE(has_event(EventKind::Dead, "b"));
  EXPECT_EQ(node_.stats().last_calls_answered, 1u);
}

// Unanswered, the death comes at the deadline, as memberlist declares it.
TEST_F(NodeTest, UnansweredLastCallDeclaresTheDeathAtTheDeadline) {
  add_peers();
  feed(Suspect{1, "b", "c"});
  advance(seconds(23) + milliseconds(500));
  EXPECT_EQ(node_.stats().last_calls, 1u);
  advance(milliseconds(499));
  EXPECT_EQ(state_of("b"), MemberState::Suspect);
  advance(milliseconds(1));
  EXPECT_EQ(state_of("b"), MemberState::Dead);
  EXPECT_TRUE(has_event(EventKind::Dead, "b"));
  EXPECT_EQ(node_.stats().last_calls_unanswered, 1u);
}

// Confirmations that pull the deadline into the past: the last call goes out
// at once and its answers get a full probe timeout.
TEST_F(NodeTest, LateConfirmationsStillLeaveTheLastCallAProbeTimeout) {
  add_peers();
  feed(Suspect{1, "b", "c"});
  advance(seconds(10));
  EXPECT_EQ(node_.stats().last_calls, 0u);
  // Two confirmations: the timeout drops to the 4 s minimum, long past.
  feed(Suspect{1, "b", "d"});
  feed(Suspect{1, "b", "a"});
  advance(milliseconds(1));
  EXPECT_EQ(node_.stats().last_calls, 1u);
  advance(milliseconds(498));
  EXPECT_EQ(state_of("b"), MemberState::Suspect);
  advance(milliseconds(1));
  EXPECT_EQ(state_of("b"), MemberState::Dead);
}

// Our refutation goes before others' news even when the queue holds more
// fresh messages than a packet can carry, all larger than the refutation
// (memberlist's order would send those first: fewest sent, then largest).
TEST_F(NodeTest, RefutationGoesBeforeOlderNewsInAFullQueue) {
  Config c = make_config();
  c.udp_buffer_size = 400;
  c.gossip_nodes = 1;
  c.probe_interval = seconds(3600);  // no probe packet in the way
  c.push_pull_interval = seconds(3600);
  Node n(c, 3);
  n.start(now_);
  // Our refutation as it will be encoded (incarnation 2).
  Alive self = alive_msg("a", 1, 2);
  const std::size_t self_len = encode(self).size();
  // Others' alives sized so that one fills a packet and the rest of the
  // packet cannot hold the refutation.
  const std::size_t avail = c.udp_buffer_size - 2;
  Bytes meta;
  while (encode(alive_msg("m10", 10, 1, meta)).size() + 2 + 2 + self_len <= avail) meta.push_back('t');
  ASSERT_LE(encode(alive_msg("m10", 10, 1, meta)).size() + 2, avail);
  for (std::uint8_t i = 10; i < 40; ++i) {
    Bytes b;
    encode(PacketMessage{alive_msg("m" + std::to_string(i), i, 1, meta)}, b);
    n.on_packet(now_, addr(2), b);
  }
  n.drain_packets();
  Bytes b;
  encode(PacketMessage{Suspect{1, "a", "m10"}}, b);
  n.on_packet(now_, addr(10), b);
  EXPECT_EQ(n.stats().refutations, 1u);
  n.drain_packets();
  // The next gossip packet carries the refutation.
  std::optional<Alive> first;
  for (Time t = now_; t < now_ + seconds(1) && !first; t += milliseconds(50)) {
    n.on_timer(t);
    for (auto& p : n.drain_packets()) {
      auto d = decode_packet(p.bytes);
      ASSERT_TRUE(d.ok());
      for (const auto& m : d->messages)
        if (const auto* a = std::get_if<Alive>(&m); a != nullptr && a->node == "a") first = *a;
      if (!first) ADD_FAILURE() << "a gossip packet went out without the refutation";
      break;
    }
  }
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->incarnation, 2u);
}

// The queue is bounded; past the bound the most-sent news goes, and a
// node's own news stays.
TEST_F(NodeTest, BroadcastQueueIsBoundedAndKeepsOwnNews) {
  Config c = make_config();
  c.max_broadcast_queue = 4;
  c.probe_interval = seconds(3600);
  Node n(c, 3);
  n.start(now_);  // queues our own alive
  for (std::uint8_t i = 10; i < 20; ++i) {
    Bytes b;
    encode(PacketMessage{alive_msg("m" + std::to_string(i), i, 1)}, b);
    n.on_packet(now_, addr(2), b);
  }
  EXPECT_EQ(n.stats().broadcasts_pruned, 7u);
  EXPECT_EQ(n.stats().broadcast_queue_peak, 4u);
  n.drain_packets();
  // The first gossip still carries our own alive.
  bool own = false;
  for (Time t = now_; t < now_ + seconds(1) && !own; t += milliseconds(50)) {
    n.on_timer(t);
    for (auto& p : n.drain_packets()) {
      auto d = decode_packet(p.bytes);
      ASSERT_TRUE(d.ok());
      for (const auto& m : d->messages)
        if (const auto* a = std::get_if<Alive>(&m); a != nullptr && a->node == "a") own = true;
    }
  }
  EXPECT_TRUE(own);
}

// The aligned probe order: ring a, b, c, d (by name, the same on every
// node); in round r, A (position 0) probes position 1 + (r mod 3), so
// consecutive rounds go b, c, d, b, ... A shared clock one round ahead
// moves the rotation one step on.
TEST_F(NodeTest, AlignedProbesFollowTheSharedRound) {
  add_peers();
  auto next_target = [&] {
    clear();
    advance(seconds(1));
    const auto pings = sent_of<Ping>();
    EXPECT_EQ(pings.size(), 1u);
    return pings.empty() ? std::string() : pings[0].node;
  };
  const std::string order = "bcd";
  auto after = [&](const std::string& t, std::size_t steps) {
    return std::string(1, order[(order.find(t) + steps) % 3]);
  };
  std::string last = next_target();
  for (int i = 0; i < 6; ++i) {
    const std::string t = next_target();
    EXPECT_EQ(t, after(last, 1)) << "probe " << i;
    last = t;
  }
  node_.set_shared_clock_offset(seconds(1));
  const std::string t = next_target();
  EXPECT_EQ(t, after(last, 2)) << "a round ahead";
  EXPECT_EQ(node_.stats().probes_failed, 0u);
}

}  // namespace
}  // namespace mesh::swim
