// Message ids: a counter, encrypted.
//
// Why: ids used to be a per-process prefix plus a counter. One id seen (any
// Error envelope carries one) gave away every later id of that node, and a
// third party could then answer for it or fill the receivers' duplicate
// windows with its next ids. An id now is AES-128(key, counter) with a
// random key per generator:
//   * unique: a block cipher is a permutation of 128-bit blocks, so two
//     counters never give the same id under one key (and ids of different
//     generators meet with probability 2^-128 per pair);
//   * unpredictable: without the key, AES output is indistinguishable from
//     random, whatever else was seen.
//
// Cost: one EVP call per kBatch counters, taken under the generator's
// mutex (an EVP context is not safe to share between threads); each thread
// keeps the block it got and hands out ids from it without any lock. A
// thread that alternates between two generators refills on every switch,
// which only wastes counters (there are 2^64).
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <array>
#include <atomic>
#include <cstring>
#include <random>
#include <stdexcept>

#include "mesh/transport/envelope.hpp"

namespace mesh::transport {

namespace {

constexpr std::size_t kBatch = 32;

std::atomic<std::uint64_t> g_generator_serial{1};

struct ThreadCache {
  std::uint64_t owner = 0;  // serial of the generator the ids came from
  std::size_t next = kBatch;
  std::array<MessageId, kBatch> ids{};
};
thread_local ThreadCache t_cache;

EVP_CIPHER_CTX* ctx_of(void* p) { return static_cast<EVP_CIPHER_CTX*>(p); }

}  // namespace

MessageIdGenerator::MessageIdGenerator()
    : serial_(g_generator_serial.fetch_add(1, std::memory_order_relaxed)) {
  std::uint8_t key[16];
  if (RAND_bytes(key, sizeof key) != 1) {
    // No CSPRNG from OpenSSL: the OS's random_device is the fallback.
    std::random_device rd;
    for (auto& b : key) b = static_cast<std::uint8_t>(rd());
  }
  init(key);
  OPENSSL_cleanse(key, sizeof key);
}

MessageIdGenerator::MessageIdGenerator(std::uint64_t seed)
    : serial_(g_generator_serial.fetch_add(1, std::memory_order_relaxed)) {
  std::uint8_t key[16] = {};
  std::memcpy(key, &seed, sizeof seed);
  init(key);
}

void MessageIdGenerator::init(const std::uint8_t (&key)[16]) {
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  if (!ctx || EVP_EncryptInit_ex(ctx, EVP_aes_128_ecb(), nullptr, key, nullptr) != 1 ||
      EVP_CIPHER_CTX_set_padding(ctx, 0) != 1) {
    EVP_CIPHER_CTX_free(ctx);
    throw std::runtime_error("MessageIdGenerator: cannot set up AES-128");
  }
  ctx_ = ctx;
}

MessageIdGenerator::~MessageIdGenerator() { EVP_CIPHER_CTX_free(ctx_of(ctx_)); }

void MessageIdGenerator::encrypt_block(std::span<MessageId> out) {
  // Plaintext block i: the counter in the low 8 bytes (byte order does not
  // matter for uniqueness; the same on every run for a seeded generator on
  // one architecture).
  std::array<std::uint64_t, kBatch * 2> plain{};
  std::array<std::uint64_t, kBatch * 2> cipher{};
  const std::size_t n = std::min(out.size(), kBatch);
  std::lock_guard lock(mu_);
  for (std::size_t i = 0; i < n; ++i) plain[2 * i + 1] = counter_++;
  int len = 0;
  const int bytes = static_cast<int>(n * 16);
  const int rc = EVP_EncryptUpdate(ctx_of(ctx_), reinterpret_cast<unsigned char*>(cipher.data()), &len,
                                   reinterpret_cast<const unsigned char*>(plain.data()), bytes);
  if (rc != 1 || len != bytes) {
    // Cannot happen with a valid context; never hand out a repeated id.
    throw std::runtime_error("MessageIdGenerator: AES failed");
  }
  for (std::size_t i = 0; i < n; ++i) out[i] = MessageId{cipher[2 * i], cipher[2 * i + 1]};
}

MessageId MessageIdGenerator::next() {
  ThreadCache& cache = t_cache;
  for (;;) {
    if (cache.owner != serial_ || cache.next == kBatch) {
      encrypt_block(cache.ids);
      cache.owner = serial_;
      cache.next = 0;
    }
    const MessageId id = cache.ids[cache.next++];
    // The empty id means "none" on the wire; one counter in 2^128 maps to
    // it, and is skipped.
    if (!id.empty()) return id;
  }
}

}  // namespace mesh::transport
