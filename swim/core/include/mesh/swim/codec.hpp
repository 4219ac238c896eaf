// Encoding and decoding of memberlist's wire format.
//
// Encoding follows go-msgpack 0.5.5 with a default MsgpackHandle exactly:
// each body is a msgpack map keyed by the Go field name; strings and []byte
// are written in the old raw family (0xa0-0xbf, 0xda, 0xdb); integers use
// the smallest encoding; an empty non-omitempty []byte is written as nil
// (0xc0), as Go writes a nil slice; omitempty fields are left out when empty.
//
// Decoding accepts keys in any order, skips unknown keys, accepts str8/str/
// bin/raw for strings and bytes, and any integer encoding that fits the
// field. Every decode is bounds-checked and returns an Error on bad input;
// none of these functions throws.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <variant>
#include <vector>

#include "mesh/swim/messages.hpp"
#include "mesh/swim/types.hpp"

namespace mesh::swim {

// memberlist's limits.
inline constexpr std::size_t kUdpPacketMax = 1400;        // UDPBufferSize: what we send
inline constexpr std::size_t kUdpReceiveMax = 65536;      // what we accept
inline constexpr std::size_t kMaxPushStateBytes = 20u << 20;
inline constexpr std::size_t kMetaMaxSize = 512;
inline constexpr std::size_t kCompoundMaxParts = 255;

struct DecodeLimits {
  std::size_t max_packet = kUdpReceiveMax;
  std::size_t max_stream = kMaxPushStateBytes + (1u << 20);
  std::size_t max_decompressed = kMaxPushStateBytes + (1u << 20);
  // Inflated bytes per compressed byte of a stream, at most (a packet is
  // bounded by max_packet, which keeps it cheap). Push/pull state of a
  // cluster whose members all carry the same meta compresses about 25:1;
  // LZW can reach more than 1000:1 on crafted input, which made a 23 KB
  // stream cost 170 ms of CPU to inflate to the size limit. Beyond the
  // ratio the message is refused (TooLarge), as past max_decompressed.
  std::size_t max_inflate_ratio = 128;
  std::size_t max_push_nodes = 1u << 20;
  int max_depth = 4;  // nesting of crc/compound/compress wrappers
};

// --- encoding -------------------------------------------------------------
// Each appends [type byte][msgpack body] to out.
void encode(const Ping& m, Bytes& out);
void encode(const IndirectPing& m, Bytes& out);
void encode(const Ack& m, Bytes& out);
void encode(const Nack& m, Bytes& out);
void encode(const Suspect& m, Bytes& out);
void encode(const Alive& m, Bytes& out);
void encode(const Dead& m, Bytes& out);
void encode(const ErrResp& m, Bytes& out);
void encode(const UserMsg& m, Bytes& out);  // [8][raw payload]
void encode(const PacketMessage& m, Bytes& out);

template <class M>
Bytes encode(const M& m) {
  Bytes out;
  encode(m, out);
  return out;
}

// [7][n][n x u16 BE lengths][parts...]. Requires 1..255 parts, each < 64 KiB.
Bytes make_compound(std::span<const Bytes> parts);

// [12][crc32(msg) BE][msg]
Bytes wrap_crc(ByteView msg);

// One packet from 1..255 messages in one allocation: the message itself
// when there is one, else their compound; behind a hasCrc when `crc`.
// Equals wrap_crc(make_compound(parts)) (or without either wrapper).
Bytes make_packet(std::span<const ByteView> parts, bool crc);

// [9][{Algo: 0, Buf: lzw(msg)}]
Bytes wrap_compress(ByteView msg);

// A whole stream exchange, optionally inside one compress message (memberlist
// compresses every stream when compression is enabled, its default).
//   PushPull -> [6][header][states][user state]
//   Ping     -> [0][ping]      Ack -> [2][ack]
//   UserMsg  -> [8][{UserMsgLen}][payload]
//   ErrResp  -> [13][{Error}]
Bytes encode_stream(const StreamMessage& m, bool compress);

// --- decoding -------------------------------------------------------------
// One message, not a wrapper: [type][body]. Compound, compress and crc are
// rejected here (UnknownType); use decode_packet for those.
Result<PacketMessage> decode_message(ByteView bytes);

// The result of peeling a packet's wrappers.
struct DecodedPacket {
  std::vector<PacketMessage> messages;
  // Parts of a compound that were cut off at the end (memberlist tolerates a
  // truncated tail) and parts that failed to decode. Both are counted by the
  // caller; the good parts are still delivered.
  std::size_t truncated_parts = 0;
  std::vector<Error> part_errors;
};

// A whole UDP packet. An error means nothing in it could be used (bad CRC,
// bad outer frame); a bad part inside a compound lands in part_errors.
Result<DecodedPacket> decode_packet(ByteView bytes, const DecodeLimits& limits = {});

struct DecodedStream {
  StreamMessage message;
  std::size_t consumed = 0;  // bytes of the input used
};

// A stream's bytes received so far. Returns DecodeError::Incomplete while
// more bytes are needed; any other error is final.
Result<DecodedStream> decode_stream(ByteView bytes, const DecodeLimits& limits = {});

// --- borrowed (view) forms for hot paths -----------------------------------
// The node sees every alive message and every push/pull entry many times
// over (the join of N nodes is N^2 alives; a push/pull carries all N
// states), and most are old news it drops after one lookup. These forms
// point into the buffer they were decoded from instead of copying, so old
// news costs no allocation. A view is valid only while that buffer is.

struct AliveView {
  std::uint32_t incarnation = 0;
  std::string_view node;
  ByteView addr;
  std::uint16_t port = 0;
  ByteView meta;
  ByteView vsn;
};

struct PushNodeStateView {
  std::string_view name;
  ByteView addr;
  std::uint16_t port = 0;
  ByteView meta;
  std::uint32_t incarnation = 0;
  MemberState state = MemberState::Alive;
  ByteView vsn;
};

struct PushPullView {
  bool join = false;
  std::vector<PushNodeStateView> nodes;
  ByteView user_state;
};

// The same bytes as encode(Alive).
void encode(const AliveView& m, Bytes& out);

// An alive message ([4][body]) as views into `message`; any other type is
// UnknownType. Accepts exactly what decode_message accepts for an alive.
Result<AliveView> decode_alive_view(ByteView message);

// A packet with its wrappers peeled but its messages not decoded: the same
// framing checks, limits and errors as decode_packet, with each message
// left as its bytes ([type][body]) for decode_message or
// decode_alive_view. Messages point into the packet or into `inflated`.
struct PacketParts {
  std::vector<ByteView> messages;
  std::vector<Bytes> inflated;  // decompressed layers the views point into
  std::size_t truncated_parts = 0;
  std::vector<Error> part_errors;  // framing errors of compound parts only
};
Result<PacketParts> split_packet(ByteView bytes, const DecodeLimits& limits = {});

// The same bytes as encode_stream(StreamMessage{PushPull{...}}, compress),
// written straight from views (the node's members) without building a
// PushPull first.
Bytes encode_push_pull_stream(bool join, std::span<const PushNodeStateView> nodes,
                              ByteView user_state, bool compress);

// decode_stream, with a push/pull returned as views: into `bytes`, or into
// `inflated` when the stream was compressed. Same results and errors.
using StreamMessageView = std::variant<PushPullView, Ping, Ack, UserMsg, ErrResp>;
struct DecodedStreamView {
  StreamMessageView message;
  std::size_t consumed = 0;
};
Result<DecodedStreamView> decode_stream_view(ByteView bytes, Bytes& inflated,
                                             const DecodeLimits& limits = {});

// --- helpers --------------------------------------------------------------
std::uint32_t crc32_ieee(ByteView data);

// Go's compress/lzw, LSB bit order, literal width 8.
Bytes lzw_compress(ByteView data);
Result<Bytes> lzw_decompress(ByteView data, std::size_t max_out);

}  // namespace mesh::swim
