#pragma once

#include <zmq.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "mesh/transport/transport.hpp"

namespace mesh::transport::detail {

enum class PeerState : std::uint8_t { Connecting, Connected, Disconnected, Unreachable };

class ChannelPool;  // request_channel.hpp

// The part of a peer that callers read without a thread hop. Created by
// add_peer; a later add_peer with another address keeps it; remove_peer
// drops it from the table (a new add_peer makes a fresh one).
struct PeerShared {
  explicit PeerShared(std::string peer_name);
  ~PeerShared();

  const std::string name;
  std::atomic<PeerState> state{PeerState::Connecting};
  std::atomic<std::size_t> queued{0};       // messages in its outbound queue (and commands on the way)
  std::atomic<std::size_t> queued_bytes{0}; // ...and their encoded bytes
  std::atomic<std::uint64_t> failures{0};   // bumped whenever pending requests to it are failed
  std::atomic<ErrorCode> removed{ErrorCode::None};  // the remove_peer reason, once removed
  const std::shared_ptr<ChannelPool> channels;  // direct-request sockets (request_channel.hpp)

  // The peer's main DEALER, shared with callers for direct notify sends
  // (Transport::notify): every use of it, by the transport thread or by a
  // caller, holds dealer_mu, which is also the memory barrier libzmq needs
  // for a socket used from several threads.
  std::mutex dealer_mu;
  zmq::socket_ref dealer;                 // published while open, null otherwise
  std::atomic<bool> dealer_used{false};   // a caller sent on it: the thread looks at it again (Core::dealer_recheck)
  std::atomic<int> pending_main{0};       // requests awaiting a reply on the main DEALER
};

}  // namespace mesh::transport::detail
