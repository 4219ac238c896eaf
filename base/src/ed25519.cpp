// Ed25519 through OpenSSL's EVP interface (mesh/ed25519.hpp).
#include "mesh/ed25519.hpp"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <memory>

namespace mesh::ed25519 {
namespace {

struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct MdCtxFree {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;
using MdCtx = std::unique_ptr<EVP_MD_CTX, MdCtxFree>;

Pkey private_key(const Seed& seed) {
  return Pkey(EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr, seed.data(), seed.size()));
}

}  // namespace

std::optional<Seed> random_seed() {
  Seed s{};
  if (RAND_bytes(s.data(), static_cast<int>(s.size())) != 1) return std::nullopt;
  return s;
}

Seed derived_seed(std::span<const std::uint8_t> material) {
  Seed s{};
  SHA256(material.data(), material.size(), s.data());
  return s;
}

std::optional<PublicKey> public_key(const Seed& seed) {
  const Pkey key = private_key(seed);
  PublicKey pub{};
  std::size_t len = pub.size();
  if (!key || EVP_PKEY_get_raw_public_key(key.get(), pub.data(), &len) != 1 || len != pub.size()) {
    return std::nullopt;
  }
  return pub;
}

std::optional<Signature> sign(const Seed& seed, std::span<const std::uint8_t> message) {
  const Pkey key = private_key(seed);
  const MdCtx ctx(EVP_MD_CTX_new());
  Signature sig{};
  std::size_t len = sig.size();
  if (!key || !ctx || EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, key.get()) != 1 ||
      EVP_DigestSign(ctx.get(), sig.data(), &len, message.data(), message.size()) != 1 || len != sig.size()) {
    return std::nullopt;
  }
  return sig;
}

bool verify(std::span<const std::uint8_t> public_key, std::span<const std::uint8_t> message,
            std::span<const std::uint8_t> signature) {
  if (public_key.size() != 32 || signature.size() != 64) return false;
  const Pkey key(EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, public_key.data(), public_key.size()));
  const MdCtx ctx(EVP_MD_CTX_new());
  if (!key || !ctx || EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, key.get()) != 1) return false;
  return EVP_DigestVerify(ctx.get(), signature.data(), signature.size(), message.data(), message.size()) == 1;
}

}  // namespace mesh::ed25519
