// Requests a caller sent on a peer's DEALER itself (request_async and its
// kin, Transport::Impl::send_request_direct): the transport thread, which
// reads the replies, takes them into its own table of pending requests
// before it reads one, and an alarm wakes it at the earliest deadline
// among those it has not taken yet.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "pending_call.hpp"

namespace mesh::transport::detail {

class DirectWatches {
 public:
  DirectWatches();  // throws TransportError if no timerfd
  ~DirectWatches();
  DirectWatches(const DirectWatches&) = delete;
  DirectWatches& operator=(const DirectWatches&) = delete;

  // Caller, holding the DEALER's lock after its send (so that the thread
  // cannot read the reply before it can find the call). False after
  // close(): nobody would watch it any more.
  bool add(std::shared_ptr<PendingCall> call);
  // Transport thread: moves out what callers added (cheap when nothing was).
  void take(std::vector<std::shared_ptr<PendingCall>>& out);
  // Transport thread, once the alarm's fd polled readable: reads it, so
  // that the next add() sets it again.
  void clear_alarm();
  // Transport thread, at shutdown: add() refuses from here on; what was
  // added and not taken is handed out.
  void close(std::vector<std::shared_ptr<PendingCall>>& out);
  int fd() const { return fd_; }

 private:
  std::mutex mu_;
  std::vector<std::shared_ptr<PendingCall>> calls_;
  std::atomic<bool> any_{false};
  bool closed_ = false;
  // The deadline the alarm is set for (steady ms; INT64_MAX: not set).
  // The alarm only ever moves earlier, and a stream of requests with the
  // same timeout sets it once per timeout, not once per request: each
  // later deadline is covered by the earlier one, at which the thread
  // wakes, takes them all and from then on watches them itself.
  std::int64_t armed_ms_ = INT64_MAX;
  int fd_ = -1;
};

}  // namespace mesh::transport::detail
