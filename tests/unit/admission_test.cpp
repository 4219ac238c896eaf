// The token buckets that admit unknown members (swim/core/src/admission.hpp).
#include "admission.hpp"

#include <gtest/gtest.h>

namespace mesh::swim {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

const Time t0 = Time{} + seconds(100);

TEST(TokenBucket, StartsFullRefillsAtItsRateUpToItsBurst) {
  TokenBucket b(10, 5);
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(b.available(t0));
    b.take();
  }
  EXPECT_FALSE(b.available(t0));
  EXPECT_FALSE(b.available(t0 + milliseconds(50)));
  EXPECT_TRUE(b.available(t0 + milliseconds(100)));
  b.take();
  // A long quiet spell refills to the burst, no more.
  int n = 0;
  while (b.available(t0 + seconds(60))) {
    b.take();
    ++n;
  }
  EXPECT_EQ(n, 5);
}

TEST(TokenBucket, TimeGoingBackwardsChangesNothing) {
  TokenBucket b(1, 1);
  ASSERT_TRUE(b.available(t0));
  b.take();
  EXPECT_FALSE(b.available(t0 - seconds(10)));
  EXPECT_FALSE(b.available(t0 + milliseconds(500)));
  EXPECT_TRUE(b.available(t0 + seconds(1)));
}

TEST(Admission, PerSourceAndTotalBudgets) {
  Admission a(/*total rate*/ 0, /*total burst*/ 10, /*source rate*/ 0, /*source burst*/ 4);
  const Address s1 = Address::v4(10, 0, 0, 1, 7946);
  Address s1_other_port = s1;
  s1_other_port.port = 1234;
  int ok = 0;
  for (int i = 0; i < 10; ++i) ok += a.admit(i % 2 == 0 ? s1 : s1_other_port, t0) ? 1 : 0;
  EXPECT_EQ(ok, 4) << "the port does not make another source";
  // Other sources share the total that is left (6); a source that shares
  // s1's slot would get nothing, so count over many sources.
  ok = 0;
  for (std::uint8_t i = 2; i < 50; ++i) ok += a.admit(Address::v4(10, 0, 1, i, 7946), t0) ? 1 : 0;
  EXPECT_EQ(ok, 6);
}

}  // namespace
}  // namespace mesh::swim
