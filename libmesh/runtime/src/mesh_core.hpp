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
#include <vector>

#include "mesh/agent.hpp"
#include "mesh/mesh_options.hpp"
#include "mesh/node_config.hpp"
#include "mesh/peer_client.hpp"
#include "mesh/peer_link.hpp"
#include "node_keys.hpp"
#include "payload_codec.hpp"

namespace boost::asio {
class io_context;
}

namespace mesh::detail {

// Reserved inbox serving this node's agent registry (encode_registry).
inline constexpr char kRegistryInbox[] = "$registry";
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
  void fetch_done(const std::string& node);

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

  struct Stats {
    std::atomic<std::uint64_t> messages_malformed{0};
    std::atomic<std::uint64_t> registry_fetches{0};
    std::atomic<std::uint64_t> registry_applied{0};
    std::atomic<std::uint64_t> registry_failures{0};
    std::atomic<std::uint64_t> tag_updates{0};
    std::atomic<std::uint64_t> agent_failures{0};
    std::atomic<std::uint64_t> agent_restarts{0};
  } stats;

  // Guards state, transport, the agent table and the inboxes.
  mutable std::mutex mu;
  State state = State::Created;
  std::shared_ptr<transport::Transport> transport;
  std::shared_ptr<transport::Inbox> registry_inbox;
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
// `self`; nullopt when none (peer_client.cpp).
std::optional<PeerInfo> resolve_target(MeshCore& core, std::string_view target, Strategy strategy,
                                       const std::string& self);

// Where the transport reaches `peer`: its node, or this one when local.
transport::Address address_of(const PeerInfo& peer);

}  // namespace mesh::detail
