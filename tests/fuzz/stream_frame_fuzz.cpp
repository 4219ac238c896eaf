// stream_frame: a TCP stream as the driver receives it, with and without
// encryption, up to the SWIM core's stream decoders.
//
//   [mode][rest]
//   mode bit 0 clear: rest is a plain stream. decode_stream and
//     decode_stream_view are called on growing prefixes, as the driver does
//     while bytes arrive: a prefix of a complete message may be
//     Incomplete, but never a different message, and both forms agree.
//   mode bit 0 set: rest is the plaintext of an encrypted stream; it is
//     sealed into the [10][u32 length][vsn][nonce][ciphertext] frame with
//     a fixed key, then framed, opened and decoded the way the driver's
//     open_frame does it. Bit 1 instead takes rest as the frame itself
//     (a forged or broken frame must be refused, never read past).
#include <cstddef>
#include <cstdint>
#include <variant>

#include "fuzz_input.hpp"
#include "mesh/swim/codec.hpp"
#include "mesh/swim/membership.hpp"
#include "stream_frame.hpp"

using namespace mesh::swim;
using mesh::fuzz::FuzzInput;
using mesh::fuzz::invariant_failed;

namespace {

DecodeLimits limits() {
  DecodeLimits l;
  l.max_stream = 512 * 1024;
  l.max_decompressed = 512 * 1024;
  l.max_push_nodes = 256;
  return l;
}

const Keyring& ring() {
  static const Keyring r({Bytes(16, 0x42)});
  return r;
}

// Decodes `got` both ways and checks they agree. Returns whether a whole
// message was decoded.
bool decode_both(ByteView got) {
  auto owned = decode_stream(got, limits());
  Bytes inflated;
  auto view = decode_stream_view(got, inflated, limits());
  if (owned.ok() != view.ok()) invariant_failed("decode_stream and decode_stream_view disagree");
  if (!owned) {
    if (owned.error().code != view.error().code)
      invariant_failed("decode_stream and decode_stream_view fail differently");
    return false;
  }
  if (owned->consumed != view->consumed) invariant_failed("the two forms consume differently");
  if (owned->consumed == 0 || owned->consumed > got.size())
    invariant_failed("a decoded stream consumed an impossible length");
  if (owned->message.index() != view->message.index())
    invariant_failed("the two forms decode different message kinds");
  return true;
}

// Plain bytes arriving in pieces: the driver asks after every read.
void plain_stream(ByteView bytes) {
  const std::size_t step = bytes.size() / 4 + 1;
  for (std::size_t n = step; n < bytes.size(); n += step) {
    auto early = decode_stream(bytes.first(n), limits());
    auto whole = decode_stream(bytes, limits());
    // A complete message in a prefix is the message of the whole input
    // (trailing bytes are not read).
    if (early && !whole) invariant_failed("a prefix decodes but the whole input does not");
    if (early && whole && early->consumed != whole->consumed)
      invariant_failed("a prefix and the whole input end the message at different places");
  }
  decode_both(bytes);
}

// The driver's framing: what open_frame accepts is decoded as a stream.
void framed(ByteView got) {
  if (got.size() < detail::kStreamHeaderSize || got[0] != detail::kEncryptMsgType) return;
  const std::size_t len = detail::stream_body_length(got);
  if (len > limits().max_stream) return;
  if (got.size() < detail::kStreamHeaderSize + len) return;
  auto plain = ring().decrypt(got.subspan(detail::kStreamHeaderSize, len),
                              got.first(detail::kStreamHeaderSize));
  if (plain) decode_both(*plain);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzInput in(data, size);
  const std::uint8_t mode = in.byte();
  const ByteView rest = in.rest();
  if ((mode & 1) == 0) {
    plain_stream(rest);
  } else if ((mode & 2) == 0) {
    const Bytes frame = detail::seal_stream(ring(), rest, 1);
    if (frame.empty()) invariant_failed("seal_stream failed");
    if (detail::stream_body_length(frame) + detail::kStreamHeaderSize != frame.size())
      invariant_failed("a sealed frame's length field is wrong");
    framed(frame);
  } else {
    framed(rest);
  }
  return 0;
}
