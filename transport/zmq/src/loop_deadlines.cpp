// Our requests to other nodes that await a reply on the transport thread
// (sent by it, or by their caller on the peer's DEALER): watched until
// their deadline, failed when their peer fails.
#include "loop.hpp"

namespace mesh::transport::detail {

void Loop::watch(const std::shared_ptr<PendingCall>& call) {
  pending_.emplace(call->id, call);
  deadlines_.push(Deadline{call->deadline_ms, call->id, call.get()});
}

void Loop::take_direct_watches() {
  core_->direct_watches.take(taken_);
  for (auto& call : taken_) {
    if (!call->done()) watch(call);
  }
  taken_.clear();
}

void Loop::fail_pending_to(const void* peer, ErrorCode reason) {
  take_direct_watches();  // those fail too
  for (auto it = pending_.begin(); it != pending_.end();) {
    if (it->second->peer != peer) {
      ++it;
      continue;
    }
    auto call = std::move(it->second);
    it = pending_.erase(it);
    finished_.insert(call->id, steady_now_ms());
    call->complete(Reply{reason, {}}, &core_->counters.requests_failed_fast);
  }
}

void Loop::expire_deadlines(std::int64_t now_ms) {
  while (!deadlines_.empty() && deadlines_.top().at_ms <= now_ms) {
    const Deadline d = deadlines_.top();
    deadlines_.pop();
    std::shared_ptr<PendingCall> call;
    auto [first, last] = pending_.equal_range(d.id);
    for (auto it = first; it != last; ++it) {
      if (it->second.get() == d.call) {
        call = std::move(it->second);
        pending_.erase(it);
        break;
      }
    }
    if (!call) continue;
    finished_.insert(d.id, now_ms);
    call->complete(Reply{ErrorCode::Timeout, {}}, &core_->counters.requests_timed_out);
  }
}

// Calls that completed (a reply, a peer failure) leave their Deadline in
// the heap, which cannot erase; those at the top are dropped here, so that
// the loop does not wake for them.
std::int64_t Loop::next_deadline_ms() {
  while (!deadlines_.empty()) {
    const Deadline& d = deadlines_.top();
    auto [first, last] = pending_.equal_range(d.id);
    for (auto it = first; it != last; ++it) {
      if (it->second.get() == d.call) return d.at_ms;
    }
    deadlines_.pop();
  }
  return INT64_MAX;
}

}  // namespace mesh::transport::detail
