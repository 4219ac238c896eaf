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
// Sends go out through the node's own client (Mesh::node_client()): the
// receiver sees sender "$node" from this node; no agent is added, so
// /v1/agents and every agent's directory list the user's agents only.
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
#include <optional>
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
  // Registers the routes on `admin`. Both must outlive this object; stop
  // the AdminServer and the Mesh before destroying it (the destructor waits
  // for sends in progress, which the Mesh's stop ends at once). Sends before
  // mesh.start() or after stop() are answered 503 (Shutdown).
  MeshAdmin(Mesh& mesh, AdminServer& admin) : mesh_(mesh) {
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

  // What GET /v1/agents answers (a JSON array).
  HttpResponse agents() const {
    nlohmann::json list = nlohmann::json::array();
    for (const auto& p : mesh_.directory().all()) list.push_back(peer_to_json(p));
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
    PeerClient& peers = mesh_.node_client();
    // Resolved here, as notify/request would (exact id, else a role by the
    // client's default strategy), so that the answer names the agent.
    // ('$' ids are the nodes' own senders: never a target.)
    std::optional<PeerInfo> peer;
    if (name.front() != '$') peer = mesh_.directory().resolve(name, peers.default_strategy());
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
  boost::asio::thread_pool workers_{4};
};

}  // namespace mesh
