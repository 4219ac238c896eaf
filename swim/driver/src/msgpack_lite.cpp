#include "msgpack_lite.hpp"

namespace mesh::swim::mp {

namespace {
constexpr int kMaxDepth = 32;
}

void Writer::be(std::uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) out_.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}

void Writer::map_header(std::size_t n) {
  if (n < 16) {
    out_.push_back(static_cast<std::uint8_t>(0x80 | n));
  } else if (n < 65536) {
    out_.push_back(0xde);
    be(n, 2);
  } else {
    out_.push_back(0xdf);
    be(n, 4);
  }
}

void Writer::raw(std::string_view s) {
  const std::size_t n = s.size();
  if (n < 32) {
    out_.push_back(static_cast<std::uint8_t>(0xa0 | n));
  } else if (n < 65536) {
    out_.push_back(0xda);
    be(n, 2);
  } else {
    out_.push_back(0xdb);
    be(n, 4);
  }
  out_.insert(out_.end(), s.begin(), s.end());
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

bool Reader::skip(int depth) {
  if (depth > kMaxDepth) return false;
  auto b = byte();
  if (!b) return false;
  const std::uint8_t t = *b;
  if (t <= 0x7f || t >= 0xe0) return true;  // fixints
  if ((t & 0xe0) == 0xa0) return advance(t & 0x1f);
  auto skip_n = [&](std::uint64_t n, int per) {
    if (n > remaining()) return false;
    for (std::uint64_t i = 0; i < n * static_cast<std::uint64_t>(per); ++i)
      if (!skip(depth + 1)) return false;
    return true;
  };
  if ((t & 0xf0) == 0x80) return skip_n(t & 0x0f, 2);
  if ((t & 0xf0) == 0x90) return skip_n(t & 0x0f, 1);
  auto len = [&](int bytes) { return be(bytes); };
  switch (t) {
    case 0xc0: case 0xc2: case 0xc3: return true;
    case 0xc4: case 0xd9: { auto n = len(1); return n && advance(*n); }
    case 0xc5: case 0xda: { auto n = len(2); return n && advance(*n); }
    case 0xc6: case 0xdb: { auto n = len(4); return n && advance(*n); }
    case 0xc7: { auto n = len(1); return n && advance(*n + 1); }
    case 0xc8: { auto n = len(2); return n && advance(*n + 1); }
    case 0xc9: { auto n = len(4); return n && advance(*n + 1); }
    case 0xca: return advance(4);
    case 0xcb: return advance(8);
    case 0xcc: case 0xd0: return advance(1);
    case 0xcd: case 0xd1: return advance(2);
    case 0xce: case 0xd2: return advance(4);
    case 0xcf: case 0xd3: return advance(8);
    case 0xd4: return advance(2);
    case 0xd5: return advance(3);
    case 0xd6: return advance(5);
    case 0xd7: return advance(9);
    case 0xd8: return advance(17);
    case 0xdc: { auto n = len(2); return n && skip_n(*n, 1); }
    case 0xdd: { auto n = len(4); return n && skip_n(*n, 1); }
    case 0xde: { auto n = len(2); return n && skip_n(*n, 2); }
    case 0xdf: { auto n = len(4); return n && skip_n(*n, 2); }
    default: return false;  // 0xc1 is never used
  }
}

}  // namespace mesh::swim::mp
