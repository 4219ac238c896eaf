// Ed25519 through libsodium (mesh/ed25519.hpp). libsodium is in every
// process already (libzmq links it for CURVE); OpenSSL's libcrypto, which
// this used before, cost each process ~400 KB of private relocated data
// (docs/benchmarks.md). Keys and signatures are RFC 8032's either way.
#include "mesh/ed25519.hpp"

#include <sodium.h>

#include <tuple>

namespace mesh::ed25519 {
namespace {

static_assert(crypto_sign_SEEDBYTES == std::tuple_size_v<Seed>);
static_assert(crypto_sign_PUBLICKEYBYTES == std::tuple_size_v<PublicKey>);
static_assert(crypto_sign_BYTES == std::tuple_size_v<Signature>);

// sodium_init once (it takes a lock on every call, even when done).
bool sodium_ready() {
  static const bool ready = sodium_init() >= 0;
  return ready;
}

// libsodium's secret key: the seed followed by the public key. Wiped when
// it goes out of scope.
struct SecretKey {
  std::array<std::uint8_t, crypto_sign_SECRETKEYBYTES> bytes{};
  ~SecretKey() { sodium_memzero(bytes.data(), bytes.size()); }
};

}  // namespace

std::optional<Seed> random_seed() {
  if (!sodium_ready()) return std::nullopt;
  Seed s{};
  randombytes_buf(s.data(), s.size());
  return s;
}

Seed derived_seed(std::span<const std::uint8_t> material) {
  // libsodium's SHA-256 is one portable implementation using no randomness:
  // nothing for sodium_init to set up first.
  Seed s{};
  static_assert(crypto_hash_sha256_BYTES == std::tuple_size_v<Seed>);
  crypto_hash_sha256(s.data(), material.data(), material.size());
  return s;
}

std::optional<PublicKey> public_key(const Seed& seed) {
  if (!sodium_ready()) return std::nullopt;
  PublicKey pub{};
  SecretKey sk;
  if (crypto_sign_seed_keypair(pub.data(), sk.bytes.data(), seed.data()) != 0) return std::nullopt;
  return pub;
}

std::optional<Signature> sign(const Seed& seed, std::span<const std::uint8_t> message) {
  if (!sodium_ready()) return std::nullopt;
  PublicKey pub{};
  SecretKey sk;
  if (crypto_sign_seed_keypair(pub.data(), sk.bytes.data(), seed.data()) != 0) return std::nullopt;
  Signature sig{};
  unsigned long long len = 0;
  if (crypto_sign_detached(sig.data(), &len, message.data(), message.size(), sk.bytes.data()) !=
          0 ||
      len != sig.size()) {
    return std::nullopt;
  }
  return sig;
}

bool verify(std::span<const std::uint8_t> public_key, std::span<const std::uint8_t> message,
            std::span<const std::uint8_t> signature) {
  if (public_key.size() != crypto_sign_PUBLICKEYBYTES || signature.size() != crypto_sign_BYTES)
    return false;
  if (!sodium_ready()) return false;
  return crypto_sign_verify_detached(signature.data(), message.data(), message.size(),
                                     public_key.data()) == 0;
}

}  // namespace mesh::ed25519
