// The agent directory: every agent this node knows of, local and remote,
// and the discovery queries of PeerClient (peerclient.md, "Semantics") on
// top of it.
//
// It is pure state: no sockets, no threads, no clock. Whoever owns it feeds
// it: local registrations (put_local/remove_local), registries fetched from
// other nodes (apply_remote), and what SWIM says of those nodes
// (set_node_health, remove_node). Time comes in as milliseconds from the
// caller; randomness comes from an engine seeded by the caller, so a run
// replays from its seed on every standard library.
//
// Every method is thread-safe (one mutex). Queries that choose (Random,
// RoundRobin) change state too, which is why it is not a shared_mutex.
//
// The stable order, used by Strategy::First and as the tie-breaker of the
// others: local agents first, in registration order (replacing a card keeps
// its place); then remote nodes by node name (byte-wise ascending), each
// node's agents in the order its registry lists them (the sender's
// registration order).
#pragma once

#include <array>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "mesh/agent_card.hpp"
#include "mesh/random.hpp"

namespace mesh {

// How discover() orders its matches and resolve() picks one.
enum class Strategy {
  First,       // the stable order (above)
  Random,      // a uniform shuffle (Fisher-Yates) drawn from the seeded engine
  RoundRobin,  // the stable order rotated by a counter per (caller, role, capability),
               // advancing by one per call: successive calls start at successive peers
  LeastRecent  // ascending last use (record_usage); never used first; ties in stable order
};

// Exactly "first", "random", "round_robin", "least_recent". Anything else is
// nullopt: callers report it as an error, never fall back silently.
std::optional<Strategy> parse_strategy(std::string_view text);
// Those names, for error messages.
inline constexpr std::string_view kStrategyNames = "first, random, round_robin, least_recent";
std::string_view to_string(Strategy s);

enum class NodeHealth { Alive, Suspect };
std::string_view to_string(NodeHealth h);  // "alive", "suspect"

struct PeerInfo {
  AgentCard card;                          // status and node come from the card
  bool local = false;                      // on this node
  NodeHealth node_health = NodeHealth::Alive;

  bool operator==(const PeerInfo&) const = default;
};

// card_to_json plus "location": "local"|"remote" and "node_health".
nlohmann::json peer_to_json(const PeerInfo& peer);

// Of a peer, only what sending it a message needs: who it is, where, and
// its role (which the policy asks). A notify goes out once per handler
// call; copying the whole card for it (capabilities, schemas,
// description) cost more than the rest of the lookup.
struct PeerRef {
  std::string agent_id;
  std::string node;
  std::string role;
  bool local = false;  // on this node

  bool operator==(const PeerRef&) const = default;
};
PeerRef ref_of(const PeerInfo& peer);

// Matches agents with this role and/or this capability; an empty field
// matches anything, but at least one must be set. Both exact, case-sensitive.
struct PeerQuery {
  std::string role{};  // {} lets callers write PeerQuery{.role = "x"} under -Wextra
  std::string capability{};
};

// AgentConflict: a node advertises an agent id that another node (or this
// one) holds already; its card is withheld (see apply_remote).
enum class DirectoryEventKind { AgentAdded, AgentRemoved, AgentUpdated, NodeSuspect, NodeAlive, AgentConflict };

struct DirectoryEvent {
  DirectoryEventKind kind;
  std::string node;  // the node the change happened on (AgentConflict: the claimant)
  AgentCard card;    // Agent* events: the new card (AgentRemoved: the last one); empty otherwise
  bool local = false;
  std::string holder;  // AgentConflict: the node that holds the id
};

class AgentDirectory {
 public:
  using Listener = std::function<void(const DirectoryEvent&)>;
  using Token = std::uint64_t;

  // `initial_version` is the local registry version before the first change.
  // A node that restarts under the same name should start above anything it
  // advertised before (e.g. wall-clock milliseconds at start), or peers that
  // still hold its old registry would take the new one for stale.
  AgentDirectory(std::string local_node, std::uint64_t seed, std::uint64_t initial_version = 0);

  AgentDirectory(const AgentDirectory&) = delete;
  AgentDirectory& operator=(const AgentDirectory&) = delete;

  const std::string& local_node() const { return local_node_; }

  // ---- local agents -------------------------------------------------------

  // Registers or replaces (by agent_id) a local agent. The card's node is set
  // to the local node and its version to the new registry version. Returns
  // validate_card's error, or an error when kMaxCards local agents exist;
  // nothing changes then. Putting a card equal to the one held changes
  // nothing (no version bump, no event).
  std::optional<std::string> put_local(AgentCard card);
  // False if no such local agent. Bumps the registry version otherwise.
  bool remove_local(std::string_view agent_id);
  // What this node advertises: local node, version, cards in registration order.
  NodeRegistry local_registry() const;
  std::uint64_t local_version() const;
  // The version and whether it lists no card, read together: a version
  // advertised as empty must not be one an agent was added in.
  struct LocalState {
    std::uint64_t version = 0;
    bool empty = true;
  };
  LocalState local_state() const;

  // ---- remote nodes -------------------------------------------------------

  // Replaces every card of registry.node when its version is newer than the
  // one held (any version when none is held); cards' node fields are forced
  // to registry.node. Returns false, changing nothing, when the registry is
  // not newer, names the local node, fails validate_registry, or names a node
  // removed by remove_node and not announced again by set_node_health since:
  // a fetch that completes after SWIM declared its node dead must not bring
  // the node's agents back.
  //
  // An agent id is held by one node at a time, the first that had it (a
  // local agent always holds its id). A card whose id another node holds is
  // withheld: never returned by a query, reported once as AgentConflict and
  // counted (conflicts()); it is admitted, in node-name order, when the
  // holder drops the id. So a node cannot draw another's traffic by listing
  // its agent ids.
  bool apply_remote(NodeRegistry registry);
  // What SWIM holds of a node (alive or suspect). Peers of a suspect node are
  // still returned, marked so. Announcing a node this way also lets
  // apply_remote accept it again after remove_node. Ignored for the local node.
  void set_node_health(std::string_view node, NodeHealth health);
  // The node is dead or has left: its cards and health vanish, and its
  // registries are refused until set_node_health announces it again. False
  // if nothing was held for it.
  bool remove_node(std::string_view node);
  // The registry version held for a remote node (the local version for the
  // local node); nullopt when none has been applied.
  std::optional<std::uint64_t> known_version(std::string_view node) const;
  // Whether `node` (this node included) holds `agent_id`: lists it and is
  // its holder, the card visible. False for an id it lists but another
  // node holds, and for any node whose registry is not held.
  bool holds(std::string_view node, std::string_view agent_id) const;
  // The role of the card held under `agent_id` (local or remote); nullopt
  // when no node holds it.
  std::optional<std::string> role_of(std::string_view agent_id) const;
  // Remote nodes held (with a registry or a health), by name.
  std::vector<std::string> nodes() const;
  // Cards withheld so far because their id was held elsewhere (a total).
  std::uint64_t conflicts() const;

  // ---- queries ------------------------------------------------------------
  // Each takes the caller's own agent_id as `exclude_agent`: an agent never
  // finds itself. Empty excludes nothing.

  // Every match, ordered by `strategy`. Throws std::invalid_argument when
  // both query fields are empty (a programming error, not untrusted input).
  // Does not record usage: the caller records what it then uses.
  std::vector<PeerInfo> discover(const PeerQuery& query, Strategy strategy,
                                 std::string_view exclude_agent = {});
  // Exact agent_id; local before remote if an id is (wrongly) held twice.
  std::optional<PeerInfo> find(std::string_view agent_id,
                               std::string_view exclude_agent = {}) const;
  // peerclient.md "Target resolution": an exact agent_id wins; otherwise
  // `target` is a role and the first of discover({role}, strategy) is taken
  // (it advances RoundRobin like that discover would).
  std::optional<PeerInfo> resolve(std::string_view target, Strategy strategy,
                                  std::string_view exclude_agent = {});
  // find() and resolve() as a PeerRef: the same answer, the same strategy
  // state advanced, without a copy of the card.
  std::optional<PeerRef> find_ref(std::string_view agent_id, std::string_view exclude_agent = {}) const;
  std::optional<PeerRef> resolve_ref(std::string_view target, Strategy strategy,
                                     std::string_view exclude_agent = {});
  // Everything, in the stable order.
  std::vector<PeerInfo> all(std::string_view exclude_agent = {}) const;
  std::set<std::string> roles(std::string_view exclude_agent = {}) const;
  // Feeds LeastRecent. Returns false (and records nothing) for an agent not
  // in the directory; an agent's usage is forgotten when it leaves.
  // Without a time, the use is later than every use recorded before it
  // (a counter, no clock read: PeerClient records every send this way);
  // with one, the use is at `now_ms` as given, and the uses recorded
  // without a time after it still come later.
  bool record_usage(std::string_view agent_id);
  bool record_usage(std::string_view agent_id, std::int64_t now_ms);

  // ---- change events ------------------------------------------------------
  // Listeners run after the change, outside the directory's lock, so they may
  // call the directory (also to change it). Events are delivered one at a
  // time in the order the changes happened: a change made while another
  // thread delivers is queued and delivered by that thread, so a mutating
  // call may return before its events have been delivered. After
  // unsubscribe returns, a listener gets no further events (one already
  // running on another thread may finish). Listeners should not throw; if
  // one does, the exception reaches the caller whose change was being
  // delivered, and the remaining events go out with the next change.
  //
  // NodeSuspect: a node became suspect. NodeAlive: a suspect node is alive
  // again (a newly announced alive node raises none: its AgentAdded events
  // say enough).
  Token subscribe(Listener listener);
  bool unsubscribe(Token token);

 private:
  struct RemoteNode {
    std::optional<std::uint64_t> version;
    NodeHealth health = NodeHealth::Alive;
    std::vector<AgentCard> cards;     // visible, in its registry's order
    std::vector<AgentCard> withheld;  // ids held by another node
  };

  template <class F>
  void for_each_locked(std::string_view exclude_agent, F&& f) const;
  std::vector<PeerInfo> matches_locked(const PeerQuery& query, std::string_view exclude_agent) const;
  void order_locked(std::vector<PeerInfo>& peers, Strategy strategy, const PeerQuery& query,
                    std::string_view exclude_agent);
  // `node` empty and `local_index` set for a local agent.
  void count_id_locked(const AgentCard& card, const std::string& node, std::size_t local_index = kNotLocal);
  void uncount_id_locked(const std::string& agent_id);
  bool held_locked(std::string_view agent_id) const;
  std::string holder_locked(std::string_view agent_id) const;
  // The visible card of `agent_id` through id_holder_ and local_index_,
  // without a pass over the directory.
  std::optional<PeerInfo> find_locked(std::string_view agent_id, std::string_view exclude_agent) const;
  // The card find_locked would copy, where it lies (null when none), with
  // whether it is local and its node's health.
  const AgentCard* find_card_locked(std::string_view agent_id, std::string_view exclude_agent, bool& local,
                                    NodeHealth& health) const;
  // Admits withheld cards whose ids are free again.
  void readmit_locked();
  void emit_locked(DirectoryEventKind kind, std::string node, AgentCard card, bool local);
  void deliver(std::unique_lock<std::mutex>& lock);

  const std::string local_node_;
  mutable std::mutex mu_;

  std::uint64_t local_version_;
  struct IdHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::vector<AgentCard> local_;  // registration order
  std::map<std::string, RemoteNode, std::less<>> remote_;
  // Nodes removed and not announced since; bounded, oldest forgotten first.
  std::deque<std::string> removed_;
  std::uint64_t conflicts_ = 0;

  // Every agent_id held (local and remote), the node holding it and the
  // role of its card: heterogeneous lookup by string_view, so
  // record_usage, holds() and role_of() do not scan the directory. A local
  // agent's entry also gives its card's index in local_ (finding one of
  // 10 000 local agents per message must not walk them all); one map for
  // both, as an entry is about 120 bytes of each agent. Its last use
  // (record_usage, for LeastRecent) is kept there too: one lookup per send
  // instead of two, and no entry of its own per agent used.
  static constexpr std::size_t kNotLocal = SIZE_MAX;
  static constexpr std::int64_t kNeverUsed = INT64_MIN;
  struct Holder {
    std::string node;  // empty for a local agent (local_node_)
    std::string role;
    std::size_t local_index = kNotLocal;
    std::int64_t last_used = kNeverUsed;
  };
  const std::string& node_of(const Holder& h) const { return h.local_index == kNotLocal ? h.node : local_node_; }
  // The card's index in local_, or kNotLocal.
  std::size_t local_index_locked(std::string_view agent_id) const;
  std::unordered_map<std::string, Holder, IdHash, std::equal_to<>> id_holder_;
  std::unordered_map<std::string, std::uint64_t> round_robin_;
  Rng rng_;  // xoshiro256** + Lemire (mesh/random.hpp): replays from a seed everywhere
  // The last use recorded, by either record_usage: the next one without a
  // time is one after it.
  std::int64_t last_use_ = 0;

  std::vector<std::pair<Token, std::shared_ptr<const Listener>>> listeners_;
  Token next_token_ = 1;
  std::deque<DirectoryEvent> pending_;
  bool delivering_ = false;
};

}  // namespace mesh
