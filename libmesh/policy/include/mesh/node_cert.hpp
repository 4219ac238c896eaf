// Node certificates: the cluster's trust key (JC_TRUST_KEY) vouches that the
// node of a name, holding a CURVE key, is in some zones until a date. A
// policy believes a node's zone claims only from such a certificate, the
// way NATS believes an account only when its operator signed it.
//
// Text form, one line: "meshcert1." + base64 of a MessagePack map
//   {"body": <bin: MessagePack map {"name": str, "key": str (Z85 CURVE
//    public key), "zones": [str], "expires": int (Unix seconds)}>,
//    "sig": <bin: Ed25519 signature of body by the trust key>}
// The trust key pair: a 32-byte Ed25519 seed kept by whoever issues
// certificates (`meshctl certs keygen` writes it, base64, to a file) and its
// public half, base64, given to every node as JC_TRUST_KEY.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mesh/ed25519.hpp"

namespace mesh {

struct NodeCert {
  std::string name;
  std::string public_key;  // Z85 CURVE public key of the node
  std::vector<std::string> zones;
  std::int64_t expires_unix = 0;  // seconds

  bool operator==(const NodeCert&) const = default;
};

inline constexpr std::string_view kCertPrefix = "meshcert1.";
inline constexpr std::size_t kMaxCertBytes = 16 * 1024;

// The certificate's text form, signed with the trust key's seed. Throws
// std::runtime_error if libsodium cannot sign.
std::string issue_cert(const NodeCert& cert, const ed25519::Seed& trust_seed);

enum class CertCheck : std::uint8_t { Ok, Malformed, BadSignature, Expired, WrongNode, WrongKey };
std::string_view to_string(CertCheck check);

// Reads a certificate and checks it: signed by `trust_key` (32 raw
// bytes), for `node` holding `curve_key`, not expired at `now_unix`. The
// certificate is returned for Ok, and for WrongNode, WrongKey and Expired
// (so that a caller can say what it names); `check` says which.
std::optional<NodeCert> open_cert(std::string_view text, std::span<const std::uint8_t> trust_key,
                                  std::string_view node, std::string_view curve_key, std::int64_t now_unix,
                                  CertCheck& check);

// Trust keys as text: base64 of the 32-byte seed or public key; nullopt
// when the text is not one.
std::optional<ed25519::Seed> parse_trust_seed(std::string_view base64);
std::optional<ed25519::PublicKey> parse_trust_key(std::string_view base64);

}  // namespace mesh
