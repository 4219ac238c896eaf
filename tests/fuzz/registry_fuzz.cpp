// registry: a node's agent registry as it arrives from a peer
// (decode_registry), and agent cards as JSON (card_from_json, the shape the
// admin endpoint and meshctl use).
//
//   [mode][rest]
//   mode even: rest is a registry in its MessagePack wire form. One that
//     decodes must pass validate_registry and survive encode/decode.
//   mode odd: rest is JSON text; when it parses, card_from_json reads it
//     (and each element of an array), validate_card checks the card, and
//     card_to_json of a card must read back to the same card.
#include <cstddef>
#include <cstdint>
#include <span>

#include "fuzz_input.hpp"
#include "mesh/agent_card.hpp"

using mesh::fuzz::FuzzInput;
using mesh::fuzz::invariant_failed;

namespace {

void check_card(const nlohmann::json& j) {
  auto card = mesh::card_from_json(j);
  if (!card) return;
  (void)mesh::validate_card(*card);
  auto back = mesh::card_from_json(mesh::card_to_json(*card));
  if (!back || !(*back == *card)) invariant_failed("a card does not survive card_to_json");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzInput in(data, size);
  const std::uint8_t mode = in.byte();
  const auto rest = in.rest();
  if ((mode & 1) == 0) {
    auto reg = mesh::decode_registry(rest);
    if (!reg) return 0;
    if (mesh::validate_registry(*reg)) invariant_failed("decode_registry returned an invalid registry");
    auto back = mesh::decode_registry(mesh::encode_registry(*reg));
    if (!back || !(*back == *reg)) invariant_failed("a registry does not survive a round trip");
    return 0;
  }
  const auto j = nlohmann::json::parse(rest.begin(), rest.end(), nullptr, false);
  if (j.is_discarded()) return 0;
  check_card(j);
  if (j.is_array())
    for (const auto& e : j) check_card(e);
  return 0;
}
