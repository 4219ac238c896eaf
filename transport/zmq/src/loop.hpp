// The transport thread: owns the ROUTER, one DEALER (and its monitor) per
// peer and the ZAP handler, and runs them all from one poll() over their
// ZMQ_FDs. See docs/transport.md.
//
// Everything in class Loop runs on that thread, except the constructor
// (before the thread starts) and drain_late_commands() (after it ended).
// Its member functions are defined one concept per file:
//   loop_lifecycle.cpp  sockets made at start, everything closed at the end
//   loop_poll.cpp       the poll loop, the sockets' service, the commands
//   loop_peers.cpp      a peer's DEALER and monitor: its connection states
//   loop_output.cpp     a peer's outbound queue, flushed to its DEALER
//   loop_deadlines.cpp  our requests in flight: deadlines and failures
//   loop_inbound.cpp    frames read: decode, dedup, deliver, match replies
//   loop_admission.cpp  the owner's say on a message: admit, refuse, hold
//   loop_router_send.cpp  replies and refusals sent on the ROUTER
//   loop_zap.cpp        the ZAP handler that admits CURVE clients; whose key is whose
//
// ZeroMQ traps the loop is shaped around (docs/transport.md has the list
// and what was measured):
//   * LINGER defaults to forever: every socket gets LINGER 0, so closing
//     with undelivered frames (an unreachable peer) never blocks.
//   * A monitor writes its events with a blocking send: every monitor PAIR
//     is in the poll set and read whenever it has input, and the monitor is
//     switched off (zmq_socket_monitor(s, nullptr, 0)) before its socket
//     closes.
//   * ROUTER without MANDATORY drops frames to unknown identities silently:
//     MANDATORY is on and every ROUTER send is DONTWAIT, so a vanished
//     requester costs a counter (replies_unroutable), never a block.
//   * A restarted peer reusing its routing id is ignored without
//     ROUTER_HANDOVER: it is on.
//   * Without heartbeats a frozen peer is never noticed: every socket
//     heartbeats, and the handshake and connect have timeouts of the same
//     length, so a peer that accepts TCP but never speaks ZMTP is noticed.
//   * A DEALER queues frames for a connection that is not up (and, before
//     the handshake, may send into it): IMMEDIATE is on and our own bounded
//     per-peer queue holds frames until the handshake has succeeded.
//   * A handshake failing on a protocol error (CURVE refused, mechanism
//     mismatch) ends libzmq's reconnecting for that DEALER (session_base.cpp,
//     engine_error: protocol_error terminates the session): we re-create the
//     DEALER ourselves with a backoff.
#pragma once

#include <sys/socket.h>
#include <zmq.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <queue>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "clock.hpp"
#include "command_queue.hpp"
#include "core.hpp"
#include "dedup_window.hpp"
#include "pending_call.hpp"
#include "peer_shared.hpp"
#include "replies.hpp"
#include "reply_cache.hpp"

namespace mesh::transport::detail {

inline constexpr int kRecvBatch = 256;       // frames read from one socket per wake-up
// Replies waiting for room in requesters' pipes; past this bound, or past
// TransportOptions::reply_deferral_bytes (in all, or one requester's
// share), they are dropped (replies_dropped). An Error refusing a notify is
// about 70 bytes, so the byte bound is the one a flood meets.
inline constexpr std::size_t kMaxDeferred = 1000000;
inline constexpr std::int64_t kDeferredRetryMs = 5;
// Frames held while the owner finds out whether to admit them (a sender
// agent not known yet): past these bounds the next one is refused
// MailboxFull, so a member cannot grow us by naming unknown agents.
inline constexpr std::size_t kMaxHeldPerNode = 1024;
inline constexpr std::size_t kMaxHeld = 8192;
inline constexpr std::size_t kMaxHeldBytes = 64u << 20;

// The node a connection at our ROUTER belongs to: its routing id, up to
// the '#' of a request channel ("<node>#<hex>"). Node names cannot
// contain '#' (validate() in options_validation.cpp).
inline std::string_view source_node(std::string_view identity) {
  return identity.substr(0, identity.find('#'));
}

// Where a frame read at the ROUTER came from: the routing id of its
// connection (where replies go) and the node it is from. Under CURVE the
// node owns the key the connection was admitted with; without CURVE it is
// the node the routing id names, a claim.
struct Origin {
  std::string_view identity;
  std::string_view node;
};

class Loop {
 public:
  // Creates and binds the ROUTER (and the ZAP handler before it, under
  // CURVE). Throws TransportError when it cannot; nothing stays open then.
  explicit Loop(std::shared_ptr<Core> core);
  ~Loop();  // closes whatever is still open
  Loop(const Loop&) = delete;
  Loop& operator=(const Loop&) = delete;

  // The thread body; returns after a CmdStop, with every pending request
  // completed (Shutdown) and every socket closed.
  void run();
  // Called after the thread has exited: completes commands that raced
  // with the shutdown.
  void drain_late_commands();

 private:
  // A FIFO of frames that holds no memory until its first frame: a
  // std::deque allocates its map and a block when it is made (~0.5 KB for
  // OutFrame), which made 2.4 KB per peer with four priorities, most never
  // used: 240 KB in each node of 100. Once used it keeps its deque, so a
  // busy peer allocates no more than before.
  class FrameQueue {
   public:
    bool empty() const { return !q_ || q_->empty(); }
    OutFrame& front() { return q_->front(); }
    void pop_front() { q_->pop_front(); }
    void push_back(OutFrame&& f) {
      if (!q_) q_ = std::make_unique<std::deque<OutFrame>>();
      q_->push_back(std::move(f));
    }

   private:
    std::unique_ptr<std::deque<OutFrame>> q_;
  };
  struct Peer {
    std::shared_ptr<PeerShared> shared;
    PeerAddress address;
    zmq::socket_t dealer;
    zmq::socket_t monitor;
    int dealer_fd = -1;   // their ZMQ_FDs
    int monitor_fd = -1;
    bool dealer_check = false;  // may have work: ask ZMQ_EVENTS (see run())
    bool monitor_check = false;
    // Frames waiting to be sent, one queue per priority (highest last).
    std::array<FrameQueue, kPriorityLevels> queues;
    PeerState state = PeerState::Connecting;
    std::int64_t rebuild_at_ms = 0;  // re-create the DEALER then (0 = no)
    std::int64_t backoff_ms = 0;
    std::int64_t refused_since_ms = 0;  // first ZAP refusal of this streak (0: none)
    std::int64_t last_used_ms = 0;  // last frame sent or received (idle_disconnect)
    bool used = false;              // a frame since last_used_ms was stamped
    bool has_output() const {
      for (const auto& q : queues) {
        if (!q.empty()) return true;
      }
      return false;
    }
    FrameQueue& next_queue() {  // the highest non-empty one
      for (std::size_t i = queues.size(); i-- > 1;) {
        if (!queues[i].empty()) return queues[i];
      }
      return queues[0];
    }
  };
  struct Deadline {
    std::int64_t at_ms;
    MessageId id;
    const PendingCall* call;  // identifies the call; dereferenced only if still held
    bool operator>(const Deadline& o) const { return at_ms > o.at_ms; }
  };

  // lifecycle (loop_lifecycle.cpp)
  void setup();
  void close_all_sockets();
  void shutdown_all();

  // poll and commands (loop_poll.cpp)
  void service_router();
  void service_zap();
  void service_monitor(Peer& p);
  void service_dealer(Peer& p);
  void process_commands(bool eventfd_readable);

  // peers (loop_peers.cpp)
  void on_add_peer(CmdAddPeer& c);
  void on_remove_peer(CmdRemovePeer& c);
  void open_dealer(Peer& p);
  void close_dealer(Peer& p);
  // idle_disconnect: opens an Idle peer's connection; closes the ones
  // unused for that long, and the spare ones beyond idle_spare_max; when
  // the next close may be due.
  void connect_on_demand(Peer& p);
  void close_idle(std::int64_t now);
  std::int64_t next_idle_ms() const { return next_idle_ms_; }
  // Connections were closed: give the memory their buffers held back to
  // the system once libzmq has freed them (kTrimDelayMs later, so that a
  // burst of closes, and the other ends' closes, cost one trim).
  void arm_trim(std::int64_t now);
  void trim_if_due(std::int64_t now);
  std::string endpoint_for(const PeerAddress& a) const;
  bool read_monitor(Peer& p);  // true: drained
  void on_monitor_event(Peer& p, std::uint16_t event);
  void set_state(Peer& p, PeerState s);
  void schedule_rebuild(Peer& p, std::int64_t now_ms);
  bool refusal_waited(Peer& p);
  void fail_peer(Peer& p, ErrorCode reason);

  // output to peers (loop_output.cpp)
  void on_send(CmdSend& c);
  void flush(Peer& p);
  void release_queued(PeerShared& peer, std::size_t bytes);
  void reject_frame(OutFrame& frame, const std::string& node, ErrorCode reason);
  void report_undeliverable(const MessageId& id, std::string_view node, std::string_view target,
                            std::string_view sender_agent, ErrorCode reason);

  // our requests in flight (loop_deadlines.cpp)
  void watch(const std::shared_ptr<PendingCall>& call);
  // Watches the requests callers sent on a DEALER themselves since the
  // last call (Core::direct_watches).
  void take_direct_watches();
  void fail_pending_to(const void* peer, ErrorCode reason);
  void expire_deadlines(std::int64_t now_ms);
  // The earliest deadline of a request still pending (INT64_MAX: none).
  std::int64_t next_deadline_ms();

  // receiving (loop_inbound.cpp)
  // Each returns true when the socket had nothing more to read, false
  // when it stopped at the batch limit.
  bool read_router();
  bool read_dealer(Peer& p);
  // `origin`: the connection it came in on at the ROUTER; `from`: the
  // peer whose DEALER it came in on. Exactly one is set.
  // `held`: a frame held by admit() looked at again (readmit).
  struct Held;
  void handle_frame(std::span<const std::uint8_t> frame, const Origin* origin, const Peer* from,
                    const Held* held = nullptr);
  // false (counted, refused) when the envelope is not from the node of
  // its connection.
  bool sender_matches(const EnvelopeView& v, const Origin* origin, const Peer* from);
  std::shared_ptr<Inbox> find_inbox(std::string_view name);
  void deliver(const std::shared_ptr<Inbox>& inbox, Incoming&& message, std::string_view identity);
  bool flush_deliveries();  // true if it sent refusals
  void deliver_notify(const EnvelopeView& v, const Origin& origin);
  void deliver_request(const EnvelopeView& v, const Origin& origin);
  void complete_pending(const EnvelopeView& v, const Peer& from);

  // the owner's admission of notifies and requests (loop_admission.cpp)
  // false: refused or held, nothing more to do with it here.
  bool admitted(const EnvelopeView& v, std::span<const std::uint8_t> frame, const Origin& origin,
                const Held* held);
  void refuse(const EnvelopeView& v, const Origin& origin, ErrorCode code);
  bool hold(std::span<const std::uint8_t> frame, const Origin& origin, std::int64_t since_ms);
  void on_readmit(CmdReadmit& c);
  // Refuses (Unauthenticated) what was held for `node` since before
  // `before_ms` (all of it when before_ms is max).
  void expire_held(const std::string& node, std::int64_t before_ms);
  // Refuses what was held past hold_timeout; sets next_held_ms_.
  void expire_held_all(std::int64_t now_ms);
  // When a frame held since `since_ms` has waited past hold_timeout.
  std::int64_t hold_ends(std::int64_t since_ms) const {
    return since_ms + static_cast<std::int64_t>(options_.hold_timeout.count()) + 1;
  }

  // sending on the ROUTER (loop_router_send.cpp)
  void on_reply(CmdReply& c);
  // Sends on the ROUTER. `answers` = the request this answers, kept in
  // the reply cache under the requester's node. A reply that finds the
  // requester's pipe full waits in deferred_ (never blocks, never silently
  // lost); false = unroutable.
  bool router_send(const Origin& to, std::span<const std::uint8_t> bytes, MessageType type,
                   const MessageId* answers = nullptr);
  // router_send with the ROUTER's lock (RouterShare::mu) held.
  bool router_send_locked(std::string_view identity, std::span<const std::uint8_t> bytes, MessageType type,
                          std::string_view node, const MessageId* answers);
  enum class SendResult { Sent, WouldBlock, Unroutable };
  SendResult try_router_send(std::string_view identity, std::span<const std::uint8_t> bytes, MessageType type);
  bool defer(std::string_view identity, std::span<const std::uint8_t> bytes, MessageType type);
  void retry_deferred();
  void send_error(const Origin& to, const MessageId& correlation, std::string_view sender_agent,
                  std::string_view target, ErrorCode code, bool answers_request = false);

  // CURVE admission and attribution (loop_zap.cpp)
  bool handle_zap();
  // The node a frame read at the ROUTER is from; empty when, under CURVE,
  // its connection's key belongs to no one any more.
  // The node a frame read at the ROUTER is from; empty when nobody may
  // speak over its connection any more. Under CURVE it also notes the
  // connection (note_connection), or closes it when its key has no owner.
  std::string_view node_of(std::string_view identity, const zmq::message_t& body);
  void own_key(const std::string& z85, const std::string& node);
  void disown_key(const std::string& z85, const std::string& node);
  // The connection a frame read at the ROUTER came over, noted under its
  // key, so that disown_key() can close it (close_connections_of).
  void note_connection(int fd, std::string_view key);
  void close_connections_of(const std::string& z85);
  // Closes the connection of socket `fd`, noted with `key`, which has no
  // owner any more.
  void close_connection(int fd, std::string_view key);
  struct Connection;
  void shut_down_noted(int fd, const Connection& c);

  std::shared_ptr<Core> core_;
  const TransportOptions& options_;
  zmq::socket_t router_;
  zmq::socket_t zap_;
  int router_fd_ = -1;
  int zap_fd_ = -1;
  bool router_check_ = true;
  bool zap_check_ = true;

  std::unordered_map<std::string, std::unique_ptr<Peer>> peers_;
  std::unordered_multimap<MessageId, std::shared_ptr<PendingCall>, MessageIdHash> pending_;
  std::vector<std::shared_ptr<PendingCall>> taken_;  // scratch of take_direct_watches
  std::priority_queue<Deadline, std::vector<Deadline>, std::greater<>> deadlines_;
  DedupWindow dedup_;
  // Ids of our requests that completed without a reply (timeout, peer
  // failure): a late Error for one of them is not a refused notify.
  DedupWindow finished_;

  ReplyCache replies_;
  // Messages gathered for one inbox while the ROUTER is read.
  std::shared_ptr<Inbox> batch_inbox_;
  std::vector<Incoming> batch_;
  std::vector<std::string> batch_identities_;  // the connections they came in on
  std::vector<ErrorCode> batch_outcome_;
  struct Deferred {
    std::vector<std::uint8_t> bytes;
    MessageType type;
  };
  struct DeferredQueue {
    std::deque<Deferred> items;  // in order
    std::size_t bytes = 0;
  };
  std::unordered_map<std::string, DeferredQueue> deferred_;  // by requester identity
  void forget_deferred(DeferredQueue& queue, std::size_t bytes);
  std::size_t deferred_count_ = 0;
  std::size_t deferred_bytes_ = 0;

  // Under CURVE: who holds each client key we admit (Z85 -> node): this
  // node, allowed_clients and every peer with a key. A key is not handed
  // to a second node while its first holder keeps it.
  std::unordered_map<std::string, std::string, StringHash, std::equal_to<>> key_owner_;
  // Under CURVE: the inbound connections frames came over, by socket (the
  // file descriptor libzmq reads them from): the key they were made with
  // and the peer's address, which tells a descriptor reused for another
  // connection from the one we saw.
  struct Connection {
    std::string key;
    sockaddr_storage peer{};
    socklen_t peer_len = 0;
  };
  std::unordered_map<int, Connection> connections_;
  std::string noted_identity_;  // the routing id of the last connection noted

  // Frames admit() asked to hold, by sender node, oldest first.
  struct Held {
    std::vector<std::uint8_t> bytes;
    std::string identity;
    std::int64_t since_ms = 0;
  };
  std::unordered_map<std::string, std::deque<Held>> held_;
  std::size_t held_count_ = 0;
  std::size_t held_bytes_ = 0;
  // The earliest hold_ends() of a held frame (INT64_MAX: none); may be
  // early after frames left, never late.
  std::int64_t next_held_ms_ = INT64_MAX;
  std::int64_t trim_at_ms_ = INT64_MAX;  // arm_trim
  std::int64_t next_idle_ms_ = INT64_MAX;  // set by close_idle
  std::vector<Peer*> spare_;              // close_idle's scratch

  std::vector<Command> commands_;
  std::vector<std::uint8_t> scratch_;
  bool stop_ = false;
  bool shut_ = false;
};

}  // namespace mesh::transport::detail
