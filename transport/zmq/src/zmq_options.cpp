#include "zmq_options.hpp"

#include <algorithm>
#include <climits>

namespace mesh::transport::detail {

namespace {
constexpr int kDealerSndHwm = 1000;  // our own per-peer queue holds the rest
constexpr int kRcvHwm = 10000;
}  // namespace

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

bool configure_dealer(zmq::socket_ref s, const TransportOptions& o, std::string_view routing_id,
                      const std::string& server_key, bool ipv6) {
  // The handshake and the TCP connect time out like the heartbeat: a peer
  // that accepts connections but never speaks ZMTP (frozen) is noticed in
  // that time instead of libzmq's 30 s (handshake) or the kernel's minutes
  // (connect to a black hole).
  try {
    // Under CURVE the ROUTER attributes a connection by its key and names
    // it itself; a routing id would only let one client take another's
    // over (ROUTER_HANDOVER).
    if (!o.curve) s.set(zmq::sockopt::routing_id, routing_id);
    s.set(zmq::sockopt::linger, 0);
    s.set(zmq::sockopt::immediate, true);
    s.set(zmq::sockopt::heartbeat_ivl, clamp_ms(o.heartbeat_interval));
    s.set(zmq::sockopt::heartbeat_timeout, clamp_ms(o.heartbeat_timeout));
    s.set(zmq::sockopt::heartbeat_ttl, clamp_ms(o.heartbeat_timeout));
    s.set(zmq::sockopt::handshake_ivl, clamp_ms(o.heartbeat_timeout));
    s.set(zmq::sockopt::connect_timeout, clamp_ms(o.heartbeat_timeout));
    s.set(zmq::sockopt::reconnect_ivl, clamp_ms(o.reconnect_interval));
    s.set(zmq::sockopt::reconnect_ivl_max, clamp_ms(o.reconnect_interval_max));
    s.set(zmq::sockopt::sndhwm, kDealerSndHwm);
    s.set(zmq::sockopt::rcvhwm, kRcvHwm);
    s.set(zmq::sockopt::maxmsgsize, max_message_size(o));
    if (ipv6) s.set(zmq::sockopt::ipv6, true);
    if (o.curve) {
      s.set(zmq::sockopt::curve_serverkey, server_key);
      s.set(zmq::sockopt::curve_publickey, o.curve->public_key);
      s.set(zmq::sockopt::curve_secretkey, o.curve->secret_key);
    }
  } catch (const zmq::error_t&) {
    return false;  // libzmq refused one
  }
  return true;
}

}  // namespace mesh::transport::detail
