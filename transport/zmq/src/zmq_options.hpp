// Socket settings shared by the transport thread's DEALERs and the request
// channels' DEALERs, so that both reach a peer the same way.
#pragma once

#include <zmq.hpp>

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "mesh/transport/transport.hpp"

namespace mesh::transport::detail {

int clamp_ms(std::chrono::milliseconds d);

bool is_ipv6(std::string_view host);
// tcp://host:port, brackets around an IPv6 literal; port 0 = "*".
std::string tcp_endpoint(std::string_view host, std::uint16_t port);
// ZMQ_MAXMSGSIZE: a hard memory guard well above max_frame_bytes, so that
// frames a little over the limit still arrive and are counted oversized.
std::int64_t max_message_size(const TransportOptions& o);

// LINGER 0, IMMEDIATE, heartbeats, handshake/connect timeouts, reconnect
// intervals, HWMs, MAXMSGSIZE, and CURVE client keys when CURVE is on
// (`server_key` = the peer's public key). False if libzmq refused one.
bool configure_dealer(zmq::socket_ref socket, const TransportOptions& o, std::string_view routing_id,
                      const std::string& server_key, bool ipv6);

}  // namespace mesh::transport::detail
