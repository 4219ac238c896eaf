// Signed agent registries: a node with a CURVE key pair signs the registry
// it serves with an Ed25519 key derived from its CURVE secret, and gossips
// the public half in its "skey" tag (authenticated by the gossip key). A
// receiver that knows a node's "skey" accepts only a registry whose
// signature verifies under it, so no card enters a directory unless the
// node it names vouched for it.
//
// Served form, when signed (MessagePack):
//   {"signed": <bin: encode_registry bytes>, "sig": <bin: 64-byte Ed25519
//    signature of those bytes>, "cert": <str: the node's certificate,
//    mesh/node_cert.hpp; only when it has one>}
// Unsigned (no CURVE on the serving node): encode_registry bytes as they are.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "mesh/agent_card.hpp"
#include "mesh/ed25519.hpp"

namespace mesh::detail {

inline constexpr char kSigningKeyTag[] = "skey";  // base64 of the node's Ed25519 public key

class RegistrySigner {
 public:
  // The signing key of the node whose CURVE secret (Z85) this is: the same
  // secret always gives the same key. Throws std::runtime_error if libsodium
  // cannot make it.
  explicit RegistrySigner(const std::string& curve_secret_z85);
  const std::string& public_key_base64() const { return public_b64_; }
  // `cert`: the node's certificate, served beside the registry (empty: none).
  std::vector<std::uint8_t> seal(const NodeRegistry& registry, const std::string& cert = {}) const;

 private:
  ed25519::Seed seed_{};
  std::string public_b64_;
};

enum class RegistryTrust : std::uint8_t {
  Verified,      // signed, and the signature verifies under the expected key
  Unsigned,      // no key expected, and none given: the transport's word
  BadSignature,  // a key is expected and the registry is unsigned or its signature fails
  Malformed,
};

// Decodes what a node served. `expected_key`: the node's "skey" tag, when
// it has one. The registry is returned only for Verified and Unsigned;
// `cert` gets the certificate served with a signed one, if any (its own
// signature is the trust key's, checked by the caller).
std::optional<NodeRegistry> open_registry(std::span<const std::uint8_t> served,
                                          const std::optional<std::string>& expected_key, RegistryTrust& trust,
                                          std::optional<std::string>* cert = nullptr);

}  // namespace mesh::detail
