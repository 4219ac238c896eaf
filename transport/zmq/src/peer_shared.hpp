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

// Idle: no connection, opened by the next message (idle_disconnect).
enum class PeerState : std::uint8_t { Connecting, Connected, Disconnected, Unreachable, Idle };

class ChannelPool;  // request_channel.hpp

// Something a thread can poll() on that turns readable once, for good: an
// eventfd written once and never read.
class OneShotSignal {
 public:
  // Null when no eventfd can be made (a resource limit).
  static std::shared_ptr<OneShotSignal> make();
  explicit OneShotSignal(int fd) : fd_(fd) {}
  ~OneShotSignal();
  OneShotSignal(const OneShotSignal&) = delete;
  OneShotSignal& operator=(const OneShotSignal&) = delete;
  void fire();
  int fd() const { return fd_; }

 private:
  int fd_;
};

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
  std::atomic<std::uint64_t> failures{0};   // bumped whenever pending requests to it are failed (note_failure)
  std::atomic<ErrorCode> removed{ErrorCode::None};  // the remove_peer reason, once removed
  const std::shared_ptr<ChannelPool> channels;  // direct-request sockets (request_channel.hpp)

  // What a thread blocked in a direct request watches so as to fail as
  // fast as the transport thread's requests do: the failure count as it
  // was read, and a signal that fires as soon as the count moves on, the
  // peer is removed or the transport stops. Both are read under one lock,
  // so a failure after this call fires the signal, even one that comes
  // before the thread sleeps. `signal` is null when no eventfd could be
  // made.
  struct FailureWatch {
    std::uint64_t epoch = 0;
    std::shared_ptr<OneShotSignal> signal;
  };
  FailureWatch watch_failures();
  // Bumps `failures` and wakes whoever watches them.
  void note_failure();
  // Wakes whoever watches, once `removed` or Core::stopping has been set.
  void wake_watchers();

  // The peer's main DEALER, shared with callers for direct notify sends
  // (Transport::notify): every use of it, by the transport thread or by a
  // caller, holds dealer_mu, which is also the memory barrier libzmq needs
  // for a socket used from several threads.
  std::mutex dealer_mu;
  zmq::socket_ref dealer;                 // published while open, null otherwise
  std::atomic<bool> dealer_used{false};   // a caller sent on it: the thread looks at it again (Core::dealer_recheck)
  std::atomic<bool> used{false};          // a caller sent to the peer directly: the connection is not idle
  std::atomic<int> pending_main{0};       // requests awaiting a reply on the main DEALER

 private:
  std::mutex watch_mu_;
  // The signal the watchers since the last failure were given; made on
  // the first watch_failures() after it fired, so a peer nobody sends
  // direct requests to holds no eventfd.
  std::shared_ptr<OneShotSignal> watch_signal_;
};

}  // namespace mesh::transport::detail
