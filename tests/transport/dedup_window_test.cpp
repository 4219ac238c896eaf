// DedupWindow: an id is a duplicate while it is within both the time window
// and the capacity; after that it is new again.

#include "dedup_window.hpp"

#include <gtest/gtest.h>

namespace mesh::transport {
namespace {

MessageId id(std::uint64_t n) { return MessageId{7, n}; }

TEST(DedupWindow, DuplicateInsideTheWindow) {
  DedupWindow w(100, 1000);
  EXPECT_TRUE(w.insert(id(1), 0));
  EXPECT_TRUE(w.insert(id(2), 0));
  EXPECT_FALSE(w.insert(id(1), 10));
  EXPECT_FALSE(w.insert(id(2), 999));
  EXPECT_FALSE(w.insert(id(1), 999));
  EXPECT_EQ(w.size(), 2u);
}

TEST(DedupWindow, ExpiresByTime) {
  DedupWindow w(100, 1000);
  EXPECT_TRUE(w.insert(id(1), 0));
  EXPECT_TRUE(w.insert(id(2), 500));
  // At t=1000 id 1 has been remembered for the whole window.
  EXPECT_TRUE(w.insert(id(3), 1000));
  EXPECT_EQ(w.size(), 2u);
  EXPECT_FALSE(w.insert(id(2), 1499));
  EXPECT_TRUE(w.insert(id(2), 1500)) << "expired exactly window_ms after it was first seen";
}

TEST(DedupWindow, DuplicateDoesNotExtendTheWindow) {
  DedupWindow w(100, 1000);
  EXPECT_TRUE(w.insert(id(1), 0));
  EXPECT_FALSE(w.insert(id(1), 900));
  EXPECT_TRUE(w.insert(id(1), 1000));
}

TEST(DedupWindow, EvictsOldestByCapacity) {
  DedupWindow w(3, 1'000'000);
  EXPECT_TRUE(w.insert(id(1), 0));
  EXPECT_TRUE(w.insert(id(2), 1));
  EXPECT_TRUE(w.insert(id(3), 2));
  EXPECT_TRUE(w.insert(id(4), 3));  // evicts 1
  EXPECT_EQ(w.size(), 3u);
  EXPECT_FALSE(w.insert(id(2), 4));
  EXPECT_FALSE(w.insert(id(3), 4));
  EXPECT_FALSE(w.insert(id(4), 4));
  EXPECT_TRUE(w.insert(id(1), 5)) << "evicted ids are new again";  // evicts 2
  EXPECT_TRUE(w.insert(id(2), 6));
  EXPECT_EQ(w.size(), 3u);
}

TEST(DedupWindow, ReinsertionAfterExpiry) {
  DedupWindow w(10, 100);
  for (std::uint64_t round = 0; round < 5; ++round) {
    const auto t = static_cast<std::int64_t>(round) * 100;
    EXPECT_TRUE(w.insert(id(1), t)) << "round " << round;
    EXPECT_FALSE(w.insert(id(1), t + 99)) << "round " << round;
  }
  EXPECT_EQ(w.size(), 1u);
}

TEST(DedupWindow, ManyIdsStayBounded) {
  DedupWindow w(1000, 50);
  for (std::uint64_t i = 0; i < 100'000; ++i) {
    ASSERT_TRUE(w.insert(id(i), static_cast<std::int64_t>(i / 10)));
    ASSERT_LE(w.size(), 500u);  // 10 ids per ms, 50 ms
  }
  DedupWindow by_count(100, 1'000'000);
  for (std::uint64_t i = 0; i < 10'000; ++i) ASSERT_TRUE(by_count.insert(id(i), 0));
  EXPECT_EQ(by_count.size(), 100u);
  EXPECT_FALSE(by_count.insert(id(9'999), 0));
  EXPECT_TRUE(by_count.insert(id(0), 0));
}

TEST(DedupWindow, ZeroCapacityRemembersNothing) {
  DedupWindow w(0, 1000);
  EXPECT_TRUE(w.insert(id(1), 0));
  EXPECT_TRUE(w.insert(id(1), 0));
  EXPECT_EQ(w.size(), 0u);
}

TEST(DedupWindow, DifferentPrefixesAreDifferentIds) {
  DedupWindow w(10, 1000);
  EXPECT_TRUE(w.insert(MessageId{1, 5}, 0));
  EXPECT_TRUE(w.insert(MessageId{2, 5}, 0));
  EXPECT_FALSE(w.insert(MessageId{1, 5}, 0));
}

// Issue 11: a third party that learnt (or guessed) another node's id and
// sends it first under its own name must not make the other node's
// message a duplicate.
TEST(DedupWindow, SameIdFromAnotherSourceIsNotADuplicate) {
  DedupWindow w(10, 1000);
  EXPECT_TRUE(w.insert("mallory", MessageId{1, 5}, 0));
  EXPECT_TRUE(w.insert("alice", MessageId{1, 5}, 1));
  EXPECT_FALSE(w.insert("alice", MessageId{1, 5}, 2));
  EXPECT_FALSE(w.insert("mallory", MessageId{1, 5}, 2));
  EXPECT_TRUE(w.insert("", MessageId{1, 5}, 3));
  EXPECT_EQ(w.size(), 3u);
}

}  // namespace
}  // namespace mesh::transport
