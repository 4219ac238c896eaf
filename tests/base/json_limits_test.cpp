// JSON depth bounds (mesh/json_limits.hpp): hostile nesting is refused
// before anything that recurses per level (the MessagePack encoder, the
// serialiser) sees it.
#include <gtest/gtest.h>

#include <string>

#include "mesh/json_limits.hpp"

namespace mesh {
namespace {

std::string nested(std::size_t depth) { return std::string(depth, '[') + std::string(depth, ']'); }

TEST(JsonLimitsTest, DepthOfValues) {
  EXPECT_EQ(json_depth(nlohmann::json(1)), 0u);
  EXPECT_EQ(json_depth(nlohmann::json::array()), 1u);
  EXPECT_EQ(json_depth(nlohmann::json::parse(R"({"a":[1,{"b":[]}],"c":2})")), 4u);
  EXPECT_EQ(json_depth(nlohmann::json::parse(nested(kMaxJsonDepth))), kMaxJsonDepth);
}

TEST(JsonLimitsTest, DepthStopsLookingPastTheLimit) {
  nlohmann::json deep = nlohmann::json::array();
  for (int i = 0; i < 1000; ++i) deep = nlohmann::json::array({std::move(deep)});
  EXPECT_EQ(json_depth(deep, 10), 11u);
  EXPECT_GT(json_depth(deep), kMaxJsonDepth);
}

TEST(JsonLimitsTest, ParseRefusesDeepTextBeforeParsing) {
  std::string why;
  EXPECT_TRUE(parse_json_bounded(nested(kMaxJsonDepth), &why).has_value());
  EXPECT_FALSE(parse_json_bounded(nested(kMaxJsonDepth + 1), &why).has_value());
  EXPECT_EQ(why, "JSON nested deeper than 128 levels");
  // 200 KB of brackets, as in the review's crash.
  EXPECT_FALSE(parse_json_bounded(nested(100'000), &why).has_value());
  // Brackets inside strings are text, not nesting.
  const auto in_string = parse_json_bounded("[\"" + std::string(1000, '[') + "\\\"{\"]", &why);
  ASSERT_TRUE(in_string.has_value()) << why;
  EXPECT_EQ(json_depth(*in_string), 1u);
}

TEST(JsonLimitsTest, ParseReportsSyntaxErrors) {
  std::string why;
  EXPECT_FALSE(parse_json_bounded("{\"a\":", &why).has_value());
  EXPECT_EQ(why, "not valid JSON");
  EXPECT_FALSE(parse_json_bounded("\"\xff\"", &why).has_value());  // not UTF-8
  EXPECT_TRUE(parse_json_bounded("  {\"a\": [1, 2]} ", &why).has_value());
}

}  // namespace
}  // namespace mesh
