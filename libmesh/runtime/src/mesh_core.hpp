// The shared insides of a Mesh: what PeerClient, the agent runners and the
// control thread all reach. Private to mesh_mesh, whose sources each take
// one part of it:
//
//   mesh_core.cpp      construction, teardown, shared helpers
//   agent_runner.cpp   an agent's thread and loop
//   conversions.cpp    transport frames <-> facade messages
//   events.cpp         peer events to subscribers
//   control.cpp        the control thread: tags, registry repair
//   registry_sync.cpp  membership events, fetching peers' registries
//   mesh.cpp           the public Mesh: add/remove agents, start, stop
//   peer_client.cpp, peer_messaging.cpp, scatter_gather.cpp   PeerClient
//   agent.cpp, payload_codec.cpp   as named
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
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
#include <vector>

#include "mesh/agent.hpp"
#include "mesh/mesh.hpp"
#include "mesh/mesh_options.hpp"
#include "mesh/node_config.hpp"
#include "mesh/peer_client.hpp"
#include "mesh/peer_link.hpp"
#include "mesh/node_cert.hpp"
#include "mesh/policy.hpp"
#include "node_keys.hpp"
#include "payload_codec.hpp"
#include "registry_signing.hpp"

namespace boost::asio {
class io_context;
}

namespace mesh::detail {

// Reserved inbox serving this node's agent registry (encode_registry).
inline constexpr char kRegistryInbox[] = "$registry";
// Reserved inbox answering gossip key operations (keys.cpp).
inline constexpr char kKeysInbox[] = "$keys";
// SWIM tags of a mesh node besides kZmqPortTag.
inline constexpr char kMeshTag[] = "mesh";
inline constexpr char kRegistryVersionTag[] = "rv";

// Thrown by CustomAgent's loop after a handler failure was reported
// (on_error called, the request answered): the runner restarts the agent
// without reporting it again.
struct HandlerFailed {};

std::int64_t steady_ms();
// 64 bits from the OS's random source (seeds, not secrets).
std::uint64_t random_u64();
// A decimal number and nothing else; nullopt otherwise.
std::optional<std::uint64_t> parse_u64(const std::string& text);

struct AgentSlot {
  MeshCore* core = nullptr;
  std::unique_ptr<Agent> agent;
  std::unique_ptr<PeerClient> client;
  std::jthread thread;
  std::atomic<std::size_t> restarts{0};
  std::atomic<bool> running{false};

  // The runner: setup, run, teardown, restart with backoff on failure.
  void run_agent(std::stop_token stop);
  // Counts the failure and calls on_error (which must not throw; if it
  // does, that is swallowed).
  void report(const std::exception& error, const IncomingMessage* message);
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
  RequestOutcome to_outcome(transport::Reply&& reply);
  std::optional<Response> to_response(const transport::Envelope& env);

  using EventCallback = std::function<void(const PeerEvent&)>;
  std::uint64_t subscribe(EventCallback cb);
  bool unsubscribe(std::uint64_t token);
  void publish(PeerEvent event);

  // ---- control thread ------------------------------------------------------
  void post(std::function<void()> task);
  void control_loop();
  void deliver(const PeerEvent& event);
  void schedule_tag_update();
  void update_tags();
  void repair();
  std::map<std::string, std::string> tags() const;  // takes mu
  std::map<std::string, std::string> tags_with(std::uint16_t zmq_port) const;

  // ---- membership ----------------------------------------------------------
  void on_member_event(const swim::MemberEvent& event);
  void want_registry(const std::string& node, std::uint64_t version);
  // Fetches `node`'s registry unless one is on the way; then remembers the
  // highest version wanted meanwhile, fetched again only if the answer on
  // the way turns out older.
  void start_fetch(const std::string& node, std::uint64_t version);
  void send_fetch(const std::string& node);
  void fetch_done(const std::string& node);
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
  bool may_send(std::string_view from_agent, std::string_view from_role, const PeerInfo& peer, PolicyAction action);
  bool allows_send(std::string_view from_role, const PeerInfo& peer, PolicyAction action) const;  // silent
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
  void stop_agent(AgentSlot& slot);                          // joins its thread

  // Where the CURVE pair in `config` came from; resolved (and the pair
  // filled in) before `config` is initialised from the same argument.
  const detail::KeySource key_source;
  const NodeConfig config;
  const MeshOptions options;
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
    std::atomic<std::uint64_t> registry_failures{0};
    std::atomic<std::uint64_t> registry_bad_signatures{0};
    std::atomic<std::uint64_t> certificates_refused{0};
    std::atomic<std::uint64_t> policy_denied_received{0};
    std::atomic<std::uint64_t> policy_denied_sent{0};
    std::atomic<std::uint64_t> tag_updates{0};
    std::atomic<std::uint64_t> agent_failures{0};
    std::atomic<std::uint64_t> agent_restarts{0};
  } stats;

  // Guards state, transport, the agent table and the inboxes.
  mutable std::mutex mu;
  State state = State::Created;
  std::shared_ptr<transport::Transport> transport;
  std::shared_ptr<transport::Inbox> registry_inbox;
  std::shared_ptr<transport::Inbox> keys_inbox;
  std::mutex keyring_mu;  // one keyring change (and save) at a time
  std::map<std::string, std::shared_ptr<AgentSlot>, std::less<>> agents;
  std::vector<std::string> agent_order;
  std::map<std::string, std::shared_ptr<transport::Inbox>, std::less<>> inboxes;
  // Mesh::node_client: sends as kNodeClientId; no card, no inbox.
  std::unique_ptr<PeerClient> node_client = std::make_unique<PeerClient>(*this, kNodeClientId, std::string());
  std::mutex stop_mu;  // one stop() at a time

  // SWIM (P2P on). The io_context runs on io_thread.
  std::unique_ptr<boost::asio::io_context> io;
  std::thread io_thread;
  std::unique_ptr<swim::Membership> membership;
  std::unique_ptr<PeerLink> link;
  std::atomic<bool> membership_alive{false};
  // Mesh::with_membership readers hold it shared; stop() takes it alone to
  // clear membership_alive, so no reader still holds the pointer after.
  mutable std::shared_mutex membership_readers;

  // Control thread.
  std::mutex control_mu;
  std::condition_variable control_cv;
  std::deque<std::function<void()>> tasks;
  bool control_stop = false;
  bool tag_update_pending = false;
  std::chrono::steady_clock::time_point tag_due{};
  std::thread control_thread;

  // Registry fetches in flight, and nodes to fetch again when one ends.
  std::mutex fetch_mu;
  std::set<std::string> fetching;
  std::map<std::string, std::uint64_t> fetch_again;  // node -> highest version wanted
  std::set<std::string> refetch;  // fetched again when the fetch on the way ends
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
};

// The agent a target (an agent id or a role) names, by `strategy`, never
// `self`; nullopt when none (peer_client.cpp). Under a policy, a role names
// the first agent of it that `self` (of `self_role`) may reach with
// `action`, if any.
std::optional<PeerInfo> resolve_target(MeshCore& core, std::string_view target, Strategy strategy,
                                       const std::string& self, std::string_view self_role, PolicyAction action);

// Where the transport reaches `peer`: its node, or this one when local.
transport::Address address_of(const PeerInfo& peer);

}  // namespace mesh::detail
