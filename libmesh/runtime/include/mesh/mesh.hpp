// Mesh: hosts a node's agents and connects them to the cluster.
//
//   auto config = mesh::load_node_config({}, mesh::current_environment());
//   mesh::Mesh mesh(config);
//   mesh.add<Coder>();
//   mesh.add(std::make_unique<Reviewer>("careful"));
//   mesh.start();
//   mesh.run_forever();   // until stop() or SIGINT / SIGTERM
//
// With P2P off (NodeConfig::p2p_enabled false) agents of this process talk
// in memory: no sockets, no membership. With P2P on, start() binds the
// ZeroMQ transport at swim_host:zmq_port, runs SWIM membership (memberlist's
// protocol, Serf-compatible) at swim_host:swim_port and joins the seeds.
//
// How agents are advertised (no 512-byte limit): each node serves its agent
// registry (encode_registry) on the reserved transport inbox "$registry".
// Its SWIM tags carry {"mesh": "1", "zmq": <port>, "rv": <registry
// version>} plus NodeConfig::tags. A node that sees a member with a newer
// "rv" than it holds (a join, a tag update, or the periodic repair) fetches
// that registry over the transport and applies it to its AgentDirectory;
// a node with no agent and no registry signer adds "re": "1", and the
// others take its empty registry from the tags without a fetch.
// Local changes bump "rv" once per burst (MeshOptions::tag_coalesce).
// Suspect nodes' agents stay listed as suspect; dead or left nodes' agents
// leave the directory at once. Members without the "mesh" tag (a plain
// Serf agent) are ignored, and nothing but tags and our own ZeroMQ traffic
// is sent, so Serf logs no error because of us.
//
// Threads: the executor's workers (NodeConfig::worker_threads: every
// agent, as a strand, plus registry fetches, tag updates, event delivery,
// repair), the transport's, one for SWIM (P2P on), and one writing the
// audit trail (NodeConfig::audit_dir). No thread per agent, except a
// ThreadAgent's own. All public calls are thread-safe.
//
// Logging: SWIM and the transport log through spdlog's default logger; the
// constructor sets that logger's level from NodeConfig::log_level
// (JC_LOG_LEVEL / --log-level). Where the lines go stays the program's
// choice (spdlog::set_default_logger).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "mesh/agent.hpp"
#include "mesh/agent_directory.hpp"
#include "mesh/mesh_options.hpp"
#include "mesh/node_config.hpp"
#include "mesh/peer_client.hpp"
#include "mesh/swim/config.hpp"

namespace mesh {

namespace swim {
class Membership;
}
namespace detail {
struct MeshCore;
}

class Mesh {
 public:
  // Throws std::invalid_argument on unusable settings (one line).
  explicit Mesh(NodeConfig config, MeshOptions options = {});
  // load_node_config({}, current_environment()); throws ConfigError.
  static std::unique_ptr<Mesh> from_environment(MeshOptions options = {});
  // stop().
  ~Mesh();
  Mesh(const Mesh&) = delete;
  Mesh& operator=(const Mesh&) = delete;

  // Adds an agent, before or after start() (then it starts at once).
  // Throws std::invalid_argument (one line) for a card validate_card
  // refuses, an agent_id already in use here or starting with '$'
  // (reserved), concurrency 0, or an agent already added somewhere;
  // std::logic_error after stop().
  template <class AgentT, class... Args>
  AgentT& add(Args&&... args) {
    static_assert(std::is_base_of_v<Agent, AgentT>, "add<T>: T must derive from mesh::Agent");
    auto agent = std::make_unique<AgentT>(std::forward<Args>(args)...);
    AgentT& ref = *agent;
    add(std::move(agent));
    return ref;
  }
  Agent& add(std::unique_ptr<Agent> agent);
  // Withdraws the agent's card, stops it (its awaits complete at once, its
  // coroutines end, teardown runs; its mailbox is closed), answers requests
  // still queued with TargetUnknown. False when no such agent. Blocks until
  // the agent stopped: throws std::logic_error on an executor thread (an
  // agent's handler) and from a ThreadAgent's own thread.
  bool remove(std::string_view agent_id);

  // Opens the transport (and membership with P2P on) and starts the
  // agents. Throws std::runtime_error (one line) when a port is taken or
  // the address is unusable; std::logic_error when called twice or after
  // stop().
  void start();
  // Blocks (without waking up on a timer) until request_stop() (from
  // another thread or an agent) or SIGINT / SIGTERM; the signal handlers are installed only meanwhile and the
  // previous ones restored. Calls stop() before returning. Starts the mesh
  // first if needed.
  void run_forever();
  // Stops the agents, all at once: every await completes (a request with
  // Shutdown, receive with nullopt), stop_requested() turns true, their
  // coroutines end (one that does not within
  // MeshOptions::agent_stop_timeout is abandoned and logged), teardown
  // runs; a ThreadAgent's stop is requested and its thread joined. Then
  // leaves the cluster gracefully (bounded by leave_timeout), closes the
  // transport and ends the executor's threads. Idempotent; final (a
  // stopped Mesh cannot start again). Throws std::logic_error when called
  // from an agent (it would wait for itself): use request_stop() there.
  void stop();
  // Makes run_forever() return (and stop). Safe from any thread, agents too.
  void request_stop();
  bool running() const;

  // Whether the node can take work (the admin API's /readyz): started,
  // its transport bound, in a cluster, and not stopping. In a cluster
  // means a seed answered (the start-up join or join()), another node
  // joined this one, or no seeds were configured (alone on purpose); with
  // P2P off, started is enough. Any thread.
  struct Readiness {
    bool ready = false;
    std::string status;  // "ready", "starting", "joining", "join_failed", "leaving", "stopped"
    std::string reason;  // why not, in a line; empty when ready
  };
  Readiness readiness() const;

  // ---- inspection ---------------------------------------------------------
  const NodeConfig& config() const;
  const std::string& node_name() const;
  // nullptr when not found.
  Agent* agent(std::string_view agent_id) const;
  std::vector<Agent*> agents() const;
  AgentDirectory& directory();
  MeshStats stats() const;
  // Per role of its agents: how many, their mailboxes' depth and their
  // handlers' durations (RoleStats); sorted by role. Any thread.
  std::vector<RoleStats> role_stats() const;
  // The conversations this node knows (docs/conversations.md), most
  // recently active first, and one of them (nullopt when not known here).
  std::vector<ThreadRecord> threads() const;
  std::optional<ThreadRecord> thread(const ThreadId& id) const;
  // For metrics (mesh/metrics.hpp), read-only: the transport's counters
  // (nullopt before start() and after stop()); and `fn` called with SWIM
  // membership while it runs (false, fn not called, before start(), once
  // stop() began and with P2P off). stop() waits for a call in progress, so
  // fn must be short and must not stop this mesh.
  std::optional<transport::TransportStats> transport_stats() const;
  bool with_membership(const std::function<void(const swim::Membership&)>& fn) const;

  // ---- the node's own client ----------------------------------------------
  // A PeerClient that sends on behalf of the node, not of an agent (an
  // admin endpoint, a CLI, main() itself). It exists from construction on
  // and lives as long as the Mesh. my_id() is kNodeClientId ("$node"),
  // my_role() is empty, its default strategy NodeConfig::discovery_strategy
  // (as the agents'). It is no agent: it has no card and no inbox, so it
  // is in nobody's discover / list_peers / list_roles / registry (on this
  // node or any other), never a target of anyone's resolution, and gets no
  // broadcast copy. It can do what an agent's client does: discovery (every
  // agent of this node and of the cluster is a peer, none is "self"),
  // notify, request, request_detailed, request_async, request_all,
  // broadcast, ask_async / check_inbox, subscribe. Receivers see sender
  // "$node" with sender_node = this node; they may respond() to its
  // requests but cannot notify it. receive() returns nullopt at once.
  // Before start() (and after stop()) discovery works on what the directory
  // holds (this node's agents), while sends fail as for any client of a
  // mesh that is not running: notify false, request Shutdown, ask_async
  // throws MeshError(Shutdown), broadcast 0, request_all every peer missing
  // with Shutdown.
  PeerClient& node_client();
  // ---- gossip keys, changed live across the cluster (`serf keys`) ----------
  // List the keys, install one, make an installed one the primary (the one
  // that encrypts; every installed key decrypts), or remove one that is not
  // the primary. A rotation is install, then use, then remove, each step
  // checked on every member before the next. With a data_dir each node
  // keeps its keys there (keyring), so a restart comes back with them.
  enum class KeyOp : std::uint8_t { List, Install, Use, Remove };
  struct KeyResult {
    std::string node;
    std::string error;              // empty: done
    std::vector<std::string> keys;  // base64, the primary first
    bool ok() const { return error.empty(); }
  };
  // Runs `op` (with `key`, base64, unless List) on this node and every
  // other member that is alive or suspect, and calls `done` once, on some
  // thread of the mesh, with one result per member, this node first. A
  // member that is no mesh node, or does not answer within `timeout`,
  // gets an error. Throws std::invalid_argument for a malformed key, and
  // std::logic_error when P2P is not running.
  void keys_async(KeyOp op, const std::string& key, std::chrono::milliseconds timeout,
                  std::function<void(std::vector<KeyResult>)> done);
  static std::optional<KeyOp> key_op_from(std::string_view name);
  static std::string_view to_string(KeyOp op);

  // ---- operations (the admin API's join and reload) ------------------------
  // Joins the cluster through `seeds`, as `serf join` does: each as
  // JC_SEED_NODES takes it ("host:port", "[v6]:port", a host alone). Waits
  // until one of them answers (nullopt) or `timeout` passes (the reason;
  // the join keeps retrying in the background, as the start-up join does,
  // which this one replaces if it is still retrying). Throws ConfigError
  // (one line) for a malformed seed or none, std::logic_error when P2P is
  // not running. Blocks: not from an agent's thread nor SWIM's.
  std::optional<std::string> join(const std::vector<std::string>& seeds, std::chrono::milliseconds timeout);
  // Serf's force-leave (`serf force-leave NODE`): a member that failed
  // (SWIM declared it dead) becomes left on this node at once and, through
  // Serf's leave intent, on every other (Serf agents included): it is no
  // longer tried for reconnects, and is reaped as a left member. Throws
  // std::logic_error when P2P is not running.
  enum class ForceLeave : std::uint8_t {
    Done,
    AlreadyLeft,
    Unknown,    // no member of that name (or this node itself)
    NotFailed,  // alive or suspect: only a failed member can be forced
  };
  ForceLeave force_leave(const std::string& node);
  // Reads the policy file (policy_file, JC_POLICY) again and enforces it
  // from the next message on. A file that does not parse changes nothing:
  // the answer is its one-line error ("policy: <file>:<line>: ...").
  // Throws std::logic_error when the node was started without a policy
  // (turning a policy on or off takes a restart).
  std::optional<std::string> reload_policy();
  // Replaces the node's own tags (NodeConfig::tags; the mesh's tags stay)
  // and gossips them, as Serf's `tags` command does; a tag named like one
  // of the mesh's is overridden by it, as at start. The answer is a
  // one-line error when they cannot be taken (an empty name, or more than
  // the 512 bytes of member meta with the mesh's), and nothing changes.
  std::optional<std::string> set_tags(const std::map<std::string, std::string>& tags);
  // The defaults agents see, changed while the node runs (mesh-node's
  // SIGHUP): the strategy of clients that did not choose their own, and
  // the timeout of requests that give none (from the next request on).
  // Throw std::invalid_argument on an unknown strategy or a timeout that
  // is not positive. config() keeps the values the node started with.
  void set_discovery_strategy(std::string_view strategy);
  void set_request_timeout(std::chrono::milliseconds timeout);

  // The bound ports (P2P on, after start): useful when configured as 0.
  std::uint16_t swim_port() const;
  std::uint16_t zmq_port() const;

  // ---- test hooks ---------------------------------------------------------
  // Crash-like: SWIM stops without a leave (peers find this node dead) and
  // the transport stays up but silent; agents keep running. stop() still
  // cleans up.
  void kill_membership_for_test();
  transport::Transport* transport_for_test();
  // Before start(): sign the registry this node serves with the key of
  // another CURVE secret than its own (its "skey" tag still names its own).
  void sign_registry_with_for_test(const std::string& curve_secret_z85);
  swim::Membership* membership_for_test();

 private:
  std::unique_ptr<detail::MeshCore> core_;
};

}  // namespace mesh
