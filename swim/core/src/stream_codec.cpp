// Stream framing: one memberlist message on a TCP stream (push/pull, user
// message, ping, ack, error), optionally inside one compress. A reader
// calls decode_stream as bytes arrive, so running out of input is
// Incomplete ("wait for more") rather than malformed, within
// DecodeLimits::max_stream. The bodies are message_bodies.cpp's; see
// codec.hpp for the contract.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <type_traits>
#include <utility>
#include <variant>

#include "mesh/swim/codec.hpp"
#include "message_bodies.hpp"
#include "msgpack_io.hpp"

namespace mesh::swim {

namespace {

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
