// Signing and opening the registry a node serves (registry_signing.hpp).
#include "registry_signing.hpp"

#include <nlohmann/json.hpp>
#include <stdexcept>

#include "mesh/base64.hpp"
#include "mesh/ed25519.hpp"
#include "mesh/msgpack_lite.hpp"

namespace mesh::detail {
namespace {

using Json = nlohmann::json;

constexpr std::string_view kDomain = "mesh registry signing key v1\n";

}  // namespace

RegistrySigner::RegistrySigner(const std::string& curve_secret_z85) {
  // Derived one-way from the CURVE secret: nothing of it is given away,
  // and the same secret gives the same key across restarts.
  std::string material(kDomain);
  material += curve_secret_z85;
  seed_ = ed25519::derived_seed(
      std::span(reinterpret_cast<const std::uint8_t*>(material.data()), material.size()));
  const auto pub = ed25519::public_key(seed_);
  if (!pub) throw std::runtime_error("cannot make the registry signing key (libsodium Ed25519)");
  public_b64_ = encode_base64(std::vector<std::uint8_t>(pub->begin(), pub->end()));
}

std::vector<std::uint8_t> RegistrySigner::seal(const NodeRegistry& registry, const std::string& cert) const {
  const auto bytes = encode_registry(registry);
  const auto sig = ed25519::sign(seed_, bytes);
  if (!sig) throw std::runtime_error("cannot sign the registry (libsodium Ed25519)");
  Json out{{"signed", Json::binary(bytes)}, {"sig", Json::binary(std::vector<std::uint8_t>(sig->begin(), sig->end()))}};
  if (!cert.empty()) out["cert"] = cert;
  return Json::to_msgpack(out);
}

std::optional<NodeRegistry> open_registry(std::span<const std::uint8_t> served,
                                          const std::optional<std::string>& expected_key, RegistryTrust& trust,
                                          std::optional<std::string>* cert) {
  trust = RegistryTrust::Malformed;
  if (cert) cert->reset();
  if (served.size() > kMaxRegistryBytes + 1024) return std::nullopt;
  // Bounded depth before a tree is built (a registry nests four deep).
  if (!mp::well_formed(served, 16)) return std::nullopt;
  // The signed form is a map of two binaries (and a certificate); anything
  // else is taken for a plain registry.
  const Json outer = Json::from_msgpack(served.begin(), served.end(), /*strict=*/true, /*allow_exceptions=*/false);
  const bool with_cert = outer.is_object() && outer.contains("cert") && outer["cert"].is_string();
  const bool sealed = outer.is_object() && outer.size() == (with_cert ? 3U : 2U) && outer.contains("signed") &&
                      outer["signed"].is_binary() && outer.contains("sig") && outer["sig"].is_binary();
  if (!sealed) {
    if (expected_key) {
      trust = RegistryTrust::BadSignature;
      return std::nullopt;
    }
    auto reg = decode_registry(served);
    if (reg) trust = RegistryTrust::Unsigned;
    return reg;
  }
  const auto& inner = outer["signed"].get_binary();
  if (expected_key) {
    const auto key = decode_base64(*expected_key);
    if (!key || !ed25519::verify(*key, inner, outer["sig"].get_binary())) {
      trust = RegistryTrust::BadSignature;
      return std::nullopt;
    }
  }
  auto reg = decode_registry(inner);
  if (reg) trust = expected_key ? RegistryTrust::Verified : RegistryTrust::Unsigned;
  if (reg && cert && with_cert) *cert = outer["cert"].get<std::string>();
  return reg;
}

}  // namespace mesh::detail
