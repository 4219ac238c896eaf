// The transport's counters (TransportStats is read from them) and the
// helpers that move them. Any thread bumps them; relaxed order throughout.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>

#include "mesh/transport/transport.hpp"

namespace mesh::transport::detail {

inline void bump(std::atomic<std::uint64_t>& counter, std::uint64_t n = 1) {
  counter.fetch_add(n, std::memory_order_relaxed);
}
inline void drop(std::atomic<std::uint64_t>& gauge, std::uint64_t n = 1) {
  gauge.fetch_sub(n, std::memory_order_relaxed);
}
inline std::size_t type_index(MessageType t) { return static_cast<std::size_t>(t); }

struct Counters {
  std::atomic<std::uint64_t> sent[5];
  std::atomic<std::uint64_t> received[5];
  std::atomic<std::uint64_t> refused[5];
  std::atomic<std::uint64_t> deduplicated[5];
  std::atomic<std::uint64_t> frames_malformed{0};
  std::atomic<std::uint64_t> frames_oversized{0};
  std::atomic<std::uint64_t> frames_bad_version{0};
  std::atomic<std::uint64_t> frames_unauthenticated{0};
  std::atomic<std::uint64_t> handshakes_refused{0};
  std::atomic<std::uint64_t> frames_forged{0};
  std::atomic<std::uint64_t> connections_revoked{0};
  std::atomic<std::uint64_t> frames_denied{0};
  std::atomic<std::uint64_t> frames_held{0};
  std::atomic<std::uint64_t> frames_holding{0};  // a gauge
  std::atomic<std::uint64_t> replies_unroutable{0};
  std::atomic<std::uint64_t> replies_unmatched{0};
  std::atomic<std::uint64_t> replies_deferred{0};
  std::atomic<std::uint64_t> replies_waiting{0};
  std::atomic<std::uint64_t> replies_waiting_bytes{0};
  std::atomic<std::uint64_t> replies_dropped{0};
  std::atomic<std::uint64_t> reply_cache_bytes{0};  // a gauge the transport thread sets
  std::atomic<std::uint64_t> requests_answered_again{0};
  std::atomic<std::uint64_t> requests_timed_out{0};
  std::atomic<std::uint64_t> expired_on_arrival{0};
  std::atomic<std::uint64_t> requests_failed_fast{0};
  std::atomic<std::uint64_t> requests_direct{0};
  std::atomic<std::uint64_t> replies_direct{0};
  std::atomic<std::uint64_t> async_requests_direct{0};
  std::atomic<std::uint64_t> peers_connected{0};
  std::atomic<std::uint64_t> connections_closed_idle{0};
  std::atomic<std::uint64_t> memory_trims{0};
  std::atomic<std::uint64_t> outbound_queued{0};
  std::atomic<std::uint64_t> outbound_queued_bytes{0};
  std::atomic<std::uint64_t> pending_requests{0};
  std::atomic<std::uint64_t> notifies_undeliverable{0};
  // TransportStats::request_latency: [answered/failed][bucket], and the
  // summed latency in nanoseconds.
  std::atomic<std::uint64_t> latency_buckets[2][kRequestLatencyBounds.size() + 1];
  std::atomic<std::uint64_t> latency_sum_ns[2];
};

// Counts one finished request that was started at `started`.
void record_request_latency(Counters& counters, std::chrono::steady_clock::time_point started,
                            bool answered);

}  // namespace mesh::transport::detail
