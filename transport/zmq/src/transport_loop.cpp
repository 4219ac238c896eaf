// The transport thread. Everything here runs on it, except the constructor
// (before the thread starts) and drain_late_commands() (after it ended).
//
// ZeroMQ traps this file is shaped around (docs/transport.md has the list
// and what was measured):
//   * LINGER defaults to forever: every socket gets LINGER 0, so closing
//     with undelivered frames (an unreachable peer) never blocks.
//   * A monitor writes its events with a blocking send: every monitor PAIR
//     is in the poll set and read whenever it has input, and the monitor is
//     switched off (zmq_socket_monitor(s, nullptr, 0)) before its socket
//     closes.
//   * ROUTER without MANDATORY drops frames to unknown identities silently:
//     MANDATORY is on and every ROUTER send is DONTWAIT, so a vanished
//     requester costs a counter (replies_unroutable), never a block.
//   * A restarted peer reusing its routing id is ignored without
//     ROUTER_HANDOVER: it is on.
//   * Without heartbeats a frozen peer is never noticed: every socket
//     heartbeats, and the handshake and connect have timeouts of the same
//     length, so a peer that accepts TCP but never speaks ZMTP is noticed.
//   * A DEALER queues frames for a connection that is not up (and, before
//     the handshake, may send into it): IMMEDIATE is on and our own bounded
//     per-peer queue holds frames until the handshake has succeeded.
//   * A handshake failing on a protocol error (CURVE refused, mechanism
//     mismatch) ends libzmq's reconnecting for that DEALER (session_base.cpp,
//     engine_error: protocol_error terminates the session): we re-create the
//     DEALER ourselves with a backoff.
#include "transport_loop.hpp"

#include "request_channel.hpp"
#include "zmq_options.hpp"

#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <climits>
#include <limits>
#include <cstring>
#include <utility>

namespace mesh::transport::detail {

namespace {

constexpr int kRecvBatch = 256;       // frames read from one socket per wake-up
// Replies waiting for room in requesters' pipes; past this bound, or past
// TransportOptions::reply_deferral_bytes (in all, or one requester's
// share), they are dropped (replies_dropped). An Error refusing a notify is
// about 70 bytes, so the byte bound is the one a flood meets.
constexpr std::size_t kMaxDeferred = 1000000;
constexpr std::int64_t kDeferredRetryMs = 5;
constexpr int kRcvHwm = 10000;
constexpr int kRouterSndHwm = 10000;
constexpr int kMonitorEvents = ZMQ_EVENT_CONNECTED | ZMQ_EVENT_CONNECT_RETRIED | ZMQ_EVENT_DISCONNECTED |
                               ZMQ_EVENT_CLOSED | ZMQ_EVENT_HANDSHAKE_SUCCEEDED |
                               ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                               ZMQ_EVENT_HANDSHAKE_FAILED_AUTH;
constexpr char kZapEndpoint[] = "inproc://zeromq.zap.01";
constexpr char kZapDomain[] = "mesh";

std::atomic<std::uint64_t> g_inproc_serial{0};

std::string unique_inproc(std::string_view what) {
  return "inproc://mesh-" + std::string(what) + "-" +
         std::to_string(g_inproc_serial.fetch_add(1, std::memory_order_relaxed));
}

TransportError zmq_failure(const std::string& what) {
  return TransportError(what + ": " + zmq_strerror(zmq_errno()));
}

void close_socket(void*& s) {
  if (s) zmq_close(s);
  s = nullptr;
}

std::string z85_to_bin(std::string_view z85) {
  if (!is_valid_curve_key(z85)) return {};
  std::array<std::uint8_t, 32> out{};
  const std::string text(z85);
  if (!zmq_z85_decode(out.data(), text.c_str())) return {};
  return std::string(reinterpret_cast<const char*>(out.data()), out.size());
}

bool is_loopback(std::string_view host) {
  return host.starts_with("127.") || host == "::1" || host == "localhost";
}

// A received frame, released when it goes out of scope.
struct Msg {
  zmq_msg_t m;
  Msg() { zmq_msg_init(&m); }
  ~Msg() { zmq_msg_close(&m); }
  Msg(const Msg&) = delete;
  Msg& operator=(const Msg&) = delete;
  bool recv(void* s) { return zmq_msg_recv(&m, s, ZMQ_DONTWAIT) >= 0; }
  bool more() { return zmq_msg_more(&m) != 0; }
  std::span<const std::uint8_t> bytes() {
    return {static_cast<const std::uint8_t*>(zmq_msg_data(&m)), zmq_msg_size(&m)};
  }
  std::string_view text() { return {static_cast<const char*>(zmq_msg_data(&m)), zmq_msg_size(&m)}; }
};

void drain_multipart(void* s) {
  for (;;) {
    Msg rest;
    if (!rest.recv(s) || !rest.more()) return;
  }
}

std::uint32_t socket_events(void* s) {
  std::uint32_t ev = 0;
  std::size_t size = sizeof ev;
  if (zmq_getsockopt(s, ZMQ_EVENTS, &ev, &size) != 0) return 0;
  return ev;
}
int socket_fd(void* s) {
  int fd = -1;
  std::size_t size = sizeof fd;
  if (zmq_getsockopt(s, ZMQ_FD, &fd, &size) != 0) return -1;
  return fd;
}
// The node a connection at our ROUTER belongs to: its routing id, up to
// the '#' of a request channel ("<node>#<hex>"). Node names cannot
// contain '#' (validate() in transport.cpp).
std::string_view source_node(std::string_view identity) {
  return identity.substr(0, identity.find('#'));
}

ErrorCode code_for(DecodeError e) {
  switch (e) {
    case DecodeError::Oversized: return ErrorCode::Oversized;
    case DecodeError::BadVersion: return ErrorCode::BadVersion;
    default: return ErrorCode::Malformed;
  }
}

}  // namespace

Loop::Loop(std::shared_ptr<Core> core)
    : core_(std::move(core)),
      options_(core_->options),
      dedup_(options_.dedup_window_size, options_.dedup_window_time.count()),
      finished_(4096, std::max<std::int64_t>(options_.dedup_window_time.count(), 60000)) {
  try {
    setup();
  } catch (...) {
    close_all_sockets();
    throw;
  }
}

Loop::~Loop() { close_all_sockets(); }

void Loop::setup() {
  void* ctx = core_->zmq_context;
  const bool curve = options_.curve.has_value();
  if (curve) {
    own_key_bin_ = z85_to_bin(options_.curve->public_key);
    for (const auto& k : options_.allowed_client_keys) {
      auto bin = z85_to_bin(k);
      if (!bin.empty()) allowed_keys_.insert(std::move(bin));
    }
    // The ZAP handler must be bound before the ROUTER accepts anyone:
    // libzmq lets a CURVE client in unchecked when no handler is bound.
    zap_ = zmq_socket(ctx, ZMQ_REP);
    if (!zap_ || !set_int(zap_, ZMQ_LINGER, 0) || zmq_bind(zap_, kZapEndpoint) != 0) {
      throw zmq_failure("ZAP handler");
    }
  }

  router_ = zmq_socket(ctx, ZMQ_ROUTER);
  if (!router_) throw zmq_failure("ROUTER");
  bool ok = set_int(router_, ZMQ_LINGER, 0) && set_int(router_, ZMQ_ROUTER_MANDATORY, 1) &&
            set_int(router_, ZMQ_ROUTER_HANDOVER, 1) &&
            set_int(router_, ZMQ_HEARTBEAT_IVL, clamp_ms(options_.heartbeat_interval)) &&
            set_int(router_, ZMQ_HEARTBEAT_TIMEOUT, clamp_ms(options_.heartbeat_timeout)) &&
            set_int(router_, ZMQ_HEARTBEAT_TTL, clamp_ms(options_.heartbeat_timeout)) &&
            set_int(router_, ZMQ_HANDSHAKE_IVL, clamp_ms(options_.heartbeat_timeout)) &&
            set_i64(router_, ZMQ_MAXMSGSIZE, max_message_size(options_)) && set_int(router_, ZMQ_SNDHWM, kRouterSndHwm) &&
            set_int(router_, ZMQ_RCVHWM, kRcvHwm);
  if (ok && is_ipv6(options_.bind_address)) ok = set_int(router_, ZMQ_IPV6, 1);
  if (ok && curve) {
    ok = set_int(router_, ZMQ_CURVE_SERVER, 1) &&
         set_str(router_, ZMQ_CURVE_SECRETKEY, options_.curve->secret_key) &&
         set_str(router_, ZMQ_ZAP_DOMAIN, kZapDomain);
  }
  if (!ok) throw zmq_failure("ROUTER options");
  const std::string tcp = tcp_endpoint(options_.bind_address, options_.port);
  if (zmq_bind(router_, tcp.c_str()) != 0) throw zmq_failure("bind " + tcp);
  router_fd_ = socket_fd(router_);
  if (zap_) zap_fd_ = socket_fd(zap_);
  std::array<char, 512> last{};
  std::size_t last_len = last.size();
  if (zmq_getsockopt(router_, ZMQ_LAST_ENDPOINT, last.data(), &last_len) != 0) {
    throw zmq_failure("ZMQ_LAST_ENDPOINT");
  }
  core_->endpoint = std::string(last.data());
  const auto colon = core_->endpoint.rfind(':');
  if (colon == std::string::npos) throw TransportError("unexpected endpoint " + core_->endpoint);
  core_->port = static_cast<std::uint16_t>(std::stoul(core_->endpoint.substr(colon + 1)));
  if (!options_.ipc_dir.empty()) {
    const std::string ipc = "ipc://" + options_.ipc_dir + "/" + options_.node_name + ".zmq";
    if (zmq_bind(router_, ipc.c_str()) != 0) throw zmq_failure("bind " + ipc);
  }
}

void Loop::close_all_sockets() {
  for (auto& [name, p] : peers_) close_dealer(*p);
  close_socket(router_);
  close_socket(zap_);
}

// ---------------------------------------------------------------- loop

// The loop polls the sockets' ZMQ_FDs itself instead of calling
// zmq_poll. zmq_poll asks every socket for ZMQ_EVENTS before and after
// each wait (a syscall or two per socket, and a node has two sockets per
// peer); here only the sockets that may have something to do are asked.
// The rule that makes ZMQ_FD (edge-like: it signals command arrival, not
// message arrival) safe: a socket is "flagged" when its fd polls readable
// or when we used it (any send or receive may consume the signal), and a
// flagged socket is only unflagged by a check that finds nothing to do: a
// receive answering EAGAIN, or ZMQ_EVENTS without the wanted events. Both
// process the socket's pending commands and leave its pipes armed to
// signal their next change.
void Loop::run() {
  ::pthread_setname_np(::pthread_self(), "mesh-transport");  // for top, perf, gdb
  bool eventfd_readable = false;
  std::vector<pollfd> fds;
  std::vector<std::pair<Peer*, bool>> fd_owner;  // per fd after the fixed ones: peer, is-monitor
  while (!stop_) {
    if (!deferred_.empty()) retry_deferred();
    if (router_check_) service_router();
    if (zap_check_) service_zap();
    for (auto& [name, p] : peers_) {
      // A caller's direct send may have taken the fd's signal: look again.
      if (p->shared->dealer_used.load(std::memory_order_relaxed) &&
          p->shared->dealer_used.exchange(false, std::memory_order_acq_rel)) {
        p->dealer_check = true;
      }
      if (p->monitor_check) service_monitor(*p);
      if (p->dealer_check) service_dealer(*p);
    }
    process_commands(eventfd_readable);
    eventfd_readable = false;
    if (stop_) break;

    std::int64_t now = steady_now_ms();
    expire_deadlines(now);
    core_->local_deadlines.expire(now, core_->counters.requests_timed_out);
    for (auto& [name, p] : peers_) {
      if (p->rebuild_at_ms != 0 && p->rebuild_at_ms <= now) {
        p->rebuild_at_ms = 0;
        close_dealer(*p);
        open_dealer(*p);
      }
    }
    if (now >= next_sweep_ms_) {
      core_->asks.sweep(now);
      next_sweep_ms_ = now + kMaxPollMs;
    }

    // Wait.
    fds.clear();
    fd_owner.clear();
    fds.push_back(pollfd{core_->commands.fd(), POLLIN, 0});
    fds.push_back(pollfd{router_fd_, POLLIN, 0});
    fds.push_back(pollfd{zap_fd_, POLLIN, 0});  // -1 without CURVE: poll ignores it
    bool busy = router_check_ || zap_check_;
    std::int64_t wake = now + kMaxPollMs;
    // Room for deferred replies shows on the ROUTER's fd (an activate_write
    // command); the timer is the fallback.
    if (!deferred_.empty()) wake = now + kDeferredRetryMs;
    for (auto& [name, p] : peers_) {
      if (p->rebuild_at_ms != 0) wake = std::min(wake, p->rebuild_at_ms);
      if (!p->dealer) continue;
      busy = busy || p->dealer_check || p->monitor_check;
      fds.push_back(pollfd{p->dealer_fd, POLLIN, 0});
      fd_owner.emplace_back(p.get(), false);
      fds.push_back(pollfd{p->monitor_fd, POLLIN, 0});
      fd_owner.emplace_back(p.get(), true);
    }
    if (!deadlines_.empty()) wake = std::min(wake, deadlines_.top().at_ms);
    wake = std::min(wake, core_->local_deadlines.next_ms());
    const int timeout = busy ? 0 : static_cast<int>(std::clamp<std::int64_t>(wake - now, 0, kMaxPollMs));
    const int rc = ::poll(fds.data(), static_cast<nfds_t>(fds.size()), timeout);
    if (rc <= 0) continue;  // timeout, or EINTR
    eventfd_readable = (fds[0].revents & POLLIN) != 0;
    if (fds[1].revents) router_check_ = true;
    if (fds[2].revents) zap_check_ = true;
    // Peers cannot have been removed since fd_owner was filled.
    for (std::size_t i = 0; i < fd_owner.size(); ++i) {
      if (!fds[3 + i].revents) continue;
      auto [peer, is_monitor] = fd_owner[i];
      (is_monitor ? peer->monitor_check : peer->dealer_check) = true;
    }
  }
  shutdown_all();
}

// A receive that returns EAGAIN has processed the socket's pending
// commands first (socket_base_t::recv, the DONTWAIT path), so a socket
// read until EAGAIN is as clean as one whose ZMQ_EVENTS showed no input:
// reading is how these are checked, which saves the extra ZMQ_EVENTS call
// per wake-up. A send gives no such guarantee, which is why every send
// flags its socket again.
void Loop::service_router() {
  for (;;) {
    const bool drained = read_router();
    const bool sent = flush_deliveries();
    if (!drained) return;  // stopped at the batch limit: stays flagged
    if (!sent) {
      router_check_ = false;
      return;
    }
    // Refusals went out after the last receive: receive again to be sure.
  }
}

void Loop::service_zap() {
  if (!zap_ || handle_zap()) zap_check_ = false;
}

void Loop::service_monitor(Peer& p) {
  if (!p.monitor || read_monitor(p)) p.monitor_check = false;
}

void Loop::service_dealer(Peer& p) {
  while (p.dealer) {
    if (!read_dealer(p)) return;  // batch limit: stays flagged
    if (!p.dealer || !p.has_output()) break;
    std::uint32_t ev = 0;
    {
      std::lock_guard lock(p.shared->dealer_mu);
      ev = socket_events(p.dealer);
    }
    if (ev & ZMQ_POLLOUT) {
      flush(p);  // then read again: the sends may have taken the fd's signal
      continue;
    }
    if (!(ev & ZMQ_POLLIN)) break;
  }
  p.dealer_check = false;
}

void Loop::process_commands(bool eventfd_readable) {
  core_->commands.take(commands_, eventfd_readable);
  for (auto& command : commands_) {
    std::visit(
        [this](auto& c) {
          using T = std::decay_t<decltype(c)>;
          if constexpr (std::is_same_v<T, CmdAddPeer>) {
            on_add_peer(c);
          } else if constexpr (std::is_same_v<T, CmdRemovePeer>) {
            on_remove_peer(c);
          } else if constexpr (std::is_same_v<T, CmdSend>) {
            on_send(c);
          } else if constexpr (std::is_same_v<T, CmdReply>) {
            on_reply(c);
          } else if constexpr (std::is_same_v<T, CmdWake>) {
            // only here to end the poll early
          } else {
            stop_ = true;
          }
        },
        command);
  }
  commands_.clear();
}

// ---------------------------------------------------------------- peers

void Loop::on_add_peer(CmdAddPeer& c) {
  auto it = peers_.find(c.peer->name);
  if (it != peers_.end() && it->second->shared != c.peer) {
    // A stale entry of a removed peer (its CmdRemovePeer is always queued
    // before a re-add, so this only happens if that was lost): replace.
    fail_peer(*it->second, ErrorCode::PeerDead);
    close_dealer(*it->second);
    peers_.erase(it);
    it = peers_.end();
  }
  if (c.peer->removed.load() != ErrorCode::None) return;  // removed again meanwhile
  if (it == peers_.end()) {
    auto p = std::make_unique<Peer>();
    p->shared = c.peer;
    p->address = std::move(c.address);
    p->key_bin = z85_to_bin(p->address.curve_public_key);
    Peer& ref = *p;
    peers_.emplace(ref.shared->name, std::move(p));
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
  p.shared->failures.fetch_add(1);
  close_dealer(p);
  p.address = std::move(c.address);
  p.key_bin = z85_to_bin(p.address.curve_public_key);
  p.backoff_ms = 0;
  p.rebuild_at_ms = 0;
  set_state(p, PeerState::Connecting);
  open_dealer(p);
}

void Loop::on_remove_peer(CmdRemovePeer& c) {
  auto it = peers_.find(c.peer->name);
  if (it == peers_.end() || it->second->shared != c.peer) return;
  Peer& p = *it->second;
  fail_peer(p, c.reason);
  if (p.state == PeerState::Connected) drop(core_->counters.peers_connected);
  p.shared->channels->close();
  close_dealer(p);
  peers_.erase(it);
}

void Loop::open_dealer(Peer& p) {
  const bool curve = options_.curve.has_value();
  if (curve && p.key_bin.empty()) {
    // CURVE is on and the peer has no (valid) key: we cannot authenticate
    // it, so it stays Unreachable until add_peer gives one.
    set_state(p, PeerState::Unreachable);
    return;
  }
  void* ctx = core_->zmq_context;
  const std::string monitor_endpoint = unique_inproc("mon");
  const std::string endpoint = endpoint_for(p.address);
  p.dealer = zmq_socket(ctx, ZMQ_DEALER);
  bool ok = p.dealer != nullptr &&
            configure_dealer(p.dealer, options_, options_.node_name, p.address.curve_public_key,
                             is_ipv6(p.address.host));
  // The monitor is attached before connect() so that no event is missed.
  ok = ok && zmq_socket_monitor(p.dealer, monitor_endpoint.c_str(), kMonitorEvents) == 0;
  if (ok) {
    p.monitor = zmq_socket(ctx, ZMQ_PAIR);
    ok = p.monitor != nullptr && set_int(p.monitor, ZMQ_LINGER, 0) &&
         zmq_connect(p.monitor, monitor_endpoint.c_str()) == 0;
  }
  ok = ok && zmq_connect(p.dealer, endpoint.c_str()) == 0;
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
  if (p.dealer) zmq_socket_monitor(p.dealer, nullptr, 0);
  if (p.monitor) {
    for (;;) {
      Msg m;
      if (!m.recv(p.monitor)) break;
    }
  }
  close_socket(p.monitor);
  close_socket(p.dealer);
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
    Msg head;
    if (!head.recv(p.monitor)) return true;
    std::uint16_t event = 0;
    const auto bytes = head.bytes();
    if (bytes.size() >= sizeof event) std::memcpy(&event, bytes.data(), sizeof event);
    if (head.more()) drain_multipart(p.monitor);
    on_monitor_event(p, event);
  }
  return p.monitor == nullptr;
}

void Loop::on_monitor_event(Peer& p, std::uint16_t event) {
  switch (event) {
    case ZMQ_EVENT_HANDSHAKE_SUCCEEDED:
      p.backoff_ms = 0;
      p.rebuild_at_ms = 0;
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
    case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
    case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
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

void Loop::schedule_rebuild(Peer& p, std::int64_t now_ms) {
  const std::int64_t first = std::max<std::int64_t>(1, options_.reconnect_interval.count());
  const std::int64_t cap = std::max<std::int64_t>(first, options_.reconnect_interval_max.count());
  p.backoff_ms = p.backoff_ms == 0 ? first : std::min(cap, p.backoff_ms * 2);
  p.rebuild_at_ms = now_ms + p.backoff_ms;
}

void Loop::fail_peer(Peer& p, ErrorCode reason) {
  p.shared->failures.fetch_add(1, std::memory_order_acq_rel);
  fail_pending_to(p.shared.get(), reason);
  for (auto* queue : {&p.high, &p.normal}) {
    while (!queue->empty()) {
      OutFrame frame = std::move(queue->front());
      queue->pop_front();
      release_queued(*p.shared, frame.bytes.size());
      reject_frame(frame, p.shared->name, reason);
    }
  }
}

void Loop::release_queued(PeerShared& peer, std::size_t bytes) {
  peer.queued.fetch_sub(1, std::memory_order_acq_rel);
  peer.queued_bytes.fetch_sub(bytes, std::memory_order_acq_rel);
  drop(core_->counters.outbound_queued);
  drop(core_->counters.outbound_queued_bytes, bytes);
}

void Loop::reject_frame(OutFrame& frame, const std::string& node, ErrorCode reason) {
  if (frame.call) {
    frame.call->complete(Reply{reason, {}}, &core_->counters.requests_failed_fast);
  } else if (frame.type == MessageType::Notify && !frame.raw) {
    report_undeliverable(frame.id, node, frame.target, frame.sender_agent, reason);
  }
}

void Loop::report_undeliverable(const MessageId& id, std::string_view node, std::string_view target,
                                std::string_view sender_agent, ErrorCode reason) {
  bump(core_->counters.notifies_undeliverable);
  // User callbacks must not take the transport thread down.
  if (options_.on_undeliverable) {
    try {
      options_.on_undeliverable(id, node, target, reason);
    } catch (...) {
    }
  }
  if (options_.on_notify_undeliverable) {
    try {
      options_.on_notify_undeliverable(UndeliverableNotify{id, node, target, sender_agent, reason});
    } catch (...) {
    }
  }
}

void Loop::flush(Peer& p) {
  if (!p.dealer || !p.has_output()) return;
  p.dealer_check = true;  // a send may consume the fd's signal
  std::lock_guard lock(p.shared->dealer_mu);
  while (p.has_output()) {
    auto& queue = !p.high.empty() ? p.high : p.normal;
    OutFrame& f = queue.front();
    const std::size_t size = f.bytes.size();
    if (f.call && f.call->done()) {  // timed out while it waited here
      queue.pop_front();
      release_queued(*p.shared, size);
      continue;
    }
    // Counted before the send, so that whoever sees the frame arrive also
    // sees it counted; taken back if it was not sent.
    auto* sent = f.raw ? nullptr : &core_->counters.sent[type_index(f.type)];
    if (sent) bump(*sent);
    if (zmq_send(p.dealer, f.bytes.data(), f.bytes.size(), ZMQ_DONTWAIT) < 0) {  // EAGAIN: wait for POLLOUT
      if (sent) drop(*sent);
      return;
    }
    queue.pop_front();
    release_queued(*p.shared, size);
  }
}

// ---------------------------------------------------------------- commands

void Loop::on_send(CmdSend& c) {
  auto it = peers_.find(c.peer->name);
  Peer* p = (it != peers_.end() && it->second->shared == c.peer) ? it->second.get() : nullptr;
  if (!p || p->state == PeerState::Unreachable) {
    release_queued(*c.peer, c.frame.bytes.size());
    ErrorCode reason = ErrorCode::PeerUnreachable;
    if (!p) {
      reason = c.peer->removed.load();
      if (reason == ErrorCode::None) reason = ErrorCode::PeerDead;
    }
    reject_frame(c.frame, c.peer->name, reason);
    return;
  }
  if (c.frame.call) watch(c.frame.call);
  auto& queue = c.frame.priority == Priority::High ? p->high : p->normal;
  queue.push_back(std::move(c.frame));
  flush(*p);
}

void Loop::on_reply(CmdReply& c) { router_send(c.identity, c.bytes, c.type, &c.request); }

void Loop::watch(const std::shared_ptr<PendingCall>& call) {
  pending_.emplace(call->id, call);
  deadlines_.push(Deadline{call->deadline_ms, call->id, call.get()});
}

void Loop::fail_pending_to(const void* peer, ErrorCode reason) {
  for (auto it = pending_.begin(); it != pending_.end();) {
    if (it->second->peer != peer) {
      ++it;
      continue;
    }
    auto call = std::move(it->second);
    it = pending_.erase(it);
    finished_.insert(call->id, steady_now_ms());
    call->complete(Reply{reason, {}}, &core_->counters.requests_failed_fast);
  }
}

void Loop::expire_deadlines(std::int64_t now_ms) {
  while (!deadlines_.empty() && deadlines_.top().at_ms <= now_ms) {
    const Deadline d = deadlines_.top();
    deadlines_.pop();
    std::shared_ptr<PendingCall> call;
    auto [first, last] = pending_.equal_range(d.id);
    for (auto it = first; it != last; ++it) {
      if (it->second.get() == d.call) {
        call = std::move(it->second);
        pending_.erase(it);
        break;
      }
    }
    if (!call) continue;
    finished_.insert(d.id, now_ms);
    call->complete(Reply{ErrorCode::Timeout, {}}, &core_->counters.requests_timed_out);
  }
}

// ---------------------------------------------------------------- receiving

bool Loop::read_router() {
  for (int i = 0; i < kRecvBatch; ++i) {
    Msg identity;
    if (!identity.recv(router_)) return true;
    if (!identity.more()) {  // cannot come from a ZMTP peer; be safe
      bump(core_->counters.frames_malformed);
      continue;
    }
    Msg body;
    if (!body.recv(router_)) return true;
    if (body.more()) {  // our peers send exactly one frame per message
      drain_multipart(router_);
      bump(core_->counters.frames_malformed);
      continue;
    }
    const std::string_view id = identity.text();
    handle_frame(body.bytes(), &id, nullptr);
  }
  return false;
}

bool Loop::read_dealer(Peer& p) {
  for (int i = 0; i < kRecvBatch && p.dealer; ++i) {
    Msg body;
    {
      std::lock_guard lock(p.shared->dealer_mu);
      if (!body.recv(p.dealer)) return true;
      if (body.more()) {
        drain_multipart(p.dealer);
        bump(core_->counters.frames_malformed);
        continue;
      }
    }
    handle_frame(body.bytes(), nullptr, &p);  // unlocked: it may run callbacks that notify
  }
  return p.dealer == nullptr;
}

void Loop::handle_frame(std::span<const std::uint8_t> frame, const std::string_view* identity,
                        const Peer* from) {
  auto& counters = core_->counters;
  DecodeResult r = decode(frame, options_.max_frame_bytes);
  if (!r.ok()) {
    switch (r.error) {
      case DecodeError::Oversized: bump(counters.frames_oversized); break;
      case DecodeError::BadVersion: bump(counters.frames_bad_version); break;
      default: bump(counters.frames_malformed); break;
    }
    // A broken request whose id could still be read gets an answer, so
    // that its sender fails now instead of at its deadline.
    if (identity && r.salvaged_type == MessageType::Request && r.salvaged_id) {
      bump(counters.refused[type_index(MessageType::Request)]);
      send_error(*identity, *r.salvaged_id, {}, {}, code_for(r.error));
    }
    return;
  }
  const EnvelopeView& v = r.view;
  const auto type = type_index(v.type);
  bump(counters.received[type]);
  // Who sent it, as far as this transport knows: the node whose connection
  // it came in on (never the envelope's own sender_node claim).
  const std::string_view source = identity ? source_node(*identity) : std::string_view(from->shared->name);
  if (!dedup_.insert(source, v.id, steady_now_ms())) {
    bump(counters.deduplicated[type]);
    // A request resent under its id after its answer went out (the answer
    // was lost, say): answer again from the cache, to the same node only.
    if (v.type == MessageType::Request && identity) {
      if (const ReplyCache::Entry* cached = replies_.find(DedupKey{std::string(source), v.id})) {
        // Under a fresh id: the requester's dedup window has seen the first.
        DecodeResult old = decode(cached->bytes, std::numeric_limits<std::size_t>::max());
        if (old.ok()) {
          Envelope again = old.view.to_owned();
          again.id = core_->ids.next();
          encode(again, scratch_);
          bump(counters.requests_answered_again);
          router_send(*identity, scratch_, again.type);
        }
      }
    }
    return;
  }
  switch (v.type) {
    case MessageType::Notify:
      if (identity) deliver_notify(v, *identity);
      break;
    case MessageType::Request:
      if (!identity) break;  // a ROUTER never sends us requests on a DEALER
      if (v.deadline_ms != 0 && v.deadline_ms < unix_now_ms()) {
        bump(counters.expired_on_arrival);
        break;
      }
      deliver_request(v, *identity);
      break;
    case MessageType::Response:
    case MessageType::Error:
      // Replies come back over our DEALER to the node we asked. One that
      // arrives at the ROUTER answers nothing of ours.
      if (from) {
        complete_pending(v, *from);
      } else {
        bump(counters.replies_unmatched);
      }
      break;
    case MessageType::Control:
      break;  // reserved
  }
}

std::shared_ptr<Inbox> Loop::find_inbox(std::string_view name) {
  // The inbox of the batch being gathered, without the table's lock.
  if (batch_inbox_ && batch_inbox_->name() == name) return batch_inbox_;
  return core_->find_inbox(name);
}

void Loop::deliver(const std::shared_ptr<Inbox>& inbox, Incoming&& message, std::string_view identity) {
  if (batch_inbox_ && batch_inbox_ != inbox) flush_deliveries();
  batch_inbox_ = inbox;
  batch_.push_back(std::move(message));
  batch_identities_.emplace_back(identity);
}

// Consecutive messages for one inbox go in with one lock and one wake-up
// of its consumer: under a flood that halves the context switches.
bool Loop::flush_deliveries() {
  bool sent = false;
  if (!batch_.empty()) {
    batch_outcome_.resize(batch_.size());
    const std::size_t taken = batch_inbox_->push_batch(batch_, batch_outcome_);
    for (std::size_t i = 0; taken < batch_.size() && i < batch_.size(); ++i) {
      const ErrorCode why = batch_outcome_[i];
      if (why == ErrorCode::None) continue;
      // The refusal goes back as an Error correlated with the message; its
      // sender_agent names the target, so the sender can report both.
      const Envelope& e = batch_[i].envelope;
      bump(core_->counters.refused[type_index(e.type)]);
      send_error(batch_identities_[i], e.id, e.target, e.sender_agent, why, e.type == MessageType::Request);
      sent = true;
    }
  }
  batch_.clear();
  batch_identities_.clear();
  batch_inbox_.reset();
  return sent;
}

void Loop::deliver_notify(const EnvelopeView& v, std::string_view identity) {
  auto inbox = find_inbox(v.target);
  if (!inbox) {
    bump(core_->counters.refused[type_index(MessageType::Notify)]);
    send_error(identity, v.id, v.target, v.sender_agent, ErrorCode::TargetUnknown);
    return;
  }
  deliver(inbox, Incoming{v.to_owned(), nullptr, std::string(source_node(identity))}, identity);
}

void Loop::deliver_request(const EnvelopeView& v, std::string_view identity) {
  auto inbox = find_inbox(v.target);
  if (!inbox) {
    bump(core_->counters.refused[type_index(MessageType::Request)]);
    send_error(identity, v.id, v.target, v.sender_agent, ErrorCode::TargetUnknown, true);
    return;
  }
  if (const auto& quick = inbox->quick_handler()) {
    // Answered right here: no hop to another thread and back.
    std::vector<std::uint8_t> payload;
    const ErrorCode code = run_quick(quick, v, payload);
    Envelope reply = make_reply(*core_, v, code, std::move(payload), {}, v.priority);
    encode(reply, scratch_);
    router_send(identity, scratch_, reply.type, &v.id);
    return;
  }
  auto route = std::make_shared<ReplyRoute>();
  route->identity = std::string(identity);
  route->core = core_;
  deliver(inbox, Incoming{v.to_owned(), std::move(route), std::string(source_node(identity))}, identity);
}

void Loop::complete_pending(const EnvelopeView& v, const Peer& from) {
  if (!v.correlation) {
    bump(core_->counters.replies_unmatched);
    return;
  }
  const MessageId corr = *v.correlation;
  auto [first, last] = pending_.equal_range(corr);
  // Only the peer a request went to can answer it.
  std::vector<std::shared_ptr<PendingCall>> calls;
  for (auto it = first; it != last;) {
    if (it->second->peer == from.shared.get()) {
      calls.push_back(std::move(it->second));
      it = pending_.erase(it);
    } else {
      ++it;
    }
  }
  if (calls.empty()) {
    if (v.type == MessageType::Error && finished_.insert(corr, steady_now_ms())) {
      // Not one of our requests: the receiver refused a notify of ours.
      // Its target is our sending agent, its sender_agent the inbox that
      // refused; the node is the peer it came from.
      bump(core_->counters.refused[type_index(MessageType::Notify)]);
      report_undeliverable(corr, from.shared->name, v.sender_agent, v.target, v.error);
    } else {
      bump(core_->counters.replies_unmatched);  // late reply to a finished request
    }
    return;
  }
  for (auto& call : calls) {
    Reply reply;
    if (v.type == MessageType::Error) {
      reply.error = v.error == ErrorCode::None ? ErrorCode::Rejected : v.error;
    }
    reply.envelope = v.to_owned();
    call->complete(std::move(reply));
  }
}

bool Loop::router_send(std::string_view identity, std::span<const std::uint8_t> bytes, MessageType type,
                       const MessageId* answers) {
  if (answers) {
    replies_.put(DedupKey{std::string(source_node(identity)), *answers}, bytes, type);
    core_->counters.reply_cache_bytes.store(replies_.bytes(), std::memory_order_relaxed);
  }
  // Replies to one requester leave in order: behind any already waiting.
  if (!deferred_.empty() && deferred_.contains(std::string(identity))) return defer(identity, bytes, type);
  switch (try_router_send(identity, bytes, type)) {
    case SendResult::Sent: return true;
    case SendResult::WouldBlock: return defer(identity, bytes, type);
    case SendResult::Unroutable: break;
  }
  bump(core_->counters.replies_unroutable);
  return false;
}

Loop::SendResult Loop::try_router_send(std::string_view identity, std::span<const std::uint8_t> bytes,
                                       MessageType type) {
  // MANDATORY + DONTWAIT: a vanished identity is EHOSTUNREACH and a full
  // pipe EAGAIN, both at once; neither blocks the transport thread.
  auto& sent = core_->counters.sent[type_index(type)];
  bump(sent);  // before the send, as in flush()
  router_check_ = true;  // a send may consume the fd's signal
  if (zmq_send(router_, identity.data(), identity.size(), ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
    drop(sent);
    return zmq_errno() == EAGAIN ? SendResult::WouldBlock : SendResult::Unroutable;
  }
  // The identity frame was accepted, so the pipe had room: the body follows.
  if (zmq_send(router_, bytes.data(), bytes.size(), ZMQ_DONTWAIT) < 0) {
    drop(sent);
    return SendResult::Unroutable;
  }
  return SendResult::Sent;
}

// A requester that does not read its replies as fast as we answer (its
// transport thread is busy sending, say) fills its pipe: EAGAIN is not
// "gone", so the reply waits here, in order, and is retried whenever the
// loop turns. Only a hard bound drops replies (counted unroutable).
// We tried to push back instead (stop reading the ROUTER while many
// replies wait): a ROUTER not read long enough stops its I/O thread from
// reading the connection, the requester's heartbeat answers (PONG) stay
// stuck behind its data, and after heartbeat_timeout the connection is
// dropped with every reply in it. The requester's own queue limit is the
// back-pressure; a requester that stops reading altogether is a frozen
// peer, which the heartbeat removes.
bool Loop::defer(std::string_view identity, std::span<const std::uint8_t> bytes, MessageType type) {
  // One requester that stops reading must not use up the room the others'
  // replies need: it gets a share of the byte budget.
  const std::size_t budget = options_.reply_deferral_bytes;
  const auto share = static_cast<std::size_t>(static_cast<double>(budget) * options_.reply_deferral_share);
  auto it = deferred_.find(std::string(identity));
  const std::size_t mine = it == deferred_.end() ? 0 : it->second.bytes;
  if (deferred_count_ >= kMaxDeferred || deferred_bytes_ + bytes.size() > budget ||
      (mine > 0 && mine + bytes.size() > share)) {
    bump(core_->counters.replies_dropped);
    return false;
  }
  if (it == deferred_.end()) it = deferred_.emplace(std::string(identity), DeferredQueue{}).first;
  it->second.items.push_back(Deferred{std::vector<std::uint8_t>(bytes.begin(), bytes.end()), type});
  it->second.bytes += bytes.size();
  ++deferred_count_;
  deferred_bytes_ += bytes.size();
  bump(core_->counters.replies_deferred);
  bump(core_->counters.replies_waiting);
  bump(core_->counters.replies_waiting_bytes, bytes.size());
  return true;
}

void Loop::retry_deferred() {
  for (auto it = deferred_.begin(); it != deferred_.end();) {
    auto& queue = it->second.items;
    bool gone = false;
    while (!queue.empty()) {
      const SendResult r = try_router_send(it->first, queue.front().bytes, queue.front().type);
      if (r == SendResult::WouldBlock) break;
      if (r == SendResult::Unroutable) {
        gone = true;
        break;
      }
      forget_deferred(it->second, queue.front().bytes.size());
      queue.pop_front();
    }
    if (gone) {  // the requester went away: all of its replies are unroutable
      bump(core_->counters.replies_unroutable, queue.size());
      for (const auto& d : queue) forget_deferred(it->second, d.bytes.size());
      queue.clear();
    }
    it = queue.empty() ? deferred_.erase(it) : std::next(it);
  }
}

void Loop::forget_deferred(DeferredQueue& queue, std::size_t bytes) {
  --deferred_count_;
  deferred_bytes_ -= bytes;
  queue.bytes -= bytes;
  drop(core_->counters.replies_waiting);
  drop(core_->counters.replies_waiting_bytes, bytes);
}

void Loop::send_error(std::string_view identity, const MessageId& correlation, std::string_view sender_agent,
                      std::string_view target, ErrorCode code, bool answers_request) {
  Envelope e;
  e.id = core_->ids.next();
  e.type = MessageType::Error;
  e.correlation = correlation;
  e.sender_agent = std::string(sender_agent);
  e.sender_node = options_.node_name;
  e.target = std::string(target);
  e.created_ms = unix_now_ms();
  e.error = code;
  encode(e, scratch_);
  router_send(identity, scratch_, MessageType::Error, answers_request ? &correlation : nullptr);
}

// ZAP (RFC 27): [version, request id, domain, address, routing id,
// mechanism, credentials...] in, [version, request id, status code,
// status text, user id, metadata] out. REP strips and restores the
// envelope delimiter libzmq puts in front.
bool Loop::handle_zap() {
  for (int i = 0; i < kRecvBatch; ++i) {
    std::vector<std::string> frames;
    {
      Msg first;
      if (!first.recv(zap_)) return true;
      frames.emplace_back(first.text());
      bool more = first.more();
      while (more) {
        Msg next;
        if (!next.recv(zap_)) break;
        frames.emplace_back(next.text());
        more = next.more();
      }
    }
    const bool accept = frames.size() >= 7 && frames[0] == "1.0" && frames[5] == "CURVE" &&
                        frames[6].size() == 32 && key_allowed(frames[6]);
    if (!accept) bump(core_->counters.frames_unauthenticated);
    const std::string request_id = frames.size() > 1 ? frames[1] : std::string();
    const std::string status = accept ? "200" : "400";
    const std::string text = accept ? "OK" : "client key not allowed";
    zmq_send(zap_, "1.0", 3, ZMQ_SNDMORE | ZMQ_DONTWAIT);
    zmq_send(zap_, request_id.data(), request_id.size(), ZMQ_SNDMORE | ZMQ_DONTWAIT);
    zmq_send(zap_, status.data(), status.size(), ZMQ_SNDMORE | ZMQ_DONTWAIT);
    zmq_send(zap_, text.data(), text.size(), ZMQ_SNDMORE | ZMQ_DONTWAIT);
    zmq_send(zap_, "", 0, ZMQ_SNDMORE | ZMQ_DONTWAIT);
    zmq_send(zap_, "", 0, ZMQ_DONTWAIT);
  }
  return false;
}

bool Loop::key_allowed(std::string_view key_bin) const {
  if (key_bin == own_key_bin_) return true;  // our own request channels
  if (allowed_keys_.contains(std::string(key_bin))) return true;
  for (const auto& [name, p] : peers_) {
    if (p->key_bin == key_bin) return true;
  }
  return false;
}

// ---------------------------------------------------------------- shutdown

void Loop::shutdown_all() {
  if (shut_) return;
  shut_ = true;
  // Replies still waiting for room go with the ROUTER (LINGER 0).
  drop(core_->counters.replies_waiting, deferred_count_);
  drop(core_->counters.replies_waiting_bytes, deferred_bytes_);
  deferred_.clear();
  deferred_count_ = 0;
  deferred_bytes_ = 0;
  // Commands that arrived with (or after) the stop are answered Shutdown.
  drain_late_commands();
  for (auto& [id, call] : pending_) {
    call->complete(Reply{ErrorCode::Shutdown, {}}, &core_->counters.requests_failed_fast);
  }
  pending_.clear();
  core_->local_deadlines.fail_all(ErrorCode::Shutdown, core_->counters.requests_failed_fast);
  for (auto& [name, p] : peers_) {
    for (auto* queue : {&p->high, &p->normal}) {
      while (!queue->empty()) {
        OutFrame frame = std::move(queue->front());
        queue->pop_front();
        release_queued(*p->shared, frame.bytes.size());
        reject_frame(frame, name, ErrorCode::Shutdown);
      }
    }
    if (p->state == PeerState::Connected) drop(core_->counters.peers_connected);
    p->shared->state.store(PeerState::Unreachable);
    close_dealer(*p);
  }
  peers_.clear();
  close_all_sockets();
}

void Loop::drain_late_commands() {
  core_->commands.take(commands_, false);
  for (auto& command : commands_) {
    if (auto* send = std::get_if<CmdSend>(&command)) {
      release_queued(*send->peer, send->frame.bytes.size());
      reject_frame(send->frame, send->peer->name, ErrorCode::Shutdown);
    } else if (auto* r = std::get_if<CmdRemovePeer>(&command)) {
      r->peer->channels->close();
    }
  }
  commands_.clear();
}

}  // namespace mesh::transport::detail
