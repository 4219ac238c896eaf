// The transport's few helpers over cppzmq: receiving and sending without
// waiting and without exceptions, and the socket options the transport
// thread reads on every wake-up.
//
// cppzmq throws zmq::error_t for every failure but EAGAIN. These helpers
// turn that back into a plain false (or 0, or -1), as the C calls they
// replace answered: the transport thread must never be unwound by a
// socket in an odd state (a REP that cannot receive, say). They cost
// nothing on the paths that succeed or answer EAGAIN; only the failures
// that used to be an errno pay for an exception, and none of those is on
// a path a peer can drive at will (an unroutable ROUTER send is: see
// try_router_send in loop_router_send.cpp, which keeps the C call).
#pragma once

#include <zmq.hpp>

#include <cstddef>
#include <cstdint>
#include <span>

namespace mesh::transport::detail {

// A receive that does not wait: false when nothing was there, or on any
// error.
inline bool recv_now(zmq::socket_ref s, zmq::message_t& m) noexcept {
  try {
    return s.recv(m, zmq::recv_flags::dontwait).has_value();
  } catch (const zmq::error_t&) {
    return false;
  }
}

// A send that does not wait: false when the pipe was full, or on any error.
inline bool send_now(zmq::socket_ref s, zmq::const_buffer bytes,
                     zmq::send_flags flags = zmq::send_flags::none) noexcept {
  try {
    return s.send(bytes, flags | zmq::send_flags::dontwait).has_value();
  } catch (const zmq::error_t&) {
    return false;
  }
}

inline std::span<const std::uint8_t> bytes_of(const zmq::message_t& m) {
  return {m.data<std::uint8_t>(), m.size()};
}

// Reads and drops the rest of a multipart message.
inline void drain_multipart(zmq::socket_ref s) {
  for (;;) {
    zmq::message_t rest;
    if (!recv_now(s, rest) || !rest.more()) return;
  }
}

inline int socket_events(zmq::socket_ref s) noexcept {
  try {
    return s.get(zmq::sockopt::events);
  } catch (const zmq::error_t&) {
    return 0;
  }
}
inline int socket_fd(zmq::socket_ref s) noexcept {
  try {
    return s.get(zmq::sockopt::fd);
  } catch (const zmq::error_t&) {
    return -1;
  }
}

}  // namespace mesh::transport::detail
