#include "local_deadlines.hpp"

#include <algorithm>
#include <cstdint>

namespace mesh::transport::detail {

bool LocalDeadlines::add(std::shared_ptr<PendingCall> call) {
  std::lock_guard lock(mu_);
  // Calls completed by their responder stay in the heap until their
  // deadline; drop them whenever the heap has doubled, so that it holds
  // at most about twice the calls still open.
  if (heap_.size() >= compact_at_) {
    std::erase_if(heap_, [](const auto& c) { return c->done(); });
    std::make_heap(heap_.begin(), heap_.end(), later);
    compact_at_ = std::max<std::size_t>(1024, 2 * heap_.size());
  }
  drop_done_locked();
  const std::int64_t deadline = call->deadline_ms;
  heap_.push_back(std::move(call));
  std::push_heap(heap_.begin(), heap_.end(), later);
  held_.store(heap_.size(), std::memory_order_release);
  return heap_.front()->deadline_ms == deadline;
}

void LocalDeadlines::expire(std::int64_t now_ms, std::atomic<std::uint64_t>& timed_out) {
  std::vector<std::shared_ptr<PendingCall>> due;
  {
    std::lock_guard lock(mu_);
    while (!heap_.empty() && heap_.front()->deadline_ms <= now_ms) {
      std::pop_heap(heap_.begin(), heap_.end(), later);
      due.push_back(std::move(heap_.back()));
      heap_.pop_back();
    }
    held_.store(heap_.size(), std::memory_order_release);
  }
  // Callbacks run outside the lock: they may start new requests.
  for (auto& call : due) call->complete(Reply{ErrorCode::Timeout, {}}, &timed_out);
}

void LocalDeadlines::fail_all(ErrorCode reason, std::atomic<std::uint64_t>& failed) {
  std::vector<std::shared_ptr<PendingCall>> all;
  {
    std::lock_guard lock(mu_);
    all.swap(heap_);
    held_.store(0, std::memory_order_release);
  }
  for (auto& call : all) call->complete(Reply{reason, {}}, &failed);
}

std::int64_t LocalDeadlines::next_ms() {
  std::lock_guard lock(mu_);
  drop_done_locked();
  return heap_.empty() ? INT64_MAX : heap_.front()->deadline_ms;
}

void LocalDeadlines::drop_done_locked() {
  while (!heap_.empty() && heap_.front()->done()) {
    std::pop_heap(heap_.begin(), heap_.end(), later);
    heap_.pop_back();
  }
  held_.store(heap_.size(), std::memory_order_release);
}

}  // namespace mesh::transport::detail
