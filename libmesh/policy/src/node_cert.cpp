// Node certificates (mesh/node_cert.hpp).
#include "mesh/node_cert.hpp"

#include <nlohmann/json.hpp>
#include <stdexcept>

#include "mesh/base64.hpp"
#include "mesh/msgpack_lite.hpp"

namespace mesh {
namespace {

using Json = nlohmann::json;

template <std::size_t N>
std::optional<std::array<std::uint8_t, N>> fixed(std::string_view base64) {
  auto bytes = decode_base64(base64);
  if (!bytes || bytes->size() != N) return std::nullopt;
  std::array<std::uint8_t, N> out{};
  std::copy(bytes->begin(), bytes->end(), out.begin());
  return out;
}

// A map read from untrusted bytes: bounded in depth before it is built.
std::optional<Json> map_from(std::span<const std::uint8_t> bytes) {
  if (bytes.size() > kMaxCertBytes || !mp::well_formed(bytes, 4)) return std::nullopt;
  Json j = Json::from_msgpack(bytes.begin(), bytes.end(), /*strict=*/true, /*allow_exceptions=*/false);
  if (!j.is_object()) return std::nullopt;
  return j;
}

}  // namespace

std::string_view to_string(CertCheck check) {
  switch (check) {
    case CertCheck::Ok: return "ok";
    case CertCheck::Malformed: return "not a node certificate";
    case CertCheck::BadSignature: return "not signed by the trust key";
    case CertCheck::Expired: return "expired";
    case CertCheck::WrongNode: return "issued for another node";
    case CertCheck::WrongKey: return "issued for another CURVE key";
  }
  return "?";
}

std::string issue_cert(const NodeCert& cert, const ed25519::Seed& trust_seed) {
  const auto body = Json::to_msgpack(
      Json{{"name", cert.name}, {"key", cert.public_key}, {"zones", cert.zones}, {"expires", cert.expires_unix}});
  const auto sig = ed25519::sign(trust_seed, body);
  if (!sig) throw std::runtime_error("cannot sign the certificate (libsodium Ed25519)");
  const auto outer = Json::to_msgpack(
      Json{{"body", Json::binary(body)}, {"sig", Json::binary(std::vector<std::uint8_t>(sig->begin(), sig->end()))}});
  return std::string(kCertPrefix) + encode_base64(outer);
}

std::optional<NodeCert> open_cert(std::string_view text, std::span<const std::uint8_t> trust_key,
                                  std::string_view node, std::string_view curve_key, std::int64_t now_unix,
                                  CertCheck& check) {
  check = CertCheck::Malformed;
  if (text.size() > kMaxCertBytes * 2 || !text.starts_with(kCertPrefix)) return std::nullopt;
  const auto raw = decode_base64(text.substr(kCertPrefix.size()));
  if (!raw) return std::nullopt;
  const auto outer = map_from(*raw);
  if (!outer || outer->size() != 2 || !outer->contains("body") || !(*outer)["body"].is_binary() ||
      !outer->contains("sig") || !(*outer)["sig"].is_binary()) {
    return std::nullopt;
  }
  const auto& body_bytes = (*outer)["body"].get_binary();
  const auto body = map_from(body_bytes);
  if (!body) return std::nullopt;
  NodeCert cert;
  try {
    cert.name = body->at("name").get<std::string>();
    cert.public_key = body->at("key").get<std::string>();
    cert.zones = body->at("zones").get<std::vector<std::string>>();
    cert.expires_unix = body->at("expires").get<std::int64_t>();
  } catch (const std::exception&) {
    return std::nullopt;
  }
  if (!ed25519::verify(trust_key, body_bytes, (*outer)["sig"].get_binary())) {
    check = CertCheck::BadSignature;
    return std::nullopt;
  }
  if (cert.name != node) {
    check = CertCheck::WrongNode;
  } else if (cert.public_key != curve_key) {
    check = CertCheck::WrongKey;
  } else if (cert.expires_unix <= now_unix) {
    check = CertCheck::Expired;
  } else {
    check = CertCheck::Ok;
  }
  return cert;
}

std::optional<ed25519::Seed> parse_trust_seed(std::string_view base64) { return fixed<32>(base64); }
std::optional<ed25519::PublicKey> parse_trust_key(std::string_view base64) { return fixed<32>(base64); }

}  // namespace mesh
