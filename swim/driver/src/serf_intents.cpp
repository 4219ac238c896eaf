// Membership::Impl's part in Serf: the Lamport times of join and leave
// intents. We broadcast our own join intent and refute leave intents about
// us while alive (serf.go broadcastJoin, handleNodeLeaveIntent,
// delegate.go MergeRemoteState); everything else Serf sends is its own
// business. The leave intent itself goes out from leave.cpp.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdint>
#include <optional>

#include "driver.hpp"
#include "serf.hpp"

namespace mesh::swim {

void Membership::Impl::broadcast_join_intent() {
  // serf.go broadcastJoin(clock.Time()): the intent carries the current
  // time, and witnessing it moves the clock past it.
  const std::uint64_t lt = lamport_.time();
  lamport_.witness(lt);
  self_status_ltime_ = lt;
  node_->queue_user_broadcast(serf::encode_join_intent(lt, name_), kIntentName);
}

void Membership::Impl::on_user_data(const UserData& u) {
  if (u.payload.empty()) return;
  const bool alive = leave_phase_ == LeavePhase::None;
  if (u.kind == UserData::Kind::Message) {
    // Only the Lamport times of join and leave intents matter to us; user
    // events, queries and the rest are Serf's business.
    auto in = serf::decode_intent(u.payload);
    if (!in) return;
    lamport_.witness(in->ltime);
    if (in->node != name_) return;
    if (in->type == serf::MessageType::Leave) {
      // handleNodeLeaveIntent: an alive member refutes an older leave
      // intent about itself with a newer join intent.
      if (alive && in->ltime > self_status_ltime_) {
        spdlog::debug("swim {}: refuting a leave intent at Lamport time {}", name_, in->ltime);
        broadcast_join_intent();
      }
    } else if (in->ltime > self_status_ltime_) {
      self_status_ltime_ = in->ltime;
    }
    return;
  }
  // A Serf push/pull state (delegate.go MergeRemoteState).
  auto pp = serf::decode_push_pull_clocks(u.payload);
  if (!pp) return;
  if (pp->ltime > 0) lamport_.witness(pp->ltime - 1);
  std::optional<std::uint64_t> mine;
  for (const auto& [node, lt] : pp->status_ltimes)
    if (node == name_) mine = lt;
  if (!mine) return;
  lamport_.witness(*mine);
  // Serf lists us as left (a previous life under this name): what it does
  // with LeftMembers is a leave intent at our status time + 1; refute it.
  const bool listed_left = std::find(pp->left_members.begin(), pp->left_members.end(), name_) !=
                           pp->left_members.end();
  if (alive && listed_left && *mine + 1 > self_status_ltime_) broadcast_join_intent();
}

}  // namespace mesh::swim
