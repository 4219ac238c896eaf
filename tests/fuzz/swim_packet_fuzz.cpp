// swim_packet: a UDP datagram as the SWIM core decodes it.
//
// The whole input is one packet. It goes through decode_packet and through
// split_packet followed by decode_message / decode_alive_view on each part
// (the node's hot path), and the two must agree on what they accept (a
// packet split_packet refuses is refused by decode_packet too). Every
// message that decodes is encoded again and must decode to the same value.
#include <cstddef>
#include <cstdint>
#include <variant>

#include "fuzz_input.hpp"
#include "mesh/swim/codec.hpp"

using namespace mesh::swim;
using mesh::fuzz::invariant_failed;

namespace {

// Small limits make the size checks reachable with short inputs.
DecodeLimits small_limits() {
  DecodeLimits l;
  l.max_decompressed = 64 * 1024;
  l.max_push_nodes = 64;
  return l;
}

void check_round_trip(const PacketMessage& m) {
  Bytes again;
  encode(m, again);
  auto back = decode_message(again);
  if (!back) invariant_failed("a decoded message, encoded again, does not decode");
  if (!(*back == m)) invariant_failed("a decoded message, encoded again, decodes differently");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const ByteView packet(data, size);
  const DecodeLimits limits = small_limits();

  auto decoded = decode_packet(packet, limits);
  auto parts = split_packet(packet, limits);
  // split_packet leaves the messages undecoded, so it accepts a packet
  // whose only message is bad; the other way round they must agree.
  if (!parts && decoded) invariant_failed("split_packet refuses what decode_packet accepts");
  if (!decoded) return 0;

  for (const auto& m : decoded->messages) check_round_trip(m);

  std::size_t good = 0;
  for (ByteView part : parts->messages) {
    auto m = decode_message(part);
    auto view = decode_alive_view(part);
    if (m) ++good;
    const bool is_alive = m && std::holds_alternative<Alive>(*m);
    if (is_alive != view.ok()) invariant_failed("decode_alive_view and decode_message disagree");
    if (view) {
      Bytes again;
      encode(*view, again);
      Bytes direct;
      encode(*m, direct);
      if (again != direct) invariant_failed("an alive view encodes unlike the alive it came from");
    }
  }
  if (good != decoded->messages.size()) invariant_failed("split_packet yields other messages");
  return 0;
}
