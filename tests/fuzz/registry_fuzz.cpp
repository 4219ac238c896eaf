// registry: a node's agent registry as it arrives from a peer
// (decode_registry, and open_registry for the signed form a node serves),
// and agent cards as JSON (card_from_json, the shape the admin endpoint
// and meshctl use).
//
//   [mode][rest]
//   mode even: rest is a registry in its MessagePack wire form. One that
//     decodes must pass validate_registry and survive encode/decode. With
//     mode & 2, rest is what a node served (open_registry), checked under
//     a fixed signer's key when mode & 4: whatever opens must be a valid
//     registry, and that registry sealed by the signer opens Verified.
//   mode odd: rest is JSON text; when it parses, card_from_json reads it
//     (and each element of an array), validate_card checks the card, and
//     card_to_json of a card must read back to the same card.
#include <cstddef>
#include <cstdint>
#include <span>

#include "fuzz_input.hpp"
#include "mesh/agent_card.hpp"
#include "registry_signing.hpp"

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
  if ((mode & 1) == 0 && (mode & 2) != 0) {
    static const mesh::detail::RegistrySigner signer("JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6");
    std::optional<std::string> key;
    if (mode & 4) key = signer.public_key_base64();
    mesh::detail::RegistryTrust trust{};
    auto reg = mesh::detail::open_registry(rest, key, trust);
    if (!reg) return 0;
    if (mesh::validate_registry(*reg)) invariant_failed("open_registry returned an invalid registry");
    mesh::detail::RegistryTrust again{};
    auto sealed = mesh::detail::open_registry(signer.seal(*reg), signer.public_key_base64(), again);
    if (again != mesh::detail::RegistryTrust::Verified || !sealed || !(*sealed == *reg)) {
      invariant_failed("a sealed registry does not open Verified under its signer's key");
    }
    return 0;
  }
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
