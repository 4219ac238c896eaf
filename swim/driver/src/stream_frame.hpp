// memberlist's encryption helpers, and its framing of an encrypted stream (net.go encryptLocalState):
//
//   [10 = encryptMsg][u32 BE length of what follows][vsn][nonce][ciphertext+tag]
//
// The first five bytes are the additional data of the AES-GCM seal, so the
// length cannot be altered without failing authentication.
#pragma once

#include <cstddef>
#include <cstdint>

#include "mesh/swim/membership.hpp"

namespace mesh::swim::detail {

inline constexpr std::size_t kStreamHeaderSize = 5;
inline constexpr std::uint8_t kEncryptMsgType = 10;

// security.go encryptPayload with a given 12-byte nonce (Keyring::encrypt
// draws it from libsodium's randombytes; tests pass a fixed one to compare with Go).
// Empty when the key size or vsn is wrong.
Bytes encrypt_with_nonce(ByteView key, const std::uint8_t* nonce, ByteView plain,
                         ByteView additional, std::uint8_t vsn);
// memberlist encryptedLength: the size of [vsn][nonce][ciphertext+tag].
std::size_t encrypted_length(std::uint8_t vsn, std::size_t plain);
// The whole frame; empty on failure (no key, no randomness).
Bytes seal_stream(const Keyring& ring, ByteView plain, std::uint8_t vsn);
// The length field of a 5-byte header.
std::uint32_t stream_body_length(ByteView header);

}  // namespace mesh::swim::detail
