// One memberlist message: [type byte][msgpack body], each body written and
// read the way go-msgpack 0.5.5 does; see codec.hpp for the contract. The
// wrappers around messages are in packet_codec.cpp (UDP) and
// stream_codec.cpp (TCP); message_bodies.hpp is what they use from here.
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
#include "message_bodies.hpp"

#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "mesh/swim/codec.hpp"
#include "msgpack_io.hpp"

namespace mesh::swim {

namespace {

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

constexpr auto kGoIntMin = std::numeric_limits<std::int64_t>::min();
constexpr auto kGoIntMax = std::numeric_limits<std::int64_t>::max();

// Decodes [body] of a plain message into M. Bytes after the body are
// ignored, as Go's decoder reads one value and stops.
template <class M>
Result<PacketMessage> decode_plain(ByteView body) {
  MsgpackReader r(body);
  M m;
  if (!read_body(r, m)) return r.to_error();
  return PacketMessage{std::move(m)};
}

}  // namespace

// --- shared with the framing (message_bodies.hpp) ---------------------------

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

template void write_push_pull(Bytes&, bool, const std::span<const PushNodeStateView>&, ByteView);
template void write_push_pull(Bytes&, bool, const std::vector<PushNodeState>&, ByteView);

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

bool read_body(MsgpackReader& r, Ack& m) {
  return read_map(r, [&](std::string_view k) {
    if (k == "SeqNo") return r.read_unsigned(m.seq_no);
    if (k == "Payload") return r.read_byte_vector(m.payload);
    return r.skip();
  });
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

bool read_body(MsgpackReader& r, CompressBody& m) {
  return read_map(r, [&](std::string_view k) {
    if (k == "Algo") return r.read_unsigned(m.algo);
    if (k == "Buf") return r.read_bytes(m.buf);
    return r.skip();
  });
}

bool read_body(MsgpackReader& r, PushPullHeader& m) {
  return read_map(r, [&](std::string_view k) {
    if (k == "Nodes") return r.read_int(kGoIntMin, kGoIntMax, m.nodes);
    if (k == "UserStateLen") return r.read_int(kGoIntMin, kGoIntMax, m.user_state_len);
    if (k == "Join") return r.read_bool(m.join);
    return r.skip();
  });
}

bool read_body(MsgpackReader& r, UserMsgHeader& m) {
  return read_map(r, [&](std::string_view k) {
    if (k == "UserMsgLen") return r.read_int(kGoIntMin, kGoIntMax, m.len);
    return r.skip();
  });
}

// --- encoding -------------------------------------------------------------

void encode(const Ping& m, Bytes& out) { encode_plain(MsgType::Ping, m, out); }
void encode(const IndirectPing& m, Bytes& out) { encode_plain(MsgType::IndirectPing, m, out); }
void encode(const Ack& m, Bytes& out) { encode_plain(MsgType::Ack, m, out); }
void encode(const Nack& m, Bytes& out) { encode_plain(MsgType::Nack, m, out); }
void encode(const Suspect& m, Bytes& out) { encode_plain(MsgType::Suspect, m, out); }
void encode(const Alive& m, Bytes& out) { encode_plain(MsgType::Alive, m, out); }
void encode(const Dead& m, Bytes& out) { encode_plain(MsgType::Dead, m, out); }
void encode(const AliveView& m, Bytes& out) { encode_plain(MsgType::Alive, m, out); }
void encode(const ErrResp& m, Bytes& out) { encode_plain(MsgType::Err, m, out); }

void encode(const UserMsg& m, Bytes& out) {
  put_type(out, MsgType::User);
  out.insert(out.end(), m.payload.begin(), m.payload.end());
}

void encode(const PacketMessage& m, Bytes& out) {
  std::visit([&](const auto& x) { encode(x, out); }, m);
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

Result<AliveView> decode_alive_view(ByteView message) {
  if (message.empty()) return make_error(DecodeError::Truncated, "empty message");
  if (message[0] != type_byte(MsgType::Alive))
    return make_error(DecodeError::UnknownType, "not an alive message");
  MsgpackReader r(message.subspan(1));
  AliveView m;
  if (!read_body(r, m)) return r.to_error();
  return m;
}

}  // namespace mesh::swim
