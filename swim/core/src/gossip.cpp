// Sending and spreading news (memberlist's sendMsg, getBroadcasts and the
// gossip round of state.go): every packet we send carries as many queued
// broadcasts as fit beside it, and each gossip interval sends what is still
// queued to a few random peers.
#include <cstddef>
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

// getBroadcasts: our own messages first, then the application's.
std::vector<SharedBytes> Node::Impl::get_broadcasts(std::size_t overhead, std::size_t limit) {
  const int transmit_limit = retransmit_limit(config.retransmit_mult, nodes.size());
  auto out = broadcasts.get(overhead, limit, transmit_limit);
  std::size_t used = 0;
  for (const auto& m : out) used += m->size() + overhead;
  if (limit > used && limit - used > overhead + 1) {
    auto user = user_broadcasts.get(overhead, limit - used, transmit_limit);
    out.insert(out.end(), user.begin(), user.end());
  }
  check_leave_notify();
  return out;
}

// sendMsg: piggyback whatever broadcasts fit beside `msg`.
void Node::Impl::send_msg(const Address& to, Bytes msg, const NodeState* target) {
  const std::size_t budget = config.udp_buffer_size;
  std::vector<SharedBytes> extra;
  if (msg.size() + kCompoundHeaderOverhead < budget)
    extra = get_broadcasts(kCompoundOverhead, budget - msg.size() - kCompoundHeaderOverhead);
  if (extra.empty()) {
    send_raw(to, std::move(msg), target);
    return;
  }
  std::vector<Bytes> parts;
  parts.reserve(extra.size() + 1);
  parts.push_back(std::move(msg));
  for (auto& e : extra) parts.push_back(*e);
  send_raw(to, make_compound(parts), target);
}

void Node::Impl::broadcast(const std::string& node, Bytes msg, std::uint64_t notify) {
  ++stats.broadcasts_queued;
  broadcasts.queue(node, std::move(msg), notify);
  check_leave_notify();
}

void Node::Impl::check_leave_notify() {
  for (auto token : broadcasts.drain_finished())
    if (token == kLeaveNotify) leave_done = true;
  for (auto token : user_broadcasts.drain_finished())
    if (token == kLeaveIntentNotify) leave_intent_sent = true;
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
  for (NodeState* peer : peers) {
    auto msgs = get_broadcasts(kCompoundOverhead, avail);
    if (msgs.empty()) return;
    ++stats.gossip_packets;
    if (msgs.size() == 1) {
      send_raw(peer->m.addr, *msgs[0], peer);
    } else {
      std::vector<Bytes> parts;
      parts.reserve(msgs.size());
      for (auto& m : msgs) parts.push_back(*m);
      send_raw(peer->m.addr, make_compound(parts), peer);
    }
  }
}

}  // namespace mesh::swim
