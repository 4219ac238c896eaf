// payload: the JSON payload and context of an agent message, MessagePack
// on the wire, as the Mesh decodes them (decode_json, msgpack_well_formed).
//
// The first byte picks the depth limit of a bare msgpack_well_formed call;
// the rest is the payload. What decode_json accepts must be well-formed,
// must encode again to bytes that decode to the same value, and must print
// as JSON text (with invalid UTF-8 replaced, as a printer of untrusted
// payloads should).
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "fuzz_input.hpp"
#include "payload_codec.hpp"

using namespace mesh::detail;
using mesh::fuzz::FuzzInput;
using mesh::fuzz::invariant_failed;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzInput in(data, size);
  const std::size_t depth = in.byte() % 8;
  const auto bytes = in.rest();

  (void)msgpack_well_formed(bytes, depth);

  auto value = decode_json(bytes, nlohmann::json::object());
  if (!value) return 0;
  if (!bytes.empty() && !msgpack_well_formed(bytes))
    invariant_failed("decode_json accepted bytes msgpack_well_formed refuses");

  const std::vector<std::uint8_t> encoded = encode_json(*value);
  auto back = decode_json(encoded, nlohmann::json());
  if (!back) invariant_failed("a decoded payload, encoded again, does not decode");
  if (encode_json(*back) != encoded) invariant_failed("a decoded payload changes on a round trip");

  (void)value->dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return 0;
}
