// Failure detection by probing (state.go probe and probeNode, awareness.go):
// one member per probe interval gets a direct ping; without an ack by the
// probe timeout, helpers ping it for us and a stream ping is tried; without
// one by the end of the interval it is suspected. Each outcome moves our
// Lifeguard health score. A finished round reaps the long dead and
// reshuffles the order.
#include <memory>
#include <utility>
#include <vector>

#include "node_impl.hpp"

namespace mesh::swim {

Ping Node::Impl::make_ping(std::uint32_t seq, const std::string& target) const {
  Ping p;
  p.seq_no = seq;
  p.node = target;
  p.source_addr.assign(config.advertise.ip_bytes().begin(), config.advertise.ip_bytes().end());
  p.source_port = config.advertise.port;
  p.source_node = config.name;
  return p;
}

// An indirect ping asking a helper to probe `target` for us (seq `seq`).
IndirectPing Node::Impl::indirect_ping(std::uint32_t seq, const Member& target) const {
  IndirectPing ind;
  ind.seq_no = seq;
  ind.target.assign(target.addr.ip_bytes().begin(), target.addr.ip_bytes().end());
  ind.port = target.addr.port;
  ind.node = target.name;
  ind.source_addr.assign(config.advertise.ip_bytes().begin(), config.advertise.ip_bytes().end());
  ind.source_port = config.advertise.port;
  ind.source_node = config.name;
  return ind;
}

// memberlist's probe ticker fires every ProbeInterval whatever the health
// score; the score stretches only how long a probe waits for its ack
// (probeNode's deadline). A tick that finds a probe still waiting is kept,
// as Go's ticker channel keeps one, and the next probe starts as soon as
// that one ends (probe_finished). So a degraded node probes failing
// members more patiently but keeps probing live ones every interval, and
// each success lowers its score a step.
void Node::Impl::probe_tick(Time now) {
  if (probe.active) {
    probe_tick_pending = true;
  } else {
    probe_select(now);
  }
  // Scheduled after this probe's own timers so that, when they fall at the
  // same instant (a failed probe at a score of 0), the deadline runs first.
  next_probe_tick = now + config.probe_interval;
  schedule(next_probe_tick, TimerKind::ProbeTick, ++probe_gen);
}

void Node::Impl::probe_finished(Time now) {
  probe.active = false;
  if (!probe_tick_pending) return;
  probe_tick_pending = false;
  // A stretched probe that ends on a tick of the grid: in Go that tick
  // comes first (the probe was sent just after its own tick) and is
  // dropped, the kept one starts the next probe; here the tick due now
  // starts it, once.
  if (next_probe_tick == now) return;
  probe_select(now);
}

// Two lanes, taken in turn while there are unverified members: the round
// robin over verified members (memberlist's, with its reshuffle), and one
// over the unverified. However many members gossip announces, the
// verified ones keep at least half the probe rate.
void Node::Impl::probe_select(Time now) {
  if (probe.active) return;
  if (unverified > 0 && unverified_turn) {
    unverified_turn = false;
    if (probe_next_unverified(now)) return;
  }
  unverified_turn = true;
  if (config.aligned_probes ? probe_next_aligned(now) : probe_next_verified(now)) return;
  if (unverified > 0) probe_next_unverified(now);
}

bool Node::Impl::probe_next_verified(Time now) {
  std::size_t checked = 0;
  while (checked < nodes.size()) {
    if (probe_index >= nodes.size()) {
      reset_nodes(now);
      probe_index = 0;
      ++checked;
      continue;
    }
    NodeState* node = nodes[probe_index++].get();
    if (node->m.name == config.name || dead_or_left(node->m.state) || !node->m.verified) {
      ++checked;
      continue;
    }
    probe_node(*node, now);
    return true;
  }
  return false;
}

// The aligned order (Config::aligned_probes): a rotation of the common
// ring by 1 + (round mod (n - 1)). A probe that starts in the same round as
// our previous one (after a probe stretched by a poor health score) takes
// the next step instead, so no member is probed twice in a row.
bool Node::Impl::probe_next_aligned(Time now) {
  if (ring_dirty) rebuild_ring();
  const std::size_t n = ring.size();
  if (n < 2) return false;
  const auto shared = now.time_since_epoch() + config.shared_clock_offset;
  std::int64_t round = shared.count() / std::max<Duration::rep>(1, config.probe_interval.count());
  if (round <= last_round) round = last_round + 1;
  last_round = round;
  const auto step = 1 + static_cast<std::size_t>(round) % (n - 1);
  NodeState* target = ring[(ring_self + step) % n];
  // memberlist reaps the long dead when its walk wraps; the same cadence.
  if (++probes_since_reset >= n - 1) {
    probes_since_reset = 0;
    reset_nodes(now);
  }
  probe_node(*target, now);
  return true;
}

// Probes run only once started, when we are a member ourselves.
void Node::Impl::rebuild_ring() {
  ring_dirty = false;
  ring.clear();
  for (const auto& s : nodes) {
    const bool self = s->m.name == config.name;
    if (self || (!dead_or_left(s->m.state) && s->m.verified)) ring.push_back(s.get());
  }
  const auto name_of = [](const NodeState* s) -> const std::string& { return s->m.name; };
  std::ranges::sort(ring, {}, name_of);
  ring_self = static_cast<std::size_t>(std::ranges::lower_bound(ring, config.name, {}, name_of) - ring.begin());
}

bool Node::Impl::probe_next_unverified(Time now) {
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    if (unverified_index >= nodes.size()) unverified_index = 0;
    NodeState* node = nodes[unverified_index++].get();
    if (node->m.verified || dead_or_left(node->m.state)) continue;
    probe_node(*node, now);
    return true;
  }
  return false;
}

void Node::Impl::probe_node(NodeState& node, Time now) {
  const Duration interval = scaled(config.probe_interval);
  const Duration timeout = scaled(config.probe_timeout);
  const std::uint32_t seq = ++seq_no;
  ++stats.probes;
  ack_handlers[seq] = AckHandler{AckHandler::Kind::Probe, now + interval, 0, {}, {}, false};
  probe = Probe{true, seq, node.m.name, node.m.incarnation, node.m.verified, false, 0, 0};

  Bytes ping = encode(make_ping(seq, node.m.name));
  if (node.m.state == MemberState::Alive) {
    send_msg(node.m.addr, std::move(ping), &node);
  } else {
    // Probing a suspect: tell it, so it can refute at once.
    std::vector<Bytes> parts;
    parts.push_back(std::move(ping));
    parts.push_back(encode(Suspect{node.m.incarnation, node.m.name, config.name}));
    send_raw(node.m.addr, make_compound(parts), &node);
  }
  schedule(now + timeout, TimerKind::ProbeTimeout, seq);
  schedule(now + interval, TimerKind::ProbeDeadline, seq);
}

void Node::Impl::probe_timeout(Time now) {
  probe.indirect_sent = true;
  NodeState* target = find(probe.target);
  if (target == nullptr) return;
  auto peers = pick_peers(config.indirect_checks, [&](const NodeState& s) {
    return s.m.name != config.name && s.m.name != probe.target &&
           s.m.state == MemberState::Alive;
  });
  IndirectPing ind = indirect_ping(probe.seq, target->m);
  for (NodeState* peer : peers) {
    ind.nack = peer->m.vsn[1] >= 4;
    // A helper that never answered us may not exist: its missing nack
    // must not count against our own health.
    if (ind.nack && peer->m.verified) ++probe.expected_nacks;
    ++stats.indirect_probes_sent;
    send_msg(peer->m.addr, encode(ind), peer);
  }
  // TCP fallback for peers that speak protocol >= 3: catches a network
  // that drops UDP but not TCP.
  if (!config.disable_tcp_pings && target->m.vsn[1] >= 3) {
    auto it = ack_handlers.find(probe.seq);
    const Time deadline = it != ack_handlers.end() ? it->second.expires : now;
    ++stats.stream_pings_sent;
    open_stream(target->m.addr, StreamKind::Ping,
                encode_stream(StreamMessage{make_ping(probe.seq, target->m.name)},
                              config.compress_streams),
                deadline, true, probe.seq);
  }
}

void Node::Impl::probe_succeeded(Time now) {
  ack_handlers.erase(probe.seq);
  if (NodeState* t = find(probe.target)) mark_verified(*t);
  apply_awareness(-1);
  probe_finished(now);
}

void Node::Impl::probe_deadline(Time now) {
  ack_handlers.erase(probe.seq);
  probe.active = false;
  ++stats.probes_failed;
  // Lifeguard: missing nacks mean our own network may be at fault. Not so
  // for a member that never answered us: it may never have existed, and
  // announced phantoms must not slow our probing down.
  int delta = 1;
  if (probe.expected_nacks > 0) delta = std::max(0, probe.expected_nacks - probe.nacks);
  if (probe.target_verified) apply_awareness(delta);
  suspect_node(Suspect{probe.target_incarnation, probe.target, config.name}, now);
  probe_finished(now);
}

// resetNodes: drop the dead (and left) past the gossip-to-the-dead time,
// then reshuffle the probe order.
void Node::Impl::reset_nodes(Time now) {
  auto gone = [&](const std::unique_ptr<NodeState>& s) {
    return dead_or_left(s->m.state) && s->m.name != config.name &&
           now - s->m.state_change > config.gossip_to_the_dead_time;
  };
  const std::size_t before = nodes.size();
  for (auto& s : nodes)
    if (gone(s)) node_timers.erase(s->m.name);
  nodes.erase(std::remove_if(nodes.begin(), nodes.end(), gone), nodes.end());
  if (nodes.size() != before) {
    ring_dirty = true;
    node_map.rebuild(nodes);
    unverified = static_cast<std::size_t>(
        std::count_if(nodes.begin(), nodes.end(), [](const auto& s) { return !s->m.verified; }));
  }
  rng.shuffle(nodes);
}

}  // namespace mesh::swim
