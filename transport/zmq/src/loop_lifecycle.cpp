// The transport thread's sockets from start to end: the ROUTER and the
// ZAP handler made and bound before the thread starts, and the shutdown
// that answers everything still open and closes every socket.
#include "loop.hpp"

#include <string>
#include <variant>

#include "request_channel.hpp"
#include "zmq_io.hpp"
#include "zmq_options.hpp"

namespace mesh::transport::detail {

namespace {

constexpr int kRcvHwm = 10000;
constexpr int kRouterSndHwm = 10000;
constexpr char kZapEndpoint[] = "inproc://zeromq.zap.01";
constexpr char kZapDomain[] = "mesh";

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
  zmq::context_t& ctx = *core_->zmq_context;
  const bool curve = options_.curve.has_value();
  // What was being done when libzmq refused, for the TransportError.
  std::string step;
  try {
    if (curve) {
      own_key(options_.curve->public_key, options_.node_name);
      for (const auto& client : options_.allowed_clients) own_key(client.public_key, client.node);
      // The ZAP handler must be bound before the ROUTER accepts anyone:
      // libzmq lets a CURVE client in unchecked when no handler is bound.
      step = "ZAP handler";
      zap_ = zmq::socket_t(ctx, zmq::socket_type::rep);
      zap_.set(zmq::sockopt::linger, 0);
      zap_.bind(kZapEndpoint);
    }

    step = "ROUTER";
    router_ = zmq::socket_t(ctx, zmq::socket_type::router);
    step = "ROUTER options";
    router_.set(zmq::sockopt::linger, 0);
    router_.set(zmq::sockopt::router_mandatory, true);
    router_.set(zmq::sockopt::router_handover, true);
    router_.set(zmq::sockopt::heartbeat_ivl, clamp_ms(options_.heartbeat_interval));
    router_.set(zmq::sockopt::heartbeat_timeout, clamp_ms(options_.heartbeat_timeout));
    router_.set(zmq::sockopt::heartbeat_ttl, clamp_ms(options_.heartbeat_timeout));
    router_.set(zmq::sockopt::handshake_ivl, clamp_ms(options_.heartbeat_timeout));
    router_.set(zmq::sockopt::maxmsgsize, max_message_size(options_));
    router_.set(zmq::sockopt::sndhwm, kRouterSndHwm);
    router_.set(zmq::sockopt::rcvhwm, kRcvHwm);
    if (is_ipv6(options_.bind_address)) router_.set(zmq::sockopt::ipv6, true);
    if (curve) {
      router_.set(zmq::sockopt::curve_server, true);
      router_.set(zmq::sockopt::curve_secretkey, options_.curve->secret_key);
      router_.set(zmq::sockopt::zap_domain, kZapDomain);
    }
    const std::string tcp = tcp_endpoint(options_.bind_address, options_.port);
    step = "bind " + tcp;
    router_.bind(tcp);
    router_fd_ = socket_fd(router_);
    if (zap_) zap_fd_ = socket_fd(zap_);
    step = "ZMQ_LAST_ENDPOINT";
    core_->endpoint = router_.get(zmq::sockopt::last_endpoint);
    const auto colon = core_->endpoint.rfind(':');
    if (colon == std::string::npos) throw TransportError("unexpected endpoint " + core_->endpoint);
    core_->port = static_cast<std::uint16_t>(std::stoul(core_->endpoint.substr(colon + 1)));
    if (!options_.ipc_dir.empty()) {
      const std::string ipc = "ipc://" + options_.ipc_dir + "/" + options_.node_name + ".zmq";
      step = "bind " + ipc;
      router_.bind(ipc);
    }
  } catch (const zmq::error_t& e) {
    throw TransportError(step + ": " + e.what());
  }
}

void Loop::close_all_sockets() {
  for (auto& [name, p] : peers_) close_dealer(*p);
  {
    std::lock_guard lock(core_->router.mu);  // no caller answers on it from here on
    core_->router.socket = nullptr;
    core_->router.replies = nullptr;
    core_->router.deferred = false;
  }
  router_.close();
  zap_.close();
}

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
  // So are the requests callers sent themselves; from here on they fail
  // their own (DirectWatches::add refuses).
  core_->direct_watches.close(taken_);
  for (auto& call : taken_) call->complete(Reply{ErrorCode::Shutdown, {}}, &core_->counters.requests_failed_fast);
  taken_.clear();
  for (auto& [id, call] : pending_) {
    call->complete(Reply{ErrorCode::Shutdown, {}}, &core_->counters.requests_failed_fast);
  }
  pending_.clear();
  core_->local_deadlines.fail_all(ErrorCode::Shutdown, core_->counters.requests_failed_fast);
  for (auto& [name, p] : peers_) {
    for (auto& queue : p->queues) {
      while (!queue.empty()) {
        OutFrame frame = std::move(queue.front());
        queue.pop_front();
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
