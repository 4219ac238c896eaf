// Message ids: a counter under a keyed pseudo-random function.
//
// Why: ids used to be a per-process prefix plus a counter. One id seen (any
// Error envelope carries one) gave away every later id of that node, and a
// third party could then answer for it or fill the receivers' duplicate
// windows with its next ids. An id is SipHash-2-4 with its 128-bit output
// (libsodium's crypto_shorthash_siphashx24) of the counter, under a random
// key per generator:
//   * unpredictable: SipHash is a pseudo-random function; without the key,
//     no number of ids seen says anything about the next one;
//   * unique in practice: the outputs of distinct counters are 128-bit
//     values that meet only by chance, with probability n^2 / 2^129 among n
//     ids of one generator (below 2^-49 after 2^40 ids), the same odds as
//     ids of two different generators meeting.
// Until December 2026 this was AES-128 of the counter (a permutation, so
// no chance at all), through OpenSSL's libcrypto; libsodium is in the
// process anyway (libzmq links it) and libcrypto cost each node ~600 KB of
// private memory (docs/benchmarks.md).
//
// Cost: kBatch counters at a time under the generator's mutex; each thread
// keeps the block it got and hands out ids from it without any lock. A
// thread that alternates between two generators refills on every switch,
// which only wastes counters (there are 2^64).
#include <sodium.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstring>
#include <random>

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

static_assert(crypto_shorthash_siphashx24_KEYBYTES == 16);
static_assert(crypto_shorthash_siphashx24_BYTES == sizeof(MessageId::hi) + sizeof(MessageId::lo));

}  // namespace

MessageIdGenerator::MessageIdGenerator()
    : serial_(g_generator_serial.fetch_add(1, std::memory_order_relaxed)) {
  if (sodium_init() >= 0) {
    randombytes_buf(key_.data(), key_.size());
  } else {
    // libsodium cannot start (no OS random source it knows): the C++
    // library's random_device is the fallback.
    std::random_device rd;
    for (auto& b : key_) b = static_cast<std::uint8_t>(rd());
  }
}

MessageIdGenerator::MessageIdGenerator(std::uint64_t seed)
    : serial_(g_generator_serial.fetch_add(1, std::memory_order_relaxed)) {
  std::memcpy(key_.data(), &seed, sizeof seed);
}

MessageIdGenerator::~MessageIdGenerator() { sodium_memzero(key_.data(), key_.size()); }

void MessageIdGenerator::hash_block(std::span<MessageId> out) {
  // Input i: the counter's 8 bytes in host order (the order does not
  // matter for uniqueness; the same on every run for a seeded generator on
  // one architecture).
  const std::size_t n = std::min(out.size(), kBatch);
  std::lock_guard lock(mu_);
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint64_t counter = counter_++;
    std::array<unsigned char, crypto_shorthash_siphashx24_BYTES> h;
    crypto_shorthash_siphashx24(h.data(), reinterpret_cast<const unsigned char*>(&counter), sizeof counter,
                                key_.data());
    std::memcpy(&out[i].hi, h.data(), sizeof out[i].hi);
    std::memcpy(&out[i].lo, h.data() + sizeof out[i].hi, sizeof out[i].lo);
  }
}

MessageId MessageIdGenerator::next() {
  ThreadCache& cache = t_cache;
  for (;;) {
    if (cache.owner != serial_ || cache.next == kBatch) {
      hash_block(cache.ids);
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
