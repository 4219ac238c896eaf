#include "mesh/msgpack_lite.hpp"

#include <cstring>
#include <vector>

namespace mesh::mp {

void Writer::be(std::uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) out_.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}

void Writer::length(std::size_t n, std::uint8_t fix, std::size_t fix_limit, std::uint8_t t8, std::uint8_t t16,
                    std::uint8_t t32) {
  if (n < fix_limit) {
    out_.push_back(static_cast<std::uint8_t>(fix | n));
  } else if (t8 != 0 && n < 256) {
    out_.push_back(t8);
    be(n, 1);
  } else if (n < 65536) {
    out_.push_back(t16);
    be(n, 2);
  } else {
    out_.push_back(t32);
    be(n, 4);
  }
}

void Writer::map_header(std::size_t n) { length(n, 0x80, 16, 0, 0xde, 0xdf); }
void Writer::array_header(std::size_t n) { length(n, 0x90, 16, 0, 0xdc, 0xdd); }

void Writer::str(std::string_view s) {
  length(s.size(), 0xa0, 32, 0xd9, 0xda, 0xdb);
  out_.insert(out_.end(), s.begin(), s.end());
}

void Writer::raw(std::string_view s) {
  length(s.size(), 0xa0, 32, 0, 0xda, 0xdb);  // go-msgpack 0.5.5 has no str8
  out_.insert(out_.end(), s.begin(), s.end());
}

void Writer::bin(ByteView b) {
  length(b.size(), 0, 0, 0xc4, 0xc5, 0xc6);
  out_.insert(out_.end(), b.begin(), b.end());
}

void Writer::sint(std::int64_t v) {
  if (v >= 0) return uint(static_cast<std::uint64_t>(v));
  out_.push_back(0xd3);
  be(static_cast<std::uint64_t>(v), 8);
}

void Writer::f64(double v) {
  std::uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof bits);
  out_.push_back(0xcb);
  be(bits, 8);
}

void Writer::uint(std::uint64_t v) {
  if (v <= 0x7f) {
    out_.push_back(static_cast<std::uint8_t>(v));
  } else if (v <= 0xff) {
    out_.push_back(0xcc);
    be(v, 1);
  } else if (v <= 0xffff) {
    out_.push_back(0xcd);
    be(v, 2);
  } else if (v <= 0xffffffffu) {
    out_.push_back(0xce);
    be(v, 4);
  } else {
    out_.push_back(0xcf);
    be(v, 8);
  }
}

std::optional<std::uint8_t> Reader::byte() {
  if (pos_ >= in_.size()) return std::nullopt;
  return in_[pos_++];
}

std::optional<std::uint64_t> Reader::be(int bytes) {
  if (remaining() < static_cast<std::size_t>(bytes)) return std::nullopt;
  std::uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v = (v << 8) | in_[pos_++];
  return v;
}

bool Reader::advance(std::uint64_t n) {
  if (n > remaining()) return false;
  pos_ += static_cast<std::size_t>(n);
  return true;
}

std::optional<std::size_t> Reader::map_header() {
  auto b = byte();
  if (!b) return std::nullopt;
  std::optional<std::uint64_t> n;
  if ((*b & 0xf0) == 0x80) n = *b & 0x0f;
  else if (*b == 0xde) n = be(2);
  else if (*b == 0xdf) n = be(4);
  else if (*b == 0xc0) n = 0;
  // Every entry needs at least two bytes: a count beyond that is a lie.
  if (!n || *n > remaining() / 2) return std::nullopt;
  return static_cast<std::size_t>(*n);
}

std::optional<std::size_t> Reader::array_header() {
  auto b = byte();
  if (!b) return std::nullopt;
  std::optional<std::uint64_t> n;
  if ((*b & 0xf0) == 0x90) n = *b & 0x0f;
  else if (*b == 0xdc) n = be(2);
  else if (*b == 0xdd) n = be(4);
  else if (*b == 0xc0) n = 0;
  if (!n || *n > remaining()) return std::nullopt;
  return static_cast<std::size_t>(*n);
}

std::optional<std::string_view> Reader::str() {
  auto b = byte();
  if (!b) return std::nullopt;
  std::optional<std::uint64_t> n;
  if ((*b & 0xe0) == 0xa0) n = *b & 0x1f;
  else if (*b == 0xd9 || *b == 0xc4) n = be(1);
  else if (*b == 0xda || *b == 0xc5) n = be(2);
  else if (*b == 0xdb || *b == 0xc6) n = be(4);
  if (!n || *n > remaining()) return std::nullopt;
  std::string_view s(reinterpret_cast<const char*>(in_.data() + pos_), static_cast<std::size_t>(*n));
  pos_ += static_cast<std::size_t>(*n);
  return s;
}

std::optional<std::string_view> Reader::take(std::optional<std::uint64_t> n) {
  if (!n || *n > remaining()) return std::nullopt;
  std::string_view s(reinterpret_cast<const char*>(in_.data() + pos_), static_cast<std::size_t>(*n));
  pos_ += static_cast<std::size_t>(*n);
  return s;
}

std::optional<std::string_view> Reader::text() {
  auto b = byte();
  if (!b) return std::nullopt;
  if ((*b & 0xe0) == 0xa0) return take(*b & 0x1f);
  if (*b == 0xd9) return take(be(1));
  if (*b == 0xda) return take(be(2));
  if (*b == 0xdb) return take(be(4));
  return std::nullopt;
}

std::optional<std::string_view> Reader::bin() {
  auto b = byte();
  if (!b) return std::nullopt;
  if (*b == 0xc4) return take(be(1));
  if (*b == 0xc5) return take(be(2));
  if (*b == 0xc6) return take(be(4));
  return std::nullopt;
}

std::optional<Reader::Int> Reader::integer() {
  auto b = byte();
  if (!b) return std::nullopt;
  const std::uint8_t t = *b;
  if (t <= 0x7f) return Int{false, t};
  if (t >= 0xe0) return Int{true, static_cast<std::uint64_t>(0x100 - t)};
  if (t >= 0xcc && t <= 0xcf) {
    auto v = be(1 << (t - 0xcc));
    if (!v) return std::nullopt;
    return Int{false, *v};
  }
  if (t >= 0xd0 && t <= 0xd3) {
    const int bytes = 1 << (t - 0xd0);
    auto raw = be(bytes);
    if (!raw) return std::nullopt;
    const int bits = 8 * bytes;
    if (((*raw >> (bits - 1)) & 1) == 0) return Int{false, *raw};
    // Two's complement of `bits` bits: the magnitude is its negation.
    const std::uint64_t mask = bits < 64 ? (std::uint64_t{1} << bits) - 1 : ~std::uint64_t{0};
    return Int{true, ((~*raw) & mask) + 1};
  }
  return std::nullopt;
}

std::optional<double> Reader::floating() {
  auto b = byte();
  if (b == std::uint8_t{0xca}) {
    auto bits = be(4);
    if (!bits) return std::nullopt;
    const auto u = static_cast<std::uint32_t>(*bits);
    float f = 0;
    std::memcpy(&f, &u, sizeof f);
    return f;
  }
  if (b == std::uint8_t{0xcb}) {
    auto bits = be(8);
    if (!bits) return std::nullopt;
    double d = 0;
    std::memcpy(&d, &*bits, sizeof d);
    return d;
  }
  return std::nullopt;
}

std::optional<std::uint64_t> Reader::uint() {
  auto b = byte();
  if (!b) return std::nullopt;
  if (*b <= 0x7f) return *b;
  switch (*b) {
    case 0xcc: return be(1);
    case 0xcd: return be(2);
    case 0xce: return be(4);
    case 0xcf: return be(8);
    case 0xd0: case 0xd1: case 0xd2: case 0xd3: {
      const int bytes = 1 << (*b - 0xd0);
      auto v = be(bytes);
      if (!v) return std::nullopt;
      // Signed: only non-negative values are acceptable here.
      if ((*v >> (8 * bytes - 1)) & 1) return std::nullopt;
      return v;
    }
    default: return std::nullopt;
  }
}

std::optional<bool> Reader::boolean() {
  auto b = byte();
  if (b == std::uint8_t{0xc2}) return false;
  if (b == std::uint8_t{0xc3}) return true;
  return std::nullopt;
}

bool Reader::skip(std::size_t max_depth) {
  // Values still to read at each open container level; the bottom entry is
  // the value asked for. Iterative, so nesting cannot exhaust the stack.
  std::vector<std::uint64_t> pending{1};
  while (!pending.empty()) {
    if (pending.back() == 0) {
      pending.pop_back();
      continue;
    }
    --pending.back();
    auto b = byte();
    if (!b) return false;
    const std::uint8_t t = *b;
    std::optional<std::uint64_t> items;  // set for a container: its values
    if (t <= 0x7f || t >= 0xe0) continue;  // fixints
    if ((t & 0xe0) == 0xa0) {
      if (!advance(t & 0x1f)) return false;
      continue;
    }
    if ((t & 0xf0) == 0x80) {
      items = 2u * (t & 0x0fu);
    } else if ((t & 0xf0) == 0x90) {
      items = t & 0x0fu;
    } else {
      bool ok = true;
      auto len_then_skip = [&](int width, std::uint64_t extra) {
        auto n = be(width);
        ok = n && advance(*n + extra);
      };
      switch (t) {
        case 0xc0: case 0xc2: case 0xc3: break;
        case 0xc4: case 0xd9: len_then_skip(1, 0); break;
        case 0xc5: case 0xda: len_then_skip(2, 0); break;
        case 0xc6: case 0xdb: len_then_skip(4, 0); break;
        case 0xc7: len_then_skip(1, 1); break;  // ext: length, type, data
        case 0xc8: len_then_skip(2, 1); break;
        case 0xc9: len_then_skip(4, 1); break;
        case 0xca: ok = advance(4); break;
        case 0xcb: ok = advance(8); break;
        case 0xcc: case 0xd0: ok = advance(1); break;
        case 0xcd: case 0xd1: ok = advance(2); break;
        case 0xce: case 0xd2: ok = advance(4); break;
        case 0xcf: case 0xd3: ok = advance(8); break;
        case 0xd4: ok = advance(2); break;  // fixext: type + 1, 2, 4, 8, 16
        case 0xd5: ok = advance(3); break;
        case 0xd6: ok = advance(5); break;
        case 0xd7: ok = advance(9); break;
        case 0xd8: ok = advance(17); break;
        case 0xdc: items = be(2); ok = items.has_value(); break;
        case 0xdd: items = be(4); ok = items.has_value(); break;
        case 0xde: items = be(2); ok = items.has_value(); if (ok) *items *= 2; break;
        case 0xdf: items = be(4); ok = items.has_value(); if (ok) *items *= 2; break;
        default: ok = false;  // 0xc1 is never used
      }
      if (!ok) return false;
    }
    if (items) {
      // A container at this level counts, empty or not: an empty one is a
      // level to a JSON reader too (json_depth), and what passes here must
      // encode again.
      if (pending.size() > max_depth) return false;
      if (*items > remaining()) return false;  // every value takes a byte at least
      if (*items > 0) pending.push_back(*items);
    }
  }
  return true;
}

bool well_formed(ByteView bytes, std::size_t max_depth) {
  Reader r(bytes);
  return r.skip(max_depth) && r.remaining() == 0;
}

}  // namespace mesh::mp
