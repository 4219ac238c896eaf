// The SWIM state machine. Behaviour follows memberlist 0.2.2 (state.go,
// net.go) unless swim/DESIGN.md lists a deviation; comments cite the Go
// function a piece of logic corresponds to.
#include "mesh/swim/node.hpp"

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "node_impl.hpp"

namespace mesh::swim {

std::string_view to_string(EventKind k) {
  switch (k) {
    case EventKind::Joined: return "joined";
    case EventKind::Updated: return "updated";
    case EventKind::Suspect: return "suspect";
    case EventKind::Recovered: return "recovered";
    case EventKind::Dead: return "dead";
    case EventKind::Left: return "left";
    case EventKind::Conflict: return "conflict";
  }
  return "?";
}

Node::Node(Config config, std::uint64_t seed)
    : impl_(std::make_unique<Impl>(std::move(config), seed)) {}
Node::~Node() = default;
Node::Node(Node&&) noexcept = default;
Node& Node::operator=(Node&&) noexcept = default;

void Node::start(Time now, Bytes meta) {
  Impl& m = *impl_;
  if (m.started) return;
  m.started = true;
  if (meta.size() > kMetaMaxSize) meta.clear();
  Alive a;
  a.incarnation = ++m.incarnation;
  a.node = m.config.name;
  a.addr.assign(m.config.advertise.ip_bytes().begin(), m.config.advertise.ip_bytes().end());
  a.port = m.config.advertise.port;
  a.meta = std::move(meta);
  a.vsn = vsn_bytes(m.config.vsn);
  m.alive_node(Impl::view_of(a), true, now);
  // Each schedule starts at a random offset so that nodes started together
  // do not probe and gossip in lockstep (memberlist triggerFunc).
  auto stagger = [&](Duration d) {
    return Duration(static_cast<Duration::rep>(m.rng.below(static_cast<std::uint64_t>(d.count()))));
  };
  if (m.config.probe_interval > Duration::zero())
    m.schedule(now + stagger(m.config.probe_interval), TimerKind::ProbeTick, m.probe_gen);
  if (m.config.gossip_interval > Duration::zero() && m.config.gossip_nodes > 0)
    m.schedule(now + stagger(m.config.gossip_interval), TimerKind::GossipTick, m.gossip_gen);
  if (m.config.push_pull_interval > Duration::zero())
    m.schedule(now + stagger(m.config.push_pull_interval), TimerKind::PushPullTick,
               m.push_pull_gen);
  if (m.config.reconnect_interval > Duration::zero())
    m.schedule(now + stagger(m.config.reconnect_interval) + m.config.reconnect_interval,
               TimerKind::ReconnectTick, 0);
}

void Node::join(Time now, const std::vector<Address>& seeds) {
  Impl& m = *impl_;
  for (const auto& seed : seeds) {
    if (!seed.valid() || seed.port == 0) {
      m.join_results.push_back({seed, false, "invalid seed address"});
      continue;
    }
    m.open_stream(seed, StreamKind::Join,
                  m.local_state_stream(true),
                  now + m.config.tcp_timeout, true);
  }
}

void Node::leave(Time now) {
  Impl& m = *impl_;
  if (!m.started || m.left) return;
  m.left = true;
  NodeState* me = m.self();
  if (me == nullptr) {
    m.leave_done = true;
    return;
  }
  m.dead_node(Dead{me->m.incarnation, me->m.name, me->m.name}, now);
  const bool any_alive = std::any_of(m.nodes.begin(), m.nodes.end(), [&](const auto& s) {
    return s->m.name != m.config.name && !dead_or_left(s->m.state);
  });
  if (!any_alive) m.leave_done = true;
}

bool Node::set_meta(Time now, Bytes meta) {
  Impl& m = *impl_;
  if (meta.size() > kMetaMaxSize) return false;
  NodeState* me = m.self();
  if (me == nullptr) return false;
  Alive a = m.alive_of(*me);
  a.incarnation = ++m.incarnation;
  a.meta = std::move(meta);
  m.alive_node(Impl::view_of(a), true, now);
  return true;
}

void Node::queue_user_broadcast(Bytes payload, std::string name) {
  Bytes msg;
  msg.reserve(payload.size() + 1);
  msg.push_back(static_cast<std::uint8_t>(MsgType::User));
  msg.insert(msg.end(), payload.begin(), payload.end());
  impl_->user_broadcasts.queue(name.empty() ? std::string{} : "user:" + name, std::move(msg));
}

void Node::set_user_state(Bytes state) { impl_->user_state = std::move(state); }
void Node::set_ack_payload(Bytes payload) { impl_->ack_payload = std::move(payload); }

void Node::send_user(Time now, const Address& to, Bytes payload, bool reliable) {
  Impl& m = *impl_;
  if (reliable) {
    m.open_stream(to, StreamKind::UserMsg,
                  encode_stream(StreamMessage{UserMsg{std::move(payload)}}, m.config.compress_streams),
                  now + m.config.tcp_timeout, false);
    return;
  }
  m.send_raw(to, encode(UserMsg{std::move(payload)}), nullptr);
}

std::vector<OutPacket> Node::drain_packets() { return std::exchange(impl_->out_packets, {}); }
std::vector<OutStream> Node::drain_streams() { return std::exchange(impl_->out_streams, {}); }
std::vector<MemberEvent> Node::drain_events() { return std::exchange(impl_->events, {}); }
std::vector<UserData> Node::drain_user_data() { return std::exchange(impl_->user_data, {}); }
std::vector<JoinResult> Node::drain_join_results() {
  return std::exchange(impl_->join_results, {});
}

const std::string& Node::name() const { return impl_->config.name; }
const Config& Node::config() const { return impl_->config; }
std::uint32_t Node::incarnation() const { return impl_->incarnation; }
bool Node::started() const { return impl_->started; }
bool Node::has_left() const { return impl_->left; }
bool Node::leave_done() const { return impl_->leave_done; }
int Node::health_score() const { return impl_->awareness; }
std::size_t Node::num_members() const { return impl_->nodes.size(); }

const Member* Node::member(std::string_view name) const {
  const auto* s = impl_->find(name);
  return s == nullptr ? nullptr : &s->m;
}

std::vector<Member> Node::members() const {
  std::vector<Member> out;
  out.reserve(impl_->nodes.size());
  for (const auto& s : impl_->nodes) out.push_back(s->m);
  std::sort(out.begin(), out.end(), [](const Member& a, const Member& b) { return a.name < b.name; });
  return out;
}

const NodeStats& Node::stats() const { return impl_->stats; }

// --- timers ----------------------------------------------------------------

bool Node::Impl::timer_valid(const TimerEntry& e) const {
  switch (e.kind) {
    case TimerKind::ProbeTick: return e.arg == probe_gen;
    case TimerKind::GossipTick: return e.arg == gossip_gen;
    case TimerKind::PushPullTick: return e.arg == push_pull_gen;
    case TimerKind::ProbeTimeout:
      return probe.active && probe.seq == e.arg && !probe.indirect_sent;
    case TimerKind::ProbeDeadline: return probe.active && probe.seq == e.arg;
    case TimerKind::IndirectExpire: {
      auto it = ack_handlers.find(static_cast<std::uint32_t>(e.arg));
      return it != ack_handlers.end() && it->second.kind == AckHandler::Kind::Forward;
    }
    case TimerKind::Suspicion: {
      auto it = node_timers.find(e.name);
      return it != node_timers.end() && it->second.gen == e.arg &&
             it->second.suspicion.deadline() == e.at;
    }
    case TimerKind::StreamDeadline: return pending_streams.count(e.arg) != 0;
    case TimerKind::ReconnectTick: return true;
    case TimerKind::VerifySend: return true;
    case TimerKind::VerifyExpire: {
      auto it = ack_handlers.find(static_cast<std::uint32_t>(e.arg));
      return it != ack_handlers.end() && it->second.kind == AckHandler::Kind::Verify;
    }
  }
  return false;
}

void Node::on_timer(Time now) {
  Impl& m = *impl_;
  while (!m.timers.empty() && m.timers.top().at <= now) {
    TimerEntry e = m.timers.top();
    m.timers.pop();
    if (!m.timer_valid(e)) continue;
    switch (e.kind) {
      case TimerKind::ProbeTick: m.probe_tick(now); break;
      case TimerKind::ProbeTimeout: m.probe_timeout(now); break;
      case TimerKind::ProbeDeadline: m.probe_deadline(now); break;
      case TimerKind::GossipTick: m.gossip_tick(now); break;
      case TimerKind::PushPullTick: m.push_pull_tick(now); break;
      case TimerKind::IndirectExpire: {
        auto it = m.ack_handlers.find(static_cast<std::uint32_t>(e.arg));
        Impl::AckHandler h = std::move(it->second);
        m.ack_handlers.erase(it);
        if (h.nack) {
          ++m.stats.nacks_sent;
          m.send_msg(h.requester, encode(Nack{h.orig_seq}), m.find(h.requester_name));
        }
        break;
      }
      case TimerKind::Suspicion: m.suspicion_fired(e.name, now); break;
      case TimerKind::StreamDeadline: on_stream_failed(now, e.arg); break;
      case TimerKind::ReconnectTick: m.reconnect_tick(now); break;
      case TimerKind::VerifySend: m.verify_due(e.name, now); break;
      case TimerKind::VerifyExpire: m.verify_expired(static_cast<std::uint32_t>(e.arg), now); break;
    }
  }
}

Time Node::next_deadline() const {
  Impl& m = *impl_;
  while (!m.timers.empty() && !m.timer_valid(m.timers.top())) m.timers.pop();
  return m.timers.empty() ? Time::max() : m.timers.top().at;
}

// --- packet handlers -------------------------------------------------------

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
    if (probe.active && probe.seq == ack.seq_no) probe_succeeded();
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
