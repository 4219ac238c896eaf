// The thread block's codec (the table in mesh/conversation.hpp) and the
// small vocabulary around it.
#include <msgpack.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

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

void pack_id(msgpack::packer<msgpack::sbuffer>& pk, const ThreadId& id) {
  char raw[16];
  for (int i = 0; i < 8; ++i) {
    raw[i] = static_cast<char>(id.hi >> (56 - 8 * i));
    raw[8 + i] = static_cast<char>(id.lo >> (56 - 8 * i));
  }
  pk.pack_bin(16);
  pk.pack_bin_body(raw, 16);
}

void pack_key(msgpack::packer<msgpack::sbuffer>& pk, const char (&key)[3]) {
  pk.pack_str(2);
  pk.pack_str_body(key, 2);
}

// A decode step that failed says why.
struct Bad {
  std::string why;
};

ThreadId id_of(const msgpack::object& o, const char* key) {
  if (o.type != msgpack::type::BIN || o.via.bin.size != 16) throw Bad{std::string(key) + " is not 16 bytes"};
  ThreadId id;
  for (int i = 0; i < 8; ++i) {
    id.hi = (id.hi << 8) | static_cast<std::uint8_t>(o.via.bin.ptr[i]);
    id.lo = (id.lo << 8) | static_cast<std::uint8_t>(o.via.bin.ptr[8 + i]);
  }
  return id;
}

std::string text_of(const msgpack::object& o, const char* key, std::size_t max) {
  if (o.type != msgpack::type::STR) throw Bad{std::string(key) + " is not a string"};
  if (o.via.str.size > max) throw Bad{std::string(key) + " is longer than " + std::to_string(max) + " bytes"};
  return std::string(o.via.str.ptr, o.via.str.size);
}

std::uint32_t u32_of(const msgpack::object& o, const char* key) {
  if (o.type != msgpack::type::POSITIVE_INTEGER || o.via.u64 > std::numeric_limits<std::uint32_t>::max()) {
    throw Bad{std::string(key) + " is not an unsigned 32-bit integer"};
  }
  return static_cast<std::uint32_t>(o.via.u64);
}

std::int64_t i64_of(const msgpack::object& o, const char* key) {
  if (o.type == msgpack::type::NEGATIVE_INTEGER) return o.via.i64;
  if (o.type == msgpack::type::POSITIVE_INTEGER && o.via.u64 <= std::numeric_limits<std::int64_t>::max()) {
    return static_cast<std::int64_t>(o.via.u64);
  }
  throw Bad{std::string(key) + " is not a 64-bit integer"};
}

double amount_of(const msgpack::object& o, const char* key) {
  double v = 0;
  if (o.type == msgpack::type::FLOAT32 || o.type == msgpack::type::FLOAT64) {
    v = o.via.f64;
  } else if (o.type == msgpack::type::POSITIVE_INTEGER) {
    v = static_cast<double>(o.via.u64);
  } else {
    throw Bad{std::string(key) + " is not a number"};
  }
  if (!std::isfinite(v) || v < 0) throw Bad{std::string(key) + " is not a finite amount >= 0"};
  return v;
}

ThreadBlock block_of(const msgpack::object& root) {
  if (root.type != msgpack::type::MAP) throw Bad{"not a map"};
  ThreadBlock b;
  bool has_id = false;
  for (std::uint32_t i = 0; i < root.via.map.size; ++i) {
    const msgpack::object& k = root.via.map.ptr[i].key;
    const msgpack::object& v = root.via.map.ptr[i].val;
    if (k.type != msgpack::type::STR) throw Bad{"a key is not a string"};
    const std::string_view key(k.via.str.ptr, k.via.str.size);
    if (key == "id") {
      b.id = id_of(v, "id");
      has_id = true;
    } else if (key == "pa") {
      b.parent = id_of(v, "pa");
    } else if (key == "oa") {
      b.origin_agent = text_of(v, "oa", kMaxOriginBytes);
    } else if (key == "on") {
      b.origin_node = text_of(v, "on", kMaxOriginBytes);
    } else if (key == "su") {
      b.subject = text_of(v, "su", kMaxSubjectBytes);
    } else if (key == "tn") {
      b.turn = u32_of(v, "tn");
    } else if (key == "dp") {
      b.depth = u32_of(v, "dp");
    } else if (key == "sp") {
      b.spent = amount_of(v, "sp");
    } else if (key == "co") {
      b.cost = amount_of(v, "co");
    } else if (key == "mt") {
      b.max_turns = u32_of(v, "mt");
    } else if (key == "ex") {
      b.expires_ms = i64_of(v, "ex");
    } else if (key == "mc") {
      b.max_cost = amount_of(v, "mc");
    } else if (key == "md") {
      b.max_depth = u32_of(v, "md");
    } else if (key == "cl") {
      const auto c = u32_of(v, "cl");
      if (c > 1) throw Bad{"cl is not a message class (0, 1)"};
      b.message_class = static_cast<MessageClass>(c);
    } else if (key == "ln") {
      if (v.type != msgpack::type::ARRAY) throw Bad{"ln is not an array"};
      if (v.via.array.size > kMaxLineage) throw Bad{"ln has more than " + std::to_string(kMaxLineage) + " entries"};
      b.lineage.reserve(v.via.array.size);
      for (std::uint32_t j = 0; j < v.via.array.size; ++j) {
        b.lineage.push_back(text_of(v.via.array.ptr[j], "an ln entry", kMaxLineageEntryBytes));
      }
    }
    // Any other key: a later revision's, skipped.
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

std::vector<std::uint8_t> encode_thread_block(const ThreadBlock& b) {
  msgpack::sbuffer buf(128 + b.subject.size() + 32 * b.lineage.size());
  msgpack::packer<msgpack::sbuffer> pk(buf);
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
  pk.pack_map(n);
  pack_key(pk, "id");
  pack_id(pk, b.id);
  if (b.parent) {
    pack_key(pk, "pa");
    pack_id(pk, *b.parent);
  }
  if (!b.origin_agent.empty()) {
    pack_key(pk, "oa");
    pk.pack(b.origin_agent);
  }
  if (!b.origin_node.empty()) {
    pack_key(pk, "on");
    pk.pack(b.origin_node);
  }
  if (!b.subject.empty()) {
    pack_key(pk, "su");
    pk.pack(b.subject);
  }
  pack_key(pk, "tn");
  pk.pack(b.turn);
  pack_key(pk, "dp");
  pk.pack(b.depth);
  pack_key(pk, "sp");
  pk.pack(b.spent);
  if (b.cost > 0) {
    pack_key(pk, "co");
    pk.pack(b.cost);
  }
  if (b.max_turns) {
    pack_key(pk, "mt");
    pk.pack(*b.max_turns);
  }
  if (b.expires_ms) {
    pack_key(pk, "ex");
    pk.pack(*b.expires_ms);
  }
  if (b.max_cost) {
    pack_key(pk, "mc");
    pk.pack(*b.max_cost);
  }
  if (b.max_depth) {
    pack_key(pk, "md");
    pk.pack(*b.max_depth);
  }
  pack_key(pk, "cl");
  pk.pack(static_cast<unsigned>(b.message_class));
  if (!b.lineage.empty()) {
    pack_key(pk, "ln");
    pk.pack_array(static_cast<std::uint32_t>(b.lineage.size()));
    for (const auto& e : b.lineage) pk.pack(e);
  }
  const auto* p = reinterpret_cast<const std::uint8_t*>(buf.data());
  return std::vector<std::uint8_t>(p, p + buf.size());
}

std::optional<ThreadBlock> decode_thread_block(std::span<const std::uint8_t> bytes, std::string* why) {
  // Bounds that no honest block comes near: a handful of keys, one array
  // of at most kMaxLineage entries, nothing nested deeper than two.
  const msgpack::unpack_limit limits(/*array=*/kMaxLineage + 1, /*map=*/32, /*str=*/4096, /*bin=*/64,
                                     /*ext=*/0, /*depth=*/3);
  try {
    std::size_t offset = 0;
    const msgpack::object_handle oh =
        msgpack::unpack(reinterpret_cast<const char*>(bytes.data()), bytes.size(), offset, nullptr, nullptr, limits);
    if (offset != bytes.size()) throw Bad{"trailing bytes"};
    return block_of(oh.get());
  } catch (const Bad& bad) {
    if (why) *why = bad.why;
  } catch (const std::exception& e) {
    if (why) *why = std::string("not MessagePack: ") + e.what();
  }
  return std::nullopt;
}

}  // namespace mesh
