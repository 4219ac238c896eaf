// Member names from the network: what validate_member_name() accepts, and
// that a node drops (and counts) every message carrying a name it refuses.
#include <gtest/gtest.h>

#include <string>

#include "mesh/swim/codec.hpp"
#include "mesh/swim/node.hpp"
#include "node_fixture.hpp"

namespace mesh::swim {
namespace {

using namespace test;  // NOLINT: the fixture

TEST(MemberName, PlainNamesAndUnicodeAreAccepted) {
  const std::string good[] = {"a", "n0", "web-01.example.com", "caf\xc3\xa9", "\xe6\x9d\xb1\xe4\xba\xac",
                                 "\xf0\x9f\x90\x9d", std::string(kMemberNameMax, 'x')};
  for (const auto& name : good) {
    EXPECT_EQ(validate_member_name(name), std::nullopt) << name;
    EXPECT_TRUE(valid_member_name(name)) << name;
  }
}

TEST(MemberName, EmptyLongControlAndBadUtf8AreRefused) {
  const std::string bad[] = {
      "",
      std::string(kMemberNameMax + 1, 'x'),
      "\xff",                      // never valid in UTF-8
      "a\nb",                      // forges a log line
      std::string("a\0b", 3),      // NUL
      "tab\there",
      "del\x7f",
      "c1\xc2\x85",                // U+0085, a C1 control (NEL)
      "\xc0\xaf",                  // overlong '/'
      "\xe0\x80\xaf",              // overlong, 3 bytes
      "\xed\xa0\x80",              // a UTF-16 surrogate
      "\xf4\x90\x80\x80",          // above U+10FFFF
      "cut\xe6\x9d",               // sequence cut short
      "\x80lead",                  // a lone continuation byte
  };
  for (const auto& name : bad) {
    EXPECT_NE(validate_member_name(name), std::nullopt) << testing::PrintToString(name);
    EXPECT_FALSE(valid_member_name(name)) << testing::PrintToString(name);
  }
  // The reason never quotes the name itself.
  EXPECT_EQ(validate_member_name("a\nb")->find('\n'), std::string::npos);
}

TEST(MemberName, ConfigRefusesABadOwnName) {
  Config c = Config::lan();
  c.advertise = Address::v4(127, 0, 0, 1, 7946);
  c.name = "ok";
  EXPECT_EQ(c.validate(), std::nullopt);
  c.name = "\xff";
  ASSERT_TRUE(c.validate().has_value());
  EXPECT_NE(c.validate()->find("UTF-8"), std::string::npos);
}

std::uint64_t bad_names(const Node& n) {
  return n.stats().decode_errors[static_cast<std::size_t>(DecodeError::BadName)];
}

TEST_F(NodeTest, AliveWithABadNameIsDroppedAndCounted) {
  clear();
  feed(alive_msg("\xff", 2, 1));
  feed(alive_msg("evil\n[INFO] forged", 3, 1));
  feed(alive_msg("", 4, 1));
  EXPECT_EQ(node_.num_members(), 1u);
  EXPECT_EQ(bad_names(node_), 3u);
  EXPECT_TRUE(events_.empty());
  EXPECT_TRUE(sent_.empty()) << "nothing may be relayed";
}

TEST_F(NodeTest, SuspectAndDeadWithBadNamesAreDroppedAndCounted) {
  add_peers();
  feed(Suspect{1, "b", "\xff"});
  feed(Dead{1, "c", "x\ny"});
  feed(Suspect{1, "\xc0\xaf", "d"});
  EXPECT_EQ(bad_names(node_), 3u);
  EXPECT_EQ(state_of("b"), MemberState::Alive);
  EXPECT_EQ(state_of("c"), MemberState::Alive);
}

TEST_F(NodeTest, PushPullSkipsOnlyTheEntriesWithBadNames) {
  PushPull pp;
  pp.join = false;
  pp.nodes.push_back(PushNodeState{"b", {10, 0, 0, 2}, 7946, {}, 1, MemberState::Alive, {1, 5, 2, 2, 5, 5}});
  pp.nodes.push_back(PushNodeState{"\xff", {10, 0, 0, 3}, 7946, {}, 1, MemberState::Alive, {1, 5, 2, 2, 5, 5}});
  pp.nodes.push_back(PushNodeState{"d\n", {10, 0, 0, 4}, 7946, {}, 1, MemberState::Left, {1, 5, 2, 2, 5, 5}});
  auto answer = node_.on_stream(now_, addr(2), encode_stream(StreamMessage{pp}, false));
  drain();
  EXPECT_EQ(answer.status, StreamAnswer::Status::Reply);
  ASSERT_NE(node_.member("b"), nullptr);
  EXPECT_EQ(node_.num_members(), 2u);
  EXPECT_EQ(bad_names(node_), 2u);
}

}  // namespace
}  // namespace mesh::swim
