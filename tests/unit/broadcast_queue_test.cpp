#include "broadcast_queue.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace mesh::swim {
namespace {

Bytes msg(std::size_t n, std::uint8_t fill) { return Bytes(n, fill); }

TEST(BroadcastQueue, EachMessageIsSentUpToTheTransmitLimit) {
  BroadcastQueue q;
  q.queue("a", msg(10, 1));
  for (int i = 0; i < 3; ++i) EXPECT_EQ(q.get(2, 1400, 3).size(), 1u);
  EXPECT_TRUE(q.get(2, 1400, 3).empty());
  EXPECT_EQ(q.size(), 0u);
}

TEST(BroadcastQueue, NewerMessageAboutANodeReplacesTheOlder) {
  BroadcastQueue q;
  q.queue("a", msg(10, 1), 7);
  q.queue("a", msg(10, 2));
  EXPECT_EQ(q.size(), 1u);
  auto out = q.get(2, 1400, 4);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ((*out[0])[0], 2);
  // The replaced message counts as finished.
  EXPECT_EQ(q.drain_finished(), std::vector<std::uint64_t>{7});
}

TEST(BroadcastQueue, UnnamedMessagesNeverReplace) {
  BroadcastQueue q;
  q.queue("", msg(5, 1));
  q.queue("", msg(5, 2));
  EXPECT_EQ(q.size(), 2u);
}

TEST(BroadcastQueue, FewestSentFirstThenLargestThatFits) {
  BroadcastQueue q;
  q.queue("old", msg(100, 1));
  ASSERT_EQ(q.get(2, 1400, 10).size(), 1u);  // "old" now sent once
  q.queue("small", msg(10, 2));
  q.queue("big", msg(50, 3));
  // Room for one of the fresh ones and nothing else: the largest fresh one.
  auto out = q.get(2, 60, 10);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ((*out[0])[0], 3);
  // Plenty of room: the remaining fresh one first, then the others.
  out = q.get(2, 1400, 10);
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ((*out[0])[0], 2);
}

TEST(BroadcastQueue, NothingFitsNothingSent) {
  BroadcastQueue q;
  q.queue("a", msg(100, 1));
  EXPECT_TRUE(q.get(2, 50, 4).empty());
  EXPECT_EQ(q.size(), 1u);
}

TEST(BroadcastQueue, FinishedAfterLastTransmission) {
  BroadcastQueue q;
  q.queue("a", msg(3, 1), 9);
  q.get(2, 100, 2);
  EXPECT_TRUE(q.drain_finished().empty());
  q.get(2, 100, 2);
  EXPECT_EQ(q.drain_finished(), std::vector<std::uint64_t>{9});
}

// A node's news about itself (queued with priority) goes out before any
// ordinary message, however many fresh ones are queued and however often
// it was sent already; ordinary messages keep memberlist's order behind it.
TEST(BroadcastQueue, PriorityMessageGoesFirstForAllItsTransmissions) {
  BroadcastQueue q;
  for (std::uint8_t i = 0; i < 30; ++i) q.queue("n" + std::to_string(i), msg(100, i));
  q.queue("self", msg(10, 0xee), 0, true);
  for (int round = 0; round < 5; ++round) {
    // Room for three: the priority message and the two largest fresh ones.
    auto out = q.get(2, 220, 6);
    ASSERT_EQ(out.size(), 3u) << round;
    EXPECT_EQ((*out[0])[0], 0xee) << round;
    EXPECT_EQ(out[1]->size(), 100u);
  }
  // Its sixth transmission is its last.
  auto out = q.get(2, 220, 6);
  ASSERT_FALSE(out.empty());
  EXPECT_EQ((*out[0])[0], 0xee);
  out = q.get(2, 220, 6);
  ASSERT_FALSE(out.empty());
  EXPECT_NE((*out[0])[0], 0xee);
}

TEST(BroadcastQueue, PriorityMessageReplacesByNameLikeAnyOther) {
  BroadcastQueue q;
  q.queue("self", msg(10, 1), 5, true);
  q.queue("self", msg(10, 2), 0, true);
  EXPECT_EQ(q.size(), 1u);
  EXPECT_EQ(q.drain_finished(), std::vector<std::uint64_t>{5});
  auto out = q.get(2, 1400, 4);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ((*out[0])[0], 2);
}

// The bound drops the most-sent ordinary messages first, reports their
// tokens as finished, and never drops a priority message.
TEST(BroadcastQueue, PruneDropsTheMostSentAndKeepsPriority) {
  BroadcastQueue q;
  q.queue("a", msg(10, 1), 11);
  q.get(2, 14, 10);  // a sent once
  q.get(2, 14, 10);  // a sent twice
  q.queue("b", msg(10, 2), 12);
  q.get(2, 14, 10);  // b sent once
  q.queue("c", msg(10, 3));
  q.queue("self", msg(10, 4), 13, true);
  q.get(2, 14, 10);  // self sent once (it goes first)
  q.get(2, 14, 10);  // self sent twice
  q.get(2, 14, 10);  // self sent three times
  EXPECT_EQ(q.prune(4), 0u);
  EXPECT_EQ(q.prune(2), 2u);
  EXPECT_EQ(q.drain_finished(), (std::vector<std::uint64_t>{11, 12}));
  EXPECT_EQ(q.size(), 2u);
  EXPECT_EQ(q.prune(0), 1u);  // c goes, self stays
  EXPECT_EQ(q.size(), 1u);
  auto out = q.get(2, 1400, 10);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ((*out[0])[0], 4);
}

// The messages get() hands out stay readable until the next call, even
// the ones it just sent their last time (ASan checks the reads).
TEST(BroadcastQueue, HandedOutMessagesOutliveTheirLastTransmission) {
  BroadcastQueue q;
  q.queue("a", msg(40, 7));
  q.queue("b", msg(30, 8));
  auto out = q.get(2, 1400, 1);
  EXPECT_EQ(q.size(), 0u);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(*out[0], msg(40, 7));
  EXPECT_EQ(*out[1], msg(30, 8));
}

}  // namespace
}  // namespace mesh::swim
