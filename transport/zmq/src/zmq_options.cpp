#include "zmq_options.hpp"

#include <zmq.h>

#include <algorithm>
#include <climits>

namespace mesh::transport::detail {

namespace {
constexpr int kDealerSndHwm = 1000;  // our own per-peer queue holds the rest
constexpr int kRcvHwm = 10000;
}  // namespace

bool set_int(void* s, int option, int value) { return zmq_setsockopt(s, option, &value, sizeof value) == 0; }
bool set_i64(void* s, int option, std::int64_t value) {
  return zmq_setsockopt(s, option, &value, sizeof value) == 0;
}
bool set_str(void* s, int option, std::string_view value) {
  return zmq_setsockopt(s, option, value.data(), value.size()) == 0;
}
int clamp_ms(std::chrono::milliseconds d) {
  return static_cast<int>(std::clamp<std::int64_t>(d.count(), 0, INT_MAX));
}

bool is_ipv6(std::string_view host) { return host.find(':') != std::string_view::npos; }

std::string tcp_endpoint(std::string_view host, std::uint16_t port) {
  std::string out = "tcp://";
  if (is_ipv6(host)) {
    out += '[';
    out += host;
    out += ']';
  } else {
    out += host;
  }
  out += ':';
  out += port == 0 ? std::string("*") : std::to_string(port);
  return out;
}

std::int64_t max_message_size(const TransportOptions& o) {
  return static_cast<std::int64_t>(2 * o.max_frame_bytes + 64 * 1024);
}

bool configure_dealer(void* s, const TransportOptions& o, std::string_view routing_id,
                      const std::string& server_key, bool ipv6) {
  // The handshake and the TCP connect time out like the heartbeat: a peer
  // that accepts connections but never speaks ZMTP (frozen) is noticed in
  // that time instead of libzmq's 30 s (handshake) or the kernel's minutes
  // (connect to a black hole).
  bool ok = set_str(s, ZMQ_ROUTING_ID, routing_id) && set_int(s, ZMQ_LINGER, 0) && set_int(s, ZMQ_IMMEDIATE, 1) &&
            set_int(s, ZMQ_HEARTBEAT_IVL, clamp_ms(o.heartbeat_interval)) &&
            set_int(s, ZMQ_HEARTBEAT_TIMEOUT, clamp_ms(o.heartbeat_timeout)) &&
            set_int(s, ZMQ_HEARTBEAT_TTL, clamp_ms(o.heartbeat_timeout)) &&
            set_int(s, ZMQ_HANDSHAKE_IVL, clamp_ms(o.heartbeat_timeout)) &&
            set_int(s, ZMQ_CONNECT_TIMEOUT, clamp_ms(o.heartbeat_timeout)) &&
            set_int(s, ZMQ_RECONNECT_IVL, clamp_ms(o.reconnect_interval)) &&
            set_int(s, ZMQ_RECONNECT_IVL_MAX, clamp_ms(o.reconnect_interval_max)) &&
            set_int(s, ZMQ_SNDHWM, kDealerSndHwm) && set_int(s, ZMQ_RCVHWM, kRcvHwm) &&
            set_i64(s, ZMQ_MAXMSGSIZE, max_message_size(o));
  if (ok && ipv6) ok = set_int(s, ZMQ_IPV6, 1);
  if (ok && o.curve) {
    ok = set_str(s, ZMQ_CURVE_SERVERKEY, server_key) && set_str(s, ZMQ_CURVE_PUBLICKEY, o.curve->public_key) &&
         set_str(s, ZMQ_CURVE_SECRETKEY, o.curve->secret_key);
  }
  return ok;
}

}  // namespace mesh::transport::detail
