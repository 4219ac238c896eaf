// Ed25519 signatures (libsodium underneath): the registry a node signs, the
// node certificates a cluster's trust key issues. Keys are raw: a 32-byte
// seed (the secret) and a 32-byte public key; signatures are 64 bytes.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

namespace mesh::ed25519 {

using Seed = std::array<std::uint8_t, 32>;
using PublicKey = std::array<std::uint8_t, 32>;
using Signature = std::array<std::uint8_t, 64>;

// A fresh seed from the OS's random source; nullopt if it has none.
std::optional<Seed> random_seed();
// A seed derived from other secret material (SHA-256 of it): one-way, and
// the same material always gives the same seed.
Seed derived_seed(std::span<const std::uint8_t> material);
// nullopt only if libsodium cannot start (no random source).
std::optional<PublicKey> public_key(const Seed& seed);
std::optional<Signature> sign(const Seed& seed, std::span<const std::uint8_t> message);
bool verify(std::span<const std::uint8_t> public_key, std::span<const std::uint8_t> message,
            std::span<const std::uint8_t> signature);

}  // namespace mesh::ed25519
