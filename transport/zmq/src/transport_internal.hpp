// Private types shared by the two halves of a Transport: the caller side
// (transport.cpp: every public call, run on the caller's thread) and the
// transport thread that owns the ZeroMQ sockets (transport_loop.cpp).
//
// What a caller may touch without a thread hop is here: the peer table
// (state and queue depth per peer, read under a shared lock), the inbox
// table, the ask table, the counters, and the command queue through which
// everything else reaches the transport thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <queue>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <variant>
#include <vector>

#include "mesh/transport/envelope.hpp"
#include "mesh/transport/transport.hpp"

namespace mesh::transport {
namespace detail {

std::int64_t unix_now_ms();    // wall clock: what envelopes carry
std::int64_t steady_now_ms();  // monotonic: every local deadline

inline void bump(std::atomic<std::uint64_t>& counter, std::uint64_t n = 1) {
  counter.fetch_add(n, std::memory_order_relaxed);
}
inline void drop(std::atomic<std::uint64_t>& gauge, std::uint64_t n = 1) {
  gauge.fetch_sub(n, std::memory_order_relaxed);
}
inline std::size_t type_index(MessageType t) { return static_cast<std::size_t>(t); }

struct Counters {
  std::atomic<std::uint64_t> sent[5];
  std::atomic<std::uint64_t> received[5];
  std::atomic<std::uint64_t> refused[5];
  std::atomic<std::uint64_t> deduplicated[5];
  std::atomic<std::uint64_t> frames_malformed{0};
  std::atomic<std::uint64_t> frames_oversized{0};
  std::atomic<std::uint64_t> frames_bad_version{0};
  std::atomic<std::uint64_t> frames_unauthenticated{0};
  std::atomic<std::uint64_t> replies_unroutable{0};
  std::atomic<std::uint64_t> replies_unmatched{0};
  std::atomic<std::uint64_t> replies_deferred{0};
  std::atomic<std::uint64_t> replies_waiting{0};
  std::atomic<std::uint64_t> replies_waiting_bytes{0};
  std::atomic<std::uint64_t> replies_dropped{0};
  std::atomic<std::uint64_t> reply_cache_bytes{0};  // a gauge the transport thread sets
  std::atomic<std::uint64_t> requests_answered_again{0};
  std::atomic<std::uint64_t> requests_timed_out{0};
  std::atomic<std::uint64_t> expired_on_arrival{0};
  std::atomic<std::uint64_t> requests_failed_fast{0};
  std::atomic<std::uint64_t> requests_direct{0};
  std::atomic<std::uint64_t> peers_connected{0};
  std::atomic<std::uint64_t> outbound_queued{0};
  std::atomic<std::uint64_t> outbound_queued_bytes{0};
  std::atomic<std::uint64_t> pending_requests{0};
  std::atomic<std::uint64_t> notifies_undeliverable{0};
  // TransportStats::request_latency: [answered/failed][bucket], and the
  // summed latency in nanoseconds.
  std::atomic<std::uint64_t> latency_buckets[2][kRequestLatencyBounds.size() + 1];
  std::atomic<std::uint64_t> latency_sum_ns[2];
};

// Counts one finished request that was started at `started`.
void record_request_latency(Counters& counters, std::chrono::steady_clock::time_point started,
                            bool answered);

// One outstanding request. Whoever flips `done` first (the reply, the
// deadline, a peer failure, shutdown) runs the callback; everyone else
// finds it done and lets go. That is the whole synchronisation between
// the threads that may race to finish a request.
struct PeerShared;

class PendingCall {
 public:
  // `peer` identifies the PeerShared the request went to (compared, never
  // dereferenced); null for a same-node request. `gauge` counts open calls.
  PendingCall(MessageId id, const void* peer, std::int64_t deadline_ms,
              std::function<void(Reply)> done, std::atomic<std::uint64_t>* gauge);
  PendingCall(const PendingCall&) = delete;
  PendingCall& operator=(const PendingCall&) = delete;

  // Runs the callback with `reply` unless the call was completed already.
  // `outcome`, if given, is counted before the callback runs (so that a
  // caller woken by it sees the count). A callback that throws is
  // contained (it may run on the transport thread).
  bool complete(Reply&& reply, std::atomic<std::uint64_t>* outcome = nullptr);
  // Marks the call done without running the callback (it was never sent).
  void cancel();
  bool done() const { return done_.load(std::memory_order_acquire); }
  // Counts the call in the peer's pending_main until it completes.
  void track(std::shared_ptr<PeerShared> target);

  const MessageId id;
  const void* const peer;
  const std::int64_t deadline_ms;  // steady clock

 private:
  std::atomic<bool> done_{false};
  std::function<void(Reply)> callback_;
  std::atomic<std::uint64_t>* gauge_;
  std::shared_ptr<PeerShared> tracked_;
};

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
  void* dealer = nullptr;                 // published while open
  std::atomic<bool> dealer_used{false};   // a caller sent on it: the thread looks at it again
  std::atomic<int> pending_main{0};       // requests awaiting a reply on the main DEALER
};

// A frame waiting in a peer's outbound queue.
struct OutFrame {
  std::vector<std::uint8_t> bytes;
  MessageType type = MessageType::Notify;
  Priority priority = Priority::Normal;
  MessageId id;
  std::string target;
  std::string sender_agent;            // notifies: whom a failure is reported to
  bool raw = false;                    // send_raw_for_test: not an envelope
  std::shared_ptr<PendingCall> call;   // requests only
};

struct CmdAddPeer {
  std::shared_ptr<PeerShared> peer;
  PeerAddress address;
};
struct CmdRemovePeer {
  std::shared_ptr<PeerShared> peer;
  ErrorCode reason = ErrorCode::PeerDead;
};
struct CmdSend {
  std::shared_ptr<PeerShared> peer;
  OutFrame frame;
};
struct CmdReply {
  std::string identity;
  std::vector<std::uint8_t> bytes;
  MessageType type = MessageType::Response;
  MessageId request;  // the request it answers (for the reply cache)
};
// Nothing to do but wake up: a same-node request with a short deadline
// was added to the LocalDeadlines.
struct CmdWake {};
struct CmdStop {};
using Command = std::variant<CmdAddPeer, CmdRemovePeer, CmdSend, CmdReply, CmdWake, CmdStop>;

// Many producers, one consumer (the transport thread). Producers append
// under a mutex; the consumer swaps the whole vector out. An eventfd that
// the transport thread polls beside its sockets wakes it.
class CommandQueue {
 public:
  CommandQueue();  // throws TransportError if no eventfd
  ~CommandQueue();
  CommandQueue(const CommandQueue&) = delete;
  CommandQueue& operator=(const CommandQueue&) = delete;

  // `urgent` = false skips the wake-up when the thread has not been woken
  // since its last take: the command is then picked up at the thread's
  // next wake, at most kMaxPollMs later. Used for bookkeeping that is off
  // the critical path (a same-node request's deadline).
  void push(Command&& command, bool urgent = true);
  // Consumer: clears the eventfd (when `readable`), then takes everything.
  void take(std::vector<Command>& out, bool readable);
  int fd() const { return fd_; }

 private:
  std::mutex mu_;
  std::vector<Command> items_;
  bool signaled_ = false;  // an eventfd write since the last take
  int fd_ = -1;
};

// Deadlines of same-node async requests. Their replies never pass through
// the transport thread (the responder completes them), so nobody else
// would notice a deadline; the transport thread expires them on each
// wake-up (or, under local_only, every public call does).
class LocalDeadlines {
 public:
  // True when `call` has become the earliest deadline.
  bool add(std::shared_ptr<PendingCall> call);
  // Completes with Timeout every call whose deadline has passed.
  void expire(std::int64_t now_ms, std::atomic<std::uint64_t>& timed_out);
  // Completes every call with `reason` (shutdown).
  void fail_all(ErrorCode reason, std::atomic<std::uint64_t>& failed);
  std::int64_t next_ms() const;  // INT64_MAX when empty

 private:
  static bool later(const std::shared_ptr<PendingCall>& a, const std::shared_ptr<PendingCall>& b) {
    return a->deadline_ms > b->deadline_ms;
  }
  mutable std::mutex mu_;
  std::vector<std::shared_ptr<PendingCall>> heap_;  // min-heap on deadline
  std::size_t compact_at_ = 1024;
};

// ask_async results, keyed by request id. Bounded in entries and in the
// bytes of the answers held (TransportOptions::ask_limit, ask_bytes).
class AskTable {
 public:
  AskTable(std::size_t limit, std::size_t byte_limit);
  // False when the table is full (the ask is refused with MailboxFull).
  bool add(const MessageId& id, std::int64_t deadline_ms, std::int64_t free_at_ms);
  void erase(const MessageId& id);
  void complete(const MessageId& id, Reply&& reply);
  AskResult check(const MessageId& id, std::chrono::milliseconds wait, bool remove);
  // Frees entries whose retention ran out.
  void sweep(std::int64_t now_ms);
  std::size_t size() const;
  std::size_t bytes() const;

 private:
  struct Entry {
    AskState state = AskState::Pending;
    Reply reply;
    std::int64_t deadline_ms = 0;
    std::int64_t free_at_ms = 0;
    std::size_t bytes = 0;  // of the answer, counted in bytes_
  };
  void erase_locked(const MessageId& id);
  struct FreeAt {
    std::int64_t at_ms;
    MessageId id;
    bool operator>(const FreeAt& o) const { return at_ms > o.at_ms; }
  };
  void sweep_locked(std::int64_t now_ms);

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::unordered_map<MessageId, Entry, MessageIdHash> entries_;
  std::priority_queue<FreeAt, std::vector<FreeAt>, std::greater<>> frees_;
  const std::size_t limit_;
  const std::size_t byte_limit_;
  std::size_t bytes_ = 0;
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
  void* zmq_context = nullptr;     // owned by Transport::Impl
  std::uint16_t port = 0;          // set once before the thread starts
  std::string endpoint;
  CommandQueue commands;
  AskTable asks;
  LocalDeadlines local_deadlines;

  mutable std::shared_mutex peers_mu;
  std::unordered_map<std::string, std::shared_ptr<PeerShared>, StringHash, std::equal_to<>> peers;
  std::deque<std::string> tombstone_order;  // peers removed lately, oldest first
  std::unordered_set<std::string, StringHash, std::equal_to<>> tombstones;

  mutable std::shared_mutex inbox_mu;
  std::unordered_map<std::string, std::shared_ptr<Inbox>, StringHash, std::equal_to<>> inboxes;

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
// The transport thread wakes at least this often (sweeps, lazy commands).
inline constexpr std::int64_t kMaxPollMs = 100;

// Envelope helpers used on both sides.
EnvelopeView view_of(const Envelope& e);
// The reply to `request` (a Response, or an Error when `error` != None):
// correlation = the request's id, target = its sender agent, sender agent
// = the inbox it was addressed to.
Envelope make_reply(Core& core, const EnvelopeView& request, ErrorCode error,
                    std::vector<std::uint8_t> payload, std::vector<std::uint8_t> context,
                    Priority priority);
// Runs a quick handler, containing whatever it throws (as Rejected).
ErrorCode run_quick(const QuickHandler& handler, const EnvelopeView& request,
                    std::vector<std::uint8_t>& payload);

}  // namespace detail

// Where a reply goes. Remote: the routing id at our ROUTER the request
// came in from, and the transport that owns that ROUTER. Same node: the
// waiting request itself.
struct ReplyRoute {
  std::atomic<bool> answered{false};
  std::string identity;
  std::weak_ptr<detail::Core> core;
  std::shared_ptr<detail::PendingCall> local;
};

}  // namespace mesh::transport
