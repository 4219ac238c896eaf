// Packet framing: what wraps memberlist messages in a UDP packet. A packet
// is a message, a compound of up to 255 parts, or a compress holding
// either, with an optional hasCrc in front of the whole (memberlist's
// handleCommand and ingestPacket). The messages themselves are
// message_bodies.cpp's; see codec.hpp for the contract.
#include <algorithm>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <utility>
#include <vector>

#include "mesh/swim/codec.hpp"
#include "message_bodies.hpp"
#include "msgpack_io.hpp"

namespace mesh::swim {

namespace {

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

// A compound's header: its type, the count of parts and each part's
// length (big-endian u16); the parts follow it.
template <class Part>
void put_compound_header(Bytes& out, std::span<const Part> parts) {
  put_type(out, MsgType::Compound);
  out.push_back(static_cast<std::uint8_t>(parts.size()));
  for (const auto& p : parts) {
    assert(p.size() <= 0xffff);
    out.push_back(static_cast<std::uint8_t>(p.size() >> 8));
    out.push_back(static_cast<std::uint8_t>(p.size()));
  }
}

}  // namespace

Bytes make_compound(std::span<const Bytes> parts) {
  assert(!parts.empty() && parts.size() <= kCompoundMaxParts);
  std::size_t total = 2 + 2 * parts.size();
  for (const auto& p : parts) total += p.size();
  Bytes out;
  out.reserve(total);
  put_compound_header(out, parts);
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

Bytes make_packet(std::span<const ByteView> parts, bool crc) {
  assert(!parts.empty() && parts.size() <= kCompoundMaxParts);
  const bool compound = parts.size() > 1;
  std::size_t total = crc ? 5 : 0;
  if (compound) total += 2 + 2 * parts.size();
  for (const auto& p : parts) total += p.size();
  Bytes out;
  out.reserve(total);
  if (crc) out.resize(5);
  if (compound) put_compound_header(out, parts);
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  if (crc) {
    const std::uint32_t sum = crc32_ieee(ByteView(out).subspan(5));
    out[0] = static_cast<std::uint8_t>(MsgType::HasCrc);
    for (int i = 0; i < 4; ++i) out[1 + static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(sum >> (24 - 8 * i));
  }
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

}  // namespace mesh::swim
