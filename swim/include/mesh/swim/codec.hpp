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

// --- helpers --------------------------------------------------------------
std::uint32_t crc32_ieee(ByteView data);

// Go's compress/lzw, LSB bit order, literal width 8.
Bytes lzw_compress(ByteView data);
Result<Bytes> lzw_decompress(ByteView data, std::size_t max_out);

}  // namespace mesh::swim
