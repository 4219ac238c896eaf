// The codec's three parts and what the framing shares with the message
// bodies. Private to mesh_swim_core.
//
// One concept per source file:
//   message_bodies.cpp  one message: [type][msgpack body], written and read
//                       as go-msgpack 0.5.5 does (encode, decode_message,
//                       decode_alive_view)
//   packet_codec.cpp    what wraps messages in a UDP packet: compound,
//                       hasCrc, compress (decode_packet, split_packet)
//   stream_codec.cpp    one message on a TCP stream: push/pull, user
//                       message, at most one compress layer, "wait for
//                       more" versus malformed (encode_stream, decode_stream)
// Only what the two framing files need is declared here; every other body
// reader and writer stays private to message_bodies.cpp.
#pragma once

#include <cstdint>

#include "mesh/swim/codec.hpp"
#include "msgpack_io.hpp"

namespace mesh::swim {

constexpr std::uint8_t type_byte(MsgType t) { return static_cast<std::uint8_t>(t); }

inline void put_type(Bytes& out, MsgType t) { out.push_back(type_byte(t)); }

// Appends a whole push/pull message. Instantiated in message_bodies.cpp
// for Nodes = std::span<const PushNodeStateView> (encode_push_pull_stream)
// and std::vector<PushNodeState> (encode_stream).
template <class Nodes>
void write_push_pull(Bytes& out, bool join, const Nodes& nodes, ByteView user_state);

// compress{Algo, Buf}: the body of memberlist's compress wrapper.
struct CompressBody {
  std::uint8_t algo = 0;
  ByteView buf;
};

// pushPullHeader: what precedes the states of a push/pull.
struct PushPullHeader {
  std::int64_t nodes = 0;
  std::int64_t user_state_len = 0;
  bool join = false;
};

// userMsgHeader: what precedes a user message's payload on a stream.
struct UserMsgHeader {
  std::int64_t len = 0;
};

// Each reads one msgpack map into m: keys in any order, unknown keys
// skipped. False when r fails (r.error() says why).
bool read_body(MsgpackReader& r, Ping& m);
bool read_body(MsgpackReader& r, Ack& m);
bool read_body(MsgpackReader& r, ErrResp& m);
bool read_body(MsgpackReader& r, PushNodeStateView& m);
bool read_body(MsgpackReader& r, CompressBody& m);
bool read_body(MsgpackReader& r, PushPullHeader& m);
bool read_body(MsgpackReader& r, UserMsgHeader& m);

PushNodeState to_owned(const PushNodeStateView& v);

}  // namespace mesh::swim
