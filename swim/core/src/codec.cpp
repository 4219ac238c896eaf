// memberlist's wire format; see codec.hpp for the contract.
//
// Facts this file depends on (memberlist 0.2.2, go-msgpack 0.5.5):
//  - go-msgpack writes a struct as a map whose keys come from the *sorted*
//    field list: encode.go kStruct (lines 463-467 in 0.5.5) switches from
//    fti.sfip (declaration order, used for arrays) to fti.sfi when writing
//    a map, and helper.go (lines 372-373, 490) fills sfi through
//    sort.Sort(sfiSortedByEncName). So keys appear in byte-wise ascending
//    order of the Go field names ("Nack" < "Node" < "Port" < "SeqNo"), not
//    in declaration order. Every encoder below lists its keys that way.
//  - omitempty fields are dropped before the map header is written, so the
//    map size counts only the fields present.
//  - With WriteExt=false strings and []byte use the str container without
//    its 8-bit form: fixstr, then 0xda, then 0xdb.
//  - Decoding matches keys by exact field name and skips unknown ones; a nil
//    value leaves the zero value; missing keys stay zero.
#include "mesh/swim/codec.hpp"

#include <algorithm>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <string_view>
#include <type_traits>
#include <utility>

#include "msgpack_io.hpp"

namespace mesh::swim {

namespace {

constexpr std::uint8_t type_byte(MsgType t) { return static_cast<std::uint8_t>(t); }

void put_type(Bytes& out, MsgType t) { out.push_back(type_byte(t)); }

// --- encoding bodies ------------------------------------------------------
// Keys in ascending byte order of the Go names (see the top of the file).

// The omitempty reply address shared by ping and indirect ping; the three
// keys sort together in both messages.
struct SourceFields {
  const Bytes& addr;
  const std::string& node;
  std::uint16_t port;
  std::uint32_t count() const {
    return (addr.empty() ? 0u : 1u) + (node.empty() ? 0u : 1u) + (port == 0 ? 0u : 1u);
  }
  void write(MsgpackWriter& w) const {
    if (!addr.empty()) {
      w.str("SourceAddr");
      w.bytes_or_nil(addr);
    }
    if (!node.empty()) {
      w.str("SourceNode");
      w.str(node);
    }
    if (port != 0) {
      w.str("SourcePort");
      w.unsigned_int(port);
    }
  }
};

void write_body(MsgpackWriter& w, const Ping& m) {
  const SourceFields source{m.source_addr, m.source_node, m.source_port};
  w.map_header(2u + source.count());
  w.str("Node");
  w.str(m.node);
  w.str("SeqNo");
  w.unsigned_int(m.seq_no);
  source.write(w);
}

void write_body(MsgpackWriter& w, const IndirectPing& m) {
  const SourceFields source{m.source_addr, m.source_node, m.source_port};
  w.map_header(5u + source.count());
  w.str("Nack");
  w.boolean(m.nack);
  w.str("Node");
  w.str(m.node);
  w.str("Port");
  w.unsigned_int(m.port);
  w.str("SeqNo");
  w.unsigned_int(m.seq_no);
  source.write(w);
  w.str("Target");
  w.bytes_or_nil(m.target);
}

void write_body(MsgpackWriter& w, const Ack& m) {
  w.map_header(2);
  w.str("Payload");
  w.bytes_or_nil(m.payload);
  w.str("SeqNo");
  w.unsigned_int(m.seq_no);
}

void write_body(MsgpackWriter& w, const Nack& m) {
  w.map_header(1);
  w.str("SeqNo");
  w.unsigned_int(m.seq_no);
}

// suspect and dead share their Go shape {Incarnation, Node, From}.
template <class M>
void write_incarnation_node_from(MsgpackWriter& w, const M& m) {
  w.map_header(3);
  w.str("From");
  w.str(m.from);
  w.str("Incarnation");
  w.unsigned_int(m.incarnation);
  w.str("Node");
  w.str(m.node);
}

void write_body(MsgpackWriter& w, const Suspect& m) { write_incarnation_node_from(w, m); }
void write_body(MsgpackWriter& w, const Dead& m) { write_incarnation_node_from(w, m); }

// Alive and AliveView have the same fields; one writer keeps their bytes
// identical.
template <class M>
void write_alive(MsgpackWriter& w, const M& m) {
  w.map_header(6);
  w.str("Addr");
  w.bytes_or_nil(m.addr);
  w.str("Incarnation");
  w.unsigned_int(m.incarnation);
  w.str("Meta");
  w.bytes_or_nil(m.meta);
  w.str("Node");
  w.str(m.node);
  w.str("Port");
  w.unsigned_int(m.port);
  w.str("Vsn");
  w.bytes_or_nil(m.vsn);
}

void write_body(MsgpackWriter& w, const Alive& m) { write_alive(w, m); }
void write_body(MsgpackWriter& w, const AliveView& m) { write_alive(w, m); }

void write_body(MsgpackWriter& w, const ErrResp& m) {
  w.map_header(1);
  w.str("Error");
  w.str(m.error);
}

// PushNodeState or PushNodeStateView.
template <class M>
void write_push_node_state(MsgpackWriter& w, const M& m) {
  w.map_header(7);
  w.str("Addr");
  w.bytes_or_nil(m.addr);
  w.str("Incarnation");
  w.unsigned_int(m.incarnation);
  w.str("Meta");
  w.bytes_or_nil(m.meta);
  w.str("Name");
  w.str(m.name);
  w.str("Port");
  w.unsigned_int(m.port);
  w.str("State");
  w.signed_int(static_cast<std::int64_t>(m.state));
  w.str("Vsn");
  w.bytes_or_nil(m.vsn);
}

// [6][header][states][user state]; Nodes is a PushNodeState or
// PushNodeStateView range.
template <class Nodes>
void write_push_pull(Bytes& out, bool join, const Nodes& nodes, ByteView user_state) {
  put_type(out, MsgType::PushPull);
  {
    MsgpackWriter w(out);
    // pushPullHeader{Nodes int, UserStateLen int, Join bool}, sorted.
    w.map_header(3);
    w.str("Join");
    w.boolean(join);
    w.str("Nodes");
    w.signed_int(static_cast<std::int64_t>(std::size(nodes)));
    w.str("UserStateLen");
    w.signed_int(static_cast<std::int64_t>(user_state.size()));
    for (const auto& s : nodes) write_push_node_state(w, s);
  }
  out.insert(out.end(), user_state.begin(), user_state.end());
}

template <class M>
void encode_plain(MsgType t, const M& m, Bytes& out) {
  // Keys and headers of every message fit in this; large fields still grow
  // the buffer geometrically. Saves the many small reallocations of
  // appending piece by piece to an empty vector.
  out.reserve(out.size() + 160);
  put_type(out, t);
  MsgpackWriter w(out);
  write_body(w, m);
}

// --- decoding bodies ------------------------------------------------------

// Reads a map, handing each key to on_field, which reads the value (or
// skips it). The count comes from untrusted input, but every entry consumes
// at least one byte, so the loop is bounded by the input size.
template <class OnField>
bool read_map(MsgpackReader& r, OnField&& on_field) {
  std::uint32_t n = 0;
  if (!r.read_map_header(n)) return false;
  for (std::uint32_t i = 0; i < n; ++i) {
    std::string_view key;
    if (!r.read_key(key) || !on_field(key)) return false;
  }
  return true;
}

bool read_body(MsgpackReader& r, Ping& m) {
  return read_map(r, [&](std::string_view k) {
    if (k == "SeqNo") return r.read_unsigned(m.seq_no);
    if (k == "Node") return r.read_string(m.node);
    if (k == "SourceAddr") return r.read_byte_vector(m.source_addr);
    if (k == "SourcePort") return r.read_unsigned(m.source_port);
    if (k == "SourceNode") return r.read_string(m.source_node);
    return r.skip();
  });
}

bool read_body(MsgpackReader& r, IndirectPing& m) {
  return read_map(r, [&](std::string_view k) {
    if (k == "SeqNo") return r.read_unsigned(m.seq_no);
    if (k == "Target") return r.read_byte_vector(m.target);
    if (k == "Port") return r.read_unsigned(m.port);
    if (k == "Node") return r.read_string(m.node);
    if (k == "Nack") return r.read_bool(m.nack);
    if (k == "SourceAddr") return r.read_byte_vector(m.source_addr);
    if (k == "SourcePort") return r.read_unsigned(m.source_port);
    if (k == "SourceNode") return r.read_string(m.source_node);
    return r.skip();
  });
}

bool read_body(MsgpackReader& r, Ack& m) {
  return read_map(r, [&](std::string_view k) {
    if (k == "SeqNo") return r.read_unsigned(m.seq_no);
    if (k == "Payload") return r.read_byte_vector(m.payload);
    return r.skip();
  });
}

bool read_body(MsgpackReader& r, Nack& m) {
  return read_map(r, [&](std::string_view k) {
    if (k == "SeqNo") return r.read_unsigned(m.seq_no);
    return r.skip();
  });
}

template <class M>
bool read_incarnation_node_from(MsgpackReader& r, M& m) {
  return read_map(r, [&](std::string_view k) {
    if (k == "Incarnation") return r.read_unsigned(m.incarnation);
    if (k == "Node") return r.read_string(m.node);
    if (k == "From") return r.read_string(m.from);
    return r.skip();
  });
}

bool read_body(MsgpackReader& r, Suspect& m) { return read_incarnation_node_from(r, m); }
bool read_body(MsgpackReader& r, Dead& m) { return read_incarnation_node_from(r, m); }

bool read_body(MsgpackReader& r, AliveView& m) {
  return read_map(r, [&](std::string_view k) {
    if (k == "Incarnation") return r.read_unsigned(m.incarnation);
    if (k == "Node") return r.read_string_view(m.node);
    if (k == "Addr") return r.read_bytes(m.addr);
    if (k == "Port") return r.read_unsigned(m.port);
    if (k == "Meta") return r.read_bytes(m.meta);
    if (k == "Vsn") return r.read_bytes(m.vsn);
    return r.skip();
  });
}

// The owned forms decode through the views, so both accept the same input.
Alive to_owned(const AliveView& v) {
  return Alive{v.incarnation,
               std::string(v.node),
               Bytes(v.addr.begin(), v.addr.end()),
               v.port,
               Bytes(v.meta.begin(), v.meta.end()),
               Bytes(v.vsn.begin(), v.vsn.end())};
}

bool read_body(MsgpackReader& r, Alive& m) {
  AliveView v;
  if (!read_body(r, v)) return false;
  m = to_owned(v);
  return true;
}

bool read_body(MsgpackReader& r, ErrResp& m) {
  return read_map(r, [&](std::string_view k) {
    if (k == "Error") return r.read_string(m.error);
    return r.skip();
  });
}

bool read_body(MsgpackReader& r, PushNodeStateView& m) {
  return read_map(r, [&](std::string_view k) {
    if (k == "Name") return r.read_string_view(m.name);
    if (k == "Addr") return r.read_bytes(m.addr);
    if (k == "Port") return r.read_unsigned(m.port);
    if (k == "Meta") return r.read_bytes(m.meta);
    if (k == "Incarnation") return r.read_unsigned(m.incarnation);
    if (k == "State") {
      std::int64_t s = 0;
      if (!r.read_int(0, static_cast<std::int64_t>(MemberState::Left), s)) return false;
      m.state = static_cast<MemberState>(s);
      return true;
    }
    if (k == "Vsn") return r.read_bytes(m.vsn);
    return r.skip();
  });
}

PushNodeState to_owned(const PushNodeStateView& v) {
  return PushNodeState{std::string(v.name),
                       Bytes(v.addr.begin(), v.addr.end()),
                       v.port,
                       Bytes(v.meta.begin(), v.meta.end()),
                       v.incarnation,
                       v.state,
                       Bytes(v.vsn.begin(), v.vsn.end())};
}

struct CompressBody {
  std::uint8_t algo = 0;
  ByteView buf;
};

bool read_body(MsgpackReader& r, CompressBody& m) {
  return read_map(r, [&](std::string_view k) {
    if (k == "Algo") return r.read_unsigned(m.algo);
    if (k == "Buf") return r.read_bytes(m.buf);
    return r.skip();
  });
}

struct PushPullHeader {
  std::int64_t nodes = 0;
  std::int64_t user_state_len = 0;
  bool join = false;
};

constexpr auto kGoIntMin = std::numeric_limits<std::int64_t>::min();
constexpr auto kGoIntMax = std::numeric_limits<std::int64_t>::max();

bool read_body(MsgpackReader& r, PushPullHeader& m) {
  return read_map(r, [&](std::string_view k) {
    if (k == "Nodes") return r.read_int(kGoIntMin, kGoIntMax, m.nodes);
    if (k == "UserStateLen") return r.read_int(kGoIntMin, kGoIntMax, m.user_state_len);
    if (k == "Join") return r.read_bool(m.join);
    return r.skip();
  });
}

struct UserMsgHeader {
  std::int64_t len = 0;
};

bool read_body(MsgpackReader& r, UserMsgHeader& m) {
  return read_map(r, [&](std::string_view k) {
    if (k == "UserMsgLen") return r.read_int(kGoIntMin, kGoIntMax, m.len);
    return r.skip();
  });
}

// Decodes [body] of a plain message into M. Bytes after the body are
// ignored, as Go's decoder reads one value and stops.
template <class M>
Result<PacketMessage> decode_plain(ByteView body) {
  MsgpackReader r(body);
  M m;
  if (!read_body(r, m)) return r.to_error();
  return PacketMessage{std::move(m)};
}

// --- packets --------------------------------------------------------------

Error too_deep() { return make_error(DecodeError::TooDeep, "wrappers nested too deeply"); }

// Decodes a compress message's body and inflates it.
Result<Bytes> inflate(ByteView body, std::size_t max_out) {
  MsgpackReader r(body);
  CompressBody c;
  if (!read_body(r, c)) return r.to_error();
  if (c.algo != 0) return make_error(DecodeError::BadCompression, "unknown compression algorithm");
  return lzw_decompress(c.buf, max_out);
}

// One unit of a packet below the CRC: a compound, a compress, or a message
// (memberlist's handleCommand). depth counts the wrappers already peeled.
// Returns the error that makes this whole unit unusable, if any; each
// message goes to on_message (which returns its decode error, if any), and
// failed parts of a compound to out.part_errors. Out is DecodedPacket or
// PacketParts; inflate_to keeps decompressed layers alive for PacketParts.
template <class Out, class OnMessage, class KeepInflated>
std::optional<Error> walk_unit(ByteView b, int depth, const DecodeLimits& limits, Out& out,
                               OnMessage& on_message, KeepInflated& keep_inflated) {
  if (b.empty()) return make_error(DecodeError::Truncated, "empty message");
  const auto type = b[0];
  if (type == type_byte(MsgType::Compound)) {
    if (depth >= limits.max_depth) return too_deep();
    if (b.size() < 2) return make_error(DecodeError::Truncated, "compound without a part count");
    const std::size_t n = b[1];
    const std::size_t header = 2 + 2 * n;
    if (b.size() < header) return make_error(DecodeError::Truncated, "compound lengths cut off");
    std::size_t at = header;
    for (std::size_t i = 0; i < n; ++i) {
      const std::size_t len = (std::size_t{b[2 + 2 * i]} << 8) | b[3 + 2 * i];
      if (b.size() - at < len) {
        // memberlist keeps the parts before a cut and counts the rest.
        out.truncated_parts += n - i;
        break;
      }
      if (auto err =
              walk_unit(b.subspan(at, len), depth + 1, limits, out, on_message, keep_inflated)) {
        out.part_errors.push_back(std::move(*err));
      }
      at += len;
    }
    return std::nullopt;
  }
  if (type == type_byte(MsgType::Compress)) {
    if (depth >= limits.max_depth) return too_deep();
    // What a packet decompresses to is itself a packet's worth (memberlist
    // compresses a message built to fit a UDP packet), so max_packet bounds
    // it too; without that a 64 KiB datagram could make us inflate
    // max_decompressed (tens of MB, sized for streams) bytes.
    auto inner = inflate(b.subspan(1), std::min(limits.max_decompressed, limits.max_packet));
    if (!inner) return inner.error();
    const ByteView kept = keep_inflated(std::move(*inner));
    return walk_unit(kept, depth + 1, limits, out, on_message, keep_inflated);
  }
  return on_message(b);
}

// decode_packet's outer layer (the CRC), shared by split_packet.
template <class Out, class OnMessage, class KeepInflated>
std::optional<Error> walk_packet(ByteView bytes, const DecodeLimits& limits, Out& out,
                                 OnMessage& on_message, KeepInflated& keep_inflated) {
  if (bytes.empty()) return make_error(DecodeError::Truncated, "empty packet");
  if (bytes.size() > limits.max_packet)
    return make_error(DecodeError::TooLarge, "packet too large");
  ByteView rest = bytes;
  int depth = 0;
  // memberlist checks the CRC only on the outermost layer (ingestPacket),
  // so a hasCrc further in is just an unknown type.
  if (bytes[0] == type_byte(MsgType::HasCrc)) {
    if (depth >= limits.max_depth) return too_deep();
    if (bytes.size() < 5) return make_error(DecodeError::Truncated, "crc header cut off");
    const std::uint32_t want = (std::uint32_t{bytes[1]} << 24) | (std::uint32_t{bytes[2]} << 16) |
                               (std::uint32_t{bytes[3]} << 8) | std::uint32_t{bytes[4]};
    rest = bytes.subspan(5);
    if (crc32_ieee(rest) != want) return make_error(DecodeError::BadCrc, "crc mismatch");
    depth = 1;
  }
  return walk_unit(rest, depth, limits, out, on_message, keep_inflated);
}

// --- streams --------------------------------------------------------------

// Turns a reader failure into the stream's answer: running out of bytes in
// the outer buffer means "wait for more", unless what was being read could
// never fit under the stream limit. Stream readers start after the type
// byte, hence the 1.
Error stream_error(const MsgpackReader& r, bool outer, const DecodeLimits& limits) {
  if (r.error() == DecodeError::Truncated && outer) {
    if (1 + r.needed() > limits.max_stream) {
      return make_error(DecodeError::TooLarge, "stream message over the size limit");
    }
    return make_error(DecodeError::Incomplete, "need more bytes");
  }
  return r.to_error();
}

Error stream_short(bool outer, const char* what) {
  return make_error(outer ? DecodeError::Incomplete : DecodeError::Truncated, what);
}

// Decodes one uncompressed stream message from b. outer says whether b is
// the growing stream buffer (short input is Incomplete) or a complete
// decompressed payload (short input is Truncated).
Result<DecodedStreamView> decode_stream_body(ByteView b, bool outer, const DecodeLimits& limits) {
  if (b.empty()) return stream_short(outer, "empty stream");
  MsgpackReader r(b.subspan(1));
  const auto consumed = [&](std::size_t extra) { return 1 + r.offset() + extra; };
  switch (static_cast<MsgType>(b[0])) {
    case MsgType::PushPull: {
      PushPullHeader h;
      if (!read_body(r, h)) return stream_error(r, outer, limits);
      if (h.nodes < 0) return make_error(DecodeError::Malformed, "negative push/pull node count");
      if (h.user_state_len < 0) {
        return make_error(DecodeError::Malformed, "negative push/pull user state length");
      }
      if (static_cast<std::uint64_t>(h.nodes) > limits.max_push_nodes) {
        return make_error(DecodeError::TooLarge, "too many push/pull nodes");
      }
      if (static_cast<std::uint64_t>(h.user_state_len) > limits.max_stream) {
        return make_error(DecodeError::TooLarge, "push/pull user state over the limit");
      }
      const auto len = static_cast<std::size_t>(h.user_state_len);
      // A TCP reader calls us again each time more bytes arrive, and a
      // push/pull can be megabytes. Whether it is all here is decided as if
      // by a skip-scan of every state before decoding any: a state that
      // fails to decode while a later one is still cut off means "wait for
      // more", not "malformed". The decode below allocates nothing per
      // state, so it runs first and the scan only runs when it fails.
      const MsgpackReader start = r;
      const auto incomplete = [&]() -> std::optional<Error> {
        MsgpackReader scan = start;
        for (std::int64_t i = 0; i < h.nodes; ++i) {
          if (!scan.skip()) return stream_error(scan, outer, limits);
        }
        if (1 + scan.offset() + len > limits.max_stream) {
          return make_error(DecodeError::TooLarge, "push/pull over the stream limit");
        }
        if (scan.remaining() < len) return stream_short(outer, "push/pull user state cut off");
        return std::nullopt;
      };
      PushPullView pp;
      pp.join = h.join;
      // Real states are dozens of bytes; do not let a claimed count reserve
      // more than the input could plausibly hold.
      pp.nodes.reserve(
          std::min<std::size_t>(static_cast<std::size_t>(h.nodes), r.remaining() / 16));
      for (std::int64_t i = 0; i < h.nodes; ++i) {
        PushNodeStateView s;
        if (!read_body(r, s)) {
          if (outer) {
            if (auto e = incomplete()) return std::move(*e);
          }
          return stream_error(r, outer, limits);
        }
        pp.nodes.push_back(s);
      }
      if (consumed(len) > limits.max_stream) {
        return make_error(DecodeError::TooLarge, "push/pull over the stream limit");
      }
      if (r.remaining() < len) return stream_short(outer, "push/pull user state cut off");
      pp.user_state = r.rest().first(len);
      return DecodedStreamView{std::move(pp), consumed(len)};
    }
    case MsgType::User: {
      UserMsgHeader h;
      if (!read_body(r, h)) return stream_error(r, outer, limits);
      if (h.len < 0) return make_error(DecodeError::Malformed, "negative user message length");
      if (static_cast<std::uint64_t>(h.len) > limits.max_stream ||
          consumed(static_cast<std::size_t>(h.len)) > limits.max_stream) {
        return make_error(DecodeError::TooLarge, "user message over the stream limit");
      }
      const auto len = static_cast<std::size_t>(h.len);
      if (r.remaining() < len) return stream_short(outer, "user message cut off");
      const ByteView payload = r.rest().first(len);
      UserMsg u;
      u.payload.assign(payload.begin(), payload.end());
      return DecodedStreamView{std::move(u), consumed(len)};
    }
    case MsgType::Ping: {
      Ping m;
      if (!read_body(r, m)) return stream_error(r, outer, limits);
      return DecodedStreamView{std::move(m), consumed(0)};
    }
    case MsgType::Ack: {
      Ack m;
      if (!read_body(r, m)) return stream_error(r, outer, limits);
      return DecodedStreamView{std::move(m), consumed(0)};
    }
    case MsgType::Err: {
      ErrResp m;
      if (!read_body(r, m)) return stream_error(r, outer, limits);
      return DecodedStreamView{std::move(m), consumed(0)};
    }
    default: return make_error(DecodeError::UnknownType, "message type not valid on a stream");
  }
}

}  // namespace

// --- encoding -------------------------------------------------------------

void encode(const Ping& m, Bytes& out) { encode_plain(MsgType::Ping, m, out); }
void encode(const IndirectPing& m, Bytes& out) { encode_plain(MsgType::IndirectPing, m, out); }
void encode(const Ack& m, Bytes& out) { encode_plain(MsgType::Ack, m, out); }
void encode(const Nack& m, Bytes& out) { encode_plain(MsgType::Nack, m, out); }
void encode(const Suspect& m, Bytes& out) { encode_plain(MsgType::Suspect, m, out); }
void encode(const Alive& m, Bytes& out) { encode_plain(MsgType::Alive, m, out); }
void encode(const Dead& m, Bytes& out) { encode_plain(MsgType::Dead, m, out); }
void encode(const AliveView& m, Bytes& out) { encode_plain(MsgType::Alive, m, out); }

Bytes encode_push_pull_stream(bool join, std::span<const PushNodeStateView> nodes,
                              ByteView user_state, bool compress) {
  Bytes out;
  // States are ~70 bytes each (a name, a 4-byte address, the version
  // vector and seven keys); reserving that up front saves regrowing a
  // buffer of tens of KB several times.
  out.reserve(32 + nodes.size() * 80 + user_state.size());
  write_push_pull(out, join, nodes, user_state);
  if (!compress) return out;
  return wrap_compress(out);
}
void encode(const ErrResp& m, Bytes& out) { encode_plain(MsgType::Err, m, out); }

void encode(const UserMsg& m, Bytes& out) {
  put_type(out, MsgType::User);
  out.insert(out.end(), m.payload.begin(), m.payload.end());
}

void encode(const PacketMessage& m, Bytes& out) {
  std::visit([&](const auto& x) { encode(x, out); }, m);
}

Bytes make_compound(std::span<const Bytes> parts) {
  assert(!parts.empty() && parts.size() <= kCompoundMaxParts);
  std::size_t total = 2 + 2 * parts.size();
  for (const auto& p : parts) {
    assert(p.size() <= 0xffff);
    total += p.size();
  }
  Bytes out;
  out.reserve(total);
  put_type(out, MsgType::Compound);
  out.push_back(static_cast<std::uint8_t>(parts.size()));
  for (const auto& p : parts) {
    out.push_back(static_cast<std::uint8_t>(p.size() >> 8));
    out.push_back(static_cast<std::uint8_t>(p.size()));
  }
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

Bytes wrap_crc(ByteView msg) {
  const std::uint32_t crc = crc32_ieee(msg);
  Bytes out;
  out.reserve(5 + msg.size());
  put_type(out, MsgType::HasCrc);
  for (int shift = 24; shift >= 0; shift -= 8)
    out.push_back(static_cast<std::uint8_t>(crc >> shift));
  out.insert(out.end(), msg.begin(), msg.end());
  return out;
}

Bytes wrap_compress(ByteView msg) {
  const Bytes compressed = lzw_compress(msg);
  Bytes out;
  out.reserve(compressed.size() + 16);
  put_type(out, MsgType::Compress);
  {
    MsgpackWriter w(out);
    // compress{Algo compressionType(uint8), Buf []byte}, keys sorted.
    w.map_header(2);
    w.str("Algo");
    w.unsigned_int(0);
    w.str("Buf");
    w.bytes_or_nil(compressed);
  }
  return out;
}

Bytes encode_stream(const StreamMessage& m, bool compress) {
  Bytes out;
  std::visit(
      [&](const auto& x) {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, PushPull>) {
          write_push_pull(out, x.join, x.nodes, x.user_state);
        } else if constexpr (std::is_same_v<T, UserMsg>) {
          put_type(out, MsgType::User);
          {
            MsgpackWriter w(out);
            w.map_header(1);
            w.str("UserMsgLen");
            w.signed_int(static_cast<std::int64_t>(x.payload.size()));
          }
          out.insert(out.end(), x.payload.begin(), x.payload.end());
        } else {
          encode(x, out);
        }
      },
      m);
  if (!compress) return out;
  return wrap_compress(out);
}

// --- decoding -------------------------------------------------------------

Result<PacketMessage> decode_message(ByteView bytes) {
  if (bytes.empty()) return make_error(DecodeError::Truncated, "empty message");
  const ByteView body = bytes.subspan(1);
  switch (static_cast<MsgType>(bytes[0])) {
    case MsgType::Ping: return decode_plain<Ping>(body);
    case MsgType::IndirectPing: return decode_plain<IndirectPing>(body);
    case MsgType::Ack: return decode_plain<Ack>(body);
    case MsgType::Nack: return decode_plain<Nack>(body);
    case MsgType::Suspect: return decode_plain<Suspect>(body);
    case MsgType::Alive: return decode_plain<Alive>(body);
    case MsgType::Dead: return decode_plain<Dead>(body);
    case MsgType::Err: return decode_plain<ErrResp>(body);
    case MsgType::User: return PacketMessage{UserMsg{Bytes(body.begin(), body.end())}};
    default:
      // pushPull and encrypt are stream-only; compound, compress and crc
      // are wrappers (decode_packet); the rest, including the label prefix
      // (244) of newer memberlist versions, we do not speak.
      return make_error(DecodeError::UnknownType, "unknown message type");
  }
}

Result<DecodedPacket> decode_packet(ByteView bytes, const DecodeLimits& limits) {
  DecodedPacket out;
  // A compound inside a compress may hold another compress: keep every
  // layer until the walk is done.
  std::vector<Bytes> inflated;
  auto keep = [&](Bytes&& b) -> ByteView {
    inflated.push_back(std::move(b));
    return inflated.back();
  };
  auto on_message = [&](ByteView b) -> std::optional<Error> {
    auto m = decode_message(b);
    if (!m) return m.error();
    out.messages.push_back(std::move(*m));
    return std::nullopt;
  };
  if (auto err = walk_packet(bytes, limits, out, on_message, keep)) return std::move(*err);
  return out;
}

Result<PacketParts> split_packet(ByteView bytes, const DecodeLimits& limits) {
  PacketParts out;
  // A Bytes keeps its heap buffer when the vector holding it grows, so the
  // views into earlier layers stay valid.
  auto keep = [&](Bytes&& b) -> ByteView {
    out.inflated.push_back(std::move(b));
    return out.inflated.back();
  };
  auto on_message = [&](ByteView b) -> std::optional<Error> {
    if (b.empty()) return make_error(DecodeError::Truncated, "empty message");
    out.messages.push_back(b);
    return std::nullopt;
  };
  if (auto err = walk_packet(bytes, limits, out, on_message, keep)) return std::move(*err);
  return out;
}

Result<AliveView> decode_alive_view(ByteView message) {
  if (message.empty()) return make_error(DecodeError::Truncated, "empty message");
  if (message[0] != type_byte(MsgType::Alive))
    return make_error(DecodeError::UnknownType, "not an alive message");
  MsgpackReader r(message.subspan(1));
  AliveView m;
  if (!read_body(r, m)) return r.to_error();
  return m;
}

Result<DecodedStreamView> decode_stream_view(ByteView bytes, Bytes& inflated,
                                             const DecodeLimits& limits) {
  if (bytes.empty()) return make_error(DecodeError::Incomplete, "need more bytes");
  if (bytes[0] != type_byte(MsgType::Compress)) return decode_stream_body(bytes, true, limits);

  // memberlist compresses a whole stream message into one compress message
  // and undoes exactly one such layer (readStream), so the inside must be
  // complete and must not be another compress.
  MsgpackReader r(bytes.subspan(1));
  CompressBody c;
  if (!read_body(r, c)) return stream_error(r, true, limits);
  if (1 + r.offset() > limits.max_stream) {
    return make_error(DecodeError::TooLarge, "stream message over the size limit");
  }
  if (c.algo != 0) return make_error(DecodeError::BadCompression, "unknown compression algorithm");
  // The ratio bound applies to streams only: inside a packet the packet
  // size limit already keeps inflating cheap.
  std::size_t max_out = limits.max_decompressed;
  if (limits.max_inflate_ratio != 0 && c.buf.size() <= max_out / limits.max_inflate_ratio) {
    max_out = c.buf.size() * limits.max_inflate_ratio;
  }
  auto inner = lzw_decompress(c.buf, max_out);
  if (!inner) return inner.error();
  inflated = std::move(*inner);
  if (!inflated.empty() && inflated[0] == type_byte(MsgType::Compress)) {
    return make_error(DecodeError::UnknownType, "compress inside compress on a stream");
  }
  auto decoded = decode_stream_body(inflated, false, limits);
  if (!decoded) return decoded.error();
  decoded->consumed = 1 + r.offset();
  return decoded;
}

Result<DecodedStream> decode_stream(ByteView bytes, const DecodeLimits& limits) {
  Bytes inflated;
  auto decoded = decode_stream_view(bytes, inflated, limits);
  if (!decoded) return decoded.error();
  StreamMessage message = std::visit(
      [](auto&& m) -> StreamMessage {
        using T = std::decay_t<decltype(m)>;
        if constexpr (std::is_same_v<T, PushPullView>) {
          PushPull pp;
          pp.join = m.join;
          pp.nodes.reserve(m.nodes.size());
          for (const auto& s : m.nodes) pp.nodes.push_back(to_owned(s));
          pp.user_state.assign(m.user_state.begin(), m.user_state.end());
          return pp;
        } else {
          return std::move(m);
        }
      },
      std::move(decoded->message));
  return DecodedStream{std::move(message), decoded->consumed};
}

}  // namespace mesh::swim
