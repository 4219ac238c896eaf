#include "broadcast_queue.hpp"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace mesh::swim
