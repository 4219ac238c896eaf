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
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <algorithm>
#include <array>
#include <memory>
#include <stdexcept>

#include "mesh/base64.hpp"
#include "mesh/swim/membership.hpp"
#include "stream_frame.hpp"

namespace mesh::swim {

namespace {

constexpr std::size_t kVersionSize = 1;
constexpr std::size_t kNonceSize = 12;
constexpr std::size_t kTagSize = 16;
constexpr std::size_t kBlockSize = 16;

const EVP_CIPHER* cipher_for(std::size_t key_size) {
  switch (key_size) {
    case 16: return EVP_aes_128_gcm();
    case 24: return EVP_aes_192_gcm();
    case 32: return EVP_aes_256_gcm();
    default: return nullptr;
  }
}

struct CtxFree {
  void operator()(EVP_CIPHER_CTX* c) const { EVP_CIPHER_CTX_free(c); }
};
using Ctx = std::unique_ptr<EVP_CIPHER_CTX, CtxFree>;

bool fits_int(std::size_t n) { return n <= static_cast<std::size_t>(INT32_MAX); }

// GCM seal: writes ciphertext (same length as `plain`) then the tag to out.
bool seal(ByteView key, const std::uint8_t* nonce, ByteView plain, ByteView aad,
          std::uint8_t* out) {
  const EVP_CIPHER* cipher = cipher_for(key.size());
  if (cipher == nullptr || !fits_int(plain.size()) || !fits_int(aad.size())) return false;
  Ctx ctx(EVP_CIPHER_CTX_new());
  if (!ctx) return false;
  int len = 0;
  if (EVP_EncryptInit_ex(ctx.get(), cipher, nullptr, nullptr, nullptr) != 1) return false;
  if (EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, static_cast<int>(kNonceSize),
                          nullptr) != 1)
    return false;
  if (EVP_EncryptInit_ex(ctx.get(), nullptr, nullptr, key.data(), nonce) != 1) return false;
  if (!aad.empty() &&
      EVP_EncryptUpdate(ctx.get(), nullptr, &len, aad.data(), static_cast<int>(aad.size())) != 1)
    return false;
  if (!plain.empty() && EVP_EncryptUpdate(ctx.get(), out, &len, plain.data(),
                                          static_cast<int>(plain.size())) != 1)
    return false;
  if (EVP_EncryptFinal_ex(ctx.get(), out + plain.size(), &len) != 1) return false;
  return EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, static_cast<int>(kTagSize),
                             out + plain.size()) == 1;
}

// GCM open of [ciphertext || tag]; nullopt when the tag does not verify.
std::optional<Bytes> open(ByteView key, const std::uint8_t* nonce, ByteView sealed,
                          ByteView aad) {
  const EVP_CIPHER* cipher = cipher_for(key.size());
  if (cipher == nullptr || sealed.size() < kTagSize || !fits_int(sealed.size()) ||
      !fits_int(aad.size()))
    return std::nullopt;
  const std::size_t n = sealed.size() - kTagSize;
  Ctx ctx(EVP_CIPHER_CTX_new());
  if (!ctx) return std::nullopt;
  Bytes plain(n);
  int len = 0;
  if (EVP_DecryptInit_ex(ctx.get(), cipher, nullptr, nullptr, nullptr) != 1) return std::nullopt;
  if (EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, static_cast<int>(kNonceSize),
                          nullptr) != 1)
    return std::nullopt;
  if (EVP_DecryptInit_ex(ctx.get(), nullptr, nullptr, key.data(), nonce) != 1) return std::nullopt;
  if (!aad.empty() &&
      EVP_DecryptUpdate(ctx.get(), nullptr, &len, aad.data(), static_cast<int>(aad.size())) != 1)
    return std::nullopt;
  if (n > 0 &&
      EVP_DecryptUpdate(ctx.get(), plain.data(), &len, sealed.data(), static_cast<int>(n)) != 1)
    return std::nullopt;
  // The tag is const in spirit; OpenSSL's ctrl API takes a non-const pointer.
  Bytes tag(sealed.begin() + static_cast<std::ptrdiff_t>(n), sealed.end());
  if (EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, static_cast<int>(kTagSize),
                          tag.data()) != 1)
    return std::nullopt;
  if (EVP_DecryptFinal_ex(ctx.get(), plain.data() + n, &len) != 1) return std::nullopt;
  return plain;
}


}  // namespace

Keyring::Keyring(std::vector<Bytes> keys) : keys_(std::move(keys)) {
  for (const auto& k : keys_)
    if (cipher_for(k.size()) == nullptr)
      throw std::invalid_argument("keyring: a key must be 16, 24 or 32 bytes, got " +
                                  std::to_string(k.size()));
}

std::optional<std::string> Keyring::install(Bytes key) {
  if (cipher_for(key.size()) == nullptr) return "a key must be 16, 24 or 32 bytes, got " + std::to_string(key.size());
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
  if (!key || cipher_for(key->size()) == nullptr) return std::nullopt;
  return key;
}

std::size_t Keyring::overhead(std::uint8_t vsn) {
  return kVersionSize + kNonceSize + kTagSize + (vsn == 0 ? kBlockSize : 0);
}

Bytes Keyring::encrypt(ByteView plain, ByteView additional, std::uint8_t vsn) const {
  if (keys_.empty()) return {};
  std::array<std::uint8_t, kNonceSize> nonce{};
  if (RAND_bytes(nonce.data(), static_cast<int>(nonce.size())) != 1) return {};
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
    auto plain = open(key, nonce, sealed, additional);
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
  if (vsn > 1 || cipher_for(key.size()) == nullptr) return {};
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
  if (!seal(key, nonce, src, additional, out.data() + kVersionSize + kNonceSize)) return {};
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
