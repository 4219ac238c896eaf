// The thread block's codec (the table in mesh/conversation.hpp) and the
// small vocabulary around it.
#include <array>
#include <cmath>
#include <limits>
#include <string>
#include <string_view>

#include "mesh/conversation.hpp"
#include "mesh/msgpack_lite.hpp"

namespace mesh {

std::string_view to_string(MessageClass c) {
  switch (c) {
    case MessageClass::Advisory: return "advisory";
    case MessageClass::Authority: return "authority";
  }
  return "unknown";
}

namespace {

constexpr char kHex[] = "0123456789abcdef";

// A decode step that failed says why.
struct Bad {
  std::string why;
};

using mp::Reader;

// What a step read, or Bad naming the key.
template <class T>
T need(std::optional<T> v, const char* key, const char* what) {
  if (!v) throw Bad{std::string(key) + " is not " + what};
  return *v;
}

ThreadId id_of(Reader& r, const char* key) {
  const std::string_view b = need(r.bin(), key, "16 bytes");
  if (b.size() != 16) throw Bad{std::string(key) + " is not 16 bytes"};
  ThreadId id;
  for (int i = 0; i < 8; ++i) {
    id.hi = (id.hi << 8) | static_cast<std::uint8_t>(b[static_cast<std::size_t>(i)]);
    id.lo = (id.lo << 8) | static_cast<std::uint8_t>(b[static_cast<std::size_t>(8 + i)]);
  }
  return id;
}

std::string text_of(Reader& r, const char* key, std::size_t max) {
  const std::string_view s = need(r.text(), key, "a string");
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
  Reader as_float = r;  // a failed read leaves a reader anywhere: try on a copy
  if (const auto f = as_float.floating()) {
    v = *f;
    r = as_float;
  } else if (const auto i = r.integer(); i && !i->negative) {
    v = static_cast<double>(i->magnitude);
  } else {
    throw Bad{std::string(key) + " is not a number"};
  }
  if (!std::isfinite(v) || v < 0) throw Bad{std::string(key) + " is not a finite amount >= 0"};
  return v;
}

ThreadBlock block_of(Reader& r) {
  const auto n = r.map_header();
  if (!n) throw Bad{"not a map"};
  if (*n > 32) throw Bad{"more than 32 keys"};
  ThreadBlock b;
  bool has_id = false;
  for (std::size_t i = 0; i < *n; ++i) {
    const std::string_view key = need(r.text(), "a key", "a string");
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
      const std::size_t count = need(r.array_header(), "ln", "an array");
      if (count > kMaxLineage) throw Bad{"ln has more than " + std::to_string(kMaxLineage) + " entries"};
      b.lineage.reserve(count);
      for (std::size_t j = 0; j < count; ++j) b.lineage.push_back(text_of(r, "an ln entry", kMaxLineageEntryBytes));
    } else {
      // A later revision's key: its value is skipped, nested at most 8 deep.
      if (!r.skip(8)) throw Bad{"an unknown key's value is not MessagePack nested at most 8 deep"};
    }
  }
  if (!has_id) throw Bad{"no id"};
  return b;
}

}  // namespace

ThreadLimits ThreadLimits::tightened_by(const ThreadLimits& other) const {
  ThreadLimits out = *this;
  tighten_limit(out.max_turns, other.max_turns);
  tighten_limit(out.ttl, other.ttl);
  tighten_limit(out.max_cost, other.max_cost);
  tighten_limit(out.max_depth, other.max_depth);
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

// Keys are two letters; ids are bin 16, big-endian halves.
void put_key(mp::Writer& w, const char (&k)[3]) { w.str(std::string_view(k, 2)); }

void put_id(mp::Writer& w, const ThreadId& id) {
  std::array<std::uint8_t, 16> b{};
  for (int i = 0; i < 8; ++i) {
    b[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(id.hi >> (56 - 8 * i));
    b[static_cast<std::size_t>(8 + i)] = static_cast<std::uint8_t>(id.lo >> (56 - 8 * i));
  }
  w.bin(b);
}

}  // namespace

std::vector<std::uint8_t> encode_thread_block(const ThreadBlock& b) {
  std::vector<std::uint8_t> out;
  std::size_t lineage_bytes = 0;
  for (const auto& e : b.lineage) lineage_bytes += e.size() + 5;
  out.reserve(160 + b.origin_agent.size() + b.origin_node.size() + b.subject.size() + lineage_bytes);
  mp::Writer w(out);
  std::size_t n = 5;  // id, tn, dp, sp, cl
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
  w.map_header(n);
  put_key(w, "id");
  put_id(w, b.id);
  if (b.parent) {
    put_key(w, "pa");
    put_id(w, *b.parent);
  }
  if (!b.origin_agent.empty()) {
    put_key(w, "oa");
    w.str(b.origin_agent);
  }
  if (!b.origin_node.empty()) {
    put_key(w, "on");
    w.str(b.origin_node);
  }
  if (!b.subject.empty()) {
    put_key(w, "su");
    w.str(b.subject);
  }
  put_key(w, "tn");
  w.uint(b.turn);
  put_key(w, "dp");
  w.uint(b.depth);
  put_key(w, "sp");
  w.f64(b.spent);
  if (b.cost > 0) {
    put_key(w, "co");
    w.f64(b.cost);
  }
  if (b.max_turns) {
    put_key(w, "mt");
    w.uint(*b.max_turns);
  }
  if (b.expires_ms) {
    put_key(w, "ex");
    w.sint(*b.expires_ms);
  }
  if (b.max_cost) {
    put_key(w, "mc");
    w.f64(*b.max_cost);
  }
  if (b.max_depth) {
    put_key(w, "md");
    w.uint(*b.max_depth);
  }
  put_key(w, "cl");
  w.uint(static_cast<unsigned>(b.message_class));
  if (!b.lineage.empty()) {
    put_key(w, "ln");
    w.array_header(b.lineage.size());
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
