// Incoming datagrams (net.go handleCommand and friends): a packet is split
// into its messages and each goes to the handler for its type.
#include <variant>

#include "node_impl.hpp"

namespace mesh::swim {

void Node::on_packet(Time now, const Address& from, ByteView bytes) {
  Impl& m = *impl_;
  ++m.stats.packets_received;
  m.stats.bytes_received += bytes.size();
  if (!m.started) return;
  // Split first, decode each message as it is handled: alives (the bulk of
  // gossip) are read as views, so old news costs no allocation. The
  // outcome matches decode_packet + handling each message in order: the
  // decode of one message does not depend on the handling of another.
  auto parts = split_packet(bytes, m.config.limits);
  if (!parts) {
    m.count_error(parts.error());
    return;
  }
  m.stats.compound_truncated_parts += parts->truncated_parts;
  for (const auto& e : parts->part_errors) m.count_error(e);
  // A packet that is a single message (no compound) failing to decode is
  // the packet's error, as decode_packet reports it; either way it is
  // counted once.
  for (const ByteView msg : parts->messages) {
    if (msg[0] == static_cast<std::uint8_t>(MsgType::Alive)) {
      auto alive = decode_alive_view(msg);
      if (!alive) {
        m.count_error(alive.error());
        continue;
      }
      m.alive_node(*alive, false, now, &from);
      continue;
    }
    auto decoded = decode_message(msg);
    if (!decoded) {
      m.count_error(decoded.error());
      continue;
    }
    m.handle(*decoded, from, now);
  }
  // An ack or a ping we answered may have carried the intent's last copy.
  m.leave_if_intent_sent(now);
}

void Node::Impl::handle(const PacketMessage& msg, const Address& from, Time now) {
  std::visit([&](const auto& m) { handle_one(m, from, now); }, msg);
}

Address Node::Impl::reply_address(const Bytes& source_addr, std::uint16_t source_port,
                                  const Address& from) {
  if (!source_addr.empty() && source_port > 0)
    if (auto a = Address::from_bytes(source_addr, source_port)) return *a;
  return from;
}

void Node::Impl::handle_one(const Ping& p, const Address& from, Time) {
  if (!p.node.empty() && p.node != config.name) {
    ++stats.ping_wrong_node;
    return;
  }
  const Address to = reply_address(p.source_addr, p.source_port, from);
  NodeState* source = p.source_node.empty() ? nullptr : find(p.source_node);
  // A ping from a member's own address is as good a sign of life as an
  // answer to ours, and spares the verification ping.
  if (source != nullptr && source->m.addr == from) mark_verified(*source);
  send_msg(to, encode(Ack{p.seq_no, ack_payload}), source);
}

void Node::Impl::handle_one(const IndirectPing& ind, const Address& from, Time now) {
  auto target = Address::from_bytes(ind.target, ind.port == 0 ? config.advertise.port : ind.port);
  if (!target) {
    ++stats.decode_errors[static_cast<std::size_t>(DecodeError::Malformed)];
    return;
  }
  ++stats.indirect_probes_served;
  const std::uint32_t local_seq = ++seq_no;
  AckHandler h;
  h.kind = AckHandler::Kind::Forward;
  h.expires = now + config.probe_timeout;
  h.orig_seq = ind.seq_no;
  h.requester = reply_address(ind.source_addr, ind.source_port, from);
  h.requester_name = ind.source_node;
  h.nack = ind.nack;
  ack_handlers[local_seq] = std::move(h);
  schedule(now + config.probe_timeout, TimerKind::IndirectExpire, local_seq);
  send_msg(*target, encode(make_ping(local_seq, ind.node)), find(ind.node));
}

void Node::Impl::handle_one(const Ack& ack, const Address&, Time now) {
  auto it = ack_handlers.find(ack.seq_no);
  if (it == ack_handlers.end()) return;
  if (now > it->second.expires) {
    ack_handlers.erase(it);
    return;
  }
  if (it->second.kind == AckHandler::Kind::Probe) {
    if (probe.active && probe.seq == ack.seq_no) probe_succeeded(now);
    else ack_handlers.erase(it);
    return;
  }
  if (it->second.kind == AckHandler::Kind::Verify) {
    NodeState* s = find(it->second.requester_name);
    if (s != nullptr && s->m.addr == it->second.requester) mark_verified(*s);
    ack_handlers.erase(it);
    return;
  }
  AckHandler h = std::move(it->second);
  ack_handlers.erase(it);
  send_msg(h.requester, encode(Ack{h.orig_seq, {}}), find(h.requester_name));
}

void Node::Impl::handle_one(const Nack& nack, const Address&, Time) {
  ++stats.nacks_received;
  if (probe.active && probe.seq == nack.seq_no && ack_handlers.count(nack.seq_no) != 0)
    ++probe.nacks;
}

void Node::Impl::handle_one(const Suspect& s, const Address& from, Time now) {
  if (!valid_member_name(s.node) || !valid_member_name(s.from)) {
    count_bad_name();
    return;
  }
  correct_stale(s.node, s.incarnation, from);
  suspect_node(s, now);
}

void Node::Impl::handle_one(const Alive& a, const Address& from, Time now) {
  alive_node(view_of(a), false, now, &from);
}

void Node::Impl::handle_one(const Dead& d, const Address& from, Time now) {
  if (!valid_member_name(d.node) || !valid_member_name(d.from)) {
    count_bad_name();
    return;
  }
  correct_stale(d.node, d.incarnation, from);
  notify_leave(d, from);
  dead_node(d, now);
}

void Node::Impl::handle_one(const UserMsg& u, const Address&, Time) {
  user_data.push_back({UserData::Kind::Message, u.payload, false});
}

void Node::Impl::handle_one(const ErrResp&, const Address&, Time) { ++stats.unexpected_messages; }

// A suspect or dead message older than the alive we hold means that its
// sender missed the refutation: a node that relays gossip drops its queued
// suspicion as soon as it learns the newer alive (same name), so stale
// accusations come from nodes that never learned it. memberlist ignores
// them, and such a node can declare a refuted member dead once the
// refutation's retransmissions are spent (seen in the simulator at 10 %
// loss and 1000 nodes). We answer the sender with what we know.
void Node::Impl::correct_stale(const std::string& node, std::uint32_t claimed,
                               const Address& from) {
  const NodeState* s = find(node);
  if (s == nullptr || s->m.state != MemberState::Alive || claimed >= s->m.incarnation) return;
  ++stats.corrections_sent;
  send_msg(from, encode(alive_of(*s)), nullptr);
}

// A leave we hear from a third party is shown to the member itself: a
// forged one is then refuted at once, while the name cannot yet move
// (left_node_reclaim_time). A real leaver ignores it; memberlist would
// not send it, and a Go node treats it as any dead message about itself.
void Node::Impl::notify_leave(const Dead& d, const Address& from) {
  if (d.node != d.from || d.node == config.name) return;
  NodeState* s = find(d.node);
  if (s == nullptr || dead_or_left(s->m.state) || d.incarnation < s->m.incarnation ||
      s->m.addr == from)
    return;
  ++stats.leave_notices_sent;
  send_raw(s->m.addr, encode(d), s);
}

}  // namespace mesh::swim
