// A peer's connection: its DEALER and the monitor that reports what
// happens to it, and the states (Connecting, Connected, Disconnected,
// Unreachable) those events move it through, with the DEALER re-created
// after a backoff when libzmq gives up on it.
#include "loop.hpp"

#include <limits>

#include <malloc.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <string>

#include "request_channel.hpp"
#include "zmq_io.hpp"
#include "zmq_options.hpp"

namespace mesh::transport::detail {

namespace {

constexpr std::int64_t kTrimDelayMs = 5000;

constexpr int kMonitorEvents = ZMQ_EVENT_CONNECTED | ZMQ_EVENT_CONNECT_RETRIED | ZMQ_EVENT_DISCONNECTED |
                               ZMQ_EVENT_CLOSED | ZMQ_EVENT_HANDSHAKE_SUCCEEDED |
                               ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                               ZMQ_EVENT_HANDSHAKE_FAILED_AUTH;

std::atomic<std::uint64_t> g_inproc_serial{0};

std::string unique_inproc(std::string_view what) {
  return "inproc://mesh-" + std::string(what) + "-" +
         std::to_string(g_inproc_serial.fetch_add(1, std::memory_order_relaxed));
}

bool is_loopback(std::string_view host) {
  return host.starts_with("127.") || host == "::1" || host == "localhost";
}

}  // namespace

void Loop::on_add_peer(CmdAddPeer& c) {
  auto it = peers_.find(c.peer->name);
  if (it != peers_.end() && it->second->shared != c.peer) {
    // A stale entry of a removed peer (its CmdRemovePeer is always queued
    // before a re-add, so this only happens if that was lost): replace.
    fail_peer(*it->second, ErrorCode::PeerDead);
    close_dealer(*it->second);
    disown_key(it->second->address.curve_public_key, it->second->shared->name);
    peers_.erase(it);
    it = peers_.end();
  }
  if (c.peer->removed.load() != ErrorCode::None) return;  // removed again meanwhile
  if (it == peers_.end()) {
    auto p = std::make_unique<Peer>();
    p->shared = c.peer;
    p->address = std::move(c.address);
    own_key(p->address.curve_public_key, p->shared->name);
    Peer& ref = *p;
    peers_.emplace(ref.shared->name, std::move(p));
    if (options_.idle_disconnect.count() > 0) {
      set_state(ref, PeerState::Idle);  // connected by its first message
      return;
    }
    set_state(ref, c.peer->state.load());
    open_dealer(ref);
    return;
  }
  Peer& p = *it->second;
  const PeerAddress& a = c.address;
  if (a.host == p.address.host && a.port == p.address.port && a.curve_public_key == p.address.curve_public_key) {
    // Same place: nudge a peer we gave up on (libzmq retries on its own
    // otherwise).
    if (p.state == PeerState::Unreachable && p.rebuild_at_ms != 0) p.rebuild_at_ms = steady_now_ms();
    return;
  }
  // Moved or re-keyed: requests in flight went over the old connection and
  // their replies cannot come back; queued frames go to the new address.
  fail_pending_to(p.shared.get(), ErrorCode::PeerUnreachable);
  p.shared->note_failure();
  close_dealer(p);
  // A new key revokes the old one: frames from connections made with it
  // are refused from now on (node_of).
  disown_key(p.address.curve_public_key, p.shared->name);
  p.address = std::move(c.address);
  own_key(p.address.curve_public_key, p.shared->name);
  p.backoff_ms = 0;
  p.rebuild_at_ms = 0;
  p.refused_since_ms = 0;
  if (options_.idle_disconnect.count() > 0 && !p.has_output()) {
    set_state(p, PeerState::Idle);
    return;
  }
  set_state(p, PeerState::Connecting);
  open_dealer(p);
}

void Loop::connect_on_demand(Peer& p) {
  if (p.state != PeerState::Idle) return;
  set_state(p, PeerState::Connecting);
  p.used = true;
  open_dealer(p);
}

void Loop::close_idle(std::int64_t now) {
  next_idle_ms_ = INT64_MAX;
  const std::int64_t idle = options_.idle_disconnect.count();
  if (idle <= 0) return;
  const std::int64_t spare_after = options_.idle_spare.count();
  const auto close = [&](Peer& p) {
    close_dealer(p);
    p.shared->channels->drop_free();  // their connections heartbeat too
    set_state(p, PeerState::Idle);
    bump(core_->counters.connections_closed_idle);
    arm_trim(now);
  };
  spare_.clear();
  std::int64_t next_spare = INT64_MAX;  // when the next one becomes spare
  std::size_t not_yet_spare = 0;
  for (auto& [name, p] : peers_) {
    // Read before the marks of use: a caller's direct send marks the peer
    // used before it gives its place in the queue back.
    const bool nothing_waits = p->shared->queued.load(std::memory_order_acquire) == 0 &&
                               p->shared->pending_main.load(std::memory_order_acquire) == 0 &&
                               !p->has_output();
    if (p->shared->used.load(std::memory_order_relaxed) && p->shared->used.exchange(false)) p->used = true;
    // A direct notify since the top of the loop (it is consumed there).
    if (p->shared->dealer_used.load(std::memory_order_acquire)) p->used = true;
    if (p->used) {
      p->used = false;
      p->last_used_ms = now;
    }
    // A connection something waits on is looked at again when that ends
    // (its answer or its deadline wakes this thread).
    if (!p->dealer || p->state != PeerState::Connected || !nothing_waits) continue;
    if (now - p->last_used_ms >= idle) {
      close(*p);
      continue;
    }
    next_idle_ms_ = std::min(next_idle_ms_, p->last_used_ms + idle);
    if (spare_after <= 0) continue;
    if (now - p->last_used_ms >= spare_after) {
      spare_.push_back(p.get());
    } else {
      ++not_yet_spare;
      next_spare = std::min(next_spare, p->last_used_ms + spare_after);
    }
  }
  const std::size_t keep = options_.idle_spare_max;
  if (spare_.size() > keep) {
    // The least recently used go.
    const auto cut = spare_.end() - static_cast<std::ptrdiff_t>(keep);
    std::nth_element(spare_.begin(), cut, spare_.end(),
                     [](const Peer* a, const Peer* b) { return a->last_used_ms < b->last_used_ms; });
    for (auto it = spare_.begin(); it != cut; ++it) close(**it);
    spare_.erase(spare_.begin(), cut);
  }
  // Once more connections are spare than places, one goes: look again
  // when the next one becomes spare (early at worst, never late).
  if (spare_after > 0 && spare_.size() + not_yet_spare > keep) next_idle_ms_ = std::min(next_idle_ms_, next_spare);
}

// A connection's buffers and pipes (some 60 KB each in libzmq, freed by
// its reaper thread after the close) go back to malloc, which keeps them:
// a node that once talked to 100 peers kept ~6 MB it no longer used.
// malloc_trim hands free pages back; it costs a walk over the heap, so it
// runs once, a few seconds after the last close of a burst (sooner when
// connections are closed after less idle time than that), never on a
// timer of its own.
void Loop::arm_trim(std::int64_t now) {
  const std::int64_t idle = options_.idle_disconnect.count();
  trim_at_ms_ = now + (idle > 0 ? std::min(kTrimDelayMs, idle) : kTrimDelayMs);
}

void Loop::trim_if_due(std::int64_t now) {
  if (now < trim_at_ms_) return;
  trim_at_ms_ = INT64_MAX;
#if defined(__GLIBC__)
  ::malloc_trim(0);
  bump(core_->counters.memory_trims);
#endif
}

void Loop::on_remove_peer(CmdRemovePeer& c) {
  auto it = peers_.find(c.peer->name);
  if (it == peers_.end() || it->second->shared != c.peer) return;
  Peer& p = *it->second;
  fail_peer(p, c.reason);
  if (p.dealer) arm_trim(steady_now_ms());  // a dead or departed peer's buffers
  if (p.state == PeerState::Connected) drop(core_->counters.peers_connected);
  p.shared->channels->close();
  close_dealer(p);
  disown_key(p.address.curve_public_key, p.shared->name);
  expire_held(p.shared->name, std::numeric_limits<std::int64_t>::max());
  peers_.erase(it);
}

void Loop::open_dealer(Peer& p) {
  const bool curve = options_.curve.has_value();
  if (curve && !is_valid_curve_key(p.address.curve_public_key)) {
    // CURVE is on and the peer has no (valid) key: we cannot authenticate
    // it, so it stays Unreachable until add_peer gives one.
    set_state(p, PeerState::Unreachable);
    return;
  }
  zmq::context_t& ctx = *core_->zmq_context;
  const std::string monitor_endpoint = unique_inproc("mon");
  const std::string endpoint = endpoint_for(p.address);
  bool ok = false;
  try {
    p.dealer = zmq::socket_t(ctx, zmq::socket_type::dealer);
    ok = configure_dealer(p.dealer, options_, options_.node_name, p.address.curve_public_key,
                          is_ipv6(p.address.host));
    // The monitor is attached before connect() so that no event is missed.
    // The C call stays: cppzmq's monitor_t owns the PAIR and reads it in a
    // poll loop of its own, where ours polls the PAIR beside every other
    // socket; attaching is all we need.
    ok = ok && zmq_socket_monitor(p.dealer.handle(), monitor_endpoint.c_str(), kMonitorEvents) == 0;
    if (ok) {
      p.monitor = zmq::socket_t(ctx, zmq::socket_type::pair);
      p.monitor.set(zmq::sockopt::linger, 0);
      p.monitor.connect(monitor_endpoint);
      p.dealer.connect(endpoint);
    }
  } catch (const zmq::error_t&) {
    ok = false;
  }
  if (ok) {
    p.dealer_fd = socket_fd(p.dealer);
    p.monitor_fd = socket_fd(p.monitor);
    ok = p.dealer_fd >= 0 && p.monitor_fd >= 0;
    p.dealer_check = true;
    p.monitor_check = true;
  }
  if (ok) {
    p.shared->channels->set_target(endpoint, p.address.curve_public_key);
    std::lock_guard lock(p.shared->dealer_mu);
    p.shared->dealer = p.dealer;  // callers may send notifies on it now
  }
  if (!ok) {
    // A bad address (unparsable host) or a resource limit: Unreachable,
    // retried with the same backoff as a refused handshake.
    close_dealer(p);
    set_state(p, PeerState::Unreachable);
    fail_peer(p, ErrorCode::PeerUnreachable);
    schedule_rebuild(p, steady_now_ms());
  }
}

void Loop::close_dealer(Peer& p) {
  {
    // Taken back from callers first: once this lock is released no caller
    // holds or can reach the socket.
    std::lock_guard lock(p.shared->dealer_mu);
    p.shared->dealer = nullptr;
  }
  if (p.dealer) zmq_socket_monitor(p.dealer.handle(), nullptr, 0);
  if (p.monitor) {
    for (;;) {
      zmq::message_t m;
      if (!recv_now(p.monitor, m)) break;
    }
  }
  p.monitor.close();
  p.dealer.close();
  p.dealer_fd = -1;
  p.monitor_fd = -1;
  p.dealer_check = false;
  p.monitor_check = false;
}

std::string Loop::endpoint_for(const PeerAddress& a) const {
  if (!options_.ipc_dir.empty() &&
      (is_loopback(a.host) || (a.host == options_.bind_address && options_.bind_address != "*"))) {
    const std::string path = options_.ipc_dir + "/" + a.name + ".zmq";
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) return "ipc://" + path;
  }
  return tcp_endpoint(a.host, a.port);
}

bool Loop::read_monitor(Peer& p) {
  for (int i = 0; i < kRecvBatch && p.monitor; ++i) {
    zmq::message_t head;
    if (!recv_now(p.monitor, head)) return true;
    std::uint16_t event = 0;
    const auto bytes = bytes_of(head);
    if (bytes.size() >= sizeof event) std::memcpy(&event, bytes.data(), sizeof event);
    if (head.more()) drain_multipart(p.monitor);
    on_monitor_event(p, event);
  }
  return !p.monitor;
}

void Loop::on_monitor_event(Peer& p, std::uint16_t event) {
  switch (event) {
    case ZMQ_EVENT_HANDSHAKE_SUCCEEDED:
      p.backoff_ms = 0;
      p.rebuild_at_ms = 0;
      p.refused_since_ms = 0;
      set_state(p, PeerState::Connected);
      flush(p);
      break;
    case ZMQ_EVENT_DISCONNECTED:
      // A connection that had completed its handshake is gone (peer
      // closed, killed, or silent past the heartbeat timeout). Whatever was
      // in flight on it is lost: fail fast. libzmq reconnects by itself.
      if (p.state == PeerState::Connected) {
        set_state(p, PeerState::Disconnected);
        fail_peer(p, ErrorCode::PeerUnreachable);
      }
      break;
    case ZMQ_EVENT_CONNECT_RETRIED:
    case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
      if (p.state != PeerState::Connected) {
        set_state(p, PeerState::Unreachable);
        fail_peer(p, ErrorCode::PeerUnreachable);
      }
      break;
    case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
      // A ZAP handler cannot say "not yet" (CURVE drops a client answered
      // 300 without a word, which looks like any lost connection), so
      // every refusal is waited out for a while.
      if (refusal_waited(p)) break;
      [[fallthrough]];
    case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
      set_state(p, PeerState::Unreachable);
      fail_peer(p, ErrorCode::PeerUnreachable);
      schedule_rebuild(p, steady_now_ms());
      break;
    default:
      break;  // CONNECTED (TCP only), CLOSED: nothing to decide yet
  }
}

void Loop::set_state(Peer& p, PeerState s) {
  if (p.state == PeerState::Connected && s != PeerState::Connected) drop(core_->counters.peers_connected);
  if (p.state != PeerState::Connected && s == PeerState::Connected) bump(core_->counters.peers_connected);
  p.state = s;
  p.shared->state.store(s, std::memory_order_release);
}

// The peer's ZAP handler refused our key: most likely it has not learnt it
// yet (TransportOptions::refused_handshake_wait). Within the wait from the
// first refusal of a streak the peer keeps its state and its queue, so
// sends wait instead of failing, and the DEALER is made again after the
// first reconnect interval, not a growing backoff: the peer may learn our
// key any moment. Returns false once the wait is over (the caller then
// treats it as a refusal for good).
bool Loop::refusal_waited(Peer& p) {
  const std::int64_t now = steady_now_ms();
  if (p.refused_since_ms == 0) p.refused_since_ms = now;
  if (now - p.refused_since_ms >= options_.refused_handshake_wait.count()) return false;
  bump(core_->counters.handshakes_refused);
  p.backoff_ms = 0;
  schedule_rebuild(p, now);
  return true;
}

void Loop::schedule_rebuild(Peer& p, std::int64_t now_ms) {
  const std::int64_t first = std::max<std::int64_t>(1, options_.reconnect_interval.count());
  const std::int64_t cap = std::max<std::int64_t>(first, options_.reconnect_interval_max.count());
  p.backoff_ms = p.backoff_ms == 0 ? first : std::min(cap, p.backoff_ms * 2);
  p.rebuild_at_ms = now_ms + p.backoff_ms;
}

void Loop::fail_peer(Peer& p, ErrorCode reason) {
  p.shared->note_failure();  // direct requests to it fail too (request_channel.cpp)
  fail_pending_to(p.shared.get(), reason);
  for (auto& queue : p.queues) {
    while (!queue.empty()) {
      OutFrame frame = std::move(queue.front());
      queue.pop_front();
      release_queued(*p.shared, frame.bytes.size());
      reject_frame(frame, p.shared->name, reason);
    }
  }
}

}  // namespace mesh::transport::detail
