// Private msgpack helpers for the memberlist codec.
//
// Writing goes through msgpack-c's packer, restricted to the forms that
// go-msgpack 0.5.5 emits with a default MsgpackHandle (WriteExt=false):
// strings and []byte in the old raw family only, integers in their smallest
// form, nil for a nil slice.
//
// Reading is a small hand-written, bounds-checked pull parser rather than
// msgpack::unpack. Why:
//  - unpack builds a msgpack::object tree in a heap zone for every call and
//    reports bad input by throwing. On valid packets the two cost about the
//    same (the output strings dominate), but on bad input the exception
//    costs microseconds against tens of nanoseconds here, and the simulator
//    and the fuzz tests feed millions of bad packets (bench/codec_bench.cpp
//    measures both cases);
//  - a pull parser decodes straight into the message structs, so the only
//    allocations are the output strings and vectors;
//  - streams need to tell "ran out of bytes" (Incomplete, wait for more)
//    from "not msgpack" (final), and how many bytes a value claims, which
//    is natural here and awkward through unpack's exceptions.
// The parser never recurses (skip() keeps a counter of pending values), so
// deeply nested garbage cannot exhaust the stack.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <msgpack.hpp>
#include <string>
#include <string_view>

#include "mesh/swim/types.hpp"

namespace mesh::swim {

// Appends msgpack values to a Bytes buffer, the way go-msgpack writes them.
//
// The packer hands the sink one token at a time (a tag, a length, a few
// bytes), dozens per push/pull state; a vector::insert each cost more than
// the bytes themselves. The sink instead grows `out` geometrically and
// memcpy's into the spare room, and trims `out` to what was written when
// the writer is destroyed: do not touch `out` while a writer on it lives.
class MsgpackWriter {
 public:
  explicit MsgpackWriter(Bytes& out) : sink_{out, out.size()}, packer_(sink_) {}
  ~MsgpackWriter() { sink_.out.resize(sink_.used); }
  MsgpackWriter(const MsgpackWriter&) = delete;
  MsgpackWriter& operator=(const MsgpackWriter&) = delete;

  void map_header(std::uint32_t n) { packer_.pack_map(n); }
  // Keys and Go strings: raw family, "" is 0xa0 (a Go string is never nil).
  void str(std::string_view s) {
    const auto n = static_cast<std::uint32_t>(s.size());
    packer_.pack_v4raw(n);
    if (n != 0) packer_.pack_v4raw_body(s.data(), n);
  }
  // A Go []byte: raw family, and nil when empty because the Go side holds a
  // nil slice whenever it has nothing to send.
  void bytes_or_nil(ByteView b) {
    if (b.empty()) {
      packer_.pack_nil();
      return;
    }
    str(as_string_view(b));
  }
  void unsigned_int(std::uint64_t v) { packer_.pack_uint64(v); }
  // Go's int: non-negative values take the unsigned forms, as go-msgpack's
  // encodeInt does.
  void signed_int(std::int64_t v) { packer_.pack_int64(v); }
  void boolean(bool b) {
    if (b) {
      packer_.pack_true();
    } else {
      packer_.pack_false();
    }
  }

 private:
  struct Sink {
    Bytes& out;
    std::size_t used;  // bytes of `out` written; the rest is spare room
    // Inlined into the packer's calls; the rare growth is kept out of line.
    [[gnu::always_inline]] void write(const char* p, std::size_t n) {
      if (out.size() - used < n) grow(n);
      std::memcpy(out.data() + used, p, n);
      used += n;
    }
    [[gnu::noinline]] void grow(std::size_t n) {
      // Room the caller reserved is used first (no reallocation).
      out.resize(std::max({out.capacity(), 2 * out.size(), used + n, std::size_t{64}}));
    }
  };
  Sink sink_;
  msgpack::packer<Sink> packer_;
};

// Pull parser over one contiguous buffer. Every read checks bounds first.
// The first failure is sticky: later reads return false without touching
// the input, so callers may check once at the end of a message.
class MsgpackReader {
 public:
  explicit MsgpackReader(ByteView in) : in_(in) {}

  std::size_t offset() const { return pos_; }
  std::size_t remaining() const { return in_.size() - pos_; }
  ByteView rest() const { return in_.subspan(pos_); }

  bool failed() const { return failed_; }
  DecodeError error() const { return error_; }
  const char* reason() const { return reason_; }
  // After a Truncated failure: how many bytes the input would have needed
  // in total (at least) for the value being read to fit. Lets a stream
  // reader tell "wait for more" from "this can never fit under the limit".
  std::uint64_t needed() const { return needed_; }
  Error to_error() const { return make_error(error_, reason_); }

  bool fail(DecodeError code, const char* reason) {
    if (!failed_) {
      failed_ = true;
      error_ = code;
      reason_ = reason;
    }
    return false;
  }

  // A map header (fixmap, map16, map32). Anything else is Malformed.
  bool read_map_header(std::uint32_t& n);
  // A map key: str or bin family. go-msgpack matches struct fields by exact
  // name, so the key is returned as raw bytes for an exact comparison.
  bool read_key(std::string_view& key);
  // Any integer form whose value fits [0, max]; nil reads as 0 (go-msgpack
  // leaves the zero value in place for nil).
  bool read_uint(std::uint64_t max, std::uint64_t& v);
  // Any integer form whose value fits [min, max]; nil reads as 0.
  bool read_int(std::int64_t min, std::int64_t max, std::int64_t& v);
  // true/false, or the fixints 0 and 1 as go-msgpack's decodeBool accepts;
  // nil reads as false.
  bool read_bool(bool& v);
  // str/bin/old raw family; nil reads as empty. The view points into the
  // input buffer.
  bool read_bytes(ByteView& v);
  // Skips one complete value of any type, including nested maps and
  // arrays, without recursion.
  bool skip();

  template <class U>
  bool read_unsigned(U& out) {
    std::uint64_t v = 0;
    if (!read_uint(std::numeric_limits<U>::max(), v)) return false;
    out = static_cast<U>(v);
    return true;
  }
  bool read_string(std::string& out) {
    ByteView v;
    if (!read_bytes(v)) return false;
    out.assign(reinterpret_cast<const char*>(v.data()), v.size());
    return true;
  }
  // A view into the input buffer.
  bool read_string_view(std::string_view& out) {
    ByteView v;
    if (!read_bytes(v)) return false;
    out = as_string_view(v);
    return true;
  }
  bool read_byte_vector(Bytes& out) {
    ByteView v;
    if (!read_bytes(v)) return false;
    out.assign(v.begin(), v.end());
    return true;
  }

 private:
  bool need(std::uint64_t n) {
    if (failed_) return false;
    if (n <= remaining()) return true;
    needed_ = static_cast<std::uint64_t>(pos_) + n;
    return fail(DecodeError::Truncated, "msgpack value runs past the end");
  }
  std::uint8_t u8() { return in_[pos_++]; }
  std::uint16_t be16() {
    const auto v = static_cast<std::uint16_t>((in_[pos_] << 8) | in_[pos_ + 1]);
    pos_ += 2;
    return v;
  }
  std::uint32_t be32() {
    const std::uint32_t v = (std::uint32_t{in_[pos_]} << 24) |
                            (std::uint32_t{in_[pos_ + 1]} << 16) |
                            (std::uint32_t{in_[pos_ + 2]} << 8) | std::uint32_t{in_[pos_ + 3]};
    pos_ += 4;
    return v;
  }
  std::uint64_t be64() {
    const std::uint64_t hi = be32();
    return (hi << 32) | be32();
  }
  // Reads the payload length of a str/bin family header already consumed.
  bool raw_length(std::uint8_t tag, std::uint32_t& len);
  // Reads a signed/unsigned integer whose tag is already consumed. is_neg
  // tells whether v is a negative int64.
  bool integer(std::uint8_t tag, std::uint64_t& bits, bool& is_neg);

  ByteView in_;
  std::size_t pos_ = 0;
  bool failed_ = false;
  DecodeError error_ = DecodeError::Malformed;
  const char* reason_ = "";
  std::uint64_t needed_ = 0;
};

}  // namespace mesh::swim
