// AES-GCM with a 16-, 24- or 32-byte key, for memberlist's keyring
// (keyring.cpp), from OpenSSL's libcrypto loaded with dlopen the first
// time a key is used: not linked, so a node without a gossip key never
// maps it. libcrypto's relocated data is private to each process (~400 KB
// at start, docs/benchmarks.md), and libsodium, which every process has
// through libzmq, offers AES-GCM only with 32-byte keys and AES-NI.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "mesh/swim/membership.hpp"

namespace mesh::swim::detail {

inline constexpr std::size_t kGcmNonceSize = 12;
inline constexpr std::size_t kGcmTagSize = 16;

// The soname dlopen asks for: the libcrypto of the headers we were built
// against ("libcrypto.so.3").
const char* libcrypto_soname();

// Loads libcrypto (once; later calls return the first answer). nullopt
// when AES-GCM is ready, else why not, naming the library.
std::optional<std::string> load_aes_gcm();
// The same from another library name, without touching the loaded one: for
// tests of the failure's message.
std::optional<std::string> probe_aes_gcm(const char* soname);

// Writes the ciphertext (as long as `plain`) then the 16-byte tag to
// `out`; false when the key size is wrong or libcrypto is not there.
bool aes_gcm_seal(ByteView key, const std::uint8_t* nonce, ByteView plain, ByteView aad,
                  std::uint8_t* out);
// Opens [ciphertext || tag]; nullopt when the tag does not verify (or as
// above).
std::optional<Bytes> aes_gcm_open(ByteView key, const std::uint8_t* nonce, ByteView sealed,
                                  ByteView aad);

}  // namespace mesh::swim::detail
