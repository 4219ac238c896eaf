#include "pending_call.hpp"

#include "counters.hpp"
#include "peer_shared.hpp"

namespace mesh::transport::detail {

PendingCall::PendingCall(MessageId call_id, const void* call_peer, std::int64_t deadline,
                         std::function<void(Reply)> done, std::atomic<std::uint64_t>* gauge)
    : id(call_id), peer(call_peer), deadline_ms(deadline), callback_(std::move(done)), gauge_(gauge) {
  if (gauge_) bump(*gauge_);
}

void PendingCall::track(std::shared_ptr<PeerShared> target) {
  target->pending_main.fetch_add(1, std::memory_order_acq_rel);
  tracked_ = std::move(target);
}

bool PendingCall::complete(Reply&& reply, std::atomic<std::uint64_t>* outcome) {
  if (done_.exchange(true, std::memory_order_acq_rel)) return false;
  if (gauge_) drop(*gauge_);
  if (tracked_) tracked_->pending_main.fetch_sub(1, std::memory_order_acq_rel);
  if (outcome) bump(*outcome);
  // Only the winner of the exchange touches the callback.
  auto callback = std::move(callback_);
  callback_ = nullptr;
  if (callback) {
    try {
      callback(std::move(reply));
    } catch (...) {
      // A user callback must not take the transport thread down.
    }
  }
  return true;
}

void PendingCall::cancel() {
  if (done_.exchange(true, std::memory_order_acq_rel)) return;
  if (gauge_) drop(*gauge_);
  if (tracked_) tracked_->pending_main.fetch_sub(1, std::memory_order_acq_rel);
  callback_ = nullptr;
}

}  // namespace mesh::transport::detail
