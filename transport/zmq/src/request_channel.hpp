// Request channels: how a blocking request() skips the transport thread.
//
// A channel is a DEALER connected to one peer's ROUTER, with the routing id
// "<node>#<32 hex digits of a fresh message id>" (unguessable). A thread calling request() checks a channel out of the
// peer's pool, sends on it and blocks in a receive on it for the reply,
// the way a raw ZeroMQ client does: no hand-off to the transport thread on
// the way out, none on the way back. Each hop between vCPUs costs about
// 20 µs here, a quarter of a raw round trip (docs/transport.md has the
// figures).
//
// ZeroMQ sockets are not thread-safe, but may move between threads given a
// full memory barrier: the pool's mutex is that barrier. A channel is used
// by one thread at a time, the one that checked it out.
//
// Failure detection stays with the transport thread, which monitors the
// peer's main DEALER: when it fails the requests to a peer it bumps the
// peer's failure counter (PeerShared::note_failure), which also fires an
// eventfd. The waiting thread poll()s its channel's ZMQ_FD and that
// eventfd until the deadline, so it fails fast, at once, as the normal
// path would, and an idle wait costs no wake-up. The design first had the
// thread publish failures on an inproc PUB and each channel zmq_poll its
// DEALER and a SUB: immediate, but zmq_poll over two sockets costs about
// six more syscalls per round trip than a blocking receive on one
// (counted with strace -c). Then came a blocking receive in slices of
// 100 ms with the counter read between them: cheap, but failures were
// noticed a slice late and a waiting thread woke ten times a second. A
// plain poll() over one ZMQ_FD and one eventfd costs two syscalls more
// per round trip than the blocking receive (docs/transport.md,
// "Measured").
#pragma once

#include <zmq.hpp>

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "mesh/transport/transport.hpp"

namespace mesh::transport::detail {

struct Core;
struct PeerShared;

struct Channel {
  Channel() = default;
  ~Channel();  // closes the socket (LINGER 0)
  Channel(const Channel&) = delete;
  Channel& operator=(const Channel&) = delete;

  zmq::socket_t dealer;
  int fd = -1;                   // its ZMQ_FD
  std::uint64_t generation = 0;  // the pool target it was made for
  int misses = 0;                // sends refused in a row (not connected)
};

class ChannelPool {
 public:
  ChannelPool() = default;
  ~ChannelPool();
  ChannelPool(const ChannelPool&) = delete;
  ChannelPool& operator=(const ChannelPool&) = delete;

  // Where new channels connect; set by the transport thread whenever it
  // (re)connects the peer's DEALER. Channels made for an earlier target
  // are closed as they come back.
  void set_target(const std::string& endpoint, const std::string& server_key);
  // A free channel or a new one; null when the pool is closed, has no
  // target yet, cannot make a socket, or has kMaxChannels out.
  std::unique_ptr<Channel> checkout(Core& core);
  // Returns a channel; `keep` = false closes it instead.
  void checkin(std::unique_ptr<Channel> channel, bool keep);
  // Closes the free channels now and the others as they come back; later
  // checkouts get nothing.
  void close();
  // Closes the free channels (idle_disconnect); the pool stays open and
  // makes new ones on demand.
  void drop_free();
  // Blocks until no channel is checked out.
  void wait_idle();

  static constexpr std::size_t kMaxChannels = 64;

 private:
  std::mutex mu_;
  std::condition_variable idle_;
  std::vector<std::unique_ptr<Channel>> free_;
  std::size_t out_ = 0;
  std::size_t made_ = 0;
  bool closed_ = false;
  std::string endpoint_;
  std::string server_key_;
  std::uint64_t generation_ = 0;
};

// Sends `frame` (an encoded request with id `id`) over a channel to `peer`
// and waits up to `timeout` for the reply. nullopt = nothing was sent (no
// channel, peer not connected, channel not connected yet): take the normal
// path. Otherwise the outcome, exactly as the normal path would give it.
std::optional<Reply> direct_request(Core& core, PeerShared& peer, const MessageId& id,
                                    const std::vector<std::uint8_t>& frame, std::chrono::milliseconds timeout);

}  // namespace mesh::transport::detail
