// mesh/base64.hpp: our own decoder, strict about the form.
#include "mesh/base64.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace mesh {
namespace {

std::string text_of(const std::vector<std::uint8_t>& b) { return {b.begin(), b.end()}; }
std::vector<std::uint8_t> bytes_of(std::string_view s) { return {s.begin(), s.end()}; }

TEST(Base64, Rfc4648Vectors) {
  const std::pair<const char*, const char*> vectors[] = {
      {"f", "Zg=="}, {"fo", "Zm8="}, {"foo", "Zm9v"}, {"foob", "Zm9vYg=="},
      {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"}};
  for (auto [plain, coded] : vectors) {
    EXPECT_EQ(encode_base64(bytes_of(plain)), coded);
    auto back = decode_base64(coded);
    ASSERT_TRUE(back) << coded;
    EXPECT_EQ(text_of(*back), plain);
  }
  EXPECT_EQ(encode_base64({}), "");
}

TEST(Base64, EveryByteValueRoundTrips) {
  std::vector<std::uint8_t> all;
  for (int i = 0; i < 256; ++i) all.push_back(static_cast<std::uint8_t>(i));
  for (std::size_t n = 0; n <= all.size(); n += 37) {
    std::vector<std::uint8_t> part(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(n));
    if (part.empty()) continue;
    auto back = decode_base64(encode_base64(part));
    ASSERT_TRUE(back);
    EXPECT_EQ(*back, part);
  }
}

TEST(Base64, RefusesWhatIsAlmostRight) {
  for (const char* bad : {"", "Zg", "Zg=", "Zm9", "Zg=A", "Z===", "====", "Zm9v\n", " Zm9v",
                          "Zm9v YmFy", "Zm-v", "Zm_v", "Z=9v", "Zm9vYg==Zm9v"}) {
    EXPECT_FALSE(decode_base64(bad)) << '"' << bad << '"';
  }
}

// The bits of the last quantum past its bytes are ignored, as Go's
// StdEncoding and OpenSSL (which decoded before) ignore them: "Zh==" and
// "Zg==" are both "f".
TEST(Base64, IgnoresTheLastQuantumsSpareBits) {
  for (const char* coded : {"Zg==", "Zh==", "Zv=="}) {
    auto back = decode_base64(coded);
    ASSERT_TRUE(back) << coded;
    EXPECT_EQ(text_of(*back), "f");
  }
  auto two = decode_base64("Zm9=");
  ASSERT_TRUE(two);
  EXPECT_EQ(text_of(*two), "fo");
}

}  // namespace
}  // namespace mesh
