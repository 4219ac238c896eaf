// Membership::Impl's part in Serf: the Lamport times of join and leave
// intents. We broadcast our own join intent and refute leave intents about
// us while alive (serf.go broadcastJoin, handleNodeLeaveIntent,
// delegate.go MergeRemoteState); a leave intent about another member is
// force-leave's news (force_leave below); everything else Serf sends is
// its own business. Our own leave intent goes out from leave.cpp.
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
    if (in->node != name_) {
      if (in->type == serf::MessageType::Leave) {
        note_forced_leave(in->node, in->ltime, true);
      } else if (auto f = forced_leaves_.find(in->node); f != forced_leaves_.end() && in->ltime > f->second.ltime) {
        forced_leaves_.erase(f);  // it refuted the leave, as an alive member does
      }
      return;
    }
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

namespace {

// As long as Serf remembers intents about members it has not seen yet.
constexpr Duration kForcedLeaveMemory = std::chrono::minutes(5);
constexpr std::size_t kMaxForcedLeaves = 1024;

}  // namespace

Membership::ForceLeave Membership::Impl::force_leave(const std::string& name) {
  const Member* m = node_->member(name);
  if (m == nullptr || name == name_) return Membership::ForceLeave::Unknown;
  if (m->state == MemberState::Left) return Membership::ForceLeave::AlreadyLeft;
  if (m->state != MemberState::Dead) return Membership::ForceLeave::NotFailed;
  // A time past every intent seen, so that no member takes it for old news.
  note_forced_leave(name, lamport_.increment(), true);
  spdlog::info("swim {}: forced {} to leave", name_, name);
  pump();
  return Membership::ForceLeave::Done;
}

void Membership::Impl::note_forced_leave(const std::string& name, std::uint64_t ltime, bool relay) {
  const Time t = now();
  auto it = forced_leaves_.find(name);
  if (it != forced_leaves_.end() && ltime <= it->second.ltime) return;  // known already
  if (it == forced_leaves_.end()) {
    std::erase_if(forced_leaves_, [t](const auto& f) { return f.second.until <= t; });
    if (forced_leaves_.size() >= kMaxForcedLeaves) {
      forced_leaves_.erase(std::min_element(forced_leaves_.begin(), forced_leaves_.end(), [](const auto& a, const auto& b) {
        return a.second.until < b.second.until;
      }));
    }
    it = forced_leaves_.emplace(name, ForcedLeave{}).first;
  }
  it->second = ForcedLeave{ltime, t + kForcedLeaveMemory};
  // Serf relays an intent that was news to it: user messages are gossiped
  // by whoever queues them only, so relaying is how it reaches everyone.
  if (relay) node_->queue_user_broadcast(serf::encode_leave_intent(ltime, name, false), "force-leave:" + name);
  node_->force_left(t, name);  // when it is dead here already
}

void Membership::Impl::apply_forced_leave(const MemberEvent& e) {
  auto it = forced_leaves_.find(e.member.name);
  if (it == forced_leaves_.end()) return;
  if (it->second.until <= now()) {
    forced_leaves_.erase(it);
    return;
  }
  if (e.kind == EventKind::Dead) {
    node_->force_left(now(), e.member.name);  // its Left event follows in this pump
  } else if (e.kind == EventKind::Joined) {
    forced_leaves_.erase(it);  // back, as a new life
  }
}

}  // namespace mesh::swim
