// CURVE admission and attribution: the ZAP handler that lets a client key
// in or not, and the node each frame read at the ROUTER is from.
#include "loop.hpp"

#include <sys/socket.h>

#include <array>
#include <cstring>
#include <string>
#include <vector>

#include "zmq_io.hpp"

namespace mesh::transport::detail {

// A 32-byte CURVE key as Z85 text (40 characters). zmq_z85_encode is C:
// cppzmq wraps sockets and messages, not the Z85 codec.
std::string bin_to_z85(std::string_view bin) {
  std::array<char, 41> out{};
  if (bin.size() != 32 ||
      !zmq_z85_encode(out.data(), reinterpret_cast<const std::uint8_t*>(bin.data()), bin.size())) {
    return {};
  }
  return std::string(out.data(), 40);
}

// ZAP (RFC 27): [version, request id, domain, address, routing id,
// mechanism, credentials...] in, [version, request id, status code,
// status text, user id, metadata] out. REP strips and restores the
// envelope delimiter libzmq puts in front.
//
// A client is admitted when its key has an owner (key_owner_). The user id
// we return is the key itself (Z85): libzmq attaches it to every message
// of that connection as "User-Id", and node_of() looks its owner up again
// for each frame, so a key that loses its owner stops being believed at
// once; its connections are closed then too (close_connections_of), and a
// client that reconnects meets this handler again. The routing id the client
// announces plays no part (and under CURVE our DEALERs announce none: the
// ROUTER numbers connections itself, so no client can take over another's
// routing id and with it the replies owed to that node).
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
    std::string key;
    if (frames.size() >= 7 && frames[0] == "1.0" && frames[5] == "CURVE") key = bin_to_z85(frames[6]);
    const bool accept = !key.empty() && key_owner_.contains(key);
    if (!accept) bump(core_->counters.frames_unauthenticated);
    const std::string request_id = frames.size() > 1 ? frames[1] : std::string();
    const std::string status = accept ? "200" : "400";
    const std::string text = accept ? "OK" : "client key not allowed";
    constexpr auto more = zmq::send_flags::sndmore;
    send_now(zap_, zmq::str_buffer("1.0"), more);
    send_now(zap_, zmq::buffer(request_id), more);
    send_now(zap_, zmq::buffer(status), more);
    send_now(zap_, zmq::buffer(text), more);
    send_now(zap_, accept ? zmq::buffer(key) : zmq::const_buffer(), more);
    send_now(zap_, zmq::const_buffer());
  }
  return false;
}

std::string_view Loop::node_of(std::string_view identity, const zmq::message_t& body) {
  if (!options_.curve) return source_node(identity);
  // zmq_msg_gets / zmq_msg_get are C: cppzmq's gets() throws when the
  // property is absent, and it has no get() for ZMQ_SRCFD.
  const char* key = zmq_msg_gets(body.handle(), "User-Id");
  const auto it = key == nullptr ? key_owner_.end() : key_owner_.find(std::string_view(key));
  if (it == key_owner_.end()) {
    if (key != nullptr) close_connection(zmq_msg_get(body.handle(), ZMQ_SRCFD), key);
    return {};
  }
  // Frames come in runs from one connection, and a routing id names one
  // connection for the ROUTER's life: note a connection when the run
  // changes, not per frame (ZMQ_SRCFD is a metadata lookup and a parse).
  if (identity != noted_identity_) {
    note_connection(zmq_msg_get(body.handle(), ZMQ_SRCFD), it->first);
    noted_identity_.assign(identity);
  }
  return it->second;
}

// Connections are closed with shutdown(2), never close(2): the descriptor
// stays libzmq's, which sees the connection end as if the peer had gone
// and cleans up on its own I/O thread. ZeroMQ has no call to close one
// connection of a ROUTER; the descriptor a message came over is what it
// offers (ZMQ_SRCFD).
void Loop::note_connection(int fd, std::string_view key) {
  if (fd < 0) return;
  const auto it = connections_.find(fd);
  if (it != connections_.end() && it->second.key == key) return;  // the common case: one lookup
  // A new connection, or the descriptor now serves one made with another key.
  Connection c;
  c.key = std::string(key);
  c.peer_len = sizeof c.peer;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&c.peer), &c.peer_len) != 0) {
    if (it != connections_.end()) connections_.erase(it);
    return;
  }
  connections_[fd] = std::move(c);
}

// The connection we noted may have ended (libzmq's I/O thread closes it,
// and may reuse its descriptor, before we read what it delivered): shut
// a descriptor down only while it still leads to the peer address noted.
void Loop::shut_down_noted(int fd, const Connection& c) {
  sockaddr_storage now{};
  socklen_t len = sizeof now;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&now), &len) == 0 && len == c.peer_len &&
      std::memcmp(&now, &c.peer, len) == 0 && ::shutdown(fd, SHUT_RDWR) == 0) {
    bump(core_->counters.connections_revoked);
  }
}

void Loop::close_connections_of(const std::string& z85) {
  noted_identity_.clear();
  for (auto it = connections_.begin(); it != connections_.end();) {
    if (it->second.key != z85) {
      ++it;
      continue;
    }
    shut_down_noted(it->first, it->second);
    it = connections_.erase(it);
  }
}

void Loop::close_connection(int fd, std::string_view key) {
  // Only a connection noted with that key: one revoked before its first
  // frame was never noted, and stays open, its frames refused.
  const auto it = connections_.find(fd);
  if (it == connections_.end() || it->second.key != key) return;
  shut_down_noted(fd, it->second);
  connections_.erase(it);
}

void Loop::own_key(const std::string& z85, const std::string& node) {
  if (options_.curve && is_valid_curve_key(z85)) key_owner_.try_emplace(z85, node);
}

void Loop::disown_key(const std::string& z85, const std::string& node) {
  const auto it = key_owner_.find(z85);
  if (it != key_owner_.end() && it->second == node) {
    key_owner_.erase(it);
    close_connections_of(z85);
  }
}

}  // namespace mesh::transport::detail
