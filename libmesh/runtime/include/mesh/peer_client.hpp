// PeerClient: what an agent uses to find and talk to other agents
// (docs/peerclient.md maps the API; every call of the
// Python JarvisCore PeerClient is here under the same name).
//
// Each agent of a Mesh gets one PeerClient (Agent::peers()), and the Mesh
// has one more that sends on behalf of the node itself (Mesh::node_client(),
// id kNodeClientId). Every call is thread-safe.
//
// Calls that wait come in two forms. The plain names (request, receive,
// check_inbox, request_all, ...) return a mesh::Task to co_await: the
// agent's strand is free meanwhile, and the coroutine resumes there. The
// *_blocking forms block the calling thread, for code that is no agent
// (main, tests, tools) and for a ThreadAgent; on the mesh's executor
// threads they throw std::logic_error instead of blocking, since a blocked
// executor thread stalls every agent scheduled on it. Payloads and contexts
// are nlohmann::json; on the wire they are MessagePack (to_msgpack). A
// context must be a JSON object (or null, meaning {}).
//
// Target resolution (notify, request, ask_async): an exact agent_id wins;
// otherwise the target is a role and one agent of that role is chosen with
// the client's default strategy (set_default_strategy; the node's
// discovery_strategy unless changed). The caller itself is never a target.
//
// Differences from the Python original, on purpose:
//   * broadcast sends one copy per agent_id (the original sends N copies to
//     the first agent of a role);
//   * request fails fast (PeerDead) when the target's node dies or leaves
//     while the request is pending, instead of waiting for the timeout;
//   * check_inbox forgets expired entries and can tell "not yet" from
//     "expired" (check_inbox_status);
//   * an unknown strategy name is an error, never a silent fallback.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "mesh/agent_directory.hpp"
#include "mesh/conversation.hpp"
#include "mesh/task.hpp"
#include "mesh/transport/transport.hpp"

namespace mesh {

namespace detail {
struct MeshCore;
struct AgentSlot;
struct AwaitScope;
struct Handling;
}

using Json = nlohmann::json;
using transport::ErrorCode;
// 0-3: Low, Normal (the default), Urgent, Critical. A message overtakes
// those of lower priority still queued for the same peer or agent.
using transport::Priority;

// The id the node's own client (Mesh::node_client) sends under. Reserved
// (Mesh::add refuses ids starting with '$'), never advertised, never a
// target: a message from it shows sender "$node" and the node's name.
inline constexpr char kNodeClientId[] = "$node";

// Default timeouts of peerclient.md.
inline constexpr std::chrono::milliseconds kDefaultRequestTimeout{30'000};
inline constexpr std::chrono::milliseconds kDefaultAskTimeout{120'000};

// Raised where the contract says a call throws (ask_async on a target that
// cannot be resolved or a request that cannot be sent). code() says why:
// TargetUnknown when no agent matches, otherwise the transport's outcome.
class MeshError : public std::runtime_error {
 public:
  MeshError(const std::string& what, ErrorCode code) : std::runtime_error(what), code_(code) {}
  ErrorCode code() const { return code_; }

 private:
  ErrorCode code_;
};

// PeerQuery shorthands: discover(by_role("coder")) reads like
// discover({.role = "coder"}), which works as well.
inline PeerQuery by_role(std::string role) { return PeerQuery{std::move(role), std::string()}; }
inline PeerQuery by_capability(std::string capability) {
  return PeerQuery{std::string(), std::move(capability)};
}

enum class MessageKind { Notify, Request };

// A message an agent received (receive(), or CustomAgent's handlers).
struct IncomingMessage {
  std::string id;              // message id, 32 hex digits (unique, for dedup)
  std::string sender;          // sender agent_id
  std::string sender_node;     // the sender's node name
  std::string target;          // the receiving agent_id
  MessageKind type = MessageKind::Notify;
  Json data;                   // the payload
  Json context = Json::object();
  // For a request, its own id: a response carries it back. Empty for a notify.
  std::string correlation_id;
  std::int64_t timestamp_ms = 0;  // sender's Unix time in ms when sent
  Priority priority = Priority::Normal;

  bool is_request() const { return type == MessageKind::Request; }
  bool is_notify() const { return type == MessageKind::Notify; }

  // The conversation the message belongs to, as this node admitted it
  // (docs/conversations.md): its id, turn, depth, the cost spent so far
  // and the limits in force. Messages the handler sends belong to it too.
  const ThreadBlock& thread() const;
  MessageClass message_class() const;
  bool is_authority() const { return message_class() == MessageClass::Authority; }
  // When the sender stops waiting: a request's deadline or the thread's
  // expiry, whichever comes first; nullopt when neither. A handler past it
  // may stop working: nobody waits for the answer any more.
  std::optional<std::chrono::system_clock::time_point> deadline() const;
  bool past_deadline() const;
  // What handling this message cost, in the thread's cost units (say USD):
  // added up and sent with the response, it counts against the thread's
  // max_cost. Callable from any thread, any number of times.
  void report_cost(double amount) const;

  // The transport's handle, kept so that respond() can answer. Copies
  // share it: whichever copy is answered first wins.
  std::shared_ptr<const transport::Incoming> handle;
  // The conversation state of its handling (thread(), report_cost).
  std::shared_ptr<detail::Handling> handling;
};

// How a message is sent, beyond its target and payload. Every field has a
// default: {.priority = Priority::Urgent} changes one.
struct SendOptions {
  // A request's timeout; nullopt: NodeConfig::request_timeout. A request
  // sent while handling one never outlives that one's deadline.
  std::optional<std::chrono::milliseconds> timeout{};
  Json context = Json::object();
  Priority priority = Priority::Normal;
  MessageClass message_class = MessageClass::Advisory;
  // The thread: by default the one of the message being handled, or a new
  // one. `thread` continues a thread this node knows (Response::thread,
  // IncomingMessage::thread().id); new_thread opens a new one even while
  // handling a message (then a child of that message's thread).
  std::optional<ThreadId> thread{};
  bool new_thread = false;
  std::string subject{};  // of a new thread
  // Tightens the thread's limits (a new thread starts from NodeConfig's
  // thread_* defaults); never loosens them.
  ThreadLimits limits{};
};

// A response to a request.
struct Response {
  Json data;
  Json context = Json::object();
  std::string sender;          // the responding agent_id
  std::string sender_node;
  std::string correlation_id;  // the request's id
  std::int64_t timestamp_ms = 0;
  // The thread it belongs to (SendOptions::thread continues it), what
  // answering cost (the responder's report, its own requests included) and
  // its class: an answer is never of a higher class than its request.
  ThreadId thread;
  double cost = 0;
  MessageClass message_class = MessageClass::Advisory;
};

// A request's outcome with the reason when there is no response: Timeout,
// PeerDead / PeerUnreachable (fail fast), TargetUnknown (no agent matched,
// or the receiver has no such inbox), MailboxFull (backpressure), Oversized,
// Rejected (the receiver's handler failed), Malformed (undecodable answer),
// Shutdown.
struct RequestOutcome {
  ErrorCode error = ErrorCode::None;
  std::optional<Response> response;  // set exactly when error == None
  std::optional<PeerInfo> peer;      // the resolved target, when one was

  bool ok() const { return error == ErrorCode::None; }
};

// ask_async bookkeeping as check_inbox_status reports it.
enum class AskStatus {
  Pending,  // no answer yet, deadline not passed
  Ready,    // `response` (or `error`) is here
  Expired,  // the deadline passed without an answer (reported so for the transport's
            // ask_retention, 60 s, then forgotten: Unknown)
  Unknown   // never issued here, already removed, or forgotten after expiry
};
struct AskCheck {
  AskStatus status = AskStatus::Unknown;
  ErrorCode error = ErrorCode::None;  // Ready with an error (PeerDead, Rejected, ...)
  std::optional<Response> response;   // Ready without error
};

// Scatter-gather (request_all).
struct GatherPolicy {
  enum class Kind {
    All,     // wait for every peer, or until the deadline
    FirstK,  // return once k responses arrived (or the deadline); at most k
             // responses are returned, answers past the k-th are dropped
    Quorum   // return once a majority (n/2 + 1) responded (or the deadline)
  };
  Kind kind = Kind::All;
  std::size_t k = 0;  // FirstK only
  std::chrono::milliseconds deadline = kDefaultRequestTimeout;

  static GatherPolicy all(std::chrono::milliseconds deadline = kDefaultRequestTimeout) {
    return {Kind::All, 0, deadline};
  }
  static GatherPolicy first_k(std::size_t k, std::chrono::milliseconds deadline = kDefaultRequestTimeout) {
    return {Kind::FirstK, k, deadline};
  }
  static GatherPolicy quorum(std::chrono::milliseconds deadline = kDefaultRequestTimeout) {
    return {Kind::Quorum, 0, deadline};
  }
};

struct GatherResult {
  struct Answer {
    PeerInfo peer;
    Response response;
  };
  struct Miss {
    PeerInfo peer;
    ErrorCode error = ErrorCode::Timeout;  // Timeout when still pending at return
  };
  std::vector<Answer> responses;  // in order of arrival; FirstK: at most k
  // Peers that failed (their error) or had not answered when the call
  // returned (Timeout). Under FirstK an answer that arrived after the k-th
  // is in neither list: that peer did answer, but too late to count.
  std::vector<Miss> missing;
  bool satisfied = false;         // the policy's condition was met
};

// A notify that notify() accepted and that was later refused by the
// receiving node (its mailbox full, no such agent, ...) or lost on the way
// (the node died or became unreachable while it was queued).
struct DeliveryFailure {
  std::string message_id;  // 32 hex digits, as IncomingMessage::id on the receiver
  std::string target;      // the agent_id it was sent to
  std::string node;        // the node it was sent to
  ErrorCode reason = ErrorCode::None;
};

// Per-client notify accounting (delivery_stats()).
struct DeliveryStats {
  std::uint64_t notifies_accepted = 0;  // notify() returned true (broadcast: per copy)
  std::uint64_t notifies_refused = 0;   // notify() returned false (broadcast: per copy)
  std::uint64_t notifies_failed = 0;    // accepted, then reported as a DeliveryFailure
};

// What subscribe() callbacks get.
enum class PeerEventKind {
  NodeJoined,    // a mesh node joined (or came back)
  NodeLeft,      // a mesh node left gracefully
  NodeDead,      // SWIM declared a mesh node dead
  NodeSuspect,   // a mesh node is suspect (its agents are still listed, marked so)
  NodeAlive,     // a suspect node refuted the suspicion
  AgentAdded,
  AgentRemoved,
  AgentUpdated,
  // `node` advertises an agent id another node holds (the card says which
  // id): its card is withheld, the holder keeps the id's traffic.
  AgentConflict
};
std::string_view to_string(PeerEventKind kind);

struct PeerEvent {
  PeerEventKind kind;
  std::string node;
  std::optional<AgentCard> card;  // Agent* events
  bool local = false;             // the change is about this node
};

// An empty JSON object, one for the whole process: what the calls below
// take as the context when none is given (a Json::object() made for each
// call cost an allocation per message).
const Json& empty_context();

class PeerClient {
 public:
  using EventCallback = std::function<void(const PeerEvent&)>;
  using Token = std::uint64_t;

  // Made by Mesh for each agent and for the node (node_client); not for users.
  // `agent_id` and `role` are the owner's (its AgentSpec's), kept by
  // reference: they outlive the client and never change once it is made.
  PeerClient(detail::MeshCore& core, const std::string& agent_id, const std::string& role);
  PeerClient(const PeerClient&) = delete;
  PeerClient& operator=(const PeerClient&) = delete;
  ~PeerClient();

  // ---- who am I -----------------------------------------------------------
  const std::string& my_id() const { return agent_id_; }
  const std::string& my_role() const { return role_; }
  const std::string& node_name() const;

  // Strategy for target resolution and get_peer. Until set here, the
  // node's (NodeConfig::discovery_strategy, or Mesh::set_discovery_strategy
  // since).
  void set_default_strategy(Strategy strategy);
  // Throws std::invalid_argument on an unknown name.
  void set_default_strategy(std::string_view strategy);
  Strategy default_strategy() const;

  // ---- discovery (never blocks on the network) ----------------------------

  // One agent with this role, local or remote, chosen by the default
  // strategy; never the caller. nullopt when none (also for an empty role).
  std::optional<PeerInfo> get_peer(std::string_view role);
  // Every agent matching role and/or capability (both set: both must match),
  // ordered by `strategy`. Peers on a suspect node are included with
  // node_health Suspect; those on dead or left nodes are gone. Throws
  // std::invalid_argument when both fields are empty, or (string overload)
  // for a strategy name other than first, random, round_robin, least_recent.
  std::vector<PeerInfo> discover(const PeerQuery& query, Strategy strategy = Strategy::First);
  std::vector<PeerInfo> discover(const PeerQuery& query, std::string_view strategy);
  // The first of discover(); the same errors.
  std::optional<PeerInfo> discover_one(const PeerQuery& query, Strategy strategy = Strategy::First);
  std::optional<PeerInfo> discover_one(const PeerQuery& query, std::string_view strategy);
  // Feeds least_recent (request and notify record usage themselves).
  // False for an agent_id not in the directory.
  bool record_peer_usage(std::string_view agent_id);
  // Roles of every other agent (local and remote).
  std::set<std::string> list_roles() const;
  // Every other agent, local first, each with node, location and health
  // (peer_to_json gives the Python dict shape).
  std::vector<PeerInfo> list_peers() const;
  // The same keyed by agent_id.
  std::map<std::string, PeerInfo> registry() const;

  // ---- messaging ----------------------------------------------------------

  // Fire-and-forget. True when accepted for delivery; false when the target
  // cannot be resolved, its node is known dead, its mailbox is full
  // (backpressure), the payload is over the transport's frame limit, or the
  // mesh is not running. A same-node target's full mailbox is known at
  // once: false. A remote receiver's refusal arrives later and goes to
  // on_delivery_failure (and delivery_stats().notifies_failed): nothing
  // accepted is lost without a report. Throws std::invalid_argument when
  // ctx is not an object.
  bool notify(std::string_view target, const Json& message, const Json& ctx = empty_context());
  // The same, saying why not: None when accepted; TargetUnknown,
  // PermissionDenied (this node's policy), PeerDead, PeerUnreachable,
  // MailboxFull, Oversized or Shutdown otherwise.
  ErrorCode notify_detailed(std::string_view target, const Json& message, const Json& ctx = empty_context());
  // The same with options (priority, class, thread). Besides the above:
  // TurnLimit, Expired, BudgetExceeded (a same-node target's refusal, known
  // at once; a remote one's reaches on_delivery_failure), and
  // PermissionDenied for an authority message the policy does not allow,
  // or sent while handling an advisory one.
  bool notify(std::string_view target, const Json& message, const SendOptions& options);
  ErrorCode notify_detailed(std::string_view target, const Json& message, const SendOptions& options);

  // The response, or nullopt on timeout (nullopt: NodeConfig::
  // request_timeout, 30 s unless configured), when the target cannot be
  // resolved, and at once when the target's node is or becomes dead or
  // leaves. request_detailed says which. Must not be used by an agent to
  // call itself (it is never a target anyway).
  //   const Json ask = {{"code", code}};  // GCC 12: no braced temporary across co_await
  //   auto answer = co_await peers().request("reviewer", ask);
  Task<std::optional<Response>> request(std::string_view target, const Json& message,
                                        std::optional<std::chrono::milliseconds> timeout = std::nullopt,
                                        const Json& ctx = empty_context());
  Task<RequestOutcome> request_detailed(std::string_view target, const Json& message,
                                        std::optional<std::chrono::milliseconds> timeout = std::nullopt,
                                        const Json& ctx = empty_context());
  // The same with options: priority, class, thread, limits.
  //   auto answer = co_await peers().request("critic", draft, {.subject = "debate",
  //                                                              .limits = {.max_turns = 12}});
  // Besides the errors above: TurnLimit, Expired, BudgetExceeded, Loop
  // (the target already waits on this request's path), PermissionDenied.
  Task<std::optional<Response>> request(std::string_view target, const Json& message, const SendOptions& options);
  Task<RequestOutcome> request_detailed(std::string_view target, const Json& message, const SendOptions& options);
  // The same, blocking the calling thread.
  std::optional<Response> request_blocking(std::string_view target, const Json& message,
                                           std::optional<std::chrono::milliseconds> timeout = std::nullopt,
                                           const Json& ctx = empty_context());
  RequestOutcome request_detailed_blocking(std::string_view target, const Json& message,
                                           std::optional<std::chrono::milliseconds> timeout = std::nullopt,
                                           const Json& ctx = empty_context());
  std::optional<Response> request_blocking(std::string_view target, const Json& message,
                                           const SendOptions& options);
  RequestOutcome request_detailed_blocking(std::string_view target, const Json& message,
                                           const SendOptions& options);
  // The same with a std::future: ready when request_detailed completes. Resolution failures make a ready future.
  std::future<RequestOutcome> request_async(std::string_view target, const Json& message,
                                            std::optional<std::chrono::milliseconds> timeout = std::nullopt,
                                            const Json& ctx = empty_context());
  // The same with a callback, for code that must not hold a thread per
  // request in flight (the admin endpoint): `done` runs exactly once, on
  // the transport's thread or, for a failure known at once, before this
  // returns. `done` must be quick and must not throw.
  void request_then(std::string_view target, const Json& message,
                    std::optional<std::chrono::milliseconds> timeout, const Json& ctx,
                    std::function<void(RequestOutcome)> done);
  void request_then(std::string_view target, const Json& message, const SendOptions& options,
                    std::function<void(RequestOutcome)> done);

  // Answers a request. The request's context is carried over unless `ctx`
  // is given. The answer carries the cost reported for the request
  // (IncomingMessage::report_cost), and the request's thread, class and
  // priority. False when `incoming` is a notify, was answered already, the
  // payload is oversized, or the mesh is not running.
  bool respond(const IncomingMessage& incoming, const Json& message,
               const std::optional<Json>& ctx = std::nullopt);
  // Answers a request with an error instead of a response: the requester
  // sees `code` (Rejected: the handler failed, as when a CustomAgent's
  // handler throws). For requests answered outside a handler (the Python
  // binding's agents). False as respond(), and for ErrorCode::None.
  bool respond_error(const IncomingMessage& incoming, ErrorCode code = ErrorCode::Rejected);

  // One notify to every other agent (one copy per agent_id, never per
  // role), or (broadcast_to) to every agent matching `query`. Returns how
  // many copies were accepted (0 for an oversized message or a stopped
  // mesh). broadcast_to throws std::invalid_argument for an empty query.
  std::size_t broadcast(const Json& message, const Json& ctx = empty_context());
  std::size_t broadcast_to(const PeerQuery& query, const Json& message, const Json& ctx = empty_context());

  // The next message of this agent's inbox, waiting up to `timeout`
  // (forever when nullopt, until the agent stops). For a plain Agent's
  // run() (a CustomAgent's messages go to its handlers: std::logic_error)
  // and a ThreadAgent. One receive at a time per agent. Undecodable
  // messages are counted and dropped (a request among them is answered
  // Malformed). nullopt once the agent stops or the mesh is not running,
  // and at once for the node client (it has no inbox: nothing can be sent
  // to it).
  Task<std::optional<IncomingMessage>> receive(std::optional<std::chrono::milliseconds> timeout = std::nullopt);
  std::optional<IncomingMessage> receive_blocking(std::optional<std::chrono::milliseconds> timeout = std::nullopt);

  // Sends a request whose response is kept for check_inbox; returns its id.
  // Throws MeshError (code TargetUnknown) when the target cannot be
  // resolved, and MeshError with the transport's reason when the request
  // cannot be sent (PeerDead, MailboxFull, Oversized, Shutdown, ...).
  std::string ask_async(std::string_view target, const Json& message,
                        std::chrono::milliseconds timeout = kDefaultAskTimeout,
                        const Json& ctx = empty_context());
  // The response of ask_async `request_id`, waiting up to `timeout`
  // (0: just look). nullopt when not (yet) there, expired, failed or
  // unknown. remove=true forgets a delivered response.
  Task<std::optional<Response>> check_inbox(std::string_view request_id,
                                            std::chrono::milliseconds timeout = std::chrono::milliseconds(0),
                                            bool remove = true);
  std::optional<Response> check_inbox_blocking(std::string_view request_id,
                                               std::chrono::milliseconds timeout = std::chrono::milliseconds(0),
                                               bool remove = true);
  // The same, saying which case it is (Pending vs Expired vs Unknown, or
  // the error a failed request got).
  Task<AskCheck> check_inbox_status(std::string_view request_id,
                                    std::chrono::milliseconds timeout = std::chrono::milliseconds(0),
                                    bool remove = true);
  AskCheck check_inbox_status_blocking(std::string_view request_id,
                                       std::chrono::milliseconds timeout = std::chrono::milliseconds(0),
                                       bool remove = true);

  // Scatter-gather: the same request to every agent matching `query` (or
  // to each target in `targets`, resolved as by request), collected under
  // `policy`. Completes when the policy is satisfied, every peer answered
  // or failed, or the deadline passed. Throws std::invalid_argument for an
  // empty query, or FirstK with k == 0.
  Task<GatherResult> request_all(const PeerQuery& query, const Json& message, GatherPolicy policy = {},
                                 const Json& ctx = empty_context());
  Task<GatherResult> request_all(const std::vector<std::string>& targets, const Json& message,
                                 GatherPolicy policy = {}, const Json& ctx = empty_context());
  GatherResult request_all_blocking(const PeerQuery& query, const Json& message, GatherPolicy policy = {},
                                    const Json& ctx = empty_context());
  GatherResult request_all_blocking(const std::vector<std::string>& targets, const Json& message,
                                    GatherPolicy policy = {}, const Json& ctx = empty_context());
  // The same with a callback, for code that must hold no thread while it
  // waits (the admin endpoint): `done` runs exactly once, on the
  // transport's thread or, when nothing is to be waited for, before this
  // returns; it must be quick and must not throw.
  void request_all_then(const PeerQuery& query, const Json& message, GatherPolicy policy, const Json& ctx,
                        std::function<void(GatherResult)> done);

  // Waits `duration` without holding a thread (asyncio.sleep); completes
  // at once when the agent stops.
  Task<void> sleep(std::chrono::milliseconds duration);

  // ---- events -------------------------------------------------------------
  // Membership and directory changes, delivered one at a time, in order.
  // An agent's callbacks run on its strand, in turn with its handlers and
  // never beside them (concurrency 1); the node client's on the mesh's
  // executor. Keep them short (they may call this client, but not its
  // *_blocking calls). After unsubscribe returns no further call starts.
  Token subscribe(EventCallback callback);
  bool unsubscribe(Token token);

  // ---- delivery failures --------------------------------------------------
  // Called for each notify (or broadcast copy) of this client that was
  // accepted and then refused or lost downstream. Runs on the transport's
  // thread: keep it short, and do not call on_delivery_failure from it.
  // One callback per client; a new one replaces it, nullptr removes it;
  // once this returns the old one is not called again.
  using DeliveryFailureCallback = std::function<void(const DeliveryFailure&)>;
  void on_delivery_failure(DeliveryFailureCallback callback);
  DeliveryStats delivery_stats() const;

  // Internal (Mesh): routes a transport report to the client of the
  // agent that sent the notify, on the mesh `core`. False when no such
  // client exists any more (the agent was removed meanwhile).
  static bool report_delivery_failure(const detail::MeshCore& core, const transport::UndeliverableNotify& report);
  // Internal: a client's failure callback, made by on_delivery_failure
  // (peer_client.cpp).
  struct DeliverySink;

 private:
  // Every agent has a client, most of them idle: what only some clients
  // use (a failure callback, event subscriptions) is not in each of them.
  detail::MeshCore& core_;
  const std::string& agent_id_;
  const std::string& role_;
  std::atomic<int> strategy_{-1};  // -1: the node's
  std::atomic<std::uint64_t> accepted_{0};  // delivery_stats()
  std::atomic<std::uint64_t> refused_{0};
  std::atomic<std::uint64_t> failed_{0};
  // Set by on_delivery_failure (a process-wide lock guards the pointer).
  std::shared_ptr<DeliverySink> delivery_;
  // Unsubscribed on destruction; each with the flag an agent's callbacks,
  // queued on its strand, check before they start. Guarded by a
  // process-wide lock: subscribing is rare.
  std::vector<std::pair<Token, std::shared_ptr<std::atomic<bool>>>> tokens_;

  void count_notify(bool accepted, std::uint64_t n = 1);

  friend struct detail::AgentSlot;
  friend class Mesh;
  // The agent this client belongs to (null for the node client), set by
  // Mesh::add: its strand runs event callbacks and resumes awaits.
  detail::AgentSlot* slot_ = nullptr;
  detail::AwaitScope& await_scope() const;
};

}  // namespace mesh
