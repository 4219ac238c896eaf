// The thread block's codec and the thread table's checks (pure: no Mesh).
#include <gtest/gtest.h>

#include <map>
#include <msgpack.hpp>
#include <random>
#include <string>
#include <vector>

#include "mesh/conversation.hpp"
#include "mesh/thread_table.hpp"

namespace mesh {
namespace {

constexpr std::int64_t kNow = 1'800'000'000'000;

ThreadBlock opening(std::uint64_t id = 7) {
  ThreadBlock b;
  b.id = ThreadId{1, id};
  b.origin_agent = "a";
  b.origin_node = "n1";
  b.subject = "debate";
  b.depth = 1;
  return b;
}

TEST(ThreadBlockCodec, RoundTripsEveryField) {
  ThreadBlock b = opening();
  b.parent = ThreadId{9, 9};
  b.turn = 12;
  b.depth = 3;
  b.spent = 1.25;
  b.cost = 0.5;
  b.max_turns = 40;
  b.expires_ms = kNow + 5000;
  b.max_cost = 10;
  b.max_depth = 4;
  b.message_class = MessageClass::Authority;
  b.lineage = {"a@n1", "b@n2"};
  std::string why;
  const auto back = decode_thread_block(encode_thread_block(b), &why);
  ASSERT_TRUE(back) << why;
  EXPECT_EQ(back->id, b.id);
  EXPECT_EQ(back->parent, b.parent);
  EXPECT_EQ(back->origin_agent, "a");
  EXPECT_EQ(back->origin_node, "n1");
  EXPECT_EQ(back->subject, "debate");
  EXPECT_EQ(back->turn, 12u);
  EXPECT_EQ(back->depth, 3u);
  EXPECT_DOUBLE_EQ(back->spent, 1.25);
  EXPECT_DOUBLE_EQ(back->cost, 0.5);
  EXPECT_EQ(back->max_turns, 40u);
  EXPECT_EQ(back->expires_ms, kNow + 5000);
  EXPECT_EQ(back->max_cost, 10.0);
  EXPECT_EQ(back->max_depth, 4u);
  EXPECT_EQ(back->message_class, MessageClass::Authority);
  EXPECT_EQ(back->lineage, b.lineage);

  // Another implementation (msgpack-c) reads the same map.
  const auto bytes = encode_thread_block(b);
  const msgpack::object_handle oh = msgpack::unpack(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  std::map<std::string, msgpack::object> fields;
  oh.get().convert(fields);
  EXPECT_EQ(fields.size(), 15u);
  EXPECT_EQ(fields.at("su").as<std::string>(), "debate");
  EXPECT_EQ(fields.at("tn").as<std::uint32_t>(), 12u);
  EXPECT_EQ(fields.at("ex").as<std::int64_t>(), kNow + 5000);
  EXPECT_DOUBLE_EQ(fields.at("sp").as<double>(), 1.25);
  EXPECT_EQ(fields.at("ln").as<std::vector<std::string>>(), b.lineage);
  EXPECT_EQ(fields.at("id").type, msgpack::type::BIN);
}

TEST(ThreadBlockCodec, RefusesWhatIsNotABlock) {
  std::string why;
  EXPECT_FALSE(decode_thread_block({}, &why));
  const std::vector<std::uint8_t> not_map{0x91, 0x01};
  EXPECT_FALSE(decode_thread_block(not_map, &why));
  EXPECT_EQ(why, "not a map");
  const std::vector<std::uint8_t> no_id{0x81, 0xa2, 't', 'n', 0x01};
  EXPECT_FALSE(decode_thread_block(no_id, &why));
  EXPECT_EQ(why, "no id");
  ThreadBlock b = opening();
  b.spent = -1;  // never encoded by us, refused from others
  EXPECT_FALSE(decode_thread_block(encode_thread_block(b), &why));
  EXPECT_NE(why.find("sp"), std::string::npos) << why;
  b = opening();
  b.subject.assign(kMaxSubjectBytes + 1, 's');
  EXPECT_FALSE(decode_thread_block(encode_thread_block(b), &why));
  b = opening();
  b.lineage.assign(kMaxLineage + 1, "x@y");
  EXPECT_FALSE(decode_thread_block(encode_thread_block(b), &why));
  auto bytes = encode_thread_block(opening());
  bytes.push_back(0xc0);
  EXPECT_FALSE(decode_thread_block(bytes, &why));
  EXPECT_EQ(why, "trailing bytes");
}

TEST(ThreadBlockCodec, RandomBytesNeverThrow) {
  const std::uint64_t seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  const auto good = encode_thread_block(opening());
  for (int i = 0; i < 20000; ++i) {
    auto bytes = good;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int f = 0; f < flips; ++f) bytes[rng() % bytes.size()] = static_cast<std::uint8_t>(rng());
    if (rng() % 4 == 0) bytes.resize(rng() % bytes.size());
    EXPECT_NO_THROW((void)decode_thread_block(bytes));
  }
}

TEST(ThreadId, HexRoundTrip) {
  const ThreadId id{0x0123456789abcdefull, 0xfedcba9876543210ull};
  EXPECT_EQ(id.to_string(), "0123456789abcdeffedcba9876543210");
  EXPECT_EQ(ThreadId::parse(id.to_string()), id);
  EXPECT_FALSE(ThreadId::parse("xyz"));
}

TEST(ThreadLimits, TighteningNeverLoosens) {
  ThreadLimits a{.max_turns = 10, .ttl = std::chrono::milliseconds(1000), .max_cost = {}, .max_depth = 3};
  ThreadLimits b{.max_turns = 20, .ttl = std::chrono::milliseconds(500), .max_cost = 2.0, .max_depth = {}};
  const auto t = a.tightened_by(b);
  EXPECT_EQ(t.max_turns, 10u);
  EXPECT_EQ(t.ttl, std::chrono::milliseconds(500));
  EXPECT_EQ(t.max_cost, 2.0);
  EXPECT_EQ(t.max_depth, 3u);
}

// S1 opens a thread limited to 3 turns and sends; S2 admits turns 1..3
// and refuses the 4th, whatever turn the sender claims.
TEST(ThreadTable, ReceiverCountsTurnsItselfAndRefusesPastTheLimit) {
  ThreadTable receiver;
  for (std::uint32_t i = 1; i <= 3; ++i) {
    ThreadBlock b = opening();
    b.max_turns = 3;
    b.turn = 1;  // a sender that under-reports
    EXPECT_EQ(receiver.admit(b, "b@n2", false, kNow), Refusal::None) << i;
    EXPECT_EQ(b.turn, i);
  }
  ThreadBlock b = opening();
  b.turn = 1;
  EXPECT_EQ(receiver.admit(b, "b@n2", false, kNow), Refusal::TurnLimit);
  const auto* r = receiver.find(b.id);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->state, ThreadState::Refused);
  EXPECT_EQ(r->last_refusal, Refusal::TurnLimit);
  EXPECT_EQ(r->received, 3u);
  EXPECT_EQ(receiver.stats().refusals[static_cast<int>(Refusal::TurnLimit)], 1u);
}

TEST(ThreadTable, LimitsOnlyTighten) {
  ThreadTable t;
  ThreadBlock b = opening();
  b.max_turns = 2;
  ASSERT_EQ(t.admit(b, "b@n2", false, kNow), Refusal::None);
  ThreadBlock looser = opening();
  looser.max_turns = 100;
  ASSERT_EQ(t.admit(looser, "b@n2", false, kNow), Refusal::None);
  EXPECT_EQ(looser.max_turns, 2u);  // what the handler sees
  ThreadBlock third = opening();
  EXPECT_EQ(t.admit(third, "b@n2", false, kNow), Refusal::TurnLimit);
}

TEST(ThreadTable, ExpiryDepthCostAndLoop) {
  ThreadTable t;
  ThreadBlock b = opening(1);
  b.expires_ms = kNow - 1;
  EXPECT_EQ(t.admit(b, "b@n2", false, kNow), Refusal::Expired);
  EXPECT_EQ(t.find(b.id)->state, ThreadState::Expired);

  b = opening(2);
  b.max_depth = 2;
  b.depth = 3;
  EXPECT_EQ(t.admit(b, "b@n2", true, kNow), Refusal::BudgetExceeded);

  b = opening(3);
  b.max_cost = 1.0;
  b.spent = 1.0;
  EXPECT_EQ(t.admit(b, "b@n2", true, kNow), Refusal::BudgetExceeded);

  b = opening(4);
  b.lineage = {"a@n1", "b@n2"};
  EXPECT_EQ(t.admit(b, "b@n2", true, kNow), Refusal::Loop);
  b = opening(4);
  b.lineage = {"a@n1", "b@n2"};
  EXPECT_EQ(t.admit(b, "b@n2", false, kNow), Refusal::None);  // a notify waits on nobody
}

// The requester's table learns the cost its responses report; the next
// message carries it and the receiver refuses once the cap is reached.
TEST(ThreadTable, CostFromResponsesStopsTheThread) {
  ThreadTable a;
  ThreadTable b;
  ThreadBlock first = opening();
  first.max_cost = 2.0;
  ASSERT_TRUE(a.stamp(first, /*opens=*/true, kNow));
  EXPECT_EQ(first.turn, 1u);
  for (int i = 0; i < 2; ++i) {
    ThreadBlock m = first;
    if (i > 0) {
      ASSERT_TRUE(a.stamp(m, false, kNow));
    }
    ASSERT_EQ(b.admit(m, "b@n2", true, kNow), Refusal::None);
    a.on_response(b.response_block(m, 1.0, kNow), kNow);
  }
  EXPECT_DOUBLE_EQ(a.find(first.id)->spent, 2.0);
  ThreadBlock m = first;
  ASSERT_TRUE(a.stamp(m, false, kNow));
  EXPECT_DOUBLE_EQ(m.spent, 2.0);
  EXPECT_EQ(b.admit(m, "b@n2", true, kNow), Refusal::BudgetExceeded);
  a.close(first.id, kNow);
  EXPECT_EQ(a.find(first.id)->state, ThreadState::Closed);
  EXPECT_EQ(a.stats().closed, 1u);
  EXPECT_EQ(a.stats().cost_histogram.back(), 1u);
}

TEST(ThreadTable, StampRefusesUnknownAndExpiredThreads) {
  ThreadTable t;
  ThreadBlock b = opening();
  EXPECT_FALSE(t.stamp(b, false, kNow));
  b.expires_ms = kNow + 10;
  ASSERT_TRUE(t.stamp(b, true, kNow));
  EXPECT_FALSE(t.stamp(b, false, kNow + 11));
  EXPECT_EQ(t.find(b.id)->state, ThreadState::Expired);
  EXPECT_EQ(t.stats().expired, 1u);
}

// A same-node message: the turn is counted once, by the admission.
TEST(ThreadTable, StampAndAdmitCountsOneTurnAndRefusesPastTheLimit) {
  ThreadTable t;
  ThreadBlock b = opening();
  EXPECT_FALSE(t.stamp_and_admit(b, false, "b@n1", false, kNow).has_value());  // unknown thread
  b.max_turns = 2;
  const auto first = t.stamp_and_admit(b, true, "b@n1", false, kNow);
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(*first, Refusal::None);
  EXPECT_EQ(b.turn, 1u);
  EXPECT_EQ(t.find(b.id)->turns, 1u);
  ThreadBlock m = b;
  EXPECT_EQ(t.stamp_and_admit(m, false, "b@n1", false, kNow), Refusal::None);
  EXPECT_EQ(m.turn, 2u);
  ThreadBlock over = b;
  EXPECT_EQ(t.stamp_and_admit(over, false, "b@n1", false, kNow), Refusal::TurnLimit);
  EXPECT_EQ(t.find(b.id)->turns, 2u);
}

TEST(ThreadTable, BoundedFinishedThreadsGoFirst) {
  ThreadTable t(100);
  for (std::uint64_t i = 0; i < 100; ++i) {
    ThreadBlock b = opening(i + 1);
    ASSERT_EQ(t.admit(b, "b@n2", false, kNow + static_cast<std::int64_t>(i)), Refusal::None);
  }
  t.close(ThreadId{1, 100}, kNow + 200);  // the most recent, but finished
  ThreadBlock extra = opening(1000);
  ASSERT_EQ(t.admit(extra, "b@n2", false, kNow + 300), Refusal::None);
  EXPECT_LE(t.size(), 100u);
  EXPECT_FALSE(t.find(ThreadId{1, 100}));  // finished: gone first
  EXPECT_FALSE(t.find(ThreadId{1, 1}));    // then the least recent open ones
  EXPECT_TRUE(t.find(ThreadId{1, 99}));
  EXPECT_TRUE(t.find(extra.id));
  EXPECT_EQ(t.stats().evicted, 10u);
}

}  // namespace
}  // namespace mesh
