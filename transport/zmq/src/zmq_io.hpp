// The transport thread's few helpers over libzmq's C API: a received frame,
// socket options it reads, and closing.
#pragma once

#include <zmq.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace mesh::transport::detail {

inline void close_socket(void*& s) {
  if (s) zmq_close(s);
  s = nullptr;
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

inline void drain_multipart(void* s) {
  for (;;) {
    Msg rest;
    if (!rest.recv(s) || !rest.more()) return;
  }
}

inline std::uint32_t socket_events(void* s) {
  std::uint32_t ev = 0;
  std::size_t size = sizeof ev;
  if (zmq_getsockopt(s, ZMQ_EVENTS, &ev, &size) != 0) return 0;
  return ev;
}
inline int socket_fd(void* s) {
  int fd = -1;
  std::size_t size = sizeof fd;
  if (zmq_getsockopt(s, ZMQ_FD, &fd, &size) != 0) return -1;
  return fd;
}

}  // namespace mesh::transport::detail
