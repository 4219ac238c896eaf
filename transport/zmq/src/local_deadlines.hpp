#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "pending_call.hpp"

namespace mesh::transport::detail {

// Deadlines of same-node async requests. Their replies never pass through
// the transport thread (the responder completes them), so nobody else
// would notice a deadline; the transport thread sleeps until the earliest
// and expires them (or, under local_only, every public call does, and a
// watcher thread when nobody calls).
class LocalDeadlines {
 public:
  // True when `call` has become the earliest deadline: whoever waits for
  // the earliest must be woken.
  bool add(std::shared_ptr<PendingCall> call);
  // Completes with Timeout every call whose deadline has passed.
  void expire(std::int64_t now_ms, std::atomic<std::uint64_t>& timed_out);
  // Completes every call with `reason` (shutdown).
  void fail_all(ErrorCode reason, std::atomic<std::uint64_t>& failed);
  // The earliest deadline of a call still open (INT64_MAX: none).
  std::int64_t next_ms();
  // True while no call is held: nothing can be due, and a caller on the
  // hot path need not read the clock or take the lock to find that out.
  bool empty() const { return held_.load(std::memory_order_acquire) == 0; }

 private:
  // Calls completed by their responder stay in the heap until their
  // deadline; those at the top are dropped, so that nobody wakes for them.
  void drop_done_locked();
  static bool later(const std::shared_ptr<PendingCall>& a, const std::shared_ptr<PendingCall>& b) {
    return a->deadline_ms > b->deadline_ms;
  }
  mutable std::mutex mu_;
  std::vector<std::shared_ptr<PendingCall>> heap_;  // min-heap on deadline
  std::size_t compact_at_ = 1024;
  std::atomic<std::size_t> held_{0};  // heap_.size(), published under mu_
};

}  // namespace mesh::transport::detail
