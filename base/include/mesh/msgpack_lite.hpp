// A small MessagePack reader and writer for the places that must not trust
// their input and need no object tree: Serf's messages (tags, join/leave
// intents, the clocks of a push/pull state), written the way go-msgpack
// 0.5.5 writes them (old raw strings 0xa0-0xbf, 0xda, 0xdb; smallest
// integers), the thread blocks of governed conversations (the current
// spec's str8 and bin, signed integers, float64), and the pre-scan of
// JSON payloads carried as MessagePack.
//
// The reader is bounds-checked, never throws, never recurses and never
// allocates more than the input could hold. (The SWIM core keeps its own
// pull parser, decoding straight into memberlist's message structs.)
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <span>
#include <vector>

namespace mesh::mp {

using Bytes = std::vector<std::uint8_t>;
using ByteView = std::span<const std::uint8_t>;

class Writer {
 public:
  explicit Writer(Bytes& out) : out_(out) {}
  void map_header(std::size_t n);
  void array_header(std::size_t n);
  void raw(std::string_view s);  // go-msgpack's string encoding (no str8)
  void str(std::string_view s);  // the current spec's: str8 as well
  void bin(ByteView b);
  void uint(std::uint64_t v);  // the smallest form, as msgpack-c writes
  void sint(std::int64_t v);   // uint() when >= 0, else int64
  void f64(double v);
  void boolean(bool v) { out_.push_back(v ? 0xc3 : 0xc2); }

 private:
  void be(std::uint64_t v, int bytes);
  // A length or count: in the first byte's low bits when below fix_limit
  // (0: no such form), else after the first of t8 (0: none), t16 and t32
  // whose width holds it.
  void length(std::size_t n, std::uint8_t fix, std::size_t fix_limit, std::uint8_t t8, std::uint8_t t16,
              std::uint8_t t32);
  Bytes& out_;
};

class Reader {
 public:
  explicit Reader(ByteView in) : in_(in) {}

  // Each returns nullopt (and leaves the reader in an unspecified
  // position) when the next value is not of the asked kind.
  std::optional<std::size_t> map_header();    // nil reads as an empty map
  std::optional<std::size_t> array_header();  // nil reads as an empty array
  std::optional<std::string_view> str();      // raw/str/bin families
  std::optional<std::string_view> text();     // the str family only
  std::optional<std::string_view> bin();      // the bin family only
  std::optional<std::uint64_t> uint();        // any non-negative integer
  // Any integer, negative ones included: its sign and magnitude (so that
  // every int64 and uint64 fits).
  struct Int {
    bool negative = false;
    std::uint64_t magnitude = 0;  // negative: the value is -magnitude
  };
  std::optional<Int> integer();
  std::optional<double> floating();  // float32 or float64, not an integer
  std::optional<bool> boolean();
  // Any one value, containers included, nested at most `max_depth` deep.
  bool skip(std::size_t max_depth = kDefaultMaxDepth);
  static constexpr std::size_t kDefaultMaxDepth = 32;

  // A map keyed by strings: `on_entry(key)` must consume the value (read it
  // or skip() it) and return false to reject the input. False on any error.
  template <class F>
  bool for_each_entry(F&& on_entry) {
    auto n = map_header();
    if (!n) return false;
    for (std::size_t i = 0; i < *n; ++i) {
      auto key = str();
      if (!key || !on_entry(*key)) return false;
    }
    return true;
  }
  std::size_t remaining() const { return in_.size() - pos_; }
  bool at_end() const { return pos_ == in_.size(); }

 private:
  std::optional<std::uint8_t> byte();
  std::optional<std::uint64_t> be(int bytes);
  bool advance(std::uint64_t n);
  std::optional<std::string_view> take(std::optional<std::uint64_t> n);
  ByteView in_;
  std::size_t pos_ = 0;
};

// True when `bytes` is exactly one well-formed MessagePack value whose
// containers nest at most `max_depth` deep.
bool well_formed(ByteView bytes, std::size_t max_depth);

}  // namespace mesh::mp
