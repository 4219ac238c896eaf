// CURVE admission: the ZAP handler that lets a client key in or not.
#include "loop.hpp"

#include <array>
#include <string>
#include <vector>

#include "zmq_io.hpp"

namespace mesh::transport::detail {

// zmq_z85_decode is C: cppzmq wraps sockets and messages, not the Z85
// codec.
std::string z85_to_bin(std::string_view z85) {
  if (!is_valid_curve_key(z85)) return {};
  std::array<std::uint8_t, 32> out{};
  const std::string text(z85);
  if (!zmq_z85_decode(out.data(), text.c_str())) return {};
  return std::string(reinterpret_cast<const char*>(out.data()), out.size());
}

// ZAP (RFC 27): [version, request id, domain, address, routing id,
// mechanism, credentials...] in, [version, request id, status code,
// status text, user id, metadata] out. REP strips and restores the
// envelope delimiter libzmq puts in front.
bool Loop::handle_zap() {
  for (int i = 0; i < kRecvBatch; ++i) {
    std::vector<std::string> frames;
    {
      zmq::message_t first;
      if (!recv_now(zap_, first)) return true;
      frames.emplace_back(first.to_string_view());
      bool more = first.more();
      while (more) {
        zmq::message_t next;
        if (!recv_now(zap_, next)) break;
        frames.emplace_back(next.to_string_view());
        more = next.more();
      }
    }
    const bool accept = frames.size() >= 7 && frames[0] == "1.0" && frames[5] == "CURVE" &&
                        frames[6].size() == 32 && key_allowed(frames[6]);
    if (!accept) bump(core_->counters.frames_unauthenticated);
    const std::string request_id = frames.size() > 1 ? frames[1] : std::string();
    const std::string status = accept ? "200" : "400";
    const std::string text = accept ? "OK" : "client key not allowed";
    constexpr auto more = zmq::send_flags::sndmore;
    send_now(zap_, zmq::str_buffer("1.0"), more);
    send_now(zap_, zmq::buffer(request_id), more);
    send_now(zap_, zmq::buffer(status), more);
    send_now(zap_, zmq::buffer(text), more);
    send_now(zap_, zmq::const_buffer(), more);
    send_now(zap_, zmq::const_buffer());
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

}  // namespace mesh::transport::detail
