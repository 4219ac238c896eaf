// LZW (Go compress/lzw, LSB, litWidth 8) and CRC-32 tests.
//
// Reference values marked "from Go" were produced once with Go 1.19's
// compress/lzw and hash/crc32 (lzw.NewWriter(&buf, lzw.LSB, 8)); the
// generator is not part of the tree, only its output is.
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string_view>
#include <vector>

#include "mesh/swim/codec.hpp"

namespace mesh::swim {
namespace {

Bytes to_bytes(std::string_view s) { return Bytes(s.begin(), s.end()); }

// The generator the Go reference used for its large inputs.
Bytes lcg_bytes(std::size_t n, std::uint32_t seed, std::uint32_t alphabet) {
  Bytes out(n);
  std::uint32_t s = seed;
  for (auto& b : out) {
    s = s * 1664525u + 1013904223u;
    b = static_cast<std::uint8_t>((s >> 24) % alphabet);
  }
  return out;
}

// Packs codes LSB-first with explicit widths, to hand-build streams that
// Go's writer would not produce.
class CodeWriter {
 public:
  void put(std::uint32_t code, unsigned width) {
    acc_ |= std::uint64_t{code} << n_;
    n_ += width;
    while (n_ >= 8) {
      out_.push_back(static_cast<std::uint8_t>(acc_));
      acc_ >>= 8;
      n_ -= 8;
    }
  }
  Bytes finish() {
    if (n_ > 0) out_.push_back(static_cast<std::uint8_t>(acc_));
    n_ = 0;
    acc_ = 0;
    return out_;
  }

 private:
  Bytes out_;
  std::uint64_t acc_ = 0;
  unsigned n_ = 0;
};

TEST(LzwGolden, EmptyInputIsClearThenEof) {
  // clear (256) and eof (257), 9 bits each, LSB first:
  // bits 0..8 = 1_0000_0000, bits 9..17 = 1_0000_0001 -> 00 03 02.
  EXPECT_EQ(lzw_compress({}), (Bytes{0x00, 0x03, 0x02}));
  auto back = lzw_decompress(Bytes{0x00, 0x03, 0x02}, 100);
  ASSERT_TRUE(back.ok());
  EXPECT_TRUE(back->empty());
}

TEST(LzwGolden, SingleByte) {
  // clear, 'a' (0x61), eof at 9 bits: 0x100 | 0x61 << 9 | 0x101 << 18.
  const Bytes expected{0x00, 0xc3, 0x04, 0x04};
  EXPECT_EQ(lzw_compress(to_bytes("a")), expected);
  auto back = lzw_decompress(expected, 100);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, to_bytes("a"));
}

TEST(LzwGolden, RunUsesCodeBeingDefined) {
  // "a" x 10: codes clear, 97, 258 ("aa"), 259 ("aaa"), 260 ("aaaa"), eof.
  // 258 arrives while it is being defined (the KwKwK case). Also from Go.
  const Bytes expected{0x00, 0xc3, 0x08, 0x1c, 0x48, 0x30, 0x20};
  EXPECT_EQ(lzw_compress(to_bytes("aaaaaaaaaa")), expected);
  auto back = lzw_decompress(expected, 100);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, to_bytes("aaaaaaaaaa"));
}

TEST(LzwGolden, ClassicTobeornot) {
  // From Go.
  const Bytes expected{0x00, 0xa9, 0x3c, 0x11, 0x52, 0xe4, 0x89, 0x14, 0x27, 0x4f, 0xa8,
                       0x08, 0x24, 0x68, 0x70, 0x61, 0xc1, 0x83, 0x09, 0x03, 0x02};
  const Bytes input = to_bytes("TOBEORNOTTOBEORTOBEORNOT");
  EXPECT_EQ(lzw_compress(input), expected);
  auto back = lzw_decompress(expected, 1000);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, input);
}

// Inputs long enough to fill the 4096-code table several times, so Go's
// writer sends mid-stream clear codes and the width drops back to 9 bits.
// Go's output is pinned by length and CRC.
TEST(LzwGolden, TableResetsMatchGo) {
  struct Case {
    std::size_t n;
    std::uint32_t seed, alphabet;
    std::uint32_t in_crc;
    std::size_t out_len;
    std::uint32_t out_crc;
  };
  const Case cases[] = {
      {100000, 1, 256, 0x3def360f, 136852, 0xeaa93934},
      {100000, 2, 4, 0x42d180ae, 29855, 0x43c2ddc7},
      {50000, 3, 1, 0x16b7b325, 366, 0xbaf4f843},
      {200000, 4, 16, 0xe2949668, 125262, 0x013457ec},
      {4000, 5, 2, 0xd28afcc3, 730, 0x893fbf02},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.seed);
    const Bytes input = lcg_bytes(c.n, c.seed, c.alphabet);
    ASSERT_EQ(crc32_ieee(input), c.in_crc);  // same input as Go had
    const Bytes out = lzw_compress(input);
    EXPECT_EQ(out.size(), c.out_len);
    EXPECT_EQ(crc32_ieee(out), c.out_crc);
    auto back = lzw_decompress(out, c.n);
    ASSERT_TRUE(back.ok()) << back.error().reason;
    EXPECT_EQ(*back, input);
  }
}

TEST(LzwRoundTrip, RandomInputs) {
  std::mt19937 rng(12345);
  for (int iter = 0; iter < 200; ++iter) {
    const std::size_t n = rng() % 20000;
    const std::uint32_t alphabet = 1 + rng() % 256;
    Bytes input(n);
    for (auto& b : input) b = static_cast<std::uint8_t>(rng() % alphabet);
    const Bytes packed = lzw_compress(input);
    auto back = lzw_decompress(packed, n);
    ASSERT_TRUE(back.ok()) << "iter " << iter << ": " << back.error().reason;
    ASSERT_EQ(*back, input) << "iter " << iter;
  }
}

TEST(LzwDecompress, MidStreamClearAndTrailingBytes) {
  // clear 'a' clear 'b' eof, then junk after eof, which Go ignores.
  CodeWriter w;
  w.put(256, 9);
  w.put('a', 9);
  w.put(256, 9);
  w.put('b', 9);
  w.put(257, 9);
  Bytes s = w.finish();
  s.push_back(0xff);
  s.push_back(0x12);
  auto back = lzw_decompress(s, 10);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, to_bytes("ab"));
}

TEST(LzwDecompress, StreamWithoutLeadingClear) {
  // Go's reader starts in the cleared state, so a leading clear is optional.
  CodeWriter w;
  w.put('h', 9);
  w.put('i', 9);
  w.put(257, 9);
  auto back = lzw_decompress(w.finish(), 10);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, to_bytes("hi"));
}

// Other encoders keep sending 12-bit codes with a full table and clear
// later ("deferred clear"); Go's reader accepts that, so must we.
TEST(LzwDecompress, DeferredClearWithFullTable) {
  // A plain greedy LZW encoder that stops adding strings once code 4095 is
  // assigned and never clears.
  const Bytes input = lcg_bytes(60000, 7, 3);
  std::vector<std::vector<std::uint32_t>> child(4096, std::vector<std::uint32_t>(256, 0));
  CodeWriter w;
  unsigned width = 9;
  std::uint32_t next = 258;
  w.put(256, width);
  std::uint32_t cur = input[0];
  for (std::size_t i = 1; i < input.size(); ++i) {
    const std::uint8_t b = input[i];
    if (child[cur][b] != 0) {
      cur = child[cur][b];
      continue;
    }
    w.put(cur, width);
    if (next <= 4095) {
      child[cur][b] = next;
      ++next;
      // Widen once code 2^width itself has been assigned: the decoder,
      // one code behind, reaches it when it reads the next code.
      if (next == (1u << width) + 1 && width < 12) ++width;
    }
    cur = b;
  }
  w.put(cur, width);
  w.put(257, width);
  const Bytes stream = w.finish();
  ASSERT_EQ(next, 4096u);  // the table really filled up
  auto back = lzw_decompress(stream, input.size());
  ASSERT_TRUE(back.ok()) << back.error().reason;
  EXPECT_EQ(*back, input);
}

TEST(LzwDecompress, CorruptInputsAreErrors) {
  EXPECT_EQ(lzw_decompress({}, 100).error().code, DecodeError::BadCompression);
  // No end code.
  {
    CodeWriter w;
    w.put(256, 9);
    w.put('x', 9);
    EXPECT_EQ(lzw_decompress(w.finish(), 100).error().code, DecodeError::BadCompression);
  }
  // A code beyond the next one to be defined.
  {
    CodeWriter w;
    w.put(256, 9);
    w.put('x', 9);
    w.put(300, 9);
    w.put(257, 9);
    EXPECT_EQ(lzw_decompress(w.finish(), 100).error().code, DecodeError::BadCompression);
  }
  // A non-literal code right after clear.
  {
    CodeWriter w;
    w.put(256, 9);
    w.put(258, 9);
    w.put(257, 9);
    EXPECT_EQ(lzw_decompress(w.finish(), 100).error().code, DecodeError::BadCompression);
  }
}

TEST(LzwDecompress, EveryTruncationFails) {
  const Bytes input = lcg_bytes(3000, 9, 8);
  const Bytes packed = lzw_compress(input);
  for (std::size_t len = 0; len < packed.size(); ++len) {
    auto r = lzw_decompress(ByteView(packed).first(len), input.size());
    ASSERT_FALSE(r.ok()) << "prefix " << len;
  }
}

TEST(LzwDecompress, RandomGarbageNeverCrashes) {
  std::mt19937 rng(777);
  const Bytes valid = lzw_compress(lcg_bytes(5000, 11, 20));
  for (int iter = 0; iter < 3000; ++iter) {
    Bytes b;
    if (iter % 2 == 0) {
      b.resize(rng() % 600);
      for (auto& x : b) x = static_cast<std::uint8_t>(rng());
    } else {
      b = valid;
      const int flips = 1 + static_cast<int>(rng() % 8);
      for (int f = 0; f < flips; ++f)
        b[rng() % b.size()] ^= static_cast<std::uint8_t>(1u << (rng() % 8));
    }
    auto r = lzw_decompress(b, 1u << 16);
    if (r.ok()) {
      EXPECT_LE(r->size(), 1u << 16);
    }
  }
}

TEST(LzwDecompress, BombIsBoundedByMaxOut) {
  const Bytes zeros(4u << 20, 0);
  const Bytes packed = lzw_compress(zeros);
  EXPECT_LT(packed.size(), 20000u);
  auto capped = lzw_decompress(packed, 1u << 20);
  ASSERT_FALSE(capped.ok());
  EXPECT_EQ(capped.error().code, DecodeError::TooLarge);
  EXPECT_FALSE(lzw_decompress(packed, zeros.size() - 1).ok());
  auto exact = lzw_decompress(packed, zeros.size());
  ASSERT_TRUE(exact.ok());
  EXPECT_EQ(exact->size(), zeros.size());
  EXPECT_EQ(lzw_decompress(packed, 0).error().code, DecodeError::TooLarge);
}

TEST(LzwCrc32, KnownValues) {
  EXPECT_EQ(crc32_ieee({}), 0u);
  EXPECT_EQ(crc32_ieee(to_bytes("123456789")), 0xCBF43926u);  // the CRC-32 check value
  EXPECT_EQ(crc32_ieee(to_bytes("a")), 0xE8B7BE43u);
  // Lengths around the 4-byte fast path agree with a bitwise reference.
  std::mt19937 rng(5);
  for (std::size_t n = 0; n < 40; ++n) {
    Bytes b(n);
    for (auto& x : b) x = static_cast<std::uint8_t>(rng());
    std::uint32_t c = 0xFFFFFFFFu;
    for (auto x : b) {
      c ^= x;
      for (int k = 0; k < 8; ++k) c = (c & 1u) ? (c >> 1) ^ 0xEDB88320u : c >> 1;
    }
    EXPECT_EQ(crc32_ieee(b), c ^ 0xFFFFFFFFu) << n;
  }
}

}  // namespace
}  // namespace mesh::swim
