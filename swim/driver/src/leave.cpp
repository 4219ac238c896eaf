// Membership::Impl's graceful leave, as Serf's Leave does it: broadcast a
// leave intent and wait until it has been sent its retransmit limit (the
// core reports it, as memberlist's broadcast notify does for Serf), then
// broadcast our own death and wait for that to go out the same way before
// closing everything. The core queues the death itself the moment the
// intent is out, within the gossip round that sent it its last time.
// Fixed waits bound both: a few gossip rounds for the intent, the caller's
// timeout for the whole.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <future>
#include <memory>

#include "driver.hpp"
#include "mesh/swim/config.hpp"
#include "serf.hpp"

namespace mesh::swim {

using boost::system::error_code;

namespace {

constexpr auto kIntentWaitMax = std::chrono::seconds(1);

}  // namespace

bool Membership::Impl::any_alive_peer() const {
  for (const auto& m : node_->members())
    if (m.name != name_ && (m.state == MemberState::Alive || m.state == MemberState::Suspect))
      return true;
  return false;
}

Duration Membership::Impl::intent_wait() const {
  // The most the intent waits: enough gossip rounds for it to be sent its
  // RetransmitMult x log(N) times to GossipNodes peers per round, at least
  // three rounds (it is usually out sooner: probes carry it too).
  const Config& c = node_->config();
  const int limit = retransmit_limit(c.retransmit_mult, node_->num_members());
  const int per_round = std::max(1, c.gossip_nodes);
  const int rounds = std::max(3, (limit + per_round - 1) / per_round + 1);
  return std::min<Duration>(c.gossip_interval * rounds, kIntentWaitMax);
}

void Membership::Impl::begin_leave(std::chrono::milliseconds timeout,
                                   std::shared_ptr<std::promise<bool>> done) {
  if (stopped_) {
    done->set_value(leave_phase_ == LeavePhase::Done);
    return;
  }
  leave_promises_.push_back(std::move(done));
  if (leave_phase_ != LeavePhase::None) return;
  if (!node_->started()) {
    finish_leave(true);
    return;
  }
  leave_phase_ = LeavePhase::Intent;
  const Time t0 = now();
  leave_deadline_ = t0 + std::chrono::duration_cast<Duration>(timeout);
  join_active_ = false;
  join_timer_.cancel();

  // serf.go Leave: the intent carries clock.Time(), then the clock moves
  // on. Our clock is past every Lamport time we witnessed for us, so Serf
  // takes the intent as newer than our status.
  const std::uint64_t lt = lamport_.time();
  lamport_.increment();
  // The core queues our death itself the moment the intent is out, in the
  // middle of a gossip round if need be (Node::queue_leave_intent).
  node_->queue_leave_intent(serf::encode_leave_intent(lt, name_, false), kIntentName);
  spdlog::info("swim {}: leaving (Serf leave intent at Lamport time {})", name_, lt);
  if (!any_alive_peer()) {
    leave_broadcast_dead();
    return;
  }
  const Duration wait = std::min<Duration>(intent_wait(), std::chrono::duration_cast<Duration>(timeout) / 2);
  leave_timer_.expires_at(to_steady(t0 + wait));
  leave_timer_.async_wait([self = shared_from_this()](const error_code& ec) {
    if (ec || self->stopped_ || self->leave_phase_ != LeavePhase::Intent) return;
    self->leave_broadcast_dead();
  });
  pump();
}

void Membership::Impl::leave_broadcast_dead() {
  leave_phase_ = LeavePhase::Leaving;
  node_->leave(now());
  leave_timer_.expires_at(to_steady(leave_deadline_));
  leave_timer_.async_wait([self = shared_from_this()](const error_code& ec) {
    if (ec || self->stopped_ || self->leave_phase_ != LeavePhase::Leaving) return;
    self->finish_leave(self->node_->leave_done());
  });
  pump();
}

void Membership::Impl::finish_leave(bool ok) {
  leave_phase_ = LeavePhase::Done;
  auto promises = std::move(leave_promises_);
  leave_promises_.clear();
  spdlog::info("swim {}: left the cluster{}", name_, ok ? "" : " (timed out before the broadcast went out)");
  close_all();
  for (auto& p : promises) p->set_value(ok);
}

}  // namespace mesh::swim
