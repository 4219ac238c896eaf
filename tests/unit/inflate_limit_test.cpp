// The inflate ratio bound (DecodeLimits::max_inflate_ratio): crafted LZW
// that expands more than 1000:1 is refused before it costs the CPU of
// inflating tens of megabytes; real push/pull state is far below it.
#include <gtest/gtest.h>

#include "mesh/swim/codec.hpp"

namespace mesh::swim {
namespace {

Bytes push_pull_of(Bytes user_state) {
  PushPull pp;
  pp.user_state = std::move(user_state);
  return encode_stream(StreamMessage{pp}, /*compress=*/true);
}

TEST(InflateLimitTest, CraftedRatioIsRefused) {
  // 4 MiB of one byte compresses to a few KiB: far past 128:1.
  const Bytes stream = push_pull_of(Bytes(4u << 20, 0));
  ASSERT_LT(stream.size() * 128, std::size_t{4u << 20});
  auto refused = decode_stream(stream);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, DecodeError::TooLarge);
  DecodeLimits unbounded;
  unbounded.max_inflate_ratio = 0;  // off: only max_decompressed applies
  EXPECT_TRUE(decode_stream(stream, unbounded));
}

TEST(InflateLimitTest, RealStateIsWellBelowTheRatio) {
  // 1000 members that all carry the same 200 bytes of meta: about 25:1.
  PushPull pp;
  for (int i = 0; i < 1000; ++i) {
    PushNodeState s;
    s.name = "node-" + std::to_string(100000 + i);
    s.addr = {10, 0, static_cast<std::uint8_t>(i >> 8), static_cast<std::uint8_t>(i)};
    s.port = 7946;
    s.meta = Bytes(200, 'a');
    s.incarnation = 1;
    s.vsn = {1, 5, 2, 2, 5, 4};
    pp.nodes.push_back(std::move(s));
  }
  const Bytes stream = encode_stream(StreamMessage{pp}, /*compress=*/true);
  auto decoded = decode_stream(stream);
  ASSERT_TRUE(decoded) << decoded.error().reason;
  EXPECT_EQ(std::get<PushPull>(decoded->message), pp);
}

}  // namespace
}  // namespace mesh::swim
