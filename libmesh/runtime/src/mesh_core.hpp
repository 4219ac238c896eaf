// The shared insides of a Mesh: what PeerClient, the agent runners and the
// control thread all reach. Private to mesh_mesh, whose sources each take
// one part of it:
//
//   mesh_core.cpp      construction, teardown, shared helpers
//   executor.cpp       the worker pool, await scopes, blocking-call checks
//   agent_runner.cpp   an agent on its strand (or its thread): start,
//                      message dispatch, restarts, stop
//   conversions.cpp    transport frames <-> facade messages
//   events.cpp         peer events to subscribers
//   control.cpp        the control strand: tags, registry repair
//   registry_sync.cpp  membership events, fetching peers' registries
//   mesh.cpp           the public Mesh: add/remove agents, start, stop
//   peer_client.cpp, peer_messaging.cpp, scatter_gather.cpp   PeerClient
//   conversations.cpp  threads: stamped on sends, checked on receipt
//   agent.cpp, payload_codec.cpp   as named
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <shared_mutex>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <thread>
#include <unordered_map>
#include <typeinfo>
#include <vector>

#include "mesh/agent.hpp"
#include "mesh/audit_log.hpp"
#include "mesh/mesh.hpp"
#include "mesh/mesh_options.hpp"
#include "mesh/node_config.hpp"
#include "mesh/peer_client.hpp"
#include "mesh/peer_link.hpp"
#include "mesh/node_cert.hpp"
#include "mesh/policy.hpp"
#include "mesh/thread_table.hpp"
#include "node_keys.hpp"
#include "payload_codec.hpp"
#include "registry_signing.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <coroutine>

namespace mesh::detail {

// Reserved inbox serving this node's agent registry (encode_registry).
inline constexpr char kRegistryInbox[] = "$registry";
// Reserved inbox answering gossip key operations (keys.cpp).
inline constexpr char kKeysInbox[] = "$keys";
// SWIM tags of a mesh node besides kZmqPortTag.
inline constexpr char kMeshTag[] = "mesh";
inline constexpr char kRegistryVersionTag[] = "rv";
// "1" when the registry of version rv lists no agent and carries no
// certificate (the node signs nothing): the others take that empty
// registry from the tag instead of fetching it. A cluster of nodes
// without agents then opens no connection for registries at all.
inline constexpr char kRegistryEmptyTag[] = "re";

std::int64_t steady_ms();
// 64 bits from the OS's random source (seeds, not secrets).
std::uint64_t random_u64();
// A decimal number and nothing else; nullopt otherwise.
std::optional<std::uint64_t> parse_u64(const std::string& text);

using PoolExecutor = boost::asio::io_context::executor_type;
using Strand = boost::asio::strand<PoolExecutor>;

// The target of a send as the checks on the way see it: its id, node and
// role, borrowed from a PeerInfo or a PeerRef that outlives the call.
struct TargetView {
  TargetView(const PeerInfo& p) : agent_id(p.card.agent_id), node(p.card.node), role(p.card.role) {}
  TargetView(const PeerRef& p) : agent_id(p.agent_id), node(p.node), role(p.role) {}
  std::string_view agent_id;
  std::string_view node;
  std::string_view role;
};

// ---- executor.cpp -----------------------------------------------------------

// True on a thread of any Mesh's executor. A call that blocks throws
// std::logic_error there (forbid_blocking): one blocked executor thread
// holds up every agent scheduled on it, all of them at once deadlock.
bool on_executor_thread();
void forbid_blocking(std::string_view call);

// The awaits in progress of one agent (or of the node client): where they
// resume, and a cancel for each, which stop() runs: stopping an agent
// completes every await of it at once.
//
// Every agent has one, idle or not, so it is kept small: where awaits
// resume is two pointers (an any_io_executor holding a strand would be 48
// bytes plus 48 on the heap), and the cancels are a vector, as an agent
// has few awaits at a time.
struct AwaitScope {
  // Where awaits resume: `strand` when set (it outlives the scope), else
  // the pool.
  const Strand* strand = nullptr;
  boost::asio::io_context* pool = nullptr;
  boost::asio::any_io_executor executor() const;
  // Keeps `cancel` and returns its key; 0 (cancel dropped) once stopped.
  std::uint64_t add(std::function<void()> cancel);
  void remove(std::uint64_t key);
  void stop();
  bool stopped() const;

 private:
  std::mutex& mu() const;  // guards the rest; one of a few shared locks (executor.cpp)
  bool stopped_ = false;
  std::uint64_t next_ = 1;
  std::vector<std::pair<std::uint64_t, std::function<void()>>> cancels_;
};

// ---- conversations.cpp -------------------------------------------------------

// A message being handled: what the messages sent meanwhile inherit (its
// thread, its class as a ceiling, the request path), and the cost its
// handling reports (its own and its requests' answers').
struct Handling {
  std::uint64_t mesh = 0;        // the MeshCore::instance that received it
  ThreadBlock block;             // as admitted here
  std::string self;              // "agent@node" of its handler (with an audit trail)
  bool request = false;
  std::int64_t deadline_ms = 0;  // Unix ms; 0: none
  std::int64_t received_ms = 0;  // when it was handed to its agent (with an audit trail)
  void add_cost(double amount);
  double cost() const;

 private:
  mutable std::mutex mu_;
  double cost_ = 0;
};

// A same-node message as its sender had it (transport::LocalBody): the
// receiver takes these instead of decoding the message's bytes again.
struct DecodedBody final : transport::LocalBody {
  DecodedBody(Json d, Json c) : data(std::move(d)), context(std::move(c)) {}
  Json data;
  Json context;  // an object, or null for none (an empty one)
  // As stamped, when `stamped` (conversations on); then the bytes carry
  // none. Not an optional: engaging one value-initializes the block, which
  // clears its few hundred bytes first (rep stos, per message).
  ThreadBlock block;
  bool stamped = false;
  ThreadBlock* stamped_block() { return stamped ? &block : nullptr; }
};

// `body` as a DecodedBody, or null when it is none (or another kind of
// LocalBody). Every same-node message asks, twice: an exact type check
// is a comparison where dynamic_cast walks the class hierarchy.
inline DecodedBody* decoded_body(transport::LocalBody* body) {
  return body != nullptr && typeid(*body) == typeid(DecodedBody) ? static_cast<DecodedBody*>(body) : nullptr;
}

// The handling whose code runs on this thread now: set around each start
// and resumption of a handler (HandlingScope), and by receive() to the
// message it returns. Only one of `core`'s counts (nullptr otherwise): a
// thread that received from one Mesh and sends through another (or
// through a Mesh made after the first stopped) starts afresh.
const Handling* current_handling(const MeshCore& core);
// Whichever it is, to carry it across a suspension (OpAwaiter).
const std::shared_ptr<Handling>& current_handling();
class HandlingScope {
 public:
  explicit HandlingScope(std::shared_ptr<Handling> h);
  ~HandlingScope();
  HandlingScope(const HandlingScope&) = delete;
  HandlingScope& operator=(const HandlingScope&) = delete;

 private:
  std::shared_ptr<Handling> prev_;
};
// receive_blocking's: the message it returns is the one being handled on
// this thread until the next.
void set_current_handling(std::shared_ptr<Handling> h);

// A request's conversation, for its answer: the thread, whether this
// request opened it here (its answer closes it), and the handling that
// sent it (the answer's cost adds to it).
struct SentRequest {
  ThreadId thread;
  bool opened = false;
  std::shared_ptr<Handling> parent;
  // For the audit trail's record of the answer.
  std::int64_t sent_ms = 0;
  transport::MessageId id;
  std::string from;  // agent@node
  std::string to;
  std::uint32_t turn = 0;
  std::uint32_t depth = 0;
  MessageClass message_class = MessageClass::Advisory;
  Priority priority = Priority::Normal;
};

// What one audit record says about one message (MeshCore::audit_message).
struct AuditFacts {
  std::string_view event{};  // sent, received, refused, handled, answered, answer
  std::string_view kind{};  // notify, request, response
  const ThreadBlock* thread = nullptr;
  transport::MessageId id{};  // the request's or notify's (its answer's records too)
  std::string_view from{};   // agent@node
  std::string_view to{};
  std::string_view to_role{};  // sent: the target's role (what a replay sends to)
  Priority priority = Priority::Normal;
  ErrorCode outcome = ErrorCode::None;
  std::optional<double> cost{};
  std::span<const std::uint8_t> payload{};
  std::optional<std::int64_t> took_ms{};  // answer: the round trip; handled: the handling
};

// What a record needs, owned: the facts outlive the message's path. Of
// the thread block only what a record shows (not its path or origin).
struct AuditItem {
  std::int64_t at_ms = 0;
  std::string_view event;  // string literals
  std::string_view kind;
  std::optional<ThreadBlock> thread;  // lineage and origin left empty
  transport::MessageId id;
  std::string from;
  std::string to;
  std::string to_role;
  Priority priority = Priority::Normal;
  ErrorCode outcome = ErrorCode::None;
  std::optional<double> cost;
  std::optional<std::int64_t> took_ms;
  std::vector<std::uint8_t> payload;
};

// One await's outcome, set once by whichever comes first (the operation,
// its timer, a stop); that one resumes the awaiter on its scope's executor,
// in the handling it was suspended in (or, for a receive, the message's).
template <class T>
struct Completion {
  std::atomic<bool> done{false};
  std::coroutine_handle<> handle;
  boost::asio::any_io_executor executor;
  std::optional<T> value;
  std::shared_ptr<Handling> handling;

  bool complete(T v) {
    if (done.exchange(true, std::memory_order_acq_rel)) return false;
    value.emplace(std::move(v));
    std::function<void()> f;
    {
      std::lock_guard lock(mu);
      f = std::move(cleanup);
    }
    if (f) f();
    boost::asio::post(executor, [h = handle, in = handling]() mutable {
      HandlingScope scope(std::move(in));
      h.resume();
    });
    return true;
  }
  // What the winner runs once it completed (e.g. cancel the timer that
  // raced the operation); at once when it is complete already.
  void on_complete(std::function<void()> f) {
    {
      std::lock_guard lock(mu);
      if (!done.load()) {
        cleanup = std::move(f);
        return;
      }
    }
    f();
  }

 private:
  std::mutex mu;
  std::function<void()> cleanup;
};

// Completes `c` with `value` after `duration`, unless something else does
// first (then the timer is cancelled). The timer lives on a strand of its
// own, where its cancel is posted too.
template <class T>
void complete_after(const PoolExecutor& pool, std::chrono::milliseconds duration,
                    const std::shared_ptr<Completion<T>>& c, T value) {
  auto strand = boost::asio::make_strand(pool);
  auto timer = std::make_shared<boost::asio::steady_timer>(strand, duration);
  c->on_complete([strand, timer] { boost::asio::post(strand, [timer] { timer->cancel(); }); });
  boost::asio::post(strand, [timer, c, value = std::move(value)]() mutable {
    if (c->done.load()) return;
    timer->async_wait([timer, c, value = std::move(value)](const boost::system::error_code& ec) mutable {
      if (!ec) c->complete(std::move(value));
    });
  });
}

// Suspends until `start(completion)` (or a stop, with `on_stop`) completes.
// `start` runs inside await_suspend and may complete at once.
template <class T, class Start>
struct OpAwaiter {
  AwaitScope& scope;
  Start start;
  T on_stop;
  std::shared_ptr<Completion<T>> c = std::make_shared<Completion<T>>();
  std::uint64_t key = 0;

  bool await_ready() const noexcept { return false; }
  bool await_suspend(std::coroutine_handle<> h) {
    c->handle = h;
    c->executor = scope.executor();
    c->handling = current_handling();
    key = scope.add([c = c, v = on_stop]() mutable { c->complete(std::move(v)); });
    if (key == 0) {  // stopped: no suspension
      c->done.store(true);
      c->value.emplace(std::move(on_stop));
      return false;
    }
    auto keep = c;  // `this` lives in the coroutine frame, which may resume on another thread now
    start(keep);
    return true;
  }
  T await_resume() {
    scope.remove(key);
    return std::move(*c->value);
  }
};
template <class T, class Start>
OpAwaiter<T, Start> await_op(AwaitScope& scope, Start start, T on_stop) {
  return OpAwaiter<T, Start>{scope, std::move(start), std::move(on_stop)};
}

// A receive() waiting on its agent's strand for the next message
// (AgentSlot::start_receive).
struct ReceiveWait {
  std::shared_ptr<Completion<std::optional<IncomingMessage>>> completion;
  std::optional<std::chrono::milliseconds> timeout;
  std::optional<boost::asio::steady_timer> timer;
};

// The counters of one role's handlers (RoleStats); made on the first
// agent of the role, kept for the node's life (counters never go back).
struct RoleCounters {
  explicit RoleCounters(std::string name) : role(std::move(name)) {}
  const std::string role;  // or "_other", past RoleStats::kMaxRoleSeries
  // Their sum is the count: a scrape reading them one by one while
  // handlers end still sees buckets that add up to it.
  std::array<std::atomic<std::uint64_t>, kHandlerSecondsBounds.size() + 1> buckets{};
  std::atomic<std::uint64_t> nanos{0};
  void observe(std::chrono::steady_clock::duration took);
};

// ---- agent_runner.cpp -------------------------------------------------------

struct AgentSlot : std::enable_shared_from_this<AgentSlot> {
  enum class Kind { Plain, Custom, Thread };

  AgentSlot(MeshCore& core, std::unique_ptr<Agent> agent);
  ~AgentSlot();

  MeshCore* core;
  std::unique_ptr<Agent> agent;
  std::unique_ptr<PeerClient> client;
  const Kind kind;
  bool parallel = false;  // a CustomAgent with concurrency > 1
  Strand strand;
  // Where the agent's awaits resume: its strand, or the pool itself for a
  // CustomAgent whose handlers run in parallel (concurrency > 1).
  AwaitScope scope;
  // Its mailbox: opened (MeshCore::mu held) when the mesh starts or, on a
  // running mesh, when it is added; closed when the mesh stops or the
  // agent is removed, and kept until the slot goes (its strand may still
  // look at it).
  std::shared_ptr<transport::Inbox> inbox;
  std::uint64_t order = 0;  // the agents' order of addition (MeshCore::slots_in_order)
  RoleCounters* role;  // its role's, owned by the core
  std::atomic<bool> stopping{false};
  std::atomic<std::size_t> restarts{0};
  std::atomic<bool> running{false};
  std::jthread thread;  // a ThreadAgent's

  // Any thread.
  void start();
  // Cancels the agent's awaits and stops its dispatch; stop_wait waits (up
  // to `until`) for its coroutines to end (a ThreadAgent's thread: joins
  // it); teardown_then runs teardown on the strand, then `done`. The three
  // in turn are stop (MeshCore::stop_agents).
  void stop_begin();
  bool stop_wait(std::chrono::steady_clock::time_point until);
  void teardown_then(std::function<void()> done);
  // Counts the failure and calls on_error (which must not throw; if it
  // does, that is swallowed).
  void report(const std::exception& error, const IncomingMessage* message);
  void report_current(const IncomingMessage* message);  // the exception being handled
  void report_error(std::exception_ptr error, const IncomingMessage* message);

  // ---- on the strand ----
  void begin();   // setup, then run() or dispatch
  void pump();    // hands waiting messages to the handlers or to receive()
  void schedule_pump();
  void fail();    // restart after a failure, with backoff
  void handler_done(std::size_t taken);  // a handler ended
  void start_receive(const std::shared_ptr<ReceiveWait>& wait);
  void end_coroutine();  // any thread

  // A CustomAgent's handler for one message (agent_runner.cpp): started,
  // and ended at once when it completes without suspending; otherwise
  // awaited to its end by a coroutine that owns the message.
  // `message` is left null when a coroutine took it, and is still there
  // when the handling ended (the caller may reuse it).
  void start_request(std::unique_ptr<IncomingMessage>& message);
  void start_notify(std::unique_ptr<IncomingMessage>& message);
  static Detached await_request(std::shared_ptr<AgentSlot> slot, std::unique_ptr<IncomingMessage> message,
                                Task<std::optional<Json>> task, std::chrono::steady_clock::time_point started);
  static Detached await_notify(std::shared_ptr<AgentSlot> slot, std::unique_ptr<IncomingMessage> message,
                               Task<void> task, std::chrono::steady_clock::time_point started);
  void finish_request(const IncomingMessage& message, std::chrono::steady_clock::time_point started,
                      std::optional<Json> answer, std::exception_ptr error);
  void finish_notify(const IncomingMessage& message, std::chrono::steady_clock::time_point started,
                     std::exception_ptr error);

  // A ThreadAgent's thread: setup, run_blocking, teardown, restarts.
  void run_thread(std::stop_token stop);

  // Strand-only state.
  bool set_up = false;       // setup() ran, teardown() not yet
  bool paused = false;       // restarting: no dispatch
  bool pump_posted = false;
  bool pumping = false;  // pump() is on the stack: a handler that ends inside it needs no new pump
  std::size_t in_flight = 0; // handlers started and not ended
  std::size_t in_flight_cap = 1;
  std::shared_ptr<ReceiveWait> receiver;
  // Made on the first failure: most agents never restart, and a timer is
  // 112 bytes of every agent's slot.
  std::unique_ptr<boost::asio::steady_timer> backoff_timer;
  std::chrono::milliseconds backoff{0};
  std::chrono::steady_clock::time_point began{};
  // Coroutines of the agent alive (run() and handlers): stop waits for 0.
  std::atomic<std::size_t> live{0};
};

struct MeshCore {
  enum class State { Created, Running, Stopped };

  MeshCore(NodeConfig cfg, MeshOptions opts);
  ~MeshCore();

  // ---- shared with PeerClient --------------------------------------------
  std::shared_ptr<transport::Transport> get_transport() const;
  std::shared_ptr<transport::Inbox> inbox_of(const std::string& agent_id) const;
  // MessagePack of a JSON payload / context; the context must be an object
  // or null (std::invalid_argument otherwise).
  std::vector<std::uint8_t> encode_context(const Json& ctx) const;
  // Conversions of what the transport hands out; nullopt (counted) when
  // the payload or context does not decode.
  std::optional<IncomingMessage> to_incoming(transport::Incoming&& in);
  // The same into `m`, new or one handled before (every field is set);
  // false, with `m` partly set, for a message that does not decode.
  bool to_incoming(transport::Incoming&& in, IncomingMessage& m);
  // `sent`: the request's conversation, told of its answer (on_answer).
  RequestOutcome to_outcome(transport::Reply&& reply, const SentRequest* sent = nullptr);
  std::optional<Response> to_response(const transport::Envelope& env);

  // ---- conversations (conversations.cpp) -------------------------------------
  // The thread limits of NodeConfig (thread_*), 0 meaning none.
  ThreadLimits thread_defaults() const;
  // Stamps the thread of a message `self` (of `self_role`) sends to
  // `target` into `m` (and its priority), filling `sent` for a request's
  // answer. Not None: the message must not go, for that reason:
  // PermissionDenied (an authority message the policy refuses, or one sent
  // while handling an advisory message), Expired (options.thread is not
  // known here, or past its time), BudgetExceeded (a request path too long);
  // and for a target on this node, its refusals as admit_thread's.
  // Throws std::invalid_argument for an over-long subject.
  ErrorCode stamp_thread(std::string_view self, std::string_view self_role, TargetView target,
                         const SendOptions& options, bool request, transport::OutMessage& m, SentRequest* sent);
  // The receiving node's checks of a message from another node (admit()):
  // its thread block's form, class and limits.
  ErrorCode admit_thread(const transport::EnvelopeView& message, std::string_view node);
  // The handling of a message as this node admitted it (to_incoming),
  // filled into `h` (fresh). `given`: its block as a same-node sender
  // stamped it (DecodedBody), moved from; null when there is none.
  void fill_handling(Handling& h, const transport::Envelope& env, ThreadBlock* given);
  // The thread block of an answer to `incoming` (its thread, turn, cost),
  // and the audit record of the answer.
  std::vector<std::uint8_t> response_thread(const IncomingMessage& incoming, std::span<const std::uint8_t> payload,
                                            ErrorCode outcome = ErrorCode::None);
  // The audit record of a message's handling ("handled": a notify's
  // handler ended; "answered": a request's answer, or its failure).
  void audit_handled(const IncomingMessage& m, std::string_view event, ErrorCode outcome,
                     std::span<const std::uint8_t> payload = {});
  // An answer's thread block: into `r`, and the table (its turn, its cost).
  void take_answer_thread(const transport::Envelope& env, Response& r);
  // A request's outcome: its cost to the handling that sent it, and the
  // thread closed (the request opened it) or marked refused.
  void on_answer(const SentRequest& sent, const RequestOutcome& out);
  std::vector<ThreadRecord> thread_list();
  std::optional<ThreadRecord> thread_record(const ThreadId& id);
  ThreadTableStats thread_stats();
  bool authority_only(std::string_view agent) const;
  void set_authority_only(const std::string& agent, bool on);
  // The audit trail (NodeConfig::audit_dir): opened at construction (a
  // directory it cannot use stops the start), one record per event of a
  // message. No-ops without a trail. audit_message copies the facts and
  // hands them to the trail's own thread, which builds, hashes and writes
  // the records in order: a message's path pays for a copy, not for the
  // JSON, the SHA-256 and the write(). Past kAuditQueueMax records waiting,
  // audit_message waits for room (backpressure; nothing is dropped).
  //
  // The writer takes what waits as a batch, written with one write(), then
  // lets kAuditGather pass before it looks again: under load the records
  // of many messages share a wake-up and a system call, and a producer
  // signals the writer only when it sleeps on an empty queue.
  //
  // With audit_fsync "always" there is no queue and no thread:
  // audit_message writes (and syncs) the record itself, so that a record
  // is on disk before its message goes on, as that setting promises.
  void open_audit();
  void audit_message(const AuditFacts& facts);
  void close_audit();  // writes what waits, then ends the thread
  void audit_record(const AuditItem& item, std::string& out) const;
  std::unique_ptr<AuditLog> audit;
  bool audit_sync = false;  // audit_fsync "always": written on the message's path
  static constexpr std::size_t kAuditQueueMax = 65536;
  // Items and record texts the writer keeps for reuse after a burst.
  static constexpr std::size_t kAuditKeptItems = 4096;
  static constexpr std::chrono::milliseconds kAuditGather{2};
  static constexpr int kAuditNice = 10;  // the trail thread's nice value (setpriority)
  std::mutex audit_queue_mu;
  std::condition_variable_any audit_queue_cv;  // the writer: records are waiting (or stop)
  std::condition_variable audit_room_cv;       // producers: there is room again
  std::vector<AuditItem> audit_queue;  // its first audit_queued items wait; the rest are for reuse
  std::size_t audit_queued = 0;
  bool audit_writer_idle = false;              // the writer waits on audit_queue_cv
  bool audit_closing = false;
  // Last: its destructor (a constructor that throws later) stops it first.
  std::jthread audit_thread;

  using EventCallback = std::function<void(const PeerEvent&)>;
  std::uint64_t subscribe(EventCallback cb);
  bool unsubscribe(std::uint64_t token);
  void publish(PeerEvent event);

  // ---- control strand (control.cpp) ----------------------------------------
  void post(std::function<void()> task);
  void start_control();
  void stop_control();  // waits for a control task in progress
  void arm_repair();
  void deliver(const PeerEvent& event);
  void schedule_tag_update();
  void update_tags();
  void repair();
  std::map<std::string, std::string> tags() const;  // takes mu
  std::map<std::string, std::string> tags_with(std::uint16_t zmq_port) const;
  // `user` with the mesh's own tags added (they win over a user tag of
  // the same name): what tags_with gossips for those user tags.
  std::map<std::string, std::string> with_mesh_tags(std::map<std::string, std::string> user,
                                                    std::uint16_t zmq_port) const;
  std::uint16_t advertised_zmq_port() const;  // takes mu
  // Defaults agents see, from config and changed at run time
  // (Mesh::set_discovery_strategy, set_request_timeout).
  std::atomic<int> default_strategy{0};  // a Strategy
  std::atomic<std::int64_t> request_timeout_ms{0};
  // The node's own tags: config.tags, then what Mesh::set_tags gave.
  mutable std::mutex user_tags_mu;
  std::map<std::string, std::string> user_tags;

  // Per-role handler counters (RoleCounters), by role; under roles_mu.
  RoleCounters& role_counters(std::string_view role);
  mutable std::mutex roles_mu;
  std::map<std::string, std::unique_ptr<RoleCounters>, std::less<>> roles;

  // ---- membership ----------------------------------------------------------
  void on_member_event(const swim::MemberEvent& event);
  // From a member's tags: its registry's version, fetched when newer than
  // the one held, or taken as it is when the tags say it is empty.
  void follow_registry(const std::string& node, const std::map<std::string, std::string>& tags);
  void want_registry(const std::string& node, std::uint64_t version);
  // Fetches `node`'s registry unless one is on the way; then remembers the
  // highest version wanted meanwhile, fetched again only if the answer on
  // the way turns out older.
  void start_fetch(const std::string& node, std::uint64_t version);
  void send_fetch(const std::string& node);
  void take_registry(const std::string& node, const transport::Reply& reply);
  // `failed`: the fetch brought no registry. One that messages wait on
  // (held by admit) is tried again a little later, up to
  // kHeldFetchRetries times, before they are decided.
  void fetch_done(const std::string& node, bool failed);
  // Fetches `node`'s registry once more even if no newer version is
  // announced (a message named an agent it may have added since), or once
  // more after the fetch on the way.
  void refresh_registry(const std::string& node);
  bool fetch_in_progress(const std::string& node);

  // ---- who may reach an agent (TransportOptions::admit) ----------------------
  // A message from another node is admitted only from an agent that node
  // holds in our directory; for one it does not (yet), the node's registry
  // is fetched again and the message held until that answer is in.
  transport::TransportOptions::Admission admit(const transport::EnvelopeView& message, std::string_view node,
                                               bool second_look);

  // ---- trust policy (trust.cpp) ----------------------------------------------
  // The node a message comes from or goes to, as the policy sees it:
  // certified claims of that node (this node's own, or those of the
  // certificate its registry came with).
  std::vector<std::string> claims_of(std::string_view node) const;
  // The zones of an agent of `role` on `node` (a bit per zone), kept until
  // a node's certified claims change: per message, the policy costs two
  // lookups and a pass over its rules.
  // Each answer comes from one policy: `p`, a snapshot of policy_now().
  Policy::ZoneMask zones_of(const Policy& p, std::string_view node, std::string_view role) const;
  void forget_zones();
  // The policy in force (null without one); reload_policy() replaces it.
  std::shared_ptr<const Policy> policy_now() const;
  std::optional<std::string> reload_policy();
  void load_trust();  // at construction (mesh_core.cpp)
  // May this node's agent `from_agent`, of `from_role`, do `action` to
  // `peer`? Counts and logs a refusal (the sender's side).
  bool may_send(std::string_view from_agent, std::string_view from_role, TargetView peer, PolicyAction action);
  bool allows_send(std::string_view from_role, TargetView peer, PolicyAction action) const;  // silent
  // Drops from `peers` those a `from_role` agent of this node may reach in
  // no way (discovery shows a caller only what it may reach).
  void keep_reachable(std::vector<PeerInfo>& peers, std::string_view from_role) const;
  // The receiver's side, for admit(): may that sender do `action` to the
  // local agent `target`? Counts and logs a refusal.
  bool may_receive(std::string_view node, std::string_view sender, std::string_view target, PolicyAction action);
  // Checks the certificate a node's registry came with and keeps its
  // zones as that node's claims (or forgets them).
  void take_certificate(const std::string& node, const std::optional<std::string>& cert);
  void audit_denied(std::string_view side, std::string_view from, std::string_view to, PolicyAction action);

  // ---- gossip keys (keys.cpp) ------------------------------------------------
  Mesh::KeyResult apply_key_op(Mesh::KeyOp op, const std::string& key_base64);
  transport::ErrorCode serve_keys(const transport::EnvelopeView& request, std::vector<std::uint8_t>& out);

  // ---- agents --------------------------------------------------------------
  void start_agent(const std::shared_ptr<AgentSlot>& slot);  // under mu
  // Stops these agents, all at once (each its awaits cancelled, then each
  // waited for, up to a deadline for those that ignore the stop).
  void stop_agents(const std::vector<std::shared_ptr<AgentSlot>>& slots);

  // ---- the executor (executor.cpp) --------------------------------------------
  // Threads: NodeConfig::worker_threads, or one per hardware thread.
  void start_pool();
  void stop_pool();

  // Where the CURVE pair in `config` came from; resolved (and the pair
  // filled in) before `config` is initialised from the same argument.
  const detail::KeySource key_source;
  const NodeConfig config;
  const MeshOptions options;
  const std::uint64_t instance;  // unique in the process (Handling::mesh)
  const std::string node_name;
  AgentDirectory directory;
  PayloadLimits limits;
  // Signs the registry this node serves; set when it has a CURVE key pair
  // (registry_signing.hpp). Replaced only by the test hook, before start.
  std::unique_ptr<RegistrySigner> signer;
  std::string signing_key_tag;  // the "skey" tag: the public half of the node's own signer
  // Trust policy (JC_POLICY), and the trust key that certifies zone claims
  // (JC_TRUST_KEY) with this node's own certificate (JC_NODE_CERT),
  // checked at construction. policy_on is constant once constructed; the
  // policy itself is replaced whole by a reload, under zone_cache_mu with
  // the zone cache computed from it.
  bool policy_on = false;
  std::optional<ed25519::PublicKey> trust_key;
  std::string own_cert;
  std::vector<std::string> own_claims;
  // Other nodes' certified claims, from the certificates their registries
  // came with.
  mutable std::mutex claims_mu;
  std::map<std::string, std::vector<std::string>, std::less<>> node_claims;
  mutable std::mutex zone_cache_mu;
  std::shared_ptr<const Policy> policy;                                    // under zone_cache_mu
  mutable std::unordered_map<std::string, Policy::ZoneMask> zone_cache;  // "node\nrole" -> zones, under `policy`
  std::mutex reload_mu;  // one reload at a time
  static constexpr std::size_t kZoneCacheMax = 65536;  // past it, the cache starts over
  // Audit lines: at most one a second, the rest counted in the next.
  std::mutex audit_mu;
  std::int64_t audit_last_ms = 0;
  std::uint64_t audit_suppressed = 0;

  struct Stats {
    std::atomic<std::uint64_t> messages_malformed{0};
    std::atomic<std::uint64_t> registry_fetches{0};
    std::atomic<std::uint64_t> registry_applied{0};
    std::atomic<std::uint64_t> registry_unchanged{0};
    std::atomic<std::uint64_t> registry_from_tags{0};
    std::atomic<std::uint64_t> registry_failures{0};
    std::atomic<std::uint64_t> registry_bad_signatures{0};
    std::atomic<std::uint64_t> certificates_refused{0};
    std::atomic<std::uint64_t> policy_denied_received{0};
    std::atomic<std::uint64_t> policy_denied_sent{0};
    std::atomic<std::uint64_t> tag_updates{0};
    std::atomic<std::uint64_t> agent_failures{0};
    std::atomic<std::uint64_t> agent_restarts{0};
    std::atomic<std::uint64_t> authority_refused{0};
  } stats;

  // Threads of the conversations this node's messages belong to.
  transport::MessageIdGenerator ids;  // new threads' ids
  std::mutex threads_mu;
  ThreadTable threads;
  // Agents that take authority messages only (AgentSpec::authority_only).
  mutable std::shared_mutex authority_mu;
  std::set<std::string, std::less<>> authority_only_agents;
  // Its size, read without the lock: most nodes have no such agent, and
  // every advisory message to a local agent asks.
  std::atomic<std::size_t> authority_only_count{0};

  // The executor: every agent's strand, the control strand, and where the
  // node client's awaits resume. Declared before what lives on it, so that
  // it is destroyed last.
  std::unique_ptr<boost::asio::io_context> pool;
  std::optional<boost::asio::executor_work_guard<PoolExecutor>> pool_work;
  std::vector<std::thread> workers;
  AwaitScope node_scope;
  std::mutex live_mu;  // with live_cv: an agent's last coroutine ended
  std::condition_variable live_cv;
  std::atomic<int> live_waiters{0};  // threads in AgentSlot::stop_wait (end_coroutine)

  // Guards state, transport, the agent table and the inboxes.
  mutable std::mutex mu;
  State state = State::Created;
  std::shared_ptr<transport::Transport> transport;
  std::shared_ptr<transport::Inbox> registry_inbox;
  std::shared_ptr<transport::Inbox> keys_inbox;
  std::mutex keyring_mu;  // one keyring change (and save) at a time
  std::map<std::string, std::shared_ptr<AgentSlot>, std::less<>> agents;
  // Also held (after mu) to change `agents`: a reader that must not wait
  // for mu, which the Mesh holds while it stops the transport, reads the
  // table under this lock alone (PeerClient::report_delivery_failure, on
  // the transport's thread).
  mutable std::shared_mutex agents_mu;
  std::uint64_t next_order = 0;  // AgentSlot::order of the next agent added
  // The agents in the order they were added (mu held).
  std::vector<std::shared_ptr<AgentSlot>> slots_in_order() const;
  // Opens the agent's inbox in the transport (mu held, transport set).
  void open_mailbox(AgentSlot& slot);
  // Mesh::node_client: sends as kNodeClientId; no card, no inbox. Its id
  // and (empty) role live here, as an agent's live in its spec.
  const std::string node_client_id{kNodeClientId};
  const std::string node_client_role;
  std::unique_ptr<PeerClient> node_client = std::make_unique<PeerClient>(*this, node_client_id, node_client_role);
  std::mutex stop_mu;  // one stop() at a time
  // Mesh::readiness: in a cluster (see there), and stop() ended.
  std::atomic<bool> joined{false};
  std::atomic<bool> stop_done{false};
  mutable std::mutex join_mu;
  std::string join_failure;  // the start-up join gave up: why

  // SWIM (P2P on). The io_context runs on io_thread.
  std::unique_ptr<boost::asio::io_context> io;
  std::thread io_thread;
  std::unique_ptr<swim::Membership> membership;
  std::unique_ptr<PeerLink> link;
  std::atomic<bool> membership_alive{false};
  // Mesh::with_membership readers hold it shared; stop() takes it alone to
  // clear membership_alive, so no reader still holds the pointer after.
  mutable std::shared_mutex membership_readers;
  // The membership while it runs, else null; the caller holds
  // membership_readers (shared) for as long as it uses the pointer.
  swim::Membership* live_membership() const {
    std::lock_guard lock(mu);
    return membership_alive.load() ? membership.get() : nullptr;
  }

  // The control strand: registry fetches and their answers, tag updates,
  // event delivery, repair; timers instead of a thread of its own.
  std::optional<Strand> control;
  std::optional<boost::asio::steady_timer> tag_timer;
  std::optional<boost::asio::steady_timer> repair_timer;
  std::atomic<bool> control_stop{false};
  bool tag_update_pending = false;  // on the control strand

  // Registry fetches in flight, and nodes to fetch again when one ends.
  std::mutex fetch_mu;
  std::set<std::string> fetching;
  std::map<std::string, std::uint64_t> fetch_again;  // node -> highest version wanted
  std::set<std::string> refetch;  // fetched again when the fetch on the way ends
  // Nodes whose messages admit holds until their registry is fetched ->
  // the failed fetches retried for them so far. A fetch fails when it
  // races the join: the other node refuses our handshake until it knows
  // our key, and the transport rebuilds the connection only after
  // TransportOptions::reconnect_interval (100 ms).
  std::map<std::string, int> held_fetches;
  static constexpr int kHeldFetchRetries = 3;
  static constexpr std::chrono::milliseconds kHeldFetchRetryFirst{150};  // then doubling
  // On the control strand: the waits before those retries.
  std::map<std::string, std::unique_ptr<boost::asio::steady_timer>> held_fetch_timers;
  // Members' registry signing keys and CURVE keys (their "skey" and
  // "zkey" tags), alive or suspect.
  std::map<std::string, std::string> signing_keys;
  std::map<std::string, std::string> curve_keys;
  // Nodes whose last fetch failed: no new fetch before `at` (steady ms);
  // the wait doubles with each failure up to kFetchBackoffMax and is
  // forgotten on success. Without it, phantom members announced by a
  // stranger cost a fetch each per repair round (47 430 in 25 s).
  struct FetchBackoff {
    std::int64_t at = 0;
    std::int64_t wait = 0;
  };
  std::map<std::string, FetchBackoff> fetch_backoff;
  static constexpr std::int64_t kFetchBackoffMin = 1000;
  static constexpr std::int64_t kFetchBackoffMax = 30'000;

  // Subscribers. deliver_mu is held while a callback runs, so that
  // unsubscribe can wait for it (recursive: a callback may unsubscribe).
  std::mutex subs_mu;
  std::map<std::uint64_t, std::shared_ptr<EventCallback>> subscribers;
  std::uint64_t next_token = 1;
  std::recursive_mutex deliver_mu;
  AgentDirectory::Token directory_token = 0;

  // run_forever / request_stop.
  std::mutex wait_mu;
  std::condition_variable wait_cv;
  bool stop_requested = false;
  int wake_fd = -1;  // run_forever's pipe while it runs
};

ErrorCode to_error(Refusal why);
Refusal to_refusal(ErrorCode code);

// The agent a target (an agent id or a role) names, by `strategy`, never
// `self`; nullopt when none (peer_client.cpp). Under a policy, a role names
// the first agent of it that `self` (of `self_role`) may reach with
// `action`, if any.
std::optional<PeerInfo> resolve_target(MeshCore& core, std::string_view target, Strategy strategy,
                                       const std::string& self, std::string_view self_role, PolicyAction action);
// The same choice as a PeerRef: what a send needs when nobody asks for the
// target's card (a notify, ask_async).
std::optional<PeerRef> resolve_target_ref(MeshCore& core, std::string_view target, Strategy strategy,
                                          const std::string& self, std::string_view self_role, PolicyAction action);

// Where the transport reaches `peer`: its node, or this one when local.
transport::Address address_of(const PeerInfo& peer);
transport::Address address_of(const PeerRef& peer);

}  // namespace mesh::detail
