// MeshAdmin: the admin API of a node, for the Mesh it runs, on an
// AdminServer. One implementation, served by mesh-node and by any program
// that runs a Mesh with its admin endpoint on (mesh/admin_endpoint.hpp
// does the wiring in one line):
//
//   GET  /livez        {"status":"alive"}: the process answers (liveness)
//   GET  /readyz       {"status":"ready"} when the node can take work
//                      (Mesh::readiness: started, joined or alone on
//                      purpose, not leaving); else 503 with "status"
//                      ("starting", "joining", "leaving", "stopped") and
//                      "reason". From set_leaving() on: 503 "leaving"
//   GET  /healthz      {"status":"ok"} while the Mesh runs; 503 with
//                      {"status":"leaving"} once set_leaving() was called,
//                      {"status":"stopped"} before start() and after stop()
//                      (kept for existing probes: /livez and /readyz say
//                      more)
//   GET  /v1/members   the SWIM members this node knows: [member_json, ...]
//   GET  /v1/self      this node as a member, its health score and counters
//                      (self_json); both answer 503 while there is no
//                      membership (P2P off, or the Mesh not running)
//   GET  /v1/agents    every agent this node knows, local and remote:
//                      [peer_to_json(...), ...] in the directory's stable order
//   POST /v1/send      {"target", "message", "context"?, "class"?,
//                      "priority"?, "thread"?}: a notify
//   POST /v1/request   the same and "timeout_ms"?: a request; the answer
//                      carries the response, its thread and its cost.
//                      "thread": {"id"? (continue it), "new"?, "subject"?,
//                      "max_turns"?, "ttl_ms"?, "max_cost"?, "max_depth"?}
//   GET  /v1/threads   the conversations this node knows; ?id=<hex> one
//   POST /v1/keys      {"op", "key"?}: gossip keys across the cluster
//                      (Mesh::keys_async), `serf keys`' verbs
//   POST /v1/join      {"seeds": [...], "timeout_ms"?}: join through them
//                      (Mesh::join), as `serf join`
//   POST /v1/leave     leave gracefully and stop (on_leave), as `serf leave`
//   POST /v1/force-leave  {"node"}: a failed member becomes left everywhere
//                      (Mesh::force_leave), as `serf force-leave`
//   POST /v1/reload    re-read the policy file (Mesh::reload_policy)
//   POST /v1/query     {"role" | "capability", "message", "policy"?,
//                      "timeout_ms"?}: one request to every matching agent,
//                      answers gathered (PeerClient::request_all)
//   POST /v1/broadcast {"message", "role"?, "capability"?}: a notify to
//                      every (matching) agent
//   GET  /v1/events    ?index=N&wait_ms=M: what this node saw happen after
//                      N (nodes joining, failing, leaving; agents added,
//                      removed), as a Consul-style blocking query
//   GET  /metrics      the Prometheus text format (mesh/metrics.hpp)
//
// docs/mesh-node.md ("Admin API") describes each answer.
//
// Sends go out through the node's own client (Mesh::node_client()): the
// receiver sees sender "$node" from this node; no agent is added, so
// /v1/agents and every agent's directory list the user's agents only.
//
// Nothing here blocks the server's thread: membership snapshots (which
// wait on SWIM's strand) and metric scrapes run on threads of their own,
// a request is answered from the transport when its response comes. So no
// agent, however slow, can keep /healthz waiting. Bodies are untrusted:
// JSON depth is bounded (mesh/json_limits.hpp), strings that are not UTF-8
// come out with U+FFFD, requests in flight are bounded, a handler that
// throws answers 500.
//
// Authentication (the node's admin_token, admin_read_auth; see
// docs/mesh-node.md): with a token, every POST route needs
// "Authorization: Bearer <token>" (401 with WWW-Authenticate: Bearer
// otherwise), and with admin_read_auth every GET route too; /healthz,
// /livez and /readyz are always open, for probes. Without a token, POST routes answer 403 unless
// the server listens on loopback only, where anything goes as before (a
// developer's machine). Refusals are counted in
// mesh_admin_unauthorized_total. The token is compared in constant time;
// the traffic is plain HTTP, so beyond one machine keep it on a network
// you trust (or behind TLS).
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include "mesh/admin_server.hpp"
#include "mesh/mesh.hpp"

namespace mesh {

// The longest request timeout the endpoint accepts (timeout_ms).
inline constexpr std::chrono::milliseconds kAdminMaxRequestTimeout{600'000};

class MeshAdmin {
 public:
  // Registers the routes and the guard that checks the token on `admin`
  // (before admin.start(), or on its I/O thread). The Mesh must outlive
  // this object; stop the AdminServer before destroying it (a route that
  // is still called afterwards answers 503). Sends before mesh.start() or
  // after stop() are answered 503 (Shutdown).
  MeshAdmin(Mesh& mesh, AdminServer& admin);
  // Waits for membership snapshots and scrapes in progress.
  ~MeshAdmin();
  MeshAdmin(const MeshAdmin&) = delete;
  MeshAdmin& operator=(const MeshAdmin&) = delete;

  // Requests in flight at once; more are answered 503 at once.
  static constexpr std::size_t kMaxRequestsInFlight = 256;

  // What GET /v1/agents answers (a JSON array).
  HttpResponse agents() const;
  // What GET /healthz and GET /readyz answer.
  HttpResponse health() const;
  HttpResponse readiness() const;

  // Answers POST /v1/send (request=false) or /v1/request for `body`.
  // Never blocks: a notify is queued, a request answers `respond` from the
  // transport when its response, error or timeout comes.
  void submit(const std::string& body, const AdminServer::Respond& respond, bool request);

  // From now on /healthz and /readyz answer 503 "leaving": call it when
  // the node is about to leave, so that load balancers stop sending to it
  // before it is gone. Any thread.
  void set_leaving();
  // What POST /v1/leave does once it answered 202 (and set_leaving()):
  // `leave`, called once on the server's thread (so it must not block:
  // wake the thread that stops the Mesh). Without one it calls
  // Mesh::request_stop(), which makes run_forever() leave and return.
  void on_leave(std::function<void()> leave);

  struct State;  // shared with the routes (src/mesh_admin_state.hpp)

 private:
  std::shared_ptr<State> state_;
};

}  // namespace mesh
