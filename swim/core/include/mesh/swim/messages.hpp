// The messages of HashiCorp memberlist's wire protocol (protocol 1..5), as
// plain structs. Field names follow memberlist's Go structs; the codec
// writes each body as a msgpack map keyed by those Go names.
//
//   packet  := [label]? [crc]? message
//   crc     := 12 | crc32-IEEE(rest) as big-endian u32
//   message := type u8 | msgpack body
//            | 7 (compound) | n u8 | n x len u16 BE | n x message
//            | 9 (compress) | {Algo, Buf} where Buf is LZW(message...)
//            | 8 (user)     | raw bytes
//
// swim/DESIGN.md says where we follow memberlist and where we deviate.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "mesh/swim/types.hpp"

namespace mesh::swim {

enum class MsgType : std::uint8_t {
  Ping = 0,
  IndirectPing = 1,
  Ack = 2,
  Suspect = 3,
  Alive = 4,
  Dead = 5,
  PushPull = 6,
  Compound = 7,
  User = 8,
  Compress = 9,
  Encrypt = 10,
  Nack = 11,
  HasCrc = 12,
  Err = 13,
};

// Member state as memberlist numbers it on the wire (pushNodeState.State).
enum class MemberState : std::uint8_t { Alive = 0, Suspect = 1, Dead = 2, Left = 3 };

std::string_view to_string(MemberState s);

// Protocol and delegate version ranges: [pmin, pmax, pcur, dmin, dmax, dcur].
// Always sent as all six bytes (memberlist 0.2.2 indexes them blindly).
using Vsn = std::array<std::uint8_t, 6>;

struct Ping {
  std::uint32_t seq_no = 0;
  std::string node;          // intended recipient; "" from old senders
  Bytes source_addr;         // omitempty
  std::uint16_t source_port = 0;  // omitempty
  std::string source_node;   // omitempty
  friend bool operator==(const Ping&, const Ping&) = default;
};

struct IndirectPing {
  std::uint32_t seq_no = 0;
  Bytes target;
  std::uint16_t port = 0;
  std::string node;
  bool nack = false;
  Bytes source_addr;         // omitempty
  std::uint16_t source_port = 0;  // omitempty
  std::string source_node;   // omitempty
  friend bool operator==(const IndirectPing&, const IndirectPing&) = default;
};

struct Ack {
  std::uint32_t seq_no = 0;
  Bytes payload;             // nil is written as msgpack nil
  friend bool operator==(const Ack&, const Ack&) = default;
};

struct Nack {
  std::uint32_t seq_no = 0;
  friend bool operator==(const Nack&, const Nack&) = default;
};

struct Suspect {
  std::uint32_t incarnation = 0;
  std::string node;
  std::string from;
  friend bool operator==(const Suspect&, const Suspect&) = default;
};

struct Alive {
  std::uint32_t incarnation = 0;
  std::string node;
  Bytes addr;
  std::uint16_t port = 0;
  Bytes meta;
  Bytes vsn;                 // 6 bytes when well-formed; the core validates
  friend bool operator==(const Alive&, const Alive&) = default;
};

struct Dead {
  std::uint32_t incarnation = 0;
  std::string node;
  std::string from;          // == node: the node left
  friend bool operator==(const Dead&, const Dead&) = default;
};

struct ErrResp {
  std::string error;
  friend bool operator==(const ErrResp&, const ErrResp&) = default;
};

// Type 8: opaque bytes for the delegate (Serf's messages ride here).
struct UserMsg {
  Bytes payload;
  friend bool operator==(const UserMsg&, const UserMsg&) = default;
};

struct PushNodeState {
  std::string name;
  Bytes addr;
  std::uint16_t port = 0;
  Bytes meta;
  std::uint32_t incarnation = 0;
  MemberState state = MemberState::Alive;  // unknown numbers are rejected
  Bytes vsn;
  friend bool operator==(const PushNodeState&, const PushNodeState&) = default;
};

// A whole push/pull exchange: header {Nodes, UserStateLen, Join}, then the
// node states, then the raw user (delegate) state.
struct PushPull {
  bool join = false;
  std::vector<PushNodeState> nodes;
  Bytes user_state;
  friend bool operator==(const PushPull&, const PushPull&) = default;
};

// Anything that can arrive in a UDP packet after the wrappers (crc,
// compound, compress) are peeled off.
using PacketMessage =
    std::variant<Ping, IndirectPing, Ack, Nack, Suspect, Alive, Dead, UserMsg, ErrResp>;

// Anything that can arrive as a whole TCP stream exchange.
//   push/pull:            [6][header][states...][user state]
//   stream ping:          [0][ping]        answered by [2][ack]
//   reliable user msg:    [8][{UserMsgLen}][bytes]
//   error:                [13][{Error}]
// Any of these may be wrapped in one compress message ([9][{Algo,Buf}]).
using StreamMessage = std::variant<PushPull, Ping, Ack, UserMsg, ErrResp>;

}  // namespace mesh::swim
