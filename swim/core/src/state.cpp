// Member state transitions (state.go aliveNode, suspectNode, deadNode):
// what an alive, suspect or dead message does to the member table, how we
// out-bid a claim about ourselves, and when a name may move to another
// address.
#include <memory>
#include <string>
#include <utility>

#include "node_impl.hpp"

namespace mesh::swim {

Alive Node::Impl::alive_of(const NodeState& s) const {
  Alive a;
  a.incarnation = s.m.incarnation;
  a.node = s.m.name;
  a.addr.assign(s.m.addr.ip_bytes().begin(), s.m.addr.ip_bytes().end());
  a.port = s.m.addr.port;
  a.meta = s.m.meta;
  a.vsn = vsn_bytes(s.m.vsn);
  return a;
}

// Borrowed view of an owned alive (start, set_meta).
AliveView Node::Impl::view_of(const Alive& a) {
  return AliveView{a.incarnation, a.node, a.addr, a.port, a.meta, a.vsn};
}

void Node::Impl::refute(NodeState& me, std::uint32_t accused) {
  std::uint32_t inc = ++incarnation;
  if (accused >= inc) {
    incarnation = accused + 1;
    inc = incarnation;
  }
  me.m.incarnation = inc;
  apply_awareness(1);
  ++stats.refutations;
  broadcast(me.m.name, encode(alive_of(me)));
}

// aliveNode. Takes a view: most alives (a join of N nodes delivers N^2 of
// them) are old news, dropped after the lookup without copying anything.
// `from` is the unsolicited source (a packet's sender, the peer of a
// push/pull it opened to us) whose admission budget an unknown member
// takes; nullptr for our own alive and for a push/pull that we opened.
void Node::Impl::alive_node(const AliveView& a, bool bootstrap, Time now, const Address* from) {
  const bool is_local = a.node == config.name;
  if (left && is_local) return;
  // A short Vsn would be read out of bounds by memberlist; we refuse it.
  if (!a.vsn.empty() && a.vsn.size() != 6) {
    ++stats.decode_errors[static_cast<std::size_t>(DecodeError::Malformed)];
    return;
  }
  if (a.vsn.size() == 6 && (a.vsn[0] == 0 || a.vsn[1] == 0 || a.vsn[0] > a.vsn[1])) {
    ++stats.decode_errors[static_cast<std::size_t>(DecodeError::Malformed)];
    return;
  }
  const std::uint16_t port = a.port == 0 ? config.advertise.port : a.port;
  auto addr = Address::from_bytes(a.addr, port);
  if (!addr) {
    ++stats.decode_errors[static_cast<std::size_t>(DecodeError::Malformed)];
    return;
  }

  NodeState* state = find(a.node);
  bool updates_node = false;
  if (state == nullptr) {
    // Only names we store need checking: a known one passed on entry.
    if (!is_local && !valid_member_name(a.node)) {
      count_bad_name();
      return;
    }
    if (!is_local && !admit_new_member(from, now)) return;
    auto fresh = std::make_unique<NodeState>();
    fresh->m.name = a.node;
    fresh->m.addr = *addr;
    fresh->m.meta.assign(a.meta.begin(), a.meta.end());
    fresh->m.state = MemberState::Dead;
    fresh->m.state_change = now;
    fresh->m.verified = is_local;
    if (!is_local) ++unverified;
    if (a.vsn.size() == 6) fresh->m.vsn = vsn_from(a.vsn);
    state = fresh.get();
    node_map.insert(state);
    // A newcomer takes a random place in the probe order.
    const std::size_t n = nodes.size();
    const auto offset = static_cast<std::size_t>(rng.below(n));
    nodes.push_back(std::move(fresh));
    std::swap(nodes[offset], nodes[n]);
    ring_dirty = true;
  } else if (state->m.addr != *addr) {
    if (!is_local && may_reclaim(*state, now)) {
      updates_node = true;
    } else {
      ++stats.conflicts;
      Member claimant;
      claimant.name = a.node;
      claimant.addr = *addr;
      claimant.meta.assign(a.meta.begin(), a.meta.end());
      claimant.incarnation = a.incarnation;
      claimant.vsn = vsn_from(a.vsn);
      emit(EventKind::Conflict, claimant, now);
      // Someone claims our name elsewhere: out-bid the claim, so that
      // every member that has our address keeps it (memberlist only
      // reports the conflict).
      if (is_local && !bootstrap && a.incarnation >= state->m.incarnation) refute(*state, a.incarnation);
      return;
    }
  }

  if (a.incarnation <= state->m.incarnation && !is_local && !updates_node) return;
  if (a.incarnation < state->m.incarnation && is_local) return;

  if (auto t = node_timers.find(std::string(a.node)); t != node_timers.end()) {
    if (t->second.called != Time::max()) ++stats.last_calls_answered;
    node_timers.erase(t);
  }
  const MemberState old_state = state->m.state;
  const Bytes old_meta = state->m.meta;

  if (!bootstrap && is_local) {
    if (a.incarnation == state->m.incarnation && std::ranges::equal(a.meta, state->m.meta) &&
        vsn_from(a.vsn) == state->m.vsn && a.vsn.size() == 6)
      return;
    refute(*state, a.incarnation);
    return;
  }

  AliveView copy = a;
  copy.port = port;
  broadcast(std::string(a.node), encode(copy));
  if (a.vsn.size() == 6) state->m.vsn = vsn_from(a.vsn);
  state->m.incarnation = a.incarnation;
  state->m.meta.assign(a.meta.begin(), a.meta.end());
  state->m.addr = *addr;
  if (updates_node && state->m.verified) {
    // What we verified was the old address.
    state->m.verified = false;
    ++unverified;
    ring_dirty = true;
  }
  if (state->m.state != MemberState::Alive) {
    if (dead_or_left(state->m.state)) ring_dirty = true;
    state->m.state = MemberState::Alive;
    state->m.state_change = now;
  }
  failed_members.erase(std::string(a.node));
  if (!is_local && !state->m.verified && (old_state == MemberState::Dead || updates_node) &&
      old_state != MemberState::Suspect)
    schedule_verify(*state, now);

  if (dead_or_left(old_state)) {
    emit(EventKind::Joined, state->m, now);
  } else {
    if (old_state == MemberState::Suspect) emit(EventKind::Recovered, state->m, now);
    if (old_meta != state->m.meta || updates_node) emit(EventKind::Updated, state->m, now);
  }
}

// May `state`'s name move to another address? memberlist: when it left,
// or has been dead for DeadNodeReclaimTime. We add two rules (DESIGN.md,
// "Hostile gossip"): a leave must be left_node_reclaim_time old, so that
// a forged leave cannot pass the name on before its live owner refutes
// it; and a dead member that never once answered us may be taken at
// once, so that an impostor's address that died frees the name for its
// owner without waiting for it to be reaped.
bool Node::Impl::may_reclaim(const NodeState& state, Time now) const {
  const Duration since = now - state.m.state_change;
  switch (state.m.state) {
    case MemberState::Left: return since >= config.left_node_reclaim_time;
    case MemberState::Dead:
      return !state.m.verified ||
             (config.dead_node_reclaim_time > Duration::zero() && since > config.dead_node_reclaim_time);
    case MemberState::Alive:
    case MemberState::Suspect: return false;
  }
  return false;
}

// `unverified_failed`: our own suspicion of a member that never answered
// its verification ping (verify_expired).
void Node::Impl::suspect_node(const Suspect& s, Time now, bool unverified_failed) {
  NodeState* state = find(s.node);
  if (state == nullptr || s.incarnation < state->m.incarnation) return;

  if (auto it = node_timers.find(s.node); it != node_timers.end()) {
    if (it->second.suspicion.confirm(s.from, now)) {
      broadcast(s.node, encode(s));
      schedule(suspicion_due(it->second), TimerKind::Suspicion, it->second.gen, s.node);
    }
    return;
  }
  if (state->m.state != MemberState::Alive) return;

  if (s.node == config.name) {
    refute(*state, s.incarnation);
    return;
  }
  broadcast(s.node, encode(s));
  if (s.from == config.name) ++stats.suspicions_raised;

  state->m.incarnation = s.incarnation;
  state->m.state = MemberState::Suspect;
  state->m.state_change = now;

  // Lifeguard §IV.B: start at the maximum when enough peers could confirm.
  int k = config.suspicion_mult - 2;
  const auto n = static_cast<int>(nodes.size());
  if (n - 2 < k) k = 0;
  // A member that never answered us gets the shortest timeout: waiting
  // for confirmations protects real members from a slow accuser, and this
  // one has given no sign of being real. It is told directly, so a real
  // member that lost the ping refutes well within the time.
  if (unverified_failed) {
    k = 0;
    send_raw(state->m.addr, encode(s), state);
  }
  // Scaled by the members that answered us: announced phantoms must not
  // stretch the time a real failure takes to be declared.
  const std::size_t scale_n = nodes.size() - std::min(unverified, nodes.size());
  const Duration min = suspicion_timeout(config.suspicion_mult, scale_n, config.probe_interval);
  const Duration max = min * config.suspicion_max_timeout_mult;
  const std::uint64_t gen = ++suspicion_gen;
  // The last call is for members that answered us (DESIGN.md): a suspicion
  // of one that never did is the verification's, which told it directly
  // already, and announced phantoms must not cost a round of packets each.
  // (One verified meanwhile is called at the deadline: suspicion_fired.)
  const bool call = state->m.verified && !unverified_failed;
  auto [it, inserted] = node_timers.insert_or_assign(
      s.node, SuspicionTimer{Suspicion(s.from, k, min, max, now), gen, now, call});
  (void)inserted;
  schedule(suspicion_due(it->second), TimerKind::Suspicion, gen, s.node);
  emit(EventKind::Suspect, state->m, now);
}

void Node::Impl::dead_node(const Dead& d, Time now) {
  NodeState* state = find(d.node);
  if (state == nullptr || d.incarnation < state->m.incarnation) return;
  node_timers.erase(d.node);
  if (dead_or_left(state->m.state)) return;

  if (d.node == config.name) {
    if (!left) {
      refute(*state, d.incarnation);
      return;
    }
    broadcast(d.node, encode(d), kLeaveNotify);
  } else {
    broadcast(d.node, encode(d));
  }
  state->m.incarnation = d.incarnation;
  state->m.state = d.node == d.from ? MemberState::Left : MemberState::Dead;
  state->m.state_change = now;
  ring_dirty = true;
  // Members that never answered us are remembered for reconnect only up
  // to a bound: the list would otherwise keep every announced phantom for
  // reconnect_timeout.
  if (state->m.state == MemberState::Dead &&
      (state->m.verified || std::count_if(failed_members.begin(), failed_members.end(), [](const auto& f) {
                              return !f.second.verified;
                            }) < static_cast<std::ptrdiff_t>(kMaxUnverifiedFailed)))
    failed_members[d.node] = Failed{state->m.addr, now, state->m.verified};
  else failed_members.erase(d.node);
  emit(state->m.state == MemberState::Left ? EventKind::Left : EventKind::Dead, state->m, now);
}

// When a suspicion timer needs us next: for the last call, one probe
// timeout before the suspicion runs out; after it, at the deadline (as
// memberlist declares the death), but never less than a probe timeout
// after the call, so that its answers have time to arrive when
// confirmations pulled the deadline in after the call went out.
Time Node::Impl::suspicion_due(const SuspicionTimer& timer) const {
  const Time deadline = timer.suspicion.deadline();
  if (!timer.call) return deadline;
  if (timer.called == Time::max()) return deadline - config.probe_timeout;
  return std::max(deadline, timer.called + config.probe_timeout);
}

void Node::Impl::suspicion_fired(const std::string& name, Time now) {
  auto it = node_timers.find(name);
  NodeState* state = find(name);
  if (it == node_timers.end() || state == nullptr) return;
  const bool timeout =
      state->m.state == MemberState::Suspect && state->m.state_change == it->second.state_change;
  if (timeout && it->second.called == Time::max() && (it->second.call || state->m.verified)) {
    it->second.call = true;
    last_call(*state, it->second, now);
    return;
  }
  if (timeout && it->second.call) ++stats.last_calls_unanswered;
  node_timers.erase(it);
  if (timeout) dead_node(Dead{state->m.incarnation, name, config.name}, now);
}

// Before a suspicion runs out, say so once more to the suspect and to a
// few members, one probe timeout ahead of the death. A member refuted in
// the meantime is answered for by whoever holds its newer alive
// (correct_stale), and a live suspect answers for itself. This is for the
// node that missed every copy of a refutation: the refutation is sent
// RetransmitMult x log10(N) times by each of N members, so any one member
// misses it with a probability of about e^-(that x (1 - loss)), which at
// 1000 members and 10 % loss is a few in ten million, but there are
// millions of (member, refutation) pairs in an hour (docs/simulator.md).
// Without the call such a node's suspicion stays silent to the end: its
// own re-broadcast went out before the refutation existed. Sent ahead of
// the deadline, the call costs a real death no time (memberlist declares
// it at the deadline too) unless the last confirmation came within a
// probe timeout of the deadline it set.
void Node::Impl::last_call(NodeState& state, SuspicionTimer& timer, Time now) {
  timer.called = now;
  schedule(suspicion_due(timer), TimerKind::Suspicion, timer.gen, state.m.name);
  ++stats.last_calls;
  const Suspect s{state.m.incarnation, state.m.name, config.name};
  send_msg(state.m.addr, encode(s), &state);
  const std::string& suspect = state.m.name;
  auto peers = pick_peers(config.indirect_checks, [&](const NodeState& p) {
    return p.m.state == MemberState::Alive && p.m.name != config.name && p.m.name != suspect;
  });
  for (NodeState* peer : peers) send_msg(peer->m.addr, encode(s), peer);
}

}  // namespace mesh::swim
