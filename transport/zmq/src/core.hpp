// What both halves of a Transport share: the caller side (transport_impl.hpp:
// every public call, run on the caller's thread) and the transport thread
// that owns the ZeroMQ sockets (loop.hpp).
//
// What a caller may touch without a thread hop is here: the peer table
// (state and queue depth per peer, read under a shared lock), the inbox
// table, the ask table, the counters, and the command queue through which
// everything else reaches the transport thread.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "ask_table.hpp"
#include "command_queue.hpp"
#include "counters.hpp"
#include "direct_watches.hpp"
#include "local_deadlines.hpp"
#include "mesh/transport/envelope.hpp"
#include "mesh/transport/transport.hpp"
#include "peer_shared.hpp"

namespace zmq {
class context_t;
class socket_t;
}

namespace mesh::transport::detail {

// A caller's direct send on a peer's DEALER may take the signal the
// socket's fd would have given the transport thread (send_direct in
// transport_reserve.cpp): the thread looks at that DEALER again at the
// latest this long after. Only refusals of notifies can wait that long.
inline constexpr std::int64_t kDealerRecheckMs = 10;

class ReplyCache;

// The ROUTER as a caller may use it to send its answer to a request
// itself, without handing it to the transport thread (one wake-up less on
// every remote request; Transport::Impl::answer). The thread holds `mu`
// around each use of the ROUTER and of the reply cache, and never while
// it runs anything else (callbacks, deliveries), so a caller never waits
// long; callers only try it, and hand the answer over when they cannot
// have it.
struct RouterShare {
  std::mutex mu;
  zmq::socket_t* socket = nullptr;  // under mu: set while the thread runs
  ReplyCache* replies = nullptr;    // under mu: the thread's reply cache
  // Under mu: some answers wait on the thread for room in a requester's
  // pipe. Answers leave in order, so a caller then hands its own over.
  bool deferred = false;
  // A caller's send may have taken the signal the ROUTER's fd would have
  // given the thread, and found input waiting: the thread reads it.
  std::atomic<bool> recheck{false};
};

struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};

// Everything both halves share. Owned by a shared_ptr so that a ReplyRoute
// can hold a weak reference to it.
struct Core {
  explicit Core(TransportOptions opts);

  std::shared_ptr<Inbox> find_inbox(std::string_view name) const;  // open inboxes only
  std::shared_ptr<PeerShared> find_peer(std::string_view name) const;
  bool is_local(std::string_view node) const { return node.empty() || node == options.node_name; }

  const TransportOptions options;
  MessageIdGenerator ids;
  Counters counters;
  std::atomic<bool> stopping{false};
  zmq::context_t* zmq_context = nullptr;  // owned by Transport::Impl
  std::uint16_t port = 0;          // set once before the thread starts
  std::string endpoint;
  CommandQueue commands;
  DelayedWake dealer_recheck{kDealerRecheckMs};  // set by direct sends (dealer_used)
  RouterShare router;
  DirectWatches direct_watches;  // requests callers sent on a DEALER themselves
  AskTable asks;
  LocalDeadlines local_deadlines;

  mutable std::shared_mutex peers_mu;
  std::unordered_map<std::string, std::shared_ptr<PeerShared>, StringHash, std::equal_to<>> peers;
  std::deque<std::string> tombstone_order;  // peers removed lately, oldest first
  std::unordered_set<std::string, StringHash, std::equal_to<>> tombstones;

  mutable std::shared_mutex inbox_mu;
  std::unordered_map<std::string, std::shared_ptr<Inbox>, StringHash, std::equal_to<>> inboxes;
  // Closed inboxes stay in the table until the next open_inbox finds it
  // this full; then they go and the mark doubles from what is left, so
  // the table holds at most about twice the open inboxes (under inbox_mu).
  std::size_t inbox_prune_at = 64;

  // Every channel pool made, so that shutdown can close their sockets
  // before the context (zmq_ctx_term waits for every socket).
  void register_pool(const std::shared_ptr<ChannelPool>& pool);
  std::vector<std::shared_ptr<ChannelPool>> live_pools();

 private:
  std::mutex pools_mu_;
  std::vector<std::weak_ptr<ChannelPool>> pools_;
  std::size_t pools_prune_at_ = 64;
};

// How many removed peer names answer PeerDead rather than PeerUnknown.
inline constexpr std::size_t kTombstones = 1024;

}  // namespace mesh::transport::detail
