// MeshAdmin: serves a Mesh's agents on a node's admin endpoint.
//
//   GET  /v1/agents    every agent this node knows, local and remote:
//                      [peer_to_json(...), ...] in the directory's stable order
//   POST /v1/send      {"target", "message", "context"?}: a notify
//   POST /v1/request   {"target", "message", "context"?, "timeout_ms"?}: a
//                      request; the answer carries the response
//
// A program that hosts a Mesh and an AdminServer wires them with one line:
//
//   mesh::MeshAdmin agents_admin(mesh, admin);   // after mesh.start() or before
//
// Sending on the endpoint's behalf: the Mesh has no client that is not an
// agent (/work/notes/facade-requests.md asks for one), so MeshAdmin adds a
// plain agent, "meshctl@<node>" with role "meshctl", that sends for the
// endpoint. These agents (of every node) are left out of /v1/agents; other
// agents can see them (they are in the directory like any agent): notifies
// to them are dropped, requests to them answered with {"error": ...}.
//
// The endpoint is unauthenticated: keep it on loopback (the default).
//
// Header-only on purpose: mesh_admin (the HTTP server) must not depend on
// the Mesh; programs that use this link mesh::mesh, mesh::admin and
// Boost::headers.
#pragma once

#include <atomic>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <stop_token>
#include <string>
#include <utility>

#include "mesh/admin_server.hpp"
#include "mesh/agent.hpp"
#include "mesh/mesh.hpp"

namespace mesh {

// The longest request timeout the endpoint accepts (timeout_ms).
inline constexpr std::chrono::milliseconds kAdminMaxRequestTimeout{600'000};

class MeshAdmin {
 public:
  // Adds the sending agent to `mesh` and registers the routes on `admin`.
  // Throws what Mesh::add throws (std::logic_error after stop()).
  // Both must outlive this object; stop the AdminServer and the Mesh before
  // destroying it (the destructor waits for sends in progress, which the
  // Mesh's stop ends at once).
  MeshAdmin(Mesh& mesh, AdminServer& admin)
      : mesh_(mesh),
        agent_(mesh.add<Sender>(AgentSpec{.role = "meshctl",
                                          .description = "sends for the admin endpoint",
                                          .agent_id = "meshctl@" + mesh.node_name()})) {
    admin.route("/v1/agents", [this](const HttpRequest&) { return agents(); });
    admin.route_post_async("/v1/send", [this](const HttpRequest& req, AdminServer::Respond r) {
      submit(req.body, std::move(r), false);
    });
    admin.route_post_async("/v1/request", [this](const HttpRequest& req, AdminServer::Respond r) {
      submit(req.body, std::move(r), true);
    });
  }
  ~MeshAdmin() { workers_.join(); }
  MeshAdmin(const MeshAdmin&) = delete;
  MeshAdmin& operator=(const MeshAdmin&) = delete;

  // The sending agent's id ("meshctl@<node>").
  const std::string& agent_id() const { return agent_.id(); }

  // An endpoint's sending agent, of this node or another.
  static bool is_admin_agent(const AgentCard& card) {
    return card.role == "meshctl" && card.agent_id == "meshctl@" + card.node;
  }

  // What GET /v1/agents answers (a JSON array).
  HttpResponse agents() const {
    nlohmann::json list = nlohmann::json::array();
    for (const auto& p : mesh_.directory().all()) {
      if (!is_admin_agent(p.card)) list.push_back(peer_to_json(p));
    }
    return HttpResponse::json(list.dump());
  }

  // What POST /v1/send (request=false) or /v1/request answers for `body`.
  // Blocks up to the request's timeout.
  HttpResponse handle(const std::string& body, bool request) {
    nlohmann::json in = nlohmann::json::parse(body, nullptr, false);
    if (in.is_discarded() || !in.is_object()) {
      return HttpResponse::error(400, "the body is not a JSON object");
    }
    const auto target = in.find("target");
    if (target == in.end() || !target->is_string() || target->get<std::string>().empty()) {
      return HttpResponse::error(400, "\"target\" must be a non-empty string");
    }
    const auto message = in.find("message");
    if (message == in.end()) return HttpResponse::error(400, "\"message\" is missing");
    Json ctx = Json::object();
    if (auto c = in.find("context"); c != in.end() && !c->is_null()) {
      if (!c->is_object()) return HttpResponse::error(400, "\"context\" must be a JSON object");
      ctx = *c;
    }
    std::chrono::milliseconds timeout = kDefaultRequestTimeout;
    if (auto t = in.find("timeout_ms"); t != in.end() && !t->is_null()) {
      if (!t->is_number_unsigned() || t->get<std::uint64_t>() == 0 ||
          t->get<std::uint64_t>() > static_cast<std::uint64_t>(kAdminMaxRequestTimeout.count())) {
        return HttpResponse::error(400, "\"timeout_ms\" must be an integer from 1 to " +
                                            std::to_string(kAdminMaxRequestTimeout.count()));
      }
      timeout = std::chrono::milliseconds(t->get<std::int64_t>());
    }
    const std::string name = target->get<std::string>();
    PeerClient& peers = agent_.peers();
    // Resolved here, as notify/request would (exact id, else a role by the
    // client's default strategy), so that the answer names the agent.
    const auto peer = mesh_.directory().resolve(name, peers.default_strategy(), agent_.id());
    if (!peer) return error(404, "no agent matches \"" + name + "\"", ErrorCode::TargetUnknown);
    const std::string& id = peer->card.agent_id;
    nlohmann::json out{{"agent_id", id}, {"node", peer->card.node}};
    if (!request) {
      if (!peers.notify(id, *message, ctx)) {
        return error(503,
                     "not accepted for delivery (node dead, mailbox full, message too large,"
                     " or the node is stopping)",
                     ErrorCode::Rejected);
      }
      out["sent"] = true;
      return HttpResponse::json(out.dump());
    }
    const RequestOutcome r = peers.request_detailed(id, *message, timeout, ctx);
    if (!r.ok()) return error(status_of(r.error), failure_text(r.error, id, timeout), r.error);
    out["response"] = r.response->data;
    out["context"] = r.response->context;
    out["correlation_id"] = r.response->correlation_id;
    out["timestamp_ms"] = r.response->timestamp_ms;
    return HttpResponse::json(out.dump());
  }

 private:
  // Sends for the endpoint; takes no work of its own.
  class Sender : public Agent {
   public:
    explicit Sender(AgentSpec spec) : Agent(std::move(spec)) {}

   protected:
    void run(std::stop_token stop) override {
      while (!stop.stop_requested()) {
        auto m = peers().receive(std::chrono::milliseconds(200));
        if (m && m->is_request()) {
          peers().respond(*m, Json{{"error", "the admin endpoint's agent takes no requests"}});
        }
      }
    }
  };

  static HttpResponse error(unsigned status, const std::string& text, ErrorCode code) {
    return HttpResponse::json(
        nlohmann::json{{"error", text}, {"code", std::string(to_string(code))}}.dump(), status);
  }

  static unsigned status_of(ErrorCode code) {
    switch (code) {
      case ErrorCode::Timeout: return 504;
      case ErrorCode::TargetUnknown:
      case ErrorCode::PeerUnknown: return 404;
      case ErrorCode::Oversized: return 413;
      case ErrorCode::MailboxFull:
      case ErrorCode::Shutdown: return 503;
      default: return 502;
    }
  }

  static std::string failure_text(ErrorCode code, const std::string& id,
                                  std::chrono::milliseconds timeout) {
    switch (code) {
      case ErrorCode::Timeout:
        return "no response from " + id + " within " + std::to_string(timeout.count()) + " ms";
      case ErrorCode::PeerDead: return id + "'s node is dead or left";
      case ErrorCode::PeerUnreachable: return id + "'s node cannot be reached";
      case ErrorCode::MailboxFull: return id + "'s mailbox is full";
      case ErrorCode::Rejected: return id + " failed to handle the request";
      case ErrorCode::Oversized: return "the message is too large";
      case ErrorCode::Shutdown: return "the node is stopping";
      default: return "request to " + id + " failed (" + std::string(to_string(code)) + ")";
    }
  }

  // Sends block (a request up to its timeout): never on the endpoint's
  // I/O thread. Bounded, so that a flood of slow requests cannot make
  // threads without limit; the server's connection limit bounds the queue.
  void submit(std::string body, AdminServer::Respond respond, bool request) {
    boost::asio::post(workers_, [this, body = std::move(body), respond = std::move(respond),
                                 request] {
      try {
        respond(handle(body, request));
      } catch (const std::exception& e) {
        respond(HttpResponse::error(500, e.what()));
      }
    });
  }

  Mesh& mesh_;
  Agent& agent_;
  boost::asio::thread_pool workers_{4};
};

}  // namespace mesh
