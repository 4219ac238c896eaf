// What a Mesh is built with besides its NodeConfig, and the counters it
// reports. Apart from mesh.hpp so that the runtime's insides can use them
// without including the facade they implement.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "mesh/swim/config.hpp"
#include "mesh/thread_table.hpp"

namespace mesh {

// Code-level knobs of the Mesh. Everything an operator sets (mailbox
// limit, default strategy and request timeout, message size, ipc_dir,
// leave timeout, CURVE keys) is in NodeConfig, the one source of truth.
struct MeshOptions {
  // How often every alive member's "rv" tag is compared with the registry
  // held for it (repairs a missed update or a failed fetch).
  std::chrono::milliseconds repair_interval{2000};
  // Local card changes within this window cause one tag update.
  std::chrono::milliseconds tag_coalesce{75};
  // Timeout of one registry fetch.
  std::chrono::milliseconds registry_fetch_timeout{3000};
  // A connection to another node is opened by the first message to it and
  // closed after this long without traffic (TransportOptions::
  // idle_disconnect). 0 keeps a connection to every member from its join.
  std::chrono::milliseconds connection_idle_timeout{60000};
  // Restart backoff of a failed agent: first, then doubling up to max.
  std::chrono::milliseconds restart_backoff{100};
  std::chrono::milliseconds restart_backoff_max{5000};
  // How long stop() (or remove()) waits for an agent's coroutines to end
  // once their awaits were cancelled; one still running then is abandoned
  // (logged), so that a coroutine ignoring the stop cannot hang the node.
  std::chrono::milliseconds agent_stop_timeout{2000};
  // Seed of discovery's random strategies; 0: drawn from std::random_device.
  std::uint64_t seed = 0;
  // Replaces the SWIM config derived from NodeConfig::profile (tests);
  // its name and advertise address are set by the Mesh.
  std::optional<swim::Config> swim_config;
  // Governed conversations (docs/conversations.md). false: this node
  // neither stamps threads on what it sends nor checks them on what it
  // receives; for measuring what they cost (bench/conversation_cost), not
  // for production, where a node's limits are its defence.
  bool conversations = true;
  // Called once, on SWIM's thread, when the start-up join gives up
  // (NodeConfig::retry_join_max attempts failed), with the reason in a
  // line; the node then reports "join_failed" (Mesh::readiness) and stays
  // up alone. mesh-node exits 1 here, as Consul's agent does. Must be
  // quick and must not stop the Mesh itself (request_stop may be called).
  std::function<void(const std::string& why)> on_join_failed;
};

// Counters (a snapshot).
struct MeshStats {
  std::uint64_t messages_malformed = 0;   // undecodable payload or context, dropped
  // Registry fetches: started, and how those that ended did (applied +
  // unchanged + failed = ended; one in flight is in none of them).
  std::uint64_t registry_fetches = 0;     // fetches started
  std::uint64_t registry_applied = 0;     // fetched registries that were newer
  std::uint64_t registry_unchanged = 0;   // fetched, not newer than the one held
  std::uint64_t registry_failures = 0;    // fetch failed or returned garbage
  std::uint64_t registry_from_tags = 0;   // empty registries taken from SWIM tags, not fetched
  std::uint64_t registry_bad_signatures = 0;  // ...of which: not signed by the node's "skey"
  std::uint64_t agent_conflicts = 0;      // remote cards withheld: their agent id was held elsewhere
  std::uint64_t certificates_refused = 0;  // other nodes' certificates that failed (claims ignored)
  std::uint64_t policy_denied_received = 0;  // messages from other nodes the policy refused
  std::uint64_t policy_denied_sent = 0;      // sends this node's agents were refused before sending
  std::uint64_t tag_updates = 0;          // SWIM tag updates for a new "rv"
  std::uint64_t agent_failures = 0;       // exceptions from setup/run/handlers
  std::uint64_t agent_restarts = 0;
  // Authority messages refused for their class: sent while handling an
  // advisory one, or advisory ones to an authority_only agent. (The
  // policy's refusals count in policy_denied_*.)
  std::uint64_t authority_refused = 0;
  ThreadTableStats threads;               // conversations: opened, ended, refused
  // The audit trail (all 0 without one): records and bytes written,
  // records lost (a failed write, or one too large or too deep).
  std::uint64_t audit_records = 0;
  std::uint64_t audit_bytes = 0;
  std::uint64_t audit_dropped = 0;
};

// Upper bounds, in seconds, of the buckets of RoleStats' handler durations.
inline constexpr std::array<double, 15> kHandlerSecondsBounds = {
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0, 30.0};

// The agents of one role on this node (Mesh::role_stats(), a snapshot).
// Past kMaxRoleSeries roles, the rest share the role "_other", so that a
// program with a role per agent cannot grow the metrics without bound.
struct RoleStats {
  static constexpr std::size_t kMaxRoleSeries = 256;
  std::string role;
  std::size_t agents = 0;
  std::uint64_t mailbox_depth = 0;  // messages waiting in the mailboxes of its agents
  // How long the handlers of its CustomAgents took (on_request,
  // on_notify), from start to end, their awaits included. handler_buckets[i]
  // counts those over bound i-1 and at most bound i of kHandlerSecondsBounds
  // (not cumulative); the last counts those over the last bound.
  std::array<std::uint64_t, kHandlerSecondsBounds.size() + 1> handler_buckets{};
  std::uint64_t handled = 0;
  double handler_seconds = 0;  // the sum of their durations
};

}  // namespace mesh
