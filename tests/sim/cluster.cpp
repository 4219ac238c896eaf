#include "cluster.hpp"

#include <algorithm>
#include <cstring>
#include <ostream>
#include <sstream>
#include <stdexcept>

namespace mesh::sim {

namespace {

constexpr std::uint8_t kUnknown = 0xff;
constexpr std::uint16_t kPort = 7946;
// How far over UDPBufferSize memberlist itself goes: sendMsg budgets the
// piggybacked broadcasts as UDPBufferSize - len(msg) - 2 and forgets the
// 2-byte length of msg's own compound slot, and rawSendMsgPacket puts the
// 5-byte CRC header in front afterwards. Past this, a packet is a core bug.
constexpr std::size_t kPacketSlack = 2 + 5;

std::uint64_t mix64(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

void add_stats(swim::NodeStats& a, const swim::NodeStats& b) {
  a.packets_received += b.packets_received;
  a.bytes_received += b.bytes_received;
  a.packets_sent += b.packets_sent;
  a.bytes_sent += b.bytes_sent;
  a.streams_sent += b.streams_sent;
  a.streams_received += b.streams_received;
  for (std::size_t k = 0; k < static_cast<std::size_t>(swim::DecodeError::Count_); ++k) {
    a.decode_errors[k] += b.decode_errors[k];
  }
  a.compound_truncated_parts += b.compound_truncated_parts;
  a.ping_wrong_node += b.ping_wrong_node;
  a.unexpected_messages += b.unexpected_messages;
  a.probes += b.probes;
  a.probes_failed += b.probes_failed;
  a.indirect_probes_sent += b.indirect_probes_sent;
  a.indirect_probes_served += b.indirect_probes_served;
  a.nacks_sent += b.nacks_sent;
  a.nacks_received += b.nacks_received;
  a.stream_pings_sent += b.stream_pings_sent;
  a.suspicions_raised += b.suspicions_raised;
  a.refutations += b.refutations;
  a.gossip_packets += b.gossip_packets;
  a.push_pulls += b.push_pulls;
  a.push_pulls_served += b.push_pulls_served;
  a.push_pull_rejected += b.push_pull_rejected;
  a.conflicts += b.conflicts;
  a.reconnects += b.reconnects;
  a.broadcasts_queued += b.broadcasts_queued;
  a.broadcasts_pruned += b.broadcasts_pruned;
  a.broadcast_queue_peak = std::max(a.broadcast_queue_peak, b.broadcast_queue_peak);
  a.corrections_sent += b.corrections_sent;
  a.last_calls += b.last_calls;
  a.last_calls_answered += b.last_calls_answered;
  a.last_calls_unanswered += b.last_calls_unanswered;
  a.members_rate_limited += b.members_rate_limited;
  a.members_over_unverified += b.members_over_unverified;
  a.verify_pings_sent += b.verify_pings_sent;
  a.verify_failed += b.verify_failed;
  a.leave_notices_sent += b.leave_notices_sent;
}

const char* kind_name(EvKind k) {
  switch (k) {
    case EvKind::Wake: return "wake";
    case EvKind::Packet: return "packet";
    case EvKind::StreamRequest: return "stream-req";
    case EvKind::StreamReply: return "stream-reply";
    case EvKind::StreamTimeout: return "stream-timeout";
    case EvKind::Join: return "join";
    case EvKind::LeaveTimeout: return "leave-timeout";
  }
  return "?";
}

}  // namespace

std::string_view to_string(NodeStatus s) {
  switch (s) {
    case NodeStatus::Created: return "created";
    case NodeStatus::Running: return "running";
    case NodeStatus::Paused: return "paused";
    case NodeStatus::Crashed: return "crashed";
    case NodeStatus::Left: return "left";
  }
  return "?";
}

std::uint64_t Cluster::derive_seed(std::uint64_t master, std::uint64_t a, std::uint64_t b) {
  return mix64(master ^ mix64(a ^ mix64(b + 0x5157494d)));
}

Cluster::Cluster(ClusterOptions opts)
    : opts_(std::move(opts)),
      net_(opts_.net.value_or(NetworkOptions::for_profile(opts_.profile)),
           derive_seed(opts_.seed, 0xffffffffu, 0x6e6574)),
      // Virtual time starts an hour after the clock's epoch so that no time
      // the core computes (now - interval) falls before zero.
      epoch_(Time{} + std::chrono::hours(1)),
      now_(epoch_) {
  base_config_ = swim::Config::for_profile(opts_.profile);
  base_config_.compress_streams = opts_.compress_streams;
  if (opts_.configure) opts_.configure(0, base_config_);
}

Cluster::~Cluster() = default;

// --- setup ------------------------------------------------------------------

NodeId Cluster::add_nodes(std::size_t n) {
  const NodeId first = slots_.size();
  if (first + n >= (1u << 24) - 1) throw std::invalid_argument("too many nodes");
  slots_.reserve(first + n);
  for (std::size_t k = 0; k < n; ++k) {
    const NodeId i = first + k;
    Slot s;
    s.name = "n" + std::to_string(i);
    const std::uint32_t v = static_cast<std::uint32_t>(i + 1);
    s.addr =
        swim::Address::v4(10, static_cast<std::uint8_t>(v >> 16), static_cast<std::uint8_t>(v >> 8),
                          static_cast<std::uint8_t>(v), kPort);
    by_name_.emplace(s.name, i);
    slots_.push_back(std::move(s));
  }
  view_.resize(slots_.size());
  net_.resize(slots_.size());
  return first;
}

std::optional<NodeId> Cluster::node_at(const swim::Address& a) const {
  if (a.ip_len != 4 || a.ip[0] != 10 || a.port != kPort) return std::nullopt;
  const std::uint32_t v = (std::uint32_t{a.ip[1]} << 16) | (std::uint32_t{a.ip[2]} << 8) | a.ip[3];
  if (v == 0 || v > slots_.size()) return std::nullopt;
  return NodeId{v - 1};
}

swim::Config Cluster::make_config(NodeId i) const {
  swim::Config c = swim::Config::for_profile(opts_.profile);
  c.name = slots_[i].name;
  c.advertise = slots_[i].addr;
  c.compress_streams = opts_.compress_streams;
  if (opts_.configure) opts_.configure(i, c);
  return c;
}

void Cluster::boot(NodeId i) {
  Slot& s = slots_[i];
  s.node = std::make_unique<swim::Node>(make_config(i), derive_seed(opts_.seed, i, s.restarts));
  ++s.gen;
  s.status = NodeStatus::Running;
  s.leaving = false;
  s.wake_at = Time::max();
  s.wake_token = 0;
  s.join_pending = 0;
  s.join_any_ok = false;
  s.streams.clear();
  if (s.restarts > 0) s.disturbed_at = now_;
  view_[i].assign(view_[i].size(), kUnknown);
  s.node->start(now_, s.meta);
  after_input(i);
}

void Cluster::start(NodeId i) {
  if (slots_[i].status == NodeStatus::Created) boot(i);
}

void Cluster::do_join(NodeId i) {
  Slot& s = slots_[i];
  if (s.status != NodeStatus::Running) return;
  std::vector<swim::Address> addrs;
  for (NodeId seed : s.seeds) {
    if (seed != i) addrs.push_back(slots_[seed].addr);
  }
  if (addrs.empty()) return;
  ++counters_.joins;
  s.join_pending += addrs.size();
  s.join_any_ok = false;
  s.node->join(now_, addrs);
  after_input(i);
}

void Cluster::join(NodeId i, const std::vector<NodeId>& seeds) {
  slots_[i].seeds = seeds;
  if (slots_[i].status == NodeStatus::Created) boot(i);
  do_join(i);
}

void Cluster::join_all_through(const std::vector<NodeId>& seeds) {
  cluster_seeds_ = seeds;
  for (NodeId s : seeds) {
    slots_[s].seeds = seeds;
    start(s);
  }
  for (NodeId s : seeds) do_join(s);
  std::size_t k = 0;
  for (NodeId i = 0; i < slots_.size(); ++i) {
    Slot& s = slots_[i];
    if (s.status != NodeStatus::Created ||
        std::find(seeds.begin(), seeds.end(), i) != seeds.end()) {
      continue;
    }
    s.seeds = seeds;
    if (opts_.join_stagger == Duration::zero()) {
      boot(i);
      do_join(i);
    } else {
      ++k;
      schedule(now_ + opts_.join_stagger * static_cast<Duration::rep>(k), EvKind::Join, i, s.gen,
               0);
    }
  }
}

// --- faults -----------------------------------------------------------------

void Cluster::destroy(NodeId i, NodeStatus status) {
  Slot& s = slots_[i];
  if (s.node) add_stats(retired_stats_, s.node->stats());
  s.node.reset();
  s.status = status;
  s.leaving = false;
  ++s.gen;
  for (const Event& ev : s.inbox) {
    if (ev.payload != kNoPayload) free_payload(ev.payload);
  }
  s.inbox.clear();
  s.inbox_bytes = 0;
  s.streams.clear();
  s.wake_at = Time::max();
  s.wake_token = 0;
  s.disturbed_at = now_;
  view_[i].assign(view_[i].size(), kUnknown);
  // An observer fewer may complete someone's "dead everywhere".
  std::vector<NodeId> open;
  for (const auto& [subject, idx] : open_kills_) open.push_back(subject);
  std::sort(open.begin(), open.end());
  for (NodeId subject : open) check_kill(subject);
}

void Cluster::crash(NodeId i) {
  Slot& s = slots_[i];
  if (s.status != NodeStatus::Running && s.status != NodeStatus::Paused) return;
  kills_.push_back(KillRecord{i, now_, std::nullopt});
  open_kills_[i] = kills_.size() - 1;
  destroy(i, NodeStatus::Crashed);
}

void Cluster::pause(NodeId i) {
  if (slots_[i].status == NodeStatus::Running) slots_[i].status = NodeStatus::Paused;
}

void Cluster::resume(NodeId i) {
  Slot& s = slots_[i];
  if (s.status != NodeStatus::Paused) return;
  s.status = NodeStatus::Running;
  s.disturbed_at = now_;
  // What the kernel buffered while the process was stopped is read first,
  // in arrival order; then the overdue timers run.
  std::vector<Event> inbox = std::move(s.inbox);
  s.inbox.clear();
  s.inbox_bytes = 0;
  for (Event& ev : inbox) {
    ev.at = now_;
    if (slots_[i].status != NodeStatus::Running) {
      if (ev.payload != kNoPayload) free_payload(ev.payload);
      continue;
    }
    deliver(i, ev);
  }
  if (slots_[i].status == NodeStatus::Running) {
    ++counters_.wakeups;
    slots_[i].node->on_timer(now_);
    after_input(i, true);
  }
}

void Cluster::restart(NodeId i, std::vector<NodeId> seeds) {
  Slot& s = slots_[i];
  if (s.status == NodeStatus::Running || s.status == NodeStatus::Paused) {
    destroy(i, NodeStatus::Crashed);
  }
  open_kills_.erase(i);
  ++s.restarts;
  if (!seeds.empty()) {
    s.seeds = std::move(seeds);
  } else if (s.seeds.empty() || (s.seeds.size() == 1 && s.seeds[0] == i)) {
    s.seeds = cluster_seeds_;
  }
  bool any_other = false;
  for (NodeId x : s.seeds) any_other = any_other || x != i;
  if (!any_other) {
    for (NodeId x = 0; x < slots_.size(); ++x) {
      if (x != i && slots_[x].status == NodeStatus::Running) {
        s.seeds = {x};
        break;
      }
    }
  }
  boot(i);
  do_join(i);
}

void Cluster::leave(NodeId i) {
  Slot& s = slots_[i];
  if (s.status != NodeStatus::Running || s.leaving) return;
  s.leaving = true;
  s.node->leave(now_);
  const std::uint32_t gen = s.gen;
  after_input(i);
  if (slots_[i].leaving && slots_[i].gen == gen) {
    schedule(now_ + opts_.leave_timeout, EvKind::LeaveTimeout, i, gen, 0);
  }
}

bool Cluster::set_meta(NodeId i, swim::Bytes meta) {
  Slot& s = slots_[i];
  if (s.status != NodeStatus::Running) return false;
  const bool ok = s.node->set_meta(now_, meta);
  if (ok) s.meta = std::move(meta);
  after_input(i);
  return ok;
}

void Cluster::partition_groups(const std::vector<std::vector<NodeId>>& groups) {
  net_.partition(groups);
}
void Cluster::inject_packet(NodeId to, const swim::Address& from, swim::ByteView bytes) {
  if (!is_live(to)) return;
  slots_[to].node->on_packet(now_, from, bytes);
  after_input(to);
}

void Cluster::heal() { net_.heal(); }
void Cluster::block(NodeId from, NodeId to) { net_.block(from, to); }
void Cluster::unblock(NodeId from, NodeId to) { net_.unblock(from, to); }

// --- the event loop -------------------------------------------------------------

std::uint32_t Cluster::alloc_payload() {
  if (!free_payloads_.empty()) {
    const std::uint32_t idx = free_payloads_.back();
    free_payloads_.pop_back();
    return idx;
  }
  payloads_.emplace_back();
  return static_cast<std::uint32_t>(payloads_.size() - 1);
}

void Cluster::free_payload(std::uint32_t idx) {
  Payload& p = payloads_[idx];
  p.bytes.clear();  // keeps the capacity for the next packet
  p.failed = false;
  free_payloads_.push_back(idx);
}

void Cluster::schedule(Time at, EvKind kind, NodeId node, std::uint32_t gen, std::uint64_t aux,
                       std::uint32_t payload) {
  Event e;
  e.at = std::max(at, now_);
  e.seq = ++next_seq_;
  e.aux = aux;
  e.node = static_cast<std::uint32_t>(node);
  e.gen = gen;
  e.payload = payload;
  e.kind = kind;
  queue_.push(e);
}

void Cluster::run_until(Time t) {
  while (!queue_.empty() && queue_.top().at <= t) {
    Event ev = queue_.pop();
    now_ = ev.at;
    dispatch(ev);
  }
  if (t > now_) now_ = t;
}

bool Cluster::wait_until(const std::function<bool()>& pred, Duration timeout) {
  const Time end = now_ + timeout;
  if (pred()) return true;
  while (now_ < end) {
    run_until(std::min(end, now_ + opts_.poll_step));
    if (pred()) return true;
  }
  return false;
}

void Cluster::hash_event(const Event& ev, std::size_t size, const std::uint8_t* bytes) {
  auto mix = [this](std::uint64_t v) {
    trace_hash_ = (trace_hash_ ^ v) * 0x100000001b3ull;
    trace_hash_ ^= trace_hash_ >> 29;
  };
  mix(static_cast<std::uint64_t>(ev.at.time_since_epoch().count()));
  mix((static_cast<std::uint64_t>(ev.kind) << 32) | ev.node);
  mix(size);
  if (opts_.hash_payloads && bytes != nullptr) {
    std::size_t k = 0;
    for (; k + 8 <= size; k += 8) {
      std::uint64_t w;
      std::memcpy(&w, bytes + k, 8);
      mix(w);
    }
    std::uint64_t tail = 0;
    std::memcpy(&tail, bytes + k, size - k);
    mix(tail);
  }
  if (opts_.trace != nullptr) {
    *opts_.trace << (ev.at - epoch_).count() << "us " << kind_name(ev.kind) << " n" << ev.node
                 << " " << size << "B\n";
  }
}

void Cluster::dispatch(Event& ev) {
  ++counters_.sim_events;
  const NodeId i = ev.node;
  Slot& s = slots_[i];
  switch (ev.kind) {
    case EvKind::Wake:
      if (ev.gen != s.gen || ev.aux != s.wake_token) {
        ++counters_.stale_wakeups;
        return;
      }
      s.wake_at = Time::max();
      s.wake_token = 0;
      if (s.status != NodeStatus::Running) return;  // paused: resume() runs the timers
      ++counters_.wakeups;
      hash_event(ev, 0, nullptr);
      s.node->on_timer(now_);
      after_input(i, true);
      return;
    case EvKind::Packet:
    case EvKind::StreamRequest:
      // Not bound to one Node: whatever listens at the address when the
      // bytes arrive gets them (a restarted node receives what was in
      // flight to its predecessor).
      if (s.status == NodeStatus::Paused) {
        const std::size_t size = payloads_[ev.payload].bytes.size();
        if (ev.kind == EvKind::Packet) {
          if (s.inbox_bytes + size > net_.options().pause_buffer_bytes) {
            ++counters_.pause_buffer_drops;
            free_payload(ev.payload);
            return;
          }
          ++counters_.packets_queued_paused;
          s.inbox_bytes += size;
        }
        s.inbox.push_back(ev);
        return;
      }
      if (s.status != NodeStatus::Running) {
        if (ev.kind == EvKind::Packet) ++counters_.packets_to_down;
        free_payload(ev.payload);
        return;
      }
      deliver(i, ev);
      return;
    case EvKind::StreamReply:
    case EvKind::StreamTimeout:
    case EvKind::Join:
      if (ev.gen != s.gen) {
        if (ev.payload != kNoPayload) free_payload(ev.payload);
        return;
      }
      if (s.status == NodeStatus::Paused) {
        s.inbox.push_back(ev);
        return;
      }
      if (ev.kind == EvKind::Join && s.status == NodeStatus::Created) boot(i);
      if (slots_[i].status != NodeStatus::Running) {
        if (ev.payload != kNoPayload) free_payload(ev.payload);
        return;
      }
      deliver(i, ev);
      return;
    case EvKind::LeaveTimeout:
      if (ev.gen == s.gen && s.leaving) destroy(i, NodeStatus::Left);
      return;
  }
}

void Cluster::deliver(NodeId i, Event& ev) {
  Slot& s = slots_[i];
  switch (ev.kind) {
    case EvKind::Packet: {
      Payload& p = payloads_[ev.payload];
      hash_event(ev, p.bytes.size(), p.bytes.data());
      ++counters_.packets_delivered;
      if (opts_.packet_tap) opts_.packet_tap(now_, p.peer, i, p.bytes);
      s.node->on_packet(now_, slots_[p.peer].addr, p.bytes);
      free_payload(ev.payload);
      after_input(i);
      return;
    }
    case EvKind::StreamRequest: serve_stream(i, ev); return;
    case EvKind::StreamReply: {
      const std::uint32_t idx = ev.payload;
      auto it = s.streams.find(payloads_[idx].stream_id);
      if (it == s.streams.end()) {  // already timed out
        free_payload(idx);
        return;
      }
      s.streams.erase(it);
      Payload& p = payloads_[idx];
      hash_event(ev, p.bytes.size(), p.bytes.data());
      if (p.failed) {
        ++counters_.streams_failed;
        s.node->on_stream_failed(now_, p.stream_id);
      } else {
        ++counters_.streams_replied;
        s.node->on_stream_reply(now_, p.stream_id, p.bytes);
      }
      free_payload(idx);
      after_input(i);
      return;
    }
    case EvKind::StreamTimeout: {
      auto it = s.streams.find(ev.aux);
      if (it == s.streams.end()) return;  // answered in time
      s.streams.erase(it);
      hash_event(ev, 0, nullptr);
      ++counters_.streams_failed;
      s.node->on_stream_failed(now_, ev.aux);
      after_input(i);
      return;
    }
    case EvKind::Join:
      hash_event(ev, 0, nullptr);
      do_join(i);
      return;
    case EvKind::Wake:
    case EvKind::LeaveTimeout: return;
  }
}

void Cluster::serve_stream(NodeId to, Event& ev) {
  const std::uint32_t idx = ev.payload;
  ++counters_.streams_delivered;
  {
    const Payload& p = payloads_[idx];
    hash_event(ev, p.bytes.size(), p.bytes.data());
  }
  const NodeId initiator = payloads_[idx].peer;
  swim::StreamAnswer answer =
      slots_[to].node->on_stream(now_, slots_[initiator].addr, payloads_[idx].bytes);
  after_input(to);
  // after_input may have grown the pool: no references across it.
  Payload& p = payloads_[idx];
  if (!p.expects_reply) {
    free_payload(idx);
    return;
  }
  switch (answer.status) {
    case swim::StreamAnswer::Status::Reply: {
      auto at = net_.reply_arrival(now_, to, initiator, answer.reply.size(), p.deadline);
      if (!at) break;  // the initiator times out at its deadline
      p.bytes = std::move(answer.reply);
      p.failed = false;
      schedule(*at, EvKind::StreamReply, initiator, p.peer_gen, 0, idx);
      return;
    }
    case swim::StreamAnswer::Status::Close: {
      // The server closed without answering: the initiator reads EOF.
      auto at = net_.reply_arrival(now_, to, initiator, 0, p.deadline);
      if (!at) break;
      p.bytes.clear();
      p.failed = true;
      schedule(*at, EvKind::StreamReply, initiator, p.peer_gen, 0, idx);
      return;
    }
    case swim::StreamAnswer::Status::NeedMore:
      // Everything the initiator wrote is there: a complete stream that the
      // server still finds incomplete is a codec disagreement. The server
      // would wait for its read timeout; the initiator for its deadline.
      ++counters_.stream_need_more;
      break;
  }
  free_payload(idx);
}

void Cluster::after_input(NodeId i, bool after_timer) {
  Slot& s = slots_[i];
  swim::Node& n = *s.node;
  {
    auto packets = n.drain_packets();
    for (auto& p : packets) send_packet(i, std::move(p));
  }
  {
    auto streams = n.drain_streams();
    for (auto& st : streams) open_stream(i, std::move(st));
  }
  {
    auto evs = n.drain_events();
    for (const auto& e : evs) record_event(i, e);
  }
  {
    auto joins = n.drain_join_results();
    for (const auto& r : joins) {
      if (s.join_pending > 0) --s.join_pending;
      if (r.ok) {
        s.join_any_ok = true;
      } else {
        ++counters_.join_failures;
      }
      if (s.join_pending == 0 && !s.join_any_ok && opts_.retry_join_interval > Duration::zero()) {
        schedule(now_ + opts_.retry_join_interval, EvKind::Join, i, s.gen, 0);
      }
    }
  }
  counters_.user_data += n.drain_user_data().size();
  if (s.leaving && n.leave_done()) {
    destroy(i, NodeStatus::Left);
    return;
  }
  Time d = n.next_deadline();
  if (d == Time::max()) return;
  if (d <= now_) {
    if (after_timer) {
      // on_timer(now) left work due at or before now: a core bug; step
      // forward rather than spin.
      ++counters_.deadline_not_advanced;
      d = now_ + std::chrono::milliseconds(1);
    } else {
      d = now_;
    }
  }
  if (s.wake_token != 0 && s.wake_at <= d) return;
  s.wake_at = d;
  s.wake_token = ++next_token_;
  schedule(d, EvKind::Wake, i, s.gen, s.wake_token);
}

void Cluster::send_packet(NodeId from, swim::OutPacket&& p) {
  const std::size_t size = p.bytes.size();
  ++counters_.packets_sent;
  counters_.bytes_sent += size;
  if (size > slots_[from].node->config().udp_buffer_size + kPacketSlack)
    ++counters_.packets_oversize;
  const auto to = node_at(p.to);
  if (!to) {
    ++counters_.packets_to_down;
    return;
  }
  if (net_.drop_packet(from, *to)) return;
  if (!net_.apply_mtu(p.bytes)) return;
  if (net_.duplicate_packet()) {
    const std::uint32_t dup = alloc_payload();
    payloads_[dup].bytes = p.bytes;
    payloads_[dup].peer = from;
    schedule(now_ + net_.packet_latency(from, *to, p.bytes.size()), EvKind::Packet, *to, 0, 0, dup);
  }
  const Time at = now_ + net_.packet_latency(from, *to, p.bytes.size());
  const std::uint32_t idx = alloc_payload();
  payloads_[idx].bytes = std::move(p.bytes);
  payloads_[idx].peer = from;
  schedule(at, EvKind::Packet, *to, 0, 0, idx);
}

void Cluster::open_stream(NodeId from, swim::OutStream&& st) {
  Slot& a = slots_[from];
  ++counters_.streams_opened;
  counters_.stream_bytes += st.bytes.size();
  if (st.expects_reply) {
    if (!a.streams.emplace(st.id, PendingStream{st.deadline}).second) {
      ++counters_.stream_unknown_id;
    }
  }
  const auto to = node_at(st.to);
  const Time connect_by = now_ + net_.options().connect_timeout;
  StreamTiming t;
  t.fail_at = std::min(connect_by, st.deadline);
  // A crashed host answers no SYN; a paused one does (the kernel accepts).
  const bool up =
      to && (slots_[*to].status == NodeStatus::Running || slots_[*to].status == NodeStatus::Paused);
  if (up) t = net_.stream_timing(now_, from, *to, st.bytes.size(), connect_by, st.deadline);
  if (!t.connected) {
    if (st.expects_reply) schedule(t.fail_at, EvKind::StreamTimeout, from, a.gen, st.id);
    return;
  }
  const std::uint32_t idx = alloc_payload();
  Payload& p = payloads_[idx];
  p.bytes = std::move(st.bytes);
  p.stream_id = st.id;
  p.deadline = st.deadline;
  p.peer = from;
  p.peer_gen = a.gen;
  p.expects_reply = st.expects_reply;
  schedule(t.request_arrives, EvKind::StreamRequest, *to, 0, 0, idx);
  if (st.expects_reply) schedule(st.deadline, EvKind::StreamTimeout, from, a.gen, st.id);
}

// --- observation ------------------------------------------------------------------

Duration Cluster::false_death_window() const {
  const auto& c = base_config_;
  return swim::suspicion_timeout(c.suspicion_mult, std::max<std::size_t>(1, slots_.size()),
                                 c.probe_interval) *
             c.suspicion_max_timeout_mult +
         10 * c.probe_interval;
}

void Cluster::record_event(NodeId observer, const swim::MemberEvent& e) {
  auto it = by_name_.find(e.member.name);
  if (it == by_name_.end()) return;
  const NodeId subject = it->second;
  const auto k = static_cast<std::size_t>(e.kind);
  if (k < std::size(counters_.member_events)) ++counters_.member_events[k];
  EventRecord r{now_, observer, subject, e.kind, e.member.incarnation};
  {
    auto mix = [this](std::uint64_t v) {
      trace_hash_ = (trace_hash_ ^ v) * 0x100000001b3ull;
      trace_hash_ ^= trace_hash_ >> 29;
    };
    mix((static_cast<std::uint64_t>(observer) << 40) ^ (static_cast<std::uint64_t>(subject) << 8) ^
        k);
    mix(e.member.incarnation);
  }
  if (e.kind != EventKind::Conflict && subject != observer) {
    auto& row = view_[observer];
    if (row.size() < slots_.size()) row.resize(slots_.size(), kUnknown);
    row[subject] = static_cast<std::uint8_t>(e.member.state);
  }
  if (e.kind == EventKind::Dead && subject != observer) {
    const Slot& s = slots_[subject];
    const bool running = s.status == NodeStatus::Running && !s.leaving;
    const bool recently_disturbed =
        s.disturbed_at != Time::min() && now_ - s.disturbed_at < false_death_window();
    if (running && !recently_disturbed) {
      ++counters_.false_deaths;
      false_death_events_.push_back(r);
    }
  }
  if ((e.kind == EventKind::Dead || e.kind == EventKind::Left) && open_kills_.contains(subject)) {
    check_kill(subject);
  }
  if (opts_.record_events) events_.push_back(r);
  for (const auto& f : listeners_) f(r);
}

MemberState Cluster::view(NodeId observer, NodeId subject, bool& known) const {
  const auto& row = view_[observer];
  if (subject >= row.size() || row[subject] == kUnknown) {
    known = false;
    return MemberState::Dead;
  }
  known = true;
  return static_cast<MemberState>(row[subject]);
}

void Cluster::check_kill(NodeId subject) {
  auto it = open_kills_.find(subject);
  if (it == open_kills_.end()) return;
  for (NodeId o = 0; o < slots_.size(); ++o) {
    if (o == subject || slots_[o].status != NodeStatus::Running) continue;
    bool known = false;
    const MemberState st = view(o, subject, known);
    if (known && st != MemberState::Dead && st != MemberState::Left) return;
  }
  kills_[it->second].dead_everywhere = now_;
  open_kills_.erase(it);
}

std::optional<MemberState> Cluster::state_of(NodeId subject, NodeId observer) const {
  const Slot& o = slots_[observer];
  if (!o.node) return std::nullopt;
  const swim::Member* m = o.node->member(slots_[subject].name);
  if (m == nullptr) return std::nullopt;
  return m->state;
}

bool Cluster::everyone_sees(NodeId subject, MemberState want) const {
  for (NodeId o = 0; o < slots_.size(); ++o) {
    if (o == subject || slots_[o].status != NodeStatus::Running) continue;
    const auto st = state_of(subject, o);
    if (!st) {
      // A reaped member is as dead (or left) as it gets.
      if (want == MemberState::Dead || want == MemberState::Left) continue;
      return false;
    }
    if (*st != want) return false;
  }
  return true;
}

bool Cluster::all_see_alive() const {
  for (NodeId o = 0; o < slots_.size(); ++o) {
    if (slots_[o].status != NodeStatus::Running) continue;
    const auto& row = view_[o];
    for (NodeId x = 0; x < slots_.size(); ++x) {
      if (x == o) continue;
      const NodeStatus st = slots_[x].status;
      if (st != NodeStatus::Running && st != NodeStatus::Paused) continue;
      if (x >= row.size() || row[x] != static_cast<std::uint8_t>(MemberState::Alive)) return false;
    }
  }
  return true;
}

std::size_t Cluster::live_count() const {
  std::size_t n = 0;
  for (const auto& s : slots_) n += s.status == NodeStatus::Running ? 1 : 0;
  return n;
}

std::size_t Cluster::count_events(EventKind kind, std::optional<NodeId> subject,
                                  std::optional<NodeId> observer, Time since) const {
  std::size_t n = 0;
  for (const auto& e : events_) {
    if (e.kind != kind || e.at < since) continue;
    if (subject && e.subject != *subject) continue;
    if (observer && e.observer != *observer) continue;
    ++n;
  }
  return n;
}

swim::NodeStats Cluster::total_node_stats() const {
  swim::NodeStats t = retired_stats_;
  for (const auto& s : slots_) {
    if (s.node) add_stats(t, s.node->stats());
  }
  return t;
}

std::string Cluster::check_views_for_test() const {
  for (NodeId o = 0; o < slots_.size(); ++o) {
    if (slots_[o].status != NodeStatus::Running) continue;
    const swim::Node& n = *slots_[o].node;
    for (NodeId x = 0; x < slots_.size(); ++x) {
      if (x == o) continue;
      bool known = false;
      const MemberState v = view(o, x, known);
      const swim::Member* m = n.member(slots_[x].name);
      std::ostringstream out;
      if (m == nullptr) {
        if (known && v != MemberState::Dead && v != MemberState::Left) {
          out << name(o) << " has no member " << name(x) << " but its last event said "
              << swim::to_string(v);
          return out.str();
        }
        continue;
      }
      if (!known) {
        out << name(o) << " has member " << name(x) << " (" << swim::to_string(m->state)
            << ") without any event about it";
        return out.str();
      }
      if (m->state != v) {
        out << name(o) << " sees " << name(x) << " " << swim::to_string(m->state)
            << " but its last event said " << swim::to_string(v);
        return out.str();
      }
    }
  }
  return {};
}

}  // namespace mesh::sim
