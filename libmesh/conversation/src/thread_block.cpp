// The thread block's codec (the table in mesh/conversation.hpp) and the
// small vocabulary around it.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <string_view>

#include "mesh/conversation.hpp"

namespace mesh {

std::string_view to_string(MessageClass c) {
  switch (c) {
    case MessageClass::Advisory: return "advisory";
    case MessageClass::Authority: return "authority";
  }
  return "unknown";
}

namespace {

template <class T>
std::optional<T> smaller(const std::optional<T>& a, const std::optional<T>& b) {
  if (!a) return b;
  if (!b) return a;
  return std::min(*a, *b);
}

constexpr char kHex[] = "0123456789abcdef";

// A decode step that failed says why.
struct Bad {
  std::string why;
};

// Reads MessagePack in place: no allocation but the block's own strings.
// Every length is checked against what is left, so a count is never
// trusted beyond the input's size.
class Reader {
 public:
  explicit Reader(std::span<const std::uint8_t> in) : in_(in) {}
  bool at_end() const { return pos_ == in_.size(); }

  std::uint32_t map_header() {
    const std::uint8_t t = byte();
    if (t >= 0x80 && t <= 0x8f) return t & 0x0fu;
    if (t == 0xde) return static_cast<std::uint32_t>(be(2));
    if (t == 0xdf) return static_cast<std::uint32_t>(be(4));
    throw Bad{"not a map"};
  }
  std::uint32_t array_header(const char* key) {
    const std::uint8_t t = byte();
    if (t >= 0x90 && t <= 0x9f) return t & 0x0fu;
    if (t == 0xdc) return static_cast<std::uint32_t>(be(2));
    if (t == 0xdd) return static_cast<std::uint32_t>(be(4));
    throw Bad{std::string(key) + " is not an array"};
  }
  // A str (or, for keys, also a bin) as a view into the input.
  std::string_view str(const char* key, bool bin_too = false) {
    const std::uint8_t t = byte();
    std::size_t n = 0;
    if (t >= 0xa0 && t <= 0xbf) {
      n = t & 0x1fu;
    } else if (t == 0xd9 || (bin_too && t == 0xc4)) {
      n = be(1);
    } else if (t == 0xda || (bin_too && t == 0xc5)) {
      n = be(2);
    } else if (t == 0xdb || (bin_too && t == 0xc6)) {
      n = be(4);
    } else {
      throw Bad{std::string(key) + " is not a string"};
    }
    return take(n, key);
  }
  std::string_view bin(const char* key) {
    const std::uint8_t t = byte();
    std::size_t n = 0;
    if (t == 0xc4) {
      n = be(1);
    } else if (t == 0xc5) {
      n = be(2);
    } else if (t == 0xc6) {
      n = be(4);
    } else {
      throw Bad{std::string(key) + " is not 16 bytes"};
    }
    return take(n, key);
  }
  // An integer of any width, as signed 128-bit-safe parts.
  struct Int {
    bool negative = false;
    std::uint64_t magnitude = 0;  // negative: the value is -magnitude
  };
  std::optional<Int> integer() {
    const std::uint8_t t = peek();
    if (t <= 0x7f) {
      ++pos_;
      return Int{false, t};
    }
    if (t >= 0xe0) {
      ++pos_;
      return Int{true, static_cast<std::uint64_t>(0x100 - t)};
    }
    if (t >= 0xcc && t <= 0xcf) {
      ++pos_;
      return Int{false, be(std::size_t{1} << (t - 0xcc))};
    }
    if (t >= 0xd0 && t <= 0xd3) {
      ++pos_;
      const std::size_t width = std::size_t{1} << (t - 0xd0);
      const std::uint64_t raw = be(width);
      const unsigned bits = static_cast<unsigned>(width * 8);
      const bool neg = bits < 64 ? ((raw >> (bits - 1)) & 1u) != 0 : (raw >> 63) != 0;
      if (!neg) return Int{false, raw};
      const std::uint64_t mask = bits < 64 ? ((std::uint64_t{1} << bits) - 1) : ~std::uint64_t{0};
      return Int{true, ((~raw) & mask) + 1};
    }
    return std::nullopt;
  }
  std::optional<double> floating() {
    const std::uint8_t t = peek();
    if (t == 0xca) {
      ++pos_;
      const auto bits = static_cast<std::uint32_t>(be(4));
      float f;
      std::memcpy(&f, &bits, sizeof f);
      return f;
    }
    if (t == 0xcb) {
      ++pos_;
      const std::uint64_t bits = be(8);
      double d;
      std::memcpy(&d, &bits, sizeof d);
      return d;
    }
    return std::nullopt;
  }
  // Any value, nested at most `depth` deep (an unknown key's).
  void skip(int depth = 0) {
    if (depth > 8) throw Bad{"nested too deep"};
    const std::uint8_t t = byte();
    std::uint64_t items = 0;  // values to skip after this header
    if (t <= 0x7f || t >= 0xe0 || t == 0xc0 || t == 0xc2 || t == 0xc3) return;
    if (t >= 0xa0 && t <= 0xbf) {
      take(t & 0x1fu, "a value");
      return;
    }
    if (t >= 0x80 && t <= 0x8f) items = 2u * (t & 0x0fu);
    if (t >= 0x90 && t <= 0x9f) items = t & 0x0fu;
    switch (t) {
      case 0xc4: case 0xd9: take(be(1), "a value"); return;
      case 0xc5: case 0xda: take(be(2), "a value"); return;
      case 0xc6: case 0xdb: take(be(4), "a value"); return;
      case 0xc7: take(be(1) + 1, "a value"); return;
      case 0xc8: take(be(2) + 1, "a value"); return;
      case 0xc9: take(be(4) + 1, "a value"); return;
      case 0xca: take(4, "a value"); return;
      case 0xcb: take(8, "a value"); return;
      case 0xcc: case 0xd0: take(1, "a value"); return;
      case 0xcd: case 0xd1: take(2, "a value"); return;
      case 0xce: case 0xd2: take(4, "a value"); return;
      case 0xcf: case 0xd3: take(8, "a value"); return;
      case 0xd4: take(2, "a value"); return;
      case 0xd5: take(3, "a value"); return;
      case 0xd6: take(5, "a value"); return;
      case 0xd7: take(9, "a value"); return;
      case 0xd8: take(17, "a value"); return;
      case 0xdc: items = be(2); break;
      case 0xdd: items = be(4); break;
      case 0xde: items = 2 * be(2); break;
      case 0xdf: items = 2 * be(4); break;
      default:
        if (items == 0 && !((t >= 0x80 && t <= 0x9f))) throw Bad{"not MessagePack"};
    }
    if (items > in_.size() - pos_) throw Bad{"a count past the end"};  // each item takes a byte at least
    for (std::uint64_t i = 0; i < items; ++i) skip(depth + 1);
  }

 private:
  std::uint8_t peek() const {
    if (pos_ >= in_.size()) throw Bad{"cut short"};
    return in_[pos_];
  }
  std::uint8_t byte() {
    const std::uint8_t b = peek();
    ++pos_;
    return b;
  }
  std::uint64_t be(std::size_t width) {
    if (in_.size() - pos_ < width) throw Bad{"cut short"};
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < width; ++i) v = (v << 8) | in_[pos_ + i];
    pos_ += width;
    return v;
  }
  std::string_view take(std::uint64_t n, const char* what) {
    if (in_.size() - pos_ < n) throw Bad{std::string(what) + " is cut short"};
    const std::string_view v(reinterpret_cast<const char*>(in_.data() + pos_), static_cast<std::size_t>(n));
    pos_ += static_cast<std::size_t>(n);
    return v;
  }

  std::span<const std::uint8_t> in_;
  std::size_t pos_ = 0;
};

ThreadId id_of(Reader& r, const char* key) {
  const std::string_view b = r.bin(key);
  if (b.size() != 16) throw Bad{std::string(key) + " is not 16 bytes"};
  ThreadId id;
  for (int i = 0; i < 8; ++i) {
    id.hi = (id.hi << 8) | static_cast<std::uint8_t>(b[static_cast<std::size_t>(i)]);
    id.lo = (id.lo << 8) | static_cast<std::uint8_t>(b[static_cast<std::size_t>(8 + i)]);
  }
  return id;
}

std::string text_of(Reader& r, const char* key, std::size_t max) {
  const std::string_view s = r.str(key);
  if (s.size() > max) throw Bad{std::string(key) + " is longer than " + std::to_string(max) + " bytes"};
  return std::string(s);
}

std::uint32_t u32_of(Reader& r, const char* key) {
  const auto i = r.integer();
  if (!i || i->negative || i->magnitude > std::numeric_limits<std::uint32_t>::max()) {
    throw Bad{std::string(key) + " is not an unsigned 32-bit integer"};
  }
  return static_cast<std::uint32_t>(i->magnitude);
}

std::int64_t i64_of(Reader& r, const char* key) {
  const auto i = r.integer();
  constexpr auto kMax = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
  if (!i || (!i->negative && i->magnitude > kMax) || (i->negative && i->magnitude > kMax + 1)) {
    throw Bad{std::string(key) + " is not a 64-bit integer"};
  }
  if (!i->negative) return static_cast<std::int64_t>(i->magnitude);
  return i->magnitude == kMax + 1 ? std::numeric_limits<std::int64_t>::min()
                                  : -static_cast<std::int64_t>(i->magnitude);
}

double amount_of(Reader& r, const char* key) {
  double v = 0;
  if (const auto f = r.floating()) {
    v = *f;
  } else if (const auto i = r.integer(); i && !i->negative) {
    v = static_cast<double>(i->magnitude);
  } else {
    throw Bad{std::string(key) + " is not a number"};
  }
  if (!std::isfinite(v) || v < 0) throw Bad{std::string(key) + " is not a finite amount >= 0"};
  return v;
}

ThreadBlock block_of(Reader& r) {
  const std::uint32_t n = r.map_header();
  if (n > 32) throw Bad{"more than 32 keys"};
  ThreadBlock b;
  bool has_id = false;
  for (std::uint32_t i = 0; i < n; ++i) {
    const std::string_view key = r.str("a key", /*bin_too=*/false);
    if (key == "id") {
      b.id = id_of(r, "id");
      has_id = true;
    } else if (key == "pa") {
      b.parent = id_of(r, "pa");
    } else if (key == "oa") {
      b.origin_agent = text_of(r, "oa", kMaxOriginBytes);
    } else if (key == "on") {
      b.origin_node = text_of(r, "on", kMaxOriginBytes);
    } else if (key == "su") {
      b.subject = text_of(r, "su", kMaxSubjectBytes);
    } else if (key == "tn") {
      b.turn = u32_of(r, "tn");
    } else if (key == "dp") {
      b.depth = u32_of(r, "dp");
    } else if (key == "sp") {
      b.spent = amount_of(r, "sp");
    } else if (key == "co") {
      b.cost = amount_of(r, "co");
    } else if (key == "mt") {
      b.max_turns = u32_of(r, "mt");
    } else if (key == "ex") {
      b.expires_ms = i64_of(r, "ex");
    } else if (key == "mc") {
      b.max_cost = amount_of(r, "mc");
    } else if (key == "md") {
      b.max_depth = u32_of(r, "md");
    } else if (key == "cl") {
      const auto c = u32_of(r, "cl");
      if (c > 1) throw Bad{"cl is not a message class (0, 1)"};
      b.message_class = static_cast<MessageClass>(c);
    } else if (key == "ln") {
      const std::uint32_t count = r.array_header("ln");
      if (count > kMaxLineage) throw Bad{"ln has more than " + std::to_string(kMaxLineage) + " entries"};
      b.lineage.reserve(count);
      for (std::uint32_t j = 0; j < count; ++j) b.lineage.push_back(text_of(r, "an ln entry", kMaxLineageEntryBytes));
    } else {
      r.skip();  // a later revision's key
    }
  }
  if (!has_id) throw Bad{"no id"};
  return b;
}

}  // namespace

ThreadLimits ThreadLimits::tightened_by(const ThreadLimits& other) const {
  ThreadLimits out;
  out.max_turns = smaller(max_turns, other.max_turns);
  out.ttl = smaller(ttl, other.ttl);
  out.max_cost = smaller(max_cost, other.max_cost);
  out.max_depth = smaller(max_depth, other.max_depth);
  return out;
}

std::string ThreadId::to_string() const {
  std::string s(32, '0');
  for (std::size_t i = 0; i < 16; ++i) {
    s[i] = kHex[(hi >> (60 - 4 * i)) & 0xfu];
    s[16 + i] = kHex[(lo >> (60 - 4 * i)) & 0xfu];
  }
  return s;
}

std::optional<ThreadId> ThreadId::parse(std::string_view hex) {
  if (hex.size() != 32) return std::nullopt;
  ThreadId id;
  for (std::size_t i = 0; i < 32; ++i) {
    const char c = hex[i];
    int d = -1;
    if (c >= '0' && c <= '9') d = c - '0';
    if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
    if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
    if (d < 0) return std::nullopt;
    std::uint64_t& half = i < 16 ? id.hi : id.lo;
    half = (half << 4) | static_cast<std::uint64_t>(d);
  }
  return id;
}

std::string lineage_entry(std::string_view agent, std::string_view node) {
  std::string s;
  s.reserve(agent.size() + node.size() + 1);
  s.append(agent).append(1, '@').append(node);
  return s;
}

namespace {

// Writes MessagePack straight into the output vector (the smallest form of
// each integer, as msgpack-c does).
class Writer {
 public:
  explicit Writer(std::vector<std::uint8_t>& out) : out_(out) {}
  void map(std::uint32_t n) { header(n, 0x80, 0xde, 0xdf, 15); }
  void array(std::uint32_t n) { header(n, 0x90, 0xdc, 0xdd, 15); }
  void key(const char (&k)[3]) { str(std::string_view(k, 2)); }
  void str(std::string_view s) {
    const auto n = static_cast<std::uint32_t>(s.size());
    if (n <= 31) {
      out_.push_back(static_cast<std::uint8_t>(0xa0 | n));
    } else if (n <= 0xff) {
      out_.push_back(0xd9);
      be(n, 1);
    } else if (n <= 0xffff) {
      out_.push_back(0xda);
      be(n, 2);
    } else {
      out_.push_back(0xdb);
      be(n, 4);
    }
    out_.insert(out_.end(), s.begin(), s.end());
  }
  void id(const ThreadId& id) {
    out_.push_back(0xc4);
    out_.push_back(16);
    be(id.hi, 8);
    be(id.lo, 8);
  }
  void uint(std::uint64_t v) {
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
  void sint(std::int64_t v) {
    if (v >= 0) return uint(static_cast<std::uint64_t>(v));
    out_.push_back(0xd3);
    be(static_cast<std::uint64_t>(v), 8);
  }
  void real(double d) {
    std::uint64_t bits;
    std::memcpy(&bits, &d, sizeof bits);
    out_.push_back(0xcb);
    be(bits, 8);
  }

 private:
  void header(std::uint32_t n, std::uint8_t fix, std::uint8_t t16, std::uint8_t t32, std::uint32_t fix_max) {
    if (n <= fix_max) {
      out_.push_back(static_cast<std::uint8_t>(fix | n));
    } else if (n <= 0xffff) {
      out_.push_back(t16);
      be(n, 2);
    } else {
      out_.push_back(t32);
      be(n, 4);
    }
  }
  void be(std::uint64_t v, unsigned width) {
    for (unsigned i = width; i-- > 0;) out_.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
  }

  std::vector<std::uint8_t>& out_;
};

}  // namespace

std::vector<std::uint8_t> encode_thread_block(const ThreadBlock& b) {
  std::vector<std::uint8_t> out;
  std::size_t lineage_bytes = 0;
  for (const auto& e : b.lineage) lineage_bytes += e.size() + 5;
  out.reserve(160 + b.origin_agent.size() + b.origin_node.size() + b.subject.size() + lineage_bytes);
  Writer w(out);
  std::uint32_t n = 5;  // id, tn, dp, sp, cl
  n += b.parent ? 1 : 0;
  n += b.origin_agent.empty() ? 0 : 1;
  n += b.origin_node.empty() ? 0 : 1;
  n += b.subject.empty() ? 0 : 1;
  n += b.cost > 0 ? 1 : 0;
  n += b.max_turns ? 1 : 0;
  n += b.expires_ms ? 1 : 0;
  n += b.max_cost ? 1 : 0;
  n += b.max_depth ? 1 : 0;
  n += b.lineage.empty() ? 0 : 1;
  w.map(n);
  w.key("id");
  w.id(b.id);
  if (b.parent) {
    w.key("pa");
    w.id(*b.parent);
  }
  if (!b.origin_agent.empty()) {
    w.key("oa");
    w.str(b.origin_agent);
  }
  if (!b.origin_node.empty()) {
    w.key("on");
    w.str(b.origin_node);
  }
  if (!b.subject.empty()) {
    w.key("su");
    w.str(b.subject);
  }
  w.key("tn");
  w.uint(b.turn);
  w.key("dp");
  w.uint(b.depth);
  w.key("sp");
  w.real(b.spent);
  if (b.cost > 0) {
    w.key("co");
    w.real(b.cost);
  }
  if (b.max_turns) {
    w.key("mt");
    w.uint(*b.max_turns);
  }
  if (b.expires_ms) {
    w.key("ex");
    w.sint(*b.expires_ms);
  }
  if (b.max_cost) {
    w.key("mc");
    w.real(*b.max_cost);
  }
  if (b.max_depth) {
    w.key("md");
    w.uint(*b.max_depth);
  }
  w.key("cl");
  w.uint(static_cast<unsigned>(b.message_class));
  if (!b.lineage.empty()) {
    w.key("ln");
    w.array(static_cast<std::uint32_t>(b.lineage.size()));
    for (const auto& e : b.lineage) w.str(e);
  }
  return out;
}

std::optional<ThreadBlock> decode_thread_block(std::span<const std::uint8_t> bytes, std::string* why) {
  try {
    Reader r(bytes);
    ThreadBlock b = block_of(r);
    if (!r.at_end()) throw Bad{"trailing bytes"};
    return b;
  } catch (const Bad& bad) {
    if (why) *why = bad.why;
  } catch (const std::exception& e) {  // std::bad_alloc: a string of a claimed size
    if (why) *why = e.what();
  }
  return std::nullopt;
}

}  // namespace mesh
