// Sending and spreading news (memberlist's sendMsg, getBroadcasts and the
// gossip round of state.go): every packet we send carries as many queued
// broadcasts as fit beside it, and each gossip interval sends what is still
// queued to a few random peers.
#include <cstddef>
#include <algorithm>
#include <span>
#include <utility>
#include <vector>

#include "node_impl.hpp"

namespace mesh::swim {

// rawSendMsgPacket: CRC only for peers that understand protocol 5.
void Node::Impl::send_raw(const Address& to, Bytes msg, const NodeState* target) {
  if (!to.valid()) return;
  if (target != nullptr && target->m.vsn[1] >= 5) msg = wrap_crc(msg);
  ++stats.packets_sent;
  stats.bytes_sent += msg.size();
  out_packets.push_back({to, std::move(msg)});
}

// The same for a packet of several messages, built in one allocation
// (the compound and the CRC around it) from views of the messages.
void Node::Impl::send_parts(const Address& to, std::span<const ByteView> parts,
                            const NodeState* target) {
  if (!to.valid()) return;
  Bytes packet = make_packet(parts, target != nullptr && target->m.vsn[1] >= 5);
  ++stats.packets_sent;
  stats.bytes_sent += packet.size();
  out_packets.push_back({to, std::move(packet)});
}

// getBroadcasts: our own messages first, then the application's. Appends
// to `out`; the pointers are valid until the queues are next used.
void Node::Impl::get_broadcasts(std::size_t overhead, std::size_t limit,
                                std::vector<const Bytes*>& out) {
  const int transmit_limit = retransmit_limit(config.retransmit_mult, nodes.size());
  const std::size_t first = out.size();
  broadcasts.get(overhead, limit, transmit_limit, out);
  std::size_t used = 0;
  for (std::size_t i = first; i < out.size(); ++i) used += out[i]->size() + overhead;
  if (limit > used && limit - used > overhead + 1)
    user_broadcasts.get(overhead, limit - used, transmit_limit, out);
  check_leave_notify();
}

// sendMsg: piggyback whatever broadcasts fit beside `msg`.
void Node::Impl::send_msg(const Address& to, Bytes msg, const NodeState* target) {
  const std::size_t budget = config.udp_buffer_size;
  std::vector<const Bytes*>& extra = scratch_msgs;
  extra.clear();
  if (msg.size() + kCompoundHeaderOverhead < budget)
    get_broadcasts(kCompoundOverhead, budget - msg.size() - kCompoundHeaderOverhead, extra);
  if (extra.empty()) {
    send_raw(to, std::move(msg), target);
    return;
  }
  std::vector<ByteView>& parts = scratch_parts;
  parts.clear();
  parts.emplace_back(msg);
  for (const Bytes* e : extra) parts.emplace_back(*e);
  send_parts(to, parts, target);
}

// A node's news about itself (its refutations, its alive after a meta
// change, its leave) goes before all other gossip: under churn the queue
// fills with others' suspicions, and a refutation waiting behind them
// arrives after the suspicion has run out somewhere (memberlist users see
// this as broadcast starvation). The queue is bounded: past the bound the
// most-sent messages are dropped, which have had most of their chances.
void Node::Impl::broadcast(const std::string& node, Bytes msg, std::uint64_t notify) {
  ++stats.broadcasts_queued;
  broadcasts.queue(node, std::move(msg), notify, node == config.name);
  stats.broadcasts_pruned += broadcasts.prune(broadcast_queue_bound());
  stats.broadcast_queue_peak = std::max<std::uint64_t>(stats.broadcast_queue_peak, broadcasts.size());
  check_leave_notify();
}

std::size_t Node::Impl::broadcast_queue_bound() const {
  if (config.max_broadcast_queue != 0) return config.max_broadcast_queue;
  return swim::broadcast_queue_bound(nodes.size());
}

void Node::Impl::check_leave_notify() {
  for (auto token : broadcasts.drain_finished())
    if (token == kLeaveNotify) leave_done = true;
  for (auto token : user_broadcasts.drain_finished())
    if (token == kLeaveIntentNotify) leave_intent_sent = true;
}

// Node::leave: our own death, From == our name, then wait until it has been
// sent its last time (or there is nobody to tell).
void Node::Impl::leave(Time now) {
  if (!started || left) return;
  left = true;
  NodeState* me = self();
  if (me == nullptr) {
    leave_done = true;
    return;
  }
  dead_node(Dead{me->m.incarnation, me->m.name, me->m.name}, now);
  const bool any_alive = std::any_of(nodes.begin(), nodes.end(), [&](const auto& s) {
    return s->m.name != config.name && !dead_or_left(s->m.state);
  });
  if (!any_alive) leave_done = true;
}

// The leave intent has just been sent its last time and the caller asked
// to leave then: queue our death now, between two packets (never while a
// packet's messages are still borrowed from the queues).
void Node::Impl::leave_if_intent_sent(Time now) {
  if (leave_after_intent && leave_intent_sent && !left) leave(now);
}

void Node::Impl::gossip_tick(Time now) {
  const std::uint64_t gen = ++gossip_gen;
  schedule(now + config.gossip_interval, TimerKind::GossipTick, gen);
  // Nothing to say: skip choosing peers (memberlist chooses, then finds
  // nothing to send; the outcome is the same and this is the common case).
  if (broadcasts.size() == 0 && user_broadcasts.size() == 0) return;
  // memberlist's choice, except that a member that never answered us and
  // is no longer alive (its verification ping failed) is skipped: an
  // announced phantom costs gossip only until its ping times out. Newly
  // learned alive members stay eligible, or joins would spread slowly.
  auto peers = k_random_nodes(config.gossip_nodes, [&](const NodeState& s) {
    if (s.m.name == config.name) return false;
    if (!s.m.verified && s.m.state != MemberState::Alive) return false;
    switch (s.m.state) {
      case MemberState::Alive:
      case MemberState::Suspect: return true;
      case MemberState::Dead: return now - s.m.state_change <= config.gossip_to_the_dead_time;
      case MemberState::Left: return false;
    }
    return false;
  });
  const std::size_t avail = config.udp_buffer_size - kCompoundHeaderOverhead;
  std::vector<const Bytes*>& msgs = scratch_msgs;
  std::vector<ByteView>& parts = scratch_parts;
  for (NodeState* peer : peers) {
    msgs.clear();
    get_broadcasts(kCompoundOverhead, avail, msgs);
    if (msgs.empty()) break;
    ++stats.gossip_packets;
    parts.clear();
    for (const Bytes* m : msgs) parts.emplace_back(*m);
    send_parts(peer->m.addr, parts, peer);
    // The rest of this round carries our death if the intent just went out.
    leave_if_intent_sent(now);
  }
  leave_if_intent_sent(now);
}

}  // namespace mesh::swim
