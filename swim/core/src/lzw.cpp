// LZW as Go's compress/lzw speaks it with Order LSB and litWidth 8, which
// is what memberlist uses for its compress message (util.go,
// compressPayload / decompressBuffer).
//
// The format, as Go's reader and writer define it:
//  - codes are packed least-significant bit first;
//  - 0..255 are literals, 256 is clear, 257 is end of data; new codes
//    start at 258;
//  - codes start 9 bits wide and widen by one bit when the next code to be
//    assigned reaches 512, 1024 and 2048, up to 12 bits;
//  - the writer sends clear first, and sends clear again (then starts over
//    at 9 bits) as soon as its next code would be 4095, so it never uses
//    4095;
//  - the reader, once the table is full at 12 bits, keeps decoding with the
//    frozen table until it sees clear (a "deferred clear", which other
//    encoders use) instead of failing;
//  - the writer pads the last partial byte with zero bits; the reader stops
//    at the end code and ignores whatever follows it.
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "mesh/swim/codec.hpp"

namespace mesh::swim {

namespace {

constexpr std::uint32_t kClear = 256;
constexpr std::uint32_t kEof = 257;
constexpr unsigned kMinWidth = 9;
constexpr unsigned kMaxWidth = 12;
constexpr std::uint32_t kMaxCode = (1u << kMaxWidth) - 1;  // 4095
constexpr std::uint16_t kNoCode = 0xffff;

class BitWriter {
 public:
  explicit BitWriter(Bytes& out) : out_(out) {}
  void put(std::uint32_t code, unsigned width) {
    acc_ |= code << n_;
    n_ += width;
    while (n_ >= 8) {
      out_.push_back(static_cast<std::uint8_t>(acc_));
      acc_ >>= 8;
      n_ -= 8;
    }
  }
  void finish() {
    if (n_ > 0) out_.push_back(static_cast<std::uint8_t>(acc_));
    acc_ = 0;
    n_ = 0;
  }

 private:
  Bytes& out_;
  std::uint32_t acc_ = 0;
  unsigned n_ = 0;
};

// The string table of the compressor: (prefix code, next byte) -> code, in
// an open-addressed hash table four times the code space so probes stay
// short. A slot holds (prefix << 8 | byte) << 12 | code; 0 marks an empty
// slot, which is unambiguous because assigned codes are >= 258.
class Dictionary {
 public:
  static constexpr std::uint32_t kSlots = 4u << kMaxWidth;
  Dictionary() : slots_(kSlots, 0) {}

  static std::uint32_t key(std::uint32_t prefix, std::uint8_t byte) { return (prefix << 8) | byte; }
  static std::uint32_t home(std::uint32_t k) { return ((k >> 12) ^ k) & (kSlots - 1); }

  // The code for key, or kNoCode.
  std::uint32_t find(std::uint32_t k) const {
    for (std::uint32_t h = home(k);; h = (h + 1) & (kSlots - 1)) {
      const std::uint32_t s = slots_[h];
      if (s == 0) return kNoCode;
      if ((s >> 12) == k) return s & kMaxCode;
    }
  }
  void insert(std::uint32_t k, std::uint32_t code) {
    std::uint32_t h = home(k);
    while (slots_[h] != 0) h = (h + 1) & (kSlots - 1);
    slots_[h] = (k << 12) | code;
  }
  void clear() { std::fill(slots_.begin(), slots_.end(), 0u); }

 private:
  std::vector<std::uint32_t> slots_;
};

}  // namespace

Bytes lzw_compress(ByteView data) {
  Bytes out;
  out.reserve(data.size() / 2 + 8);
  BitWriter bits(out);
  unsigned width = kMinWidth;
  // The last code assigned (kEof before any) and the value at which the
  // code width grows.
  std::uint32_t last_assigned = kEof;
  std::uint32_t widen_at = 1u << kMinWidth;

  bits.put(kClear, width);
  if (data.empty()) {
    bits.put(kEof, width);
    bits.finish();
    return out;
  }

  Dictionary dict;
  // Moves to the next code after one was emitted. Returns false when the
  // table just filled up, after sending clear and starting over.
  auto advance = [&]() {
    ++last_assigned;
    if (last_assigned == widen_at) {
      ++width;
      widen_at <<= 1;
    }
    if (last_assigned == kMaxCode) {
      bits.put(kClear, width);
      width = kMinWidth;
      last_assigned = kEof;
      widen_at = 1u << kMinWidth;
      dict.clear();
      return false;
    }
    return true;
  };

  std::uint32_t current = data[0];
  for (std::size_t i = 1; i < data.size(); ++i) {
    const std::uint8_t byte = data[i];
    const std::uint32_t k = Dictionary::key(current, byte);
    const std::uint32_t found = dict.find(k);
    if (found != kNoCode) {
      current = found;
      continue;
    }
    bits.put(current, width);
    current = byte;
    if (advance()) dict.insert(k, last_assigned);
  }
  bits.put(current, width);
  advance();
  bits.put(kEof, width);
  bits.finish();
  return out;
}

Result<Bytes> lzw_decompress(ByteView data, std::size_t max_out) {
  // suffix[c] is the last byte of code c's string, prefix[c] the code of the
  // string without it. Only assigned entries are read (codes below
  // next_code, or 4095 once the table is frozen), and prefix[c] < c, so
  // chains end; the bounds checks below hold even if that reasoning fails.
  std::array<std::uint8_t, kMaxCode + 1> suffix{};
  std::array<std::uint16_t, kMaxCode + 1> prefix{};
  std::array<std::uint8_t, kMaxCode + 1> scratch{};

  Bytes out;
  out.reserve(std::min<std::size_t>(max_out, data.size() * 3 + 16));

  unsigned width = kMinWidth;
  std::uint32_t next_code = kEof;  // the code the next string will get
  std::uint32_t widen_at = 1u << kMinWidth;
  std::uint16_t last = kNoCode;  // previous code, kNoCode after clear

  std::uint32_t acc = 0;
  unsigned n = 0;
  std::size_t pos = 0;

  for (;;) {
    while (n < width) {
      if (pos == data.size()) {
        return make_error(DecodeError::BadCompression, "lzw: stream ends before the end code");
      }
      acc |= std::uint32_t{data[pos++]} << n;
      n += 8;
    }
    const auto code = static_cast<std::uint16_t>(acc & ((1u << width) - 1));
    acc >>= width;
    n -= width;

    if (code == kClear) {
      width = kMinWidth;
      next_code = kEof;
      widen_at = 1u << kMinWidth;
      last = kNoCode;
      continue;
    }
    if (code == kEof) return out;
    if (code > next_code) return make_error(DecodeError::BadCompression, "lzw: invalid code");

    // Expand code into scratch, back to front.
    std::size_t at = scratch.size();
    std::uint16_t c = code;
    if (code < kClear) {
      scratch[--at] = static_cast<std::uint8_t>(code);
    } else {
      if (code == next_code && last != kNoCode) {
        // The code being defined by this very step (the KwKwK case): the
        // previous string plus its own first byte. With a frozen table
        // (last == kNoCode) code 4095 is an ordinary, already defined entry.
        std::uint16_t head = last;
        for (std::size_t guard = 0; head >= kClear && guard <= kMaxCode; ++guard)
          head = prefix[head];
        scratch[--at] = static_cast<std::uint8_t>(head);
        c = last;
      }
      while (c >= kClear) {
        if (at <= 1) return make_error(DecodeError::BadCompression, "lzw: invalid code chain");
        scratch[--at] = suffix[c];
        c = prefix[c];
      }
      scratch[--at] = static_cast<std::uint8_t>(c);
    }
    const std::size_t len = scratch.size() - at;
    if (len > max_out - out.size()) {
      return make_error(DecodeError::TooLarge, "lzw: output over the limit");
    }
    out.insert(out.end(), scratch.begin() + static_cast<std::ptrdiff_t>(at), scratch.end());

    if (last != kNoCode) {
      suffix[next_code] = scratch[at];
      prefix[next_code] = last;
    }
    last = code;
    ++next_code;
    if (next_code >= widen_at) {
      if (width == kMaxWidth) {
        // Table full: keep the frozen table and wait for a clear, as Go's
        // reader does.
        last = kNoCode;
        --next_code;
      } else {
        ++width;
        widen_at <<= 1;
      }
    }
  }
}

}  // namespace mesh::swim
