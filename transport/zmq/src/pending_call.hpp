#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>

#include "mesh/transport/envelope.hpp"
#include "mesh/transport/transport.hpp"

namespace mesh::transport::detail {

struct PeerShared;  // peer_shared.hpp

// One outstanding request. Whoever flips `done` first (the reply, the
// deadline, a peer failure, shutdown) runs the callback; everyone else
// finds it done and lets go. That is the whole synchronisation between
// the threads that may race to finish a request.
class PendingCall {
 public:
  // `peer` identifies the PeerShared the request went to (compared, never
  // dereferenced); null for a same-node request. `gauge` counts open calls.
  PendingCall(MessageId id, const void* peer, std::int64_t deadline_ms,
              std::function<void(Reply)> done, std::atomic<std::uint64_t>* gauge);
  PendingCall(const PendingCall&) = delete;
  PendingCall& operator=(const PendingCall&) = delete;

  // Runs the callback with `reply` unless the call was completed already.
  // `outcome`, if given, is counted before the callback runs (so that a
  // caller woken by it sees the count). A callback that throws is
  // contained (it may run on the transport thread).
  bool complete(Reply&& reply, std::atomic<std::uint64_t>* outcome = nullptr);
  // Marks the call done without running the callback (it was never sent).
  void cancel();
  bool done() const { return done_.load(std::memory_order_acquire); }
  // Counts the call in the peer's pending_main until it completes.
  void track(std::shared_ptr<PeerShared> target);

  const MessageId id;
  const void* const peer;
  const std::int64_t deadline_ms;  // steady clock

 private:
  std::atomic<bool> done_{false};
  std::function<void(Reply)> callback_;
  std::atomic<std::uint64_t>* gauge_;
  std::shared_ptr<PeerShared> tracked_;
};

}  // namespace mesh::transport::detail
