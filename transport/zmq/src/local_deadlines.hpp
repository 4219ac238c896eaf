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
// would notice a deadline; the transport thread expires them on each
// wake-up (or, under local_only, every public call does).
class LocalDeadlines {
 public:
  // True when `call` has become the earliest deadline.
  bool add(std::shared_ptr<PendingCall> call);
  // Completes with Timeout every call whose deadline has passed.
  void expire(std::int64_t now_ms, std::atomic<std::uint64_t>& timed_out);
  // Completes every call with `reason` (shutdown).
  void fail_all(ErrorCode reason, std::atomic<std::uint64_t>& failed);
  std::int64_t next_ms() const;  // INT64_MAX when empty

 private:
  static bool later(const std::shared_ptr<PendingCall>& a, const std::shared_ptr<PendingCall>& b) {
    return a->deadline_ms > b->deadline_ms;
  }
  mutable std::mutex mu_;
  std::vector<std::shared_ptr<PendingCall>> heap_;  // min-heap on deadline
  std::size_t compact_at_ = 1024;
};

}  // namespace mesh::transport::detail
