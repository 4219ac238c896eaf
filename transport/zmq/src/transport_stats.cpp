// Transport::stats(): the counters, gauges and latency histograms, read
// without stopping anybody.
#include "transport_impl.hpp"

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <mutex>
#include <shared_mutex>

#include "core.hpp"

namespace mesh::transport {

using detail::Core;

TransportStats Transport::stats() const {
  impl_->tick();
  const Core& core = *impl_->core;
  const auto& c = core.counters;
  auto get = [](const std::atomic<std::uint64_t>& a) { return a.load(std::memory_order_relaxed); };
  TransportStats s;
  for (std::size_t i = 0; i < 5; ++i) {
    s.sent[i] = get(c.sent[i]);
    s.received[i] = get(c.received[i]);
    s.refused[i] = get(c.refused[i]);
    s.deduplicated[i] = get(c.deduplicated[i]);
  }
  s.frames_malformed = get(c.frames_malformed);
  s.frames_oversized = get(c.frames_oversized);
  s.frames_bad_version = get(c.frames_bad_version);
  s.frames_unauthenticated = get(c.frames_unauthenticated);
  s.handshakes_refused = get(c.handshakes_refused);
  s.frames_forged = get(c.frames_forged);
  s.connections_revoked = get(c.connections_revoked);
  s.frames_denied = get(c.frames_denied);
  s.frames_held = get(c.frames_held);
  s.frames_holding = get(c.frames_holding);
  s.replies_unroutable = get(c.replies_unroutable);
  s.replies_unmatched = get(c.replies_unmatched);
  s.replies_deferred = get(c.replies_deferred);
  s.replies_waiting = get(c.replies_waiting);
  s.requests_answered_again = get(c.requests_answered_again);
  s.requests_timed_out = get(c.requests_timed_out);
  s.expired_on_arrival = get(c.expired_on_arrival);
  s.requests_failed_fast = get(c.requests_failed_fast);
  s.requests_direct = get(c.requests_direct);
  s.replies_direct = get(c.replies_direct);
  s.async_requests_direct = get(c.async_requests_direct);
  {
    std::shared_lock lock(core.peers_mu);
    s.peers = core.peers.size();
  }
  s.peers_connected = get(c.peers_connected);
  s.connections_closed_idle = get(c.connections_closed_idle);
  s.memory_trims = get(c.memory_trims);
  s.outbound_queued = get(c.outbound_queued);
  s.outbound_queued_bytes = get(c.outbound_queued_bytes);
  {
    std::shared_lock lock(core.inbox_mu);
    s.inbox_table = core.inboxes.size();
    for (const auto& [name, inbox] : core.inboxes) {
      if (inbox->closed()) continue;
      s.inbox_queued += inbox->size();
      s.inbox_queued_bytes += inbox->bytes();
    }
  }
  s.replies_waiting_bytes = get(c.replies_waiting_bytes);
  s.replies_dropped = get(c.replies_dropped);
  s.reply_cache_bytes = get(c.reply_cache_bytes);
  s.ask_bytes = core.asks.bytes();
  s.pending_requests = get(c.pending_requests);
  s.notifies_undeliverable = get(c.notifies_undeliverable);
  s.ask_entries = core.asks.size();
  for (std::size_t o = 0; o < 2; ++o) {
    LatencyHistogram& h = s.request_latency[o];
    for (std::size_t b = 0; b < std::size(h.buckets); ++b) {
      h.buckets[b] = get(c.latency_buckets[o][b]);
      h.count += h.buckets[b];
    }
    h.sum_seconds = static_cast<double>(get(c.latency_sum_ns[o])) / 1e9;
  }
  return s;
}

}  // namespace mesh::transport
