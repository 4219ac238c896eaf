// A cursor over a fuzz input: the targets take a few control bytes (which
// mode, how long a piece is) and then hand the rest to the code under test.
// Running past the end yields zeros and empty spans, never an error, so a
// short input is still a valid (if dull) program for a target.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace mesh::fuzz {

class FuzzInput {
 public:
  FuzzInput(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}

  bool empty() const { return pos_ >= size_; }
  std::size_t remaining() const { return size_ - pos_; }

  std::uint8_t byte() { return pos_ < size_ ? data_[pos_++] : 0; }
  std::uint16_t u16() {
    const auto hi = byte();
    return static_cast<std::uint16_t>((hi << 8) | byte());
  }

  // Up to `n` bytes (fewer at the end of the input).
  std::span<const std::uint8_t> bytes(std::size_t n) {
    n = std::min(n, remaining());
    std::span<const std::uint8_t> out(data_ + pos_, n);
    pos_ += n;
    return out;
  }
  // A piece whose length (0..max) is given by the next two bytes.
  std::span<const std::uint8_t> sized(std::size_t max) { return bytes(u16() % (max + 1)); }
  std::span<const std::uint8_t> rest() { return bytes(remaining()); }

 private:
  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t pos_ = 0;
};

inline std::string_view as_text(std::span<const std::uint8_t> b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

// An invariant of the code under test does not hold: crash loudly so that
// the fuzzer records the input (a plain abort() also works without ASan).
[[noreturn]] void invariant_failed(const char* what);

}  // namespace mesh::fuzz
