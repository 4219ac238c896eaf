// DedupWindow: an id is a duplicate while it is within both the time window
// and the capacity; after that it is new again.

#include "dedup_window.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <deque>
#include <map>
#include <random>
#include <set>
#include <string>
#include <tuple>

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

// A source is remembered while it has ids in the window, then forgotten,
// so that a node that comes and goes leaves nothing behind.
TEST(DedupWindow, SourcesAreForgottenWithTheirLastId) {
  DedupWindow w(4, 1000);
  EXPECT_TRUE(w.insert("a", MessageId{1, 1}, 0));
  EXPECT_TRUE(w.insert("b", MessageId{1, 1}, 0));
  EXPECT_TRUE(w.insert("a", MessageId{1, 2}, 0));
  EXPECT_EQ(w.sources(), 2u);
  EXPECT_TRUE(w.insert("c", MessageId{1, 1}, 999));
  EXPECT_EQ(w.sources(), 3u);
  // At 1000 the first three expire: b is gone, a is gone, c stays.
  EXPECT_TRUE(w.insert("c", MessageId{1, 2}, 1000));
  EXPECT_EQ(w.sources(), 1u);
  EXPECT_EQ(w.size(), 2u);
  EXPECT_FALSE(w.insert("c", MessageId{1, 1}, 1000));
  // A number freed by a forgotten source serves a new one without mixing
  // their ids.
  EXPECT_TRUE(w.insert("d", MessageId{1, 1}, 1001));
  EXPECT_FALSE(w.insert("d", MessageId{1, 1}, 1002));
  EXPECT_TRUE(w.insert("a", MessageId{1, 1}, 1003));
  EXPECT_EQ(w.sources(), 3u);
}

// The source of the oldest id sends again when the window is full and that
// id is its only one: the eviction must not forget the source the new id
// is about to use.
TEST(DedupWindow, EvictingASourcesLastIdWhileItSendsAgain) {
  DedupWindow w(2, 1'000'000);
  EXPECT_TRUE(w.insert("a", MessageId{1, 1}, 0));
  EXPECT_TRUE(w.insert("b", MessageId{1, 1}, 1));
  EXPECT_TRUE(w.insert("a", MessageId{1, 2}, 2));  // evicts a's first
  EXPECT_EQ(w.sources(), 2u);
  EXPECT_FALSE(w.insert("a", MessageId{1, 2}, 3));
  EXPECT_TRUE(w.insert("a", MessageId{1, 1}, 4));  // evicts b's
  EXPECT_EQ(w.sources(), 1u);
  EXPECT_FALSE(w.insert("a", MessageId{1, 2}, 5));
  EXPECT_FALSE(w.insert("a", MessageId{1, 1}, 5));
}

// Random inserts from a handful of sources, with ids drawn from a small
// range so that duplicates are frequent, against a plain model of the
// rules (first-seen order, expiry by time, eviction by count). Exercises
// the table's growth, wrap-around and the moves after each erase. Prints
// its seed; MESH_TEST_SEED=<n> replays one.
TEST(DedupWindow, AgreesWithAModelUnderRandomTraffic) {
  std::uint64_t seed = std::random_device{}();
  if (const char* s = std::getenv("MESH_TEST_SEED")) seed = std::stoull(s);
  std::printf("seed %llu\n", static_cast<unsigned long long>(seed));
  std::mt19937_64 rng(seed);
  for (const std::size_t capacity : {1u, 7u, 100u, 1000u}) {
    const std::int64_t window = 50;
    DedupWindow w(capacity, window, rng() | 1);
    using Key = std::tuple<std::string, std::uint64_t, std::uint64_t>;
    std::deque<std::pair<Key, std::int64_t>> order;
    std::set<Key> held;
    std::int64_t now = 0;
    const char* names[] = {"", "a", "node-with-a-long-name-beyond-sso", "b", "c"};
    for (int step = 0; step < 40'000; ++step) {
      now += static_cast<std::int64_t>(rng() % 3 == 0);
      const Key k{names[rng() % 5], rng() % 4, rng() % (capacity * 3 + 5)};
      while (!order.empty() && now - order.front().second >= window) {
        held.erase(order.front().first);
        order.pop_front();
      }
      bool fresh = !held.contains(k);
      if (fresh) {
        if (order.size() == capacity) {
          held.erase(order.front().first);
          order.pop_front();
        }
        held.insert(k);
        order.emplace_back(k, now);
      }
      const MessageId id{std::get<1>(k), std::get<2>(k)};
      ASSERT_EQ(w.insert(std::get<0>(k), id, now), fresh)
          << "capacity " << capacity << " step " << step << " seed " << seed;
      ASSERT_EQ(w.size(), held.size()) << "capacity " << capacity << " step " << step;
    }
  }
}

// Ids a sender can choose freely: all in one 64-bit half, or differing in
// bits a weak hash would drop. They are told apart, and the window still
// takes them all (a crafted set only costs probes, never correctness).
TEST(DedupWindow, CraftedIdsAreToldApart) {
  DedupWindow w(20'000, 1'000'000);
  for (std::uint64_t i = 0; i < 5000; ++i) ASSERT_TRUE(w.insert("x", MessageId{0, i << 32}, 0));
  for (std::uint64_t i = 1; i < 5000; ++i) ASSERT_TRUE(w.insert("x", MessageId{i << 40, 0}, 0));
  for (std::uint64_t i = 1; i < 5000; ++i) ASSERT_TRUE(w.insert("x", MessageId{i, i}, 0));
  EXPECT_EQ(w.size(), 14'998u);
  for (std::uint64_t i = 0; i < 5000; ++i) ASSERT_FALSE(w.insert("x", MessageId{0, i << 32}, 0));
  for (std::uint64_t i = 1; i < 5000; ++i) ASSERT_FALSE(w.insert("x", MessageId{i, i}, 0));
}

}  // namespace
}  // namespace mesh::transport
