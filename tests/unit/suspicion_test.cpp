#include "suspicion.hpp"

#include <gtest/gtest.h>

#include "mesh/swim/config.hpp"

namespace mesh::swim {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

TEST(Suspicion, StartsAtMaxAndShrinksLogarithmicallyToMin) {
  const Duration min = seconds(2), max = seconds(30);
  // k = 3: after 1, 2, 3 confirmations (memberlist suspicion_test.go values).
  EXPECT_EQ(Suspicion::timeout_for(0, 3, min, max), max);
  EXPECT_EQ(Suspicion::timeout_for(1, 3, min, max), milliseconds(16000));
  EXPECT_EQ(Suspicion::timeout_for(2, 3, min, max), milliseconds(7810));
  EXPECT_EQ(Suspicion::timeout_for(3, 3, min, max), min);
  EXPECT_EQ(Suspicion::timeout_for(4, 3, min, max), min);
}

TEST(Suspicion, ConfirmationsCountOncePerPeerAndUpToK) {
  const Time t0 = Time{} + seconds(100);
  Suspicion s("a", 2, seconds(4), seconds(24), t0);
  EXPECT_EQ(s.deadline(), t0 + seconds(24));
  EXPECT_FALSE(s.confirm("a", t0));  // the accuser itself
  EXPECT_TRUE(s.confirm("b", t0));
  EXPECT_FALSE(s.confirm("b", t0));
  EXPECT_TRUE(s.confirm("c", t0));
  EXPECT_FALSE(s.confirm("d", t0));  // k reached
  EXPECT_EQ(s.deadline(), t0 + seconds(4));
}

TEST(Suspicion, ConfirmationPastTheNewDeadlineFiresNow) {
  const Time t0 = Time{} + seconds(100);
  Suspicion s("a", 1, seconds(4), seconds(24), t0);
  EXPECT_TRUE(s.confirm("b", t0 + seconds(10)));
  EXPECT_EQ(s.deadline(), t0 + seconds(10));
}

TEST(Suspicion, NoConfirmationsWantedStartsAtMin) {
  const Time t0 = Time{};
  Suspicion s("a", 0, seconds(4), seconds(24), t0);
  EXPECT_EQ(s.deadline(), t0 + seconds(4));
}

TEST(Formulas, MatchMemberlist) {
  EXPECT_EQ(suspicion_timeout(3, 10, seconds(1)), seconds(3));
  EXPECT_EQ(suspicion_timeout(4, 1, seconds(1)), seconds(4));
  EXPECT_EQ(suspicion_timeout(4, 100, seconds(1)), seconds(8));
  EXPECT_EQ(suspicion_timeout(4, 1000, seconds(1)), seconds(12));
  EXPECT_EQ(suspicion_timeout(3, 1000, milliseconds(200)), milliseconds(1800));
  EXPECT_EQ(retransmit_limit(3, 0), 0);
  EXPECT_EQ(retransmit_limit(3, 1), 3);
  EXPECT_EQ(retransmit_limit(3, 99), 6);
  EXPECT_EQ(retransmit_limit(4, 1000), 16);
  EXPECT_EQ(push_pull_scale(seconds(30), 32), seconds(30));
  EXPECT_EQ(push_pull_scale(seconds(30), 33), seconds(60));
  EXPECT_EQ(push_pull_scale(seconds(30), 65), seconds(90));
  EXPECT_EQ(push_pull_scale(seconds(30), 1000), seconds(180));
}

TEST(Config, ProfilesAndValidation) {
  EXPECT_EQ(Config::wan().probe_interval, seconds(5));
  EXPECT_EQ(Config::local().probe_timeout, milliseconds(200));
  EXPECT_EQ(parse_profile("lan"), Profile::Lan);
  EXPECT_FALSE(parse_profile("moon").has_value());
  Config c = Config::lan();
  EXPECT_TRUE(c.validate().has_value());  // no name
  c.name = "a";
  c.advertise = Address::v4(127, 0, 0, 1, 7946);
  EXPECT_FALSE(c.validate().has_value());
  c.probe_timeout = seconds(2);
  EXPECT_TRUE(c.validate().has_value());
}

}  // namespace
}  // namespace mesh::swim
