// AES-GCM for packets and streams, byte-compatible with memberlist's
// security.go and keyring.go:
//
//   encrypted := [vsn u8][nonce 12][AES-GCM(plain') || tag 16]
//     vsn 0: plain' = plain + PKCS7 padding to 16 (1..16 bytes, always)
//     vsn 1: plain' = plain (protocol >= 2; what memberlist sends today)
//   the additional data is empty for packets and [10][u32 BE length] for
//   streams (see stream_frame.hpp).
//
// The key size picks AES-128/192/256. Decryption tries every key of the
// ring. Unlike pkcs7decode in Go we check the padding byte, so a vsn-0
// message with a bad pad is refused instead of sliced out of range.
// AES-GCM itself is libcrypto's, loaded when a key is first used
// (aes_gcm.cpp); the nonces come from libsodium's randombytes.
#include <sodium.h>

#include <algorithm>
#include <array>
#include <stdexcept>

#include "aes_gcm.hpp"
#include "mesh/base64.hpp"
#include "mesh/swim/membership.hpp"
#include "stream_frame.hpp"

namespace mesh::swim {

namespace {

constexpr std::size_t kVersionSize = 1;
constexpr std::size_t kNonceSize = detail::kGcmNonceSize;
constexpr std::size_t kTagSize = detail::kGcmTagSize;
constexpr std::size_t kBlockSize = 16;

bool valid_key_size(std::size_t n) { return n == 16 || n == 24 || n == 32; }

// sodium_init once (it takes a lock on every call, even when done): the
// nonce of every packet comes from randombytes.
bool sodium_ready() {
  static const bool ready = sodium_init() >= 0;
  return ready;
}

std::string key_size_error(std::size_t n) {
  return "a key must be 16, 24 or 32 bytes, got " + std::to_string(n);
}

}  // namespace

Keyring::Keyring(std::vector<Bytes> keys) : keys_(std::move(keys)) {
  for (const auto& k : keys_)
    if (!valid_key_size(k.size())) throw std::invalid_argument("keyring: " + key_size_error(k.size()));
  // A ring with keys encrypts from the start: libcrypto is loaded now, so
  // that a node that cannot has it said once, at start, not on every packet.
  if (!keys_.empty()) {
    if (auto why = detail::load_aes_gcm()) throw std::runtime_error("keyring: " + *why);
  }
}

std::optional<std::string> Keyring::install(Bytes key) {
  if (!valid_key_size(key.size())) return key_size_error(key.size());
  if (auto why = detail::load_aes_gcm()) return why;
  if (std::find(keys_.begin(), keys_.end(), key) == keys_.end()) keys_.push_back(std::move(key));
  return std::nullopt;
}

std::optional<std::string> Keyring::use(const Bytes& key) {
  const auto it = std::find(keys_.begin(), keys_.end(), key);
  if (it == keys_.end()) return std::string("that key is not installed");
  std::rotate(keys_.begin(), it, it + 1);
  return std::nullopt;
}

std::optional<std::string> Keyring::remove(const Bytes& key) {
  const auto it = std::find(keys_.begin(), keys_.end(), key);
  if (it == keys_.end()) return std::nullopt;  // gone already: the wanted state
  if (it == keys_.begin()) return std::string("the primary key cannot be removed (use another first)");
  keys_.erase(it);
  return std::nullopt;
}

std::optional<Bytes> Keyring::decode_base64_key(std::string_view text) {
  auto key = mesh::decode_base64(text);
  if (!key || !valid_key_size(key->size())) return std::nullopt;
  return key;
}

std::size_t Keyring::overhead(std::uint8_t vsn) {
  return kVersionSize + kNonceSize + kTagSize + (vsn == 0 ? kBlockSize : 0);
}

Bytes Keyring::encrypt(ByteView plain, ByteView additional, std::uint8_t vsn) const {
  if (keys_.empty()) return {};
  std::array<std::uint8_t, kNonceSize> nonce{};
  if (!sodium_ready()) return {};
  randombytes_buf(nonce.data(), nonce.size());
  return detail::encrypt_with_nonce(keys_.front(), nonce.data(), plain, additional, vsn);
}

std::optional<Bytes> Keyring::decrypt(ByteView message, ByteView additional) const {
  if (message.empty()) return std::nullopt;
  const std::uint8_t vsn = message[0];
  if (vsn > 1) return std::nullopt;
  if (message.size() < overhead(vsn)) return std::nullopt;
  const std::uint8_t* nonce = message.data() + kVersionSize;
  const ByteView sealed = message.subspan(kVersionSize + kNonceSize);
  for (const auto& key : keys_) {
    auto plain = detail::aes_gcm_open(key, nonce, sealed, additional);
    if (!plain) continue;
    if (vsn == 0) {
      const std::uint8_t pad = plain->empty() ? 0 : plain->back();
      if (pad == 0 || pad > kBlockSize || pad > plain->size()) return std::nullopt;
      plain->resize(plain->size() - pad);
    }
    return plain;
  }
  return std::nullopt;
}

namespace detail {

Bytes encrypt_with_nonce(ByteView key, const std::uint8_t* nonce, ByteView plain,
                         ByteView additional, std::uint8_t vsn) {
  if (vsn > 1 || !valid_key_size(key.size())) return {};
  Bytes padded;
  ByteView src = plain;
  if (vsn == 0) {
    const std::size_t more = kBlockSize - plain.size() % kBlockSize;
    padded.reserve(plain.size() + more);
    padded.assign(plain.begin(), plain.end());
    padded.insert(padded.end(), more, static_cast<std::uint8_t>(more));
    src = padded;
  }
  Bytes out(kVersionSize + kNonceSize + src.size() + kTagSize);
  out[0] = vsn;
  std::copy_n(nonce, kNonceSize, out.begin() + kVersionSize);
  if (!detail::aes_gcm_seal(key, nonce, src, additional, out.data() + kVersionSize + kNonceSize)) return {};
  return out;
}

std::size_t encrypted_length(std::uint8_t vsn, std::size_t plain) {
  if (vsn >= 1) return kVersionSize + kNonceSize + plain + kTagSize;
  return kVersionSize + kNonceSize + plain + (kBlockSize - plain % kBlockSize) + kTagSize;
}

Bytes seal_stream(const Keyring& ring, ByteView plain, std::uint8_t vsn) {
  const std::size_t len = encrypted_length(vsn, plain.size());
  if (len > UINT32_MAX) return {};
  Bytes out;
  out.reserve(kStreamHeaderSize + len);
  out.push_back(kEncryptMsgType);
  for (int i = 3; i >= 0; --i) out.push_back(static_cast<std::uint8_t>(len >> (8 * i)));
  Bytes body = ring.encrypt(plain, ByteView(out.data(), kStreamHeaderSize), vsn);
  if (body.size() != len) return {};
  out.insert(out.end(), body.begin(), body.end());
  return out;
}

std::uint32_t stream_body_length(ByteView header) {
  return (static_cast<std::uint32_t>(header[1]) << 24) | (static_cast<std::uint32_t>(header[2]) << 16) |
         (static_cast<std::uint32_t>(header[3]) << 8) | static_cast<std::uint32_t>(header[4]);
}

}  // namespace detail
}  // namespace mesh::swim
