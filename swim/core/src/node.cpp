// The public Node: lifecycle (start, join, leave), metadata, user messages,
// the drained outputs and read-only queries. The protocol logic is
// Node::Impl's, declared in node_impl.hpp and defined one concept per file
// (the list is at the top of that header).
#include "mesh/swim/node.hpp"

#include <algorithm>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
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

void Node::leave(Time now) { impl_->leave(now); }

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

namespace {

Bytes user_message(const Bytes& payload) {
  Bytes msg;
  msg.reserve(payload.size() + 1);
  msg.push_back(static_cast<std::uint8_t>(MsgType::User));
  msg.insert(msg.end(), payload.begin(), payload.end());
  return msg;
}

}  // namespace

void Node::queue_user_broadcast(Bytes payload, std::string name) {
  Impl& m = *impl_;
  m.user_broadcasts.queue(name.empty() ? std::string{} : "user:" + name, user_message(payload));
  m.stats.broadcasts_pruned += m.user_broadcasts.prune(m.broadcast_queue_bound());
}

bool Node::force_left(Time now, std::string_view name) {
  Impl& m = *impl_;
  NodeState* state = m.find(name);
  if (state == nullptr || state->m.state != MemberState::Dead) return false;
  state->m.state = MemberState::Left;
  state->m.state_change = now;
  m.failed_members.erase(state->m.name);
  m.emit(EventKind::Left, state->m, now);
  return true;
}

// The node leaves (as leave()) the moment the intent has been sent its last
// time, by itself: our death then rides on the rest of the gossip round
// that sent the intent its last copy, as Serf's Leave, woken by the
// broadcast's notify, queues it while memberlist's gossip round goes on;
// left to the caller, it would wait for the next round.
void Node::queue_leave_intent(Bytes payload, std::string name) {
  // Our own news: it goes before other user messages (and is never pruned).
  impl_->user_broadcasts.queue(name.empty() ? std::string{} : "user:" + name, user_message(payload),
                               kLeaveIntentNotify, true);
  // A replaced intent reports its token now; ours is the one just queued.
  impl_->user_broadcasts.drain_finished();
  impl_->leave_intent_sent = false;
  impl_->leave_after_intent = true;
}

void Node::set_user_state(Bytes state) { impl_->user_state = std::move(state); }
void Node::set_ack_payload(Bytes payload) { impl_->ack_payload = std::move(payload); }

void Node::set_shared_clock_offset(Duration offset) { impl_->config.shared_clock_offset = offset; }

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
bool Node::leave_intent_sent() const { return impl_->leave_intent_sent; }
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

}  // namespace mesh::swim
