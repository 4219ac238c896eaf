// The transport thread's sockets from start to end: the ROUTER and the
// ZAP handler made and bound before the thread starts, and the shutdown
// that answers everything still open and closes every socket.
#include "loop.hpp"

#include <array>
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

TransportError zmq_failure(const std::string& what) {
  return TransportError(what + ": " + zmq_strerror(zmq_errno()));
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
