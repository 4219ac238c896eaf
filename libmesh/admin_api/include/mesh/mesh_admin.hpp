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
#include <chrono>
#include <memory>
#include <stdexcept>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>

#include "mesh/admin_server.hpp"
#include "mesh/agent.hpp"
#include "mesh/json_limits.hpp"
#include "mesh/mesh.hpp"

namespace mesh {

// The longest request timeout the endpoint accepts (timeout_ms).
inline constexpr std::chrono::milliseconds kAdminMaxRequestTimeout{600'000};

class MeshAdmin {
 public:
  // Registers the routes on `admin`. Both must outlive this object; stop
  // the AdminServer and the Mesh before destroying it. Sends before
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
  MeshAdmin(const MeshAdmin&) = delete;
  MeshAdmin& operator=(const MeshAdmin&) = delete;

  // Requests in flight at once; more are answered 503 at once.
  static constexpr std::size_t kMaxRequestsInFlight = 256;

  // What GET /v1/agents answers (a JSON array).
  HttpResponse agents() const {
    nlohmann::json list = nlohmann::json::array();
    for (const auto& p : mesh_.directory().all()) list.push_back(peer_to_json(p));
    return HttpResponse::from_json(list);
  }

  // Answers POST /v1/send (request=false) or /v1/request for `body`.
  // Never blocks: a notify is queued, a request answers `respond` from the
  // transport when its response, error or timeout comes. So no agent,
  // however slow, can hold the endpoint's thread or keep /healthz waiting.
  void submit(const std::string& body, const AdminServer::Respond& respond, bool request) {
    try {
      Parsed in;
      if (auto bad = parse(body, in)) {
        respond(*bad);
        return;
      }
      if (!request) {
        respond(send(in));
        return;
      }
      if (in_flight_->fetch_add(1) >= kMaxRequestsInFlight) {
        in_flight_->fetch_sub(1);
        respond(error(503, "too many admin requests in flight", ErrorCode::Rejected));
        return;
      }
      const std::string id = in.peer->card.agent_id;
      nlohmann::json head{{"agent_id", id}, {"node", in.peer->card.node}};
      mesh_.node_client().request_then(
          id, in.message, in.timeout, in.context,
          [respond, head = std::move(head), id, timeout = in.timeout,
           in_flight = in_flight_](RequestOutcome r) mutable {
            in_flight->fetch_sub(1);
            try {
              if (!r.ok()) {
                respond(error(status_of(r.error), failure_text(r.error, id, timeout), r.error));
                return;
              }
              head["response"] = r.response->data;
              head["context"] = r.response->context;
              head["correlation_id"] = r.response->correlation_id;
              head["timestamp_ms"] = r.response->timestamp_ms;
              respond(HttpResponse::from_json(head));
            } catch (const std::exception& e) {
              respond(HttpResponse::error(500, e.what()));
            }
          });
    } catch (const std::invalid_argument& e) {  // e.g. a message nested too deep
      respond(HttpResponse::error(400, e.what()));
    } catch (const std::exception& e) {
      respond(HttpResponse::error(500, e.what()));
    }
  }

 private:
  struct Parsed {
    nlohmann::json message;
    Json context = Json::object();
    std::chrono::milliseconds timeout = kDefaultRequestTimeout;
    std::optional<PeerInfo> peer;
  };

  // Reads and checks a body; the error response if it is not acceptable.
  std::optional<HttpResponse> parse(const std::string& body, Parsed& out) const {
    std::string why;
    auto parsed = parse_json_bounded(body, &why);
    if (!parsed) return HttpResponse::error(400, "the body is not acceptable JSON: " + why);
    nlohmann::json& in = *parsed;
    if (!in.is_object()) return HttpResponse::error(400, "the body is not a JSON object");
    const auto target = in.find("target");
    if (target == in.end() || !target->is_string() || target->get<std::string>().empty()) {
      return HttpResponse::error(400, "\"target\" must be a non-empty string");
    }
    const auto message = in.find("message");
    if (message == in.end()) return HttpResponse::error(400, "\"message\" is missing");
    if (auto c = in.find("context"); c != in.end() && !c->is_null()) {
      if (!c->is_object()) return HttpResponse::error(400, "\"context\" must be a JSON object");
      out.context = std::move(*c);
    }
    if (auto t = in.find("timeout_ms"); t != in.end() && !t->is_null()) {
      if (!t->is_number_unsigned() || t->get<std::uint64_t>() == 0 ||
          t->get<std::uint64_t>() > static_cast<std::uint64_t>(kAdminMaxRequestTimeout.count())) {
        return HttpResponse::error(400, "\"timeout_ms\" must be an integer from 1 to " +
                                            std::to_string(kAdminMaxRequestTimeout.count()));
      }
      out.timeout = std::chrono::milliseconds(t->get<std::int64_t>());
    }
    const std::string name = target->get<std::string>();
    // Resolved here, as notify/request would (exact id, else a role by the
    // client's default strategy), so that the answer names the agent.
    // ('$' ids are the nodes' own senders: never a target.)
    if (name.front() != '$') out.peer = mesh_.directory().resolve(name, mesh_.node_client().default_strategy());
    if (!out.peer) return error(404, "no agent matches \"" + name + "\"", ErrorCode::TargetUnknown);
    out.message = std::move(*message);
    return std::nullopt;
  }

  HttpResponse send(const Parsed& in) {
    const std::string& id = in.peer->card.agent_id;
    if (!mesh_.node_client().notify(id, in.message, in.context)) {
      return error(503,
                   "not accepted for delivery (node dead, mailbox full, message too large,"
                   " or the node is stopping)",
                   ErrorCode::Rejected);
    }
    return HttpResponse::from_json(
        nlohmann::json{{"agent_id", id}, {"node", in.peer->card.node}, {"sent", true}});
  }

  static HttpResponse error(unsigned status, const std::string& text, ErrorCode code) {
    return HttpResponse::from_json(nlohmann::json{{"error", text}, {"code", std::string(to_string(code))}},
                                   status);
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


  Mesh& mesh_;
  std::shared_ptr<std::atomic<std::size_t>> in_flight_ = std::make_shared<std::atomic<std::size_t>>(0);
};

}  // namespace mesh
