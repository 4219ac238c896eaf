// Text from the network (mesh/text.hpp): what is accepted as a name or a
// tag, and how anything is printed on one line.
#include <gtest/gtest.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "mesh/text.hpp"

namespace mesh {
namespace {

TEST(TextTest, ValidUtf8) {
  EXPECT_TRUE(valid_utf8(""));
  EXPECT_TRUE(valid_utf8("node-1"));
  EXPECT_TRUE(valid_utf8("n\xC3\xBC"));              // ü
  EXPECT_TRUE(valid_utf8("\xE2\x82\xAC"));           // €
  EXPECT_TRUE(valid_utf8("\xF0\x9F\x98\x80"));       // U+1F600
  EXPECT_FALSE(valid_utf8("\xff"));
  EXPECT_FALSE(valid_utf8("\xC0\xAF"));              // overlong '/'
  EXPECT_FALSE(valid_utf8("\xE0\x80\xAF"));          // overlong
  EXPECT_FALSE(valid_utf8("\xED\xA0\x80"));          // a surrogate
  EXPECT_FALSE(valid_utf8("\xF4\x90\x80\x80"));      // past U+10FFFF
  EXPECT_FALSE(valid_utf8("\xE2\x82"));              // cut short
  EXPECT_FALSE(valid_utf8("ok\x80"));                // a lone continuation byte
}

TEST(TextTest, ControlCharacters) {
  EXPECT_FALSE(has_control_characters("plain text, with spaces"));
  EXPECT_TRUE(has_control_characters("a\nb"));
  EXPECT_TRUE(has_control_characters(std::string("a\0b", 3)));
  EXPECT_TRUE(has_control_characters("del\x7f"));
  EXPECT_TRUE(has_control_characters("c1\xC2\x85"));  // U+0085 NEXT LINE
  EXPECT_FALSE(has_control_characters("\xC2\xA0"));   // U+00A0 is printable
}

TEST(TextTest, CheckTextNamesTheProblemWithoutEchoingIt) {
  EXPECT_EQ(check_text("member name", "n1", 128), std::nullopt);
  EXPECT_EQ(check_text("member name", "", 128), "member name is empty");
  EXPECT_EQ(check_text("tag value", "", 128, /*allow_empty=*/true), std::nullopt);
  EXPECT_EQ(check_text("member name", std::string(129, 'a'), 128),
            "member name is 129 bytes long (at most 128)");
  EXPECT_EQ(check_text("member name", "\xff", 128), "member name is not valid UTF-8");
  EXPECT_EQ(check_text("member name", "a\nb", 128), "member name contains control characters");
}

TEST(TextTest, EscapeTextIsOneLineAndUnambiguous) {
  EXPECT_EQ(escape_text("node-1 \xC3\xBC"), "node-1 \xC3\xBC");  // printable UTF-8 unchanged
  EXPECT_EQ(escape_text("a\nb"), "a\\x0ab");
  EXPECT_EQ(escape_text("\xff"), "\\xff");
  EXPECT_EQ(escape_text("back\\slash"), "back\\x5cslash");  // so "\x0a" typed in is not a newline
  EXPECT_EQ(escape_text("\xC2\x85"), "\\xc2\\x85");
  EXPECT_NE(escape_text("\\x0a"), escape_text("\n"));
}

}  // namespace
}  // namespace mesh

namespace mesh {
namespace {

std::string json_string(std::string_view s) {
  std::string out;
  append_json_string(out, s);
  return out;
}

// Byte for byte what nlohmann::json writes, for valid UTF-8: every escape
// and every byte class.
TEST(AppendJsonString, MatchesNlohmannOnValidText) {
  std::string every_ascii;
  for (int c = 0; c < 0x80; ++c) every_ascii += static_cast<char>(c);
  for (const std::string& s : {std::string(), std::string("plain"), every_ascii, std::string("h\u00e9 \u20ac \U0001F600"),
                              std::string("\"quoted\" \\ back\\slash\x7f")}) {
    EXPECT_EQ(json_string(s), nlohmann::json(s).dump()) << s;
  }
}

// A byte that starts no well-formed sequence becomes U+FFFD; the result is
// always valid JSON whose string is valid UTF-8.
TEST(AppendJsonString, ReplacesWhatIsNotUtf8) {
  EXPECT_EQ(json_string("a\xff" "b"), "\"a\xef\xbf\xbd" "b\"");
  EXPECT_EQ(json_string("\xc0\xaf"), "\"\xef\xbf\xbd\xef\xbf\xbd\"");   // overlong '/'
  EXPECT_EQ(json_string("\xed\xa0\x80"), "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"");  // a surrogate
  EXPECT_EQ(json_string("\xe2\x82"), "\"\xef\xbf\xbd\xef\xbf\xbd\"");  // cut short
  std::uint64_t x = 88172645463325252ull;  // xorshift: the same bytes every run
  for (int round = 0; round < 2000; ++round) {
    std::string s;
    for (int i = 0; i < 24; ++i) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      s += static_cast<char>(x & 0xff);
    }
    const std::string out = json_string(s);
    const auto parsed = nlohmann::json::parse(out, nullptr, false);
    ASSERT_TRUE(parsed.is_string()) << out;
    EXPECT_TRUE(valid_utf8(parsed.get<std::string>()));
  }
}

}  // namespace
}  // namespace mesh
