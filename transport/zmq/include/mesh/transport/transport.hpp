// Node-to-node messaging over ZeroMQ.
//
// One Transport per node. It binds one ROUTER at tcp://<bind>:<port> (and,
// when ipc_dir is set, at ipc://<ipc_dir>/<node>.zmq) and reaches each peer
// through a DEALER of its own whose routing id is this node's name; replies
// travel back over the connection the request came in on. One transport
// thread owns those sockets; other threads hand it work through a queue.
// Two paths skip that hand-off, because each hop between vCPUs costs about
// as much as libzmq itself (see docs/transport.md):
//   * messages between inboxes of the same node never touch a socket or
//     the transport thread;
//   * a blocking request() sends on and waits at a DEALER owned by the
//     calling thread, and an inbox opened with a quick handler answers on
//     the transport thread that received the request.
//
// Every call here is thread-safe. None throws on the data path: outcomes
// are ErrorCode values. The constructor throws TransportError when it
// cannot start (bad options, port in use).
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "mesh/transport/envelope.hpp"

namespace mesh::transport {

class TransportError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A CURVE keypair in Z85 text (40 characters each).
struct CurveKeyPair {
  std::string public_key;
  std::string secret_key;
};
CurveKeyPair generate_curve_keypair();
// The public key of a Z85 secret key; throws TransportError if malformed.
std::string curve_public_from_secret(const std::string& secret_z85);
bool is_valid_curve_key(std::string_view z85);

// A notify that was accepted and later refused or lost on its way; the
// views are valid during the callback only.
struct UndeliverableNotify {
  MessageId id;
  std::string_view node;          // the node it was sent to
  std::string_view target;        // the inbox it was addressed to
  std::string_view sender_agent;  // who sent it (OutMessage::sender_agent)
  ErrorCode reason = ErrorCode::None;
};

struct TransportOptions {
  std::string node_name;                  // routing id; required, 1..255 bytes
  std::string bind_address = "127.0.0.1"; // IPv4/IPv6 literal or "*"
  std::uint16_t port = 0;                 // 0: an ephemeral port (see bound_port())
  std::string ipc_dir;                    // non-empty: also bind ipc, prefer it for same-host peers
  // No sockets and no thread at all: only same-node delivery works, and a
  // send to another node is PeerUnknown (the P2P_ENABLED=false mode).
  bool local_only = false;

  std::size_t max_frame_bytes = kDefaultMaxFrameBytes;
  // Every queue is bounded twice: in messages and in bytes, whichever is
  // reached first refuses with MailboxFull (docs/transport.md, "Budgets",
  // says why each default is what it is). A queue that is empty takes one
  // message of any size up to max_frame_bytes.
  std::size_t peer_queue_limit = 10000;   // messages waiting per peer before MailboxFull
  std::size_t peer_queue_bytes = 64u << 20;  // ...and their encoded bytes
  std::size_t inbox_limit = 10000;        // default bound of each inbox
  std::size_t inbox_bytes = 64u << 20;    // default byte bound of each inbox
  // The share of an inbox (of its limit and of its bytes) one remote node
  // may hold; the rest stays free for the others. 1.0 turns it off.
  double inbox_peer_share = 0.5;
  // Replies (and refusals) waiting for room in requesters' pipes, in all,
  // and the share one requester node may hold.
  std::size_t reply_deferral_bytes = 64u << 20;
  double reply_deferral_share = 0.5;
  // ask_async entries held at once (pending and answered), and the bytes of
  // the answers kept; a new ask past either is refused with MailboxFull, an
  // answer that does not fit is kept as a MailboxFull error.
  std::size_t ask_limit = 10000;
  std::size_t ask_bytes = 64u << 20;
  std::size_t dedup_window_size = 100000; // message ids remembered...
  std::chrono::milliseconds dedup_window_time{120000};  // ...and for how long

  // ZeroMQ heartbeats detect a frozen or vanished peer connection.
  std::chrono::milliseconds heartbeat_interval{1000};
  std::chrono::milliseconds heartbeat_timeout{3000};
  // 0: a peer's connection is opened by add_peer and kept. Above 0: it is
  // opened by the first message to the peer and closed once it has carried
  // nothing for this long (nothing queued, no reply awaited); the next
  // message opens it again. Every open connection costs heartbeats both
  // ways, so a node that keeps one to each of N peers pays O(N) in idle
  // traffic (docs/transport.md, "Connections on demand").
  std::chrono::milliseconds idle_disconnect{0};
  // With idle_disconnect: of the connections unused for idle_spare or
  // longer, only the idle_spare_max used last are kept until
  // idle_disconnect; the rest close at once. A node that talks to every
  // member once (a join's registry fetches) then keeps a few connections,
  // not one per member for a minute. idle_spare 0: no such limit.
  std::chrono::milliseconds idle_spare{2000};
  std::size_t idle_spare_max = 16;
  std::chrono::milliseconds reconnect_interval{100};
  std::chrono::milliseconds reconnect_interval_max{2000};
  // Under CURVE, a peer's ZAP handler refuses our key while the peer does
  // not know it: a node that joined a moment ago knows the cluster from its
  // join, but the others learn its key by gossip a moment later (and a node
  // that was declared dead is refused until it is learnt alive again). For
  // this long after the first refusal the peer is retried every
  // reconnect_interval and what we send it waits (within each request's own
  // deadline); after it the peer is Unreachable. 0: no waiting.
  std::chrono::milliseconds refused_handshake_wait{3000};

  std::chrono::milliseconds default_request_timeout{30000};
  // A blocking request() to a connected peer sends and waits on a DEALER
  // the calling thread checks out of a per-peer pool (a "request channel"),
  // skipping both hops through the transport thread. false: every request
  // goes through the transport thread (for comparison and diagnosis).
  bool direct_requests = true;
  // request_async, request_future and ask_async to a connected peer with
  // nothing queued send on the peer's DEALER from the calling thread (under
  // the lock the transport thread shares) instead of handing the frame to
  // the transport thread, which still reads the reply. false: through the
  // transport thread.
  bool direct_async_requests = true;
  // notify() to a connected peer with nothing queued sends on the peer's
  // DEALER from the calling thread (under a lock the transport thread
  // shares) instead of handing the frame to the transport thread. false:
  // every notify goes through the transport thread.
  bool direct_notifies = true;
  // respond() to a remote requester sends the answer on the ROUTER from
  // the answering thread (under a lock the transport thread shares) when
  // the ROUTER is free and no earlier answer waits for room, instead of
  // handing it to the transport thread. false: every answer goes through
  // the transport thread.
  bool direct_replies = true;
  // ask_async results (and expired placeholders) are freed this long
  // after their deadline; check_inbox reports Expired until then.
  std::chrono::milliseconds ask_retention{60000};

  // When set, every socket uses CURVE: the ROUTER is a CURVE server that
  // admits a client only with the key of a peer in the peer table (or of
  // allowed_clients), and each DEALER authenticates the peer by the key
  // given in add_peer(). Whatever arrives at the ROUTER is then from the
  // node that owns the client's key, never from the node it claims to be;
  // once that node is removed or re-keyed, frames on connections made
  // with its old key are refused. Without it, no CURVE at all, and a
  // connection's node is whatever routing id it announces.
  std::optional<CurveKeyPair> curve;
  // Clients admitted under CURVE without being peers: their node name and
  // public key (Z85).
  struct ClientKey {
    std::string node;
    std::string public_key;
  };
  std::vector<ClientKey> allowed_clients;

  // Called on the transport thread when a notify that was accepted is
  // later refused by the receiver (inbox full, unknown target, ...) or
  // cannot be delivered (peer dead/unreachable while queued). Must be quick.
  std::function<void(const MessageId& id, std::string_view node, std::string_view target,
                     ErrorCode reason)>
      on_undeliverable;
  // The same report with the sending agent as well, so that an owner
  // serving many agents can tell the one that sent it (Mesh does). Both
  // callbacks run when both are set.
  std::function<void(const UndeliverableNotify&)> on_notify_undeliverable;

  // Whether a notify or request from another node may reach its inbox,
  // asked on the transport thread after the sender node was checked
  // (Mesh: is the sender agent one that node advertises; may that agent
  // reach the target). `second_look` is set when the message was held
  // before. Admit delivers it; Refuse answers it with `code` (counted as
  // forged when the code is Unauthenticated, else as denied); Hold keeps
  // it, bounded, until readmit(node) is called, when it is asked about
  // again. A message held longer than hold_timeout is refused
  // Unauthenticated. Unset: everything is admitted.
  struct Admission {
    enum Verdict : std::uint8_t { Admit, Hold, Refuse } verdict = Admit;
    ErrorCode code = ErrorCode::None;
  };
  std::function<Admission(const EnvelopeView& message, std::string_view node, bool second_look)> admit;
  std::chrono::milliseconds hold_timeout{5000};
};

// Where a peer node is. Connections follow membership: the owner adds a
// peer when it is alive and removes it when it is dead or has left.
struct PeerAddress {
  std::string name;         // its node name (= its routing id)
  std::string host;         // IP literal
  std::uint16_t port = 0;   // its ZeroMQ port
  std::string curve_public_key;  // Z85; required when CURVE is on
};

// What a sender addresses. node empty (or our own name) = this node: the
// message goes straight to the local inbox without a socket.
struct Address {
  std::string node;
  std::string target;  // inbox name (an agent id)
};

// What a same-node sender may hand its receiver beside the bytes: the
// layer above's own, already decoded form of the message, so that the
// receiver need not decode what the sender has just encoded. It never
// leaves the process: the transport carries it to a same-node inbox and
// drops it for any other. The bytes stay the message of record (the
// audit trail, limits and quick handlers read them).
struct LocalBody {
  virtual ~LocalBody() = default;
};

struct OutMessage {
  Address to;
  std::string sender_agent;
  std::vector<std::uint8_t> payload;
  std::vector<std::uint8_t> context;  // msgpack map or empty
  Priority priority = Priority::Normal;
  // Set to resend a message under the same id (the receiver processes it
  // once); left empty, the transport draws a fresh id. A resent request
  // whose first copy was answered gets that answer again (the receiver
  // keeps its last few thousand answers); one resent while the first copy
  // is still being handled is dropped, and the first answer completes it
  // if it comes back over the same connection.
  MessageId id;
  std::uint8_t flags = 0;  // Envelope::flags (kFlagBroadcast)
  std::vector<std::uint8_t> thread;  // Envelope::thread
  std::shared_ptr<LocalBody> local;  // for a same-node receiver only
  // Envelope::created_ms, when the caller has read the clock already for
  // this message (a clock reading is a fair part of a same-node hop);
  // 0: the transport reads it.
  std::int64_t created_ms = 0;
};

// Where a reply to an incoming request goes: back over the connection it
// came in on, or, for a same-node request, straight to the waiting caller.
struct ReplyRoute;

// A message as an inbox hands it out (owning).
struct Incoming {
  Envelope envelope;
  std::shared_ptr<ReplyRoute> route;  // null for anything but a request
  // The node it came from as this transport knows it: the node of its
  // connection (under CURVE, the owner of the connection's key). The
  // envelope's sender_node was checked to be the same; empty for a
  // same-node sender. Inbox shares are counted by it.
  std::string source;
  // The sender's LocalBody, when it was on this node and gave one.
  std::shared_ptr<LocalBody> local;

  bool is_request() const { return envelope.type == MessageType::Request; }
  bool is_notify() const { return envelope.type == MessageType::Notify; }
};

struct Reply {
  ErrorCode error = ErrorCode::None;  // None: `envelope` is the response
  Envelope envelope;                  // Response (or the peer's Error envelope)
  bool ok() const { return error == ErrorCode::None; }
};

struct SendOutcome {
  Address to;
  ErrorCode error = ErrorCode::None;  // None = accepted for delivery
};

// A quick handler runs on the thread that received the request (the
// transport thread, or the caller's for a same-node request) and returns
// the response payload, or an error code to send instead. It must not
// block. Notifies to a quick inbox are queued as usual.
using QuickHandler = std::function<ErrorCode(const EnvelopeView& request,
                                             std::vector<std::uint8_t>& response_payload)>;

class Transport;

// A bounded mailbox for one target. Any thread may pop; pushes come from
// the transport. When full, a sender gets MailboxFull. Higher-priority
// messages are handed out before queued normal ones.
class Inbox {
 public:
  const std::string& name() const { return name_; }
  // Waits up to `timeout` (forever when nullopt) for the next message.
  std::optional<Incoming> pop(std::optional<std::chrono::milliseconds> timeout = std::nullopt);
  // The same for a consumer that keeps up with a flood: waits as pop()
  // does for the first message, then appends it and up to `max` - 1 more
  // that are queued, in pop() order, under one lock. Returns how many it
  // appended: 0 on timeout, or once closed and drained.
  std::size_t pop_batch(std::vector<Incoming>& out, std::size_t max,
                        std::optional<std::chrono::milliseconds> timeout = std::nullopt);
  // For a consumer that must not block (an agent on an executor): moves
  // the next message into `out` and returns true; or, with none queued,
  // arms the ready callback and returns false. The next push (or close)
  // then calls the callback once, on the pushing thread, outside the
  // inbox's lock. Arming and pushing are under one lock: no wake-up is
  // lost. `armed` tells whether the inbox is armed on return: also after
  // taking the last message, so that the consumer need not look again
  // (one lock per message, not one more per batch).
  bool try_pop_or_arm(Incoming& out, bool& armed);
  // Set before the first try_pop_or_arm. Must be quick (post work, no more).
  void set_ready_callback(std::function<void()> ready);
  std::size_t size() const;
  std::size_t limit() const { return limit_; }
  std::size_t bytes() const;  // held now (payload, context and names)
  std::size_t byte_limit() const { return byte_limit_; }
  // Stops accepting; pending and future pop() calls return nullopt once
  // the queue is drained. The inbox's name becomes free again.
  void close();
  // A message popped and still being worked on by its consumer keeps a
  // place: counted against the limit (not the byte or source bounds) until
  // release_place(). For consumers that hand messages on (an agent of the
  // Python binding). release_place() without a place held does nothing.
  void hold_place();
  void release_place();

  // Internal (used by Transport): push or refuse with MailboxFull
  // (TargetUnknown once closed).
  ErrorCode push(Incoming&& message);
  // Pushes each message that fits, in order, with one wake-up for the lot;
  // outcome[i] = None for those taken (moved from), or why not. Returns
  // how many were taken.
  std::size_t push_batch(std::span<Incoming> messages, std::span<ErrorCode> outcome);
  // `byte_limit` bounds the bytes held; `peer_share` (0, 1] the part of
  // both bounds one remote source may hold.
  Inbox(std::string name, std::size_t limit, QuickHandler quick,
        std::size_t byte_limit = SIZE_MAX, double peer_share = 1.0);
  // What a message counts against the byte budget.
  static std::size_t cost(const Incoming& message);
  ~Inbox();
  Inbox(const Inbox&) = delete;
  Inbox& operator=(const Inbox&) = delete;
  const QuickHandler& quick_handler() const;
  bool closed() const;

 private:
  struct Ring;  // a growable ring of messages: no allocation per message (inbox.cpp)
  struct Held {
    std::size_t count = 0;
    std::size_t bytes = 0;
  };
  // MailboxFull if `m` does not fit, else None with `m` counted (lock held).
  ErrorCode admit_locked(const Incoming& m, std::size_t cost);
  void release_locked(const Incoming& m, std::size_t cost);

  // An agent has an inbox, idle or not: what only some inboxes use is made
  // when first needed (a condition variable for blocking consumers, the
  // per-source counts, a quick handler), so an idle one is ~230 bytes.
  std::string name_;
  std::size_t limit_;
  std::unique_ptr<const QuickHandler> quick_;  // null: none
  std::size_t byte_limit_;
  std::size_t source_limit_;        // messages one remote source may hold
  std::size_t source_byte_limit_;   // ...and bytes
  bool sharing_;                    // either share is below its bound
  std::size_t bytes_ = 0;
  std::size_t places_held_ = 0;     // hold_place() not yet released
  // Remote sources with messages here (while sharing_); made by the first.
  std::unique_ptr<std::unordered_map<std::string, Held>> by_source_;
  mutable std::mutex mu_;
  // Made (under mu_) by the first pop() or pop_batch() that waits, and kept.
  std::unique_ptr<std::condition_variable> cv_;
  std::condition_variable& cv_locked();
  // One ring per priority, highest last, made when a message of that
  // priority first arrives (most inboxes only ever see one priority, and
  // many idle agents none).
  using Rings = std::array<std::unique_ptr<Ring>, kPriorityLevels>;
  Ring& ring_of(Priority priority);
  Ring* next_ring_locked();  // the highest non-empty ring; null when all are empty
  std::size_t queued_locked() const;
  Rings rings_;
  std::size_t waiting_ = 0;  // threads blocked in pop()
  // Written under mu_; closed() reads it without: every same-node send
  // asks (find_inbox) just before it pushes under the lock anyway.
  std::atomic<bool> closed_{false};
  bool armed_ = false;       // try_pop_or_arm left it empty: tell `ready_` of the next push
  std::function<void()> ready_;
};

enum class AskState : std::uint8_t { Pending, Ready, Expired, Unknown };
struct AskResult {
  AskState state = AskState::Unknown;
  Reply reply;  // when Ready
};

// Upper bounds, in seconds, of the request latency buckets: from 100 us
// (a same-host round trip) to the 30 s default request timeout.
inline constexpr std::array<double, 17> kRequestLatencyBounds = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1,    0.25,    0.5,    1.0,   2.5,    5.0,   10.0, 30.0};

// How long requests took, from the call (request(), request_async(),
// request_future(), ask_async()) until the reply or the failure reached
// the caller. buckets[i] counts those that took more than bound i-1 and at
// most bound i (not cumulative); the last bucket counts those over 30 s.
struct LatencyHistogram {
  std::uint64_t buckets[kRequestLatencyBounds.size() + 1] = {};
  std::uint64_t count = 0;
  double sum_seconds = 0;
};

// Counters, read atomically; a snapshot.
struct TransportStats {
  // by MessageType index (Notify, Request, Response, Error, Control)
  std::uint64_t sent[5] = {};
  std::uint64_t received[5] = {};
  std::uint64_t refused[5] = {};       // answered or reported MailboxFull/TargetUnknown/...
  std::uint64_t deduplicated[5] = {};
  std::uint64_t frames_malformed = 0;
  std::uint64_t frames_oversized = 0;
  std::uint64_t frames_bad_version = 0;
  std::uint64_t frames_unauthenticated = 0;  // CURVE handshakes rejected by our ZAP handler
  // Our handshakes a peer's ZAP handler refused while we waited for it to
  // learn our key, each retried (TransportOptions::refused_handshake_wait).
  std::uint64_t handshakes_refused = 0;
  // Envelopes refused because they were not from whom they say: a
  // sender_node other than the connection's node, or, under CURVE, a
  // connection whose key no member holds any more.
  std::uint64_t frames_forged = 0;
  // Under CURVE: connections we closed because their key was revoked (its
  // member died, left or was re-keyed). The client may reconnect; its new
  // handshake goes through ZAP again.
  std::uint64_t connections_revoked = 0;
  // Refused by TransportOptions::admit with another code than
  // Unauthenticated (PermissionDenied).
  std::uint64_t frames_denied = 0;
  std::uint64_t frames_held = 0;     // held by admit() until readmit() (a total)
  std::uint64_t frames_holding = 0;  // ...and held now
  std::uint64_t replies_unroutable = 0;       // reply whose connection was gone
  std::uint64_t replies_unmatched = 0;        // Response/Error for no pending request (late or stray)
  std::uint64_t replies_deferred = 0;         // replies that waited for room in a requester's pipe
  std::uint64_t replies_waiting = 0;          // ...and those waiting now
  std::uint64_t requests_answered_again = 0;  // resent requests answered from the reply cache
  std::uint64_t requests_timed_out = 0;
  std::uint64_t expired_on_arrival = 0;       // requests whose deadline had passed on arrival
  std::uint64_t requests_failed_fast = 0;     // PeerDead / PeerUnreachable / Shutdown
  std::uint64_t requests_direct = 0;          // blocking requests sent on a request channel
  std::uint64_t async_requests_direct = 0;    // callback requests the caller sent on the peer's DEALER itself
  std::uint64_t replies_direct = 0;           // answers the answering thread sent on the ROUTER itself
  std::uint64_t peers = 0;
  std::uint64_t peers_connected = 0;
  std::uint64_t connections_closed_idle = 0;  // closed after idle_disconnect without use
  std::uint64_t memory_trims = 0;             // free heap handed back after connections closed
  std::uint64_t outbound_queued = 0;          // messages in per-peer queues now
  std::uint64_t outbound_queued_bytes = 0;    // ...and their bytes
  std::uint64_t inbox_queued = 0;             // messages waiting in open inboxes now
  std::uint64_t inbox_queued_bytes = 0;       // ...and their bytes (Inbox::cost)
  std::uint64_t inbox_table = 0;              // inboxes held: open, and closed ones not yet pruned
  std::uint64_t replies_waiting_bytes = 0;    // bytes of replies_waiting
  std::uint64_t replies_dropped = 0;          // replies and refusals dropped past the deferral budget
  std::uint64_t reply_cache_bytes = 0;        // answers kept for resent requests
  std::uint64_t ask_bytes = 0;                // bytes of ask_async answers held
  std::uint64_t pending_requests = 0;
  std::uint64_t ask_entries = 0;
  std::uint64_t notifies_undeliverable = 0;   // reported to on_undeliverable (refused or lost)
  // [0] requests answered with a Response; [1] failed ones (an Error
  // envelope, a timeout, a dead or unknown peer, shutdown, ...).
  LatencyHistogram request_latency[2];
};

class Transport {
 public:
  explicit Transport(TransportOptions options);
  // Stops the thread, fails pending requests with Shutdown, closes sockets
  // with LINGER 0 (nothing hangs on an unreachable peer).
  ~Transport();
  Transport(const Transport&) = delete;
  Transport& operator=(const Transport&) = delete;

  const std::string& node_name() const;
  std::uint16_t bound_port() const;
  std::string endpoint() const;  // tcp://host:port as bound

  // --- peers (driven by membership) ---
  // Adds or updates a peer; a changed address or key reconnects.
  void add_peer(PeerAddress peer);
  // Removes a peer: its queued messages are reported undeliverable and
  // every pending request to it completes at once with `reason`
  // (PeerDead for dead or left).
  void remove_peer(const std::string& name, ErrorCode reason = ErrorCode::PeerDead);
  std::vector<std::string> peers() const;
  bool peer_connected(const std::string& name) const;
  // Looks again (TransportOptions::admit) at the messages from `node` held
  // until now: what the answer depended on has changed.
  void readmit(const std::string& node);

  // --- local targets ---
  // Opens the inbox `name` (limit 0 = options.inbox_limit). Throws
  // TransportError if the name is taken by an open inbox.
  std::shared_ptr<Inbox> open_inbox(const std::string& name, std::size_t limit = 0,
                                    QuickHandler quick = {});

  // --- sending ---
  // Fire-and-forget. Returns None when accepted (queued or handed to
  // ZeroMQ) or why not: PeerUnknown, PeerDead, PeerUnreachable,
  // MailboxFull, TargetUnknown (same node), Oversized, Shutdown. A later
  // refusal by the receiver reaches options.on_undeliverable.
  ErrorCode notify(OutMessage message);
  // The same message to each address; one outcome per address, in order.
  std::vector<SendOutcome> broadcast(const std::vector<Address>& to, const OutMessage& message);

  // Blocks up to `timeout` (default_request_timeout when nullopt). Fails
  // fast when the peer is or becomes dead, unknown or unreachable.
  Reply request(OutMessage message, std::optional<std::chrono::milliseconds> timeout = std::nullopt);
  // The same, completed on the transport thread (or the responder's, for
  // a same-node request) through the callback or the future.
  void request_async(OutMessage message, std::chrono::milliseconds timeout,
                     std::function<void(Reply)> done);
  std::future<Reply> request_future(OutMessage message, std::chrono::milliseconds timeout);

  // Answers an incoming request. Rejected when `incoming` is not a
  // request or was answered already (every Incoming is answered once);
  // otherwise None even if the requester has gone away meanwhile.
  ErrorCode respond(const Incoming& incoming, std::vector<std::uint8_t> payload,
                    std::vector<std::uint8_t> context = {}, Priority priority = Priority::Normal,
                    std::vector<std::uint8_t> thread = {});
  ErrorCode respond_error(const Incoming& incoming, ErrorCode reason);

  // Sends a request whose reply is kept for check_inbox(). Returns the
  // request's id, or the error that stopped it from being sent.
  struct AskTicket {
    MessageId id;
    ErrorCode error = ErrorCode::None;
  };
  AskTicket ask_async(OutMessage message, std::chrono::milliseconds timeout);
  // Waits up to `wait` for the reply (0 = just look). remove=true frees a
  // Ready entry. An entry past its deadline without a reply is Expired;
  // entries are freed ask_retention after their deadline (then Unknown).
  AskResult check_inbox(const MessageId& id, std::chrono::milliseconds wait = std::chrono::milliseconds(0),
                        bool remove = true);
  // Calls `ready` once, on the thread that completes it, when the pending
  // ask `id` is answered, fails or expires (then check_inbox tells which).
  // False, `ready` not kept, when `id` is not pending here.
  bool watch_ask(const MessageId& id, std::function<void()> ready);

  TransportStats stats() const;

  // Test hook: send raw bytes as one frame to a peer's ROUTER, bypassing
  // the envelope codec (for garbage-frame tests).
  ErrorCode send_raw_for_test(const std::string& peer, std::vector<std::uint8_t> frame);

 private:
  Reply request_unmeasured(OutMessage message, std::optional<std::chrono::milliseconds> timeout);

  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mesh::transport
