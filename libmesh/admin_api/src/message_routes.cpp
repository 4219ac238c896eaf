// GET /v1/agents, POST /v1/send and POST /v1/request: the agent side of
// the admin API (mesh/mesh_admin.hpp).
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>

#include "mesh/agent.hpp"
#include "mesh/json_limits.hpp"
#include "mesh_admin_state.hpp"

namespace mesh::admin_api {

HttpResponse error(unsigned status, const std::string& text, ErrorCode code) {
  return HttpResponse::from_json(nlohmann::json{{"error", text}, {"code", std::string(to_string(code))}},
                                 status);
}

HttpResponse list_agents(Mesh& mesh) {
  nlohmann::json list = nlohmann::json::array();
  for (const auto& p : mesh.directory().all()) list.push_back(peer_to_json(p));
  return HttpResponse::from_json(list);
}

namespace {

struct Parsed {
  nlohmann::json message;
  SendOptions options{.timeout = kDefaultRequestTimeout};
  std::optional<PeerInfo> peer;
};

std::optional<std::uint64_t> whole(const nlohmann::json& j, std::uint64_t max) {
  if (!j.is_number_unsigned() || j.get<std::uint64_t>() > max) return std::nullopt;
  return j.get<std::uint64_t>();
}

// "class", "priority" and "thread" of a body (docs/mesh-node.md, POST
// /v1/send): the error text, or nullopt when they are acceptable.
std::optional<std::string> parse_conversation(const nlohmann::json& in, SendOptions& o) {
  if (auto c = in.find("class"); c != in.end() && !c->is_null()) {
    if (*c == "advisory") {
      o.message_class = MessageClass::Advisory;
    } else if (*c == "authority") {
      o.message_class = MessageClass::Authority;
    } else {
      return "\"class\" must be \"advisory\" or \"authority\"";
    }
  }
  if (auto p = in.find("priority"); p != in.end() && !p->is_null()) {
    static const char* const names[] = {"low", "normal", "urgent", "critical"};
    std::optional<int> level;
    for (int i = 0; i < 4; ++i) {
      if (*p == names[i] || (p->is_number_unsigned() && p->get<std::uint64_t>() == static_cast<std::uint64_t>(i))) {
        level = i;
      }
    }
    if (!level) return "\"priority\" must be low, normal, urgent, critical or 0-3";
    o.priority = static_cast<Priority>(*level);
  }
  const auto t = in.find("thread");
  if (t == in.end() || t->is_null()) return std::nullopt;
  if (!t->is_object()) return "\"thread\" must be a JSON object";
  if (auto id = t->find("id"); id != t->end() && !id->is_null()) {
    const auto parsed = id->is_string() ? ThreadId::parse(id->get<std::string>()) : std::nullopt;
    if (!parsed) return "\"thread.id\" must be 32 hex digits";
    o.thread = *parsed;
  }
  if (auto n = t->find("new"); n != t->end() && !n->is_null()) {
    if (!n->is_boolean()) return "\"thread.new\" must be true or false";
    o.new_thread = n->get<bool>();
  }
  if (auto s = t->find("subject"); s != t->end() && !s->is_null()) {
    if (!s->is_string() || s->get<std::string>().size() > kMaxSubjectBytes) {
      return "\"thread.subject\" must be a string of at most " + std::to_string(kMaxSubjectBytes) + " bytes";
    }
    o.subject = s->get<std::string>();
  }
  if (auto v = t->find("max_turns"); v != t->end() && !v->is_null()) {
    const auto n = whole(*v, 1'000'000'000);
    if (!n) return "\"thread.max_turns\" must be an integer from 0 to 1000000000";
    o.limits.max_turns = static_cast<std::uint32_t>(*n);
  }
  if (auto v = t->find("ttl_ms"); v != t->end() && !v->is_null()) {
    const auto n = whole(*v, 365ull * 24 * 3600 * 1000);
    if (!n) return "\"thread.ttl_ms\" must be an integer number of milliseconds, at most a year";
    o.limits.ttl = std::chrono::milliseconds(*n);
  }
  if (auto v = t->find("max_cost"); v != t->end() && !v->is_null()) {
    if (!v->is_number() || !(v->get<double>() >= 0) || v->get<double>() > 1e15) {
      return "\"thread.max_cost\" must be a number from 0 to 1e15";
    }
    o.limits.max_cost = v->get<double>();
  }
  if (auto v = t->find("max_depth"); v != t->end() && !v->is_null()) {
    const auto n = whole(*v, 1000);
    if (!n) return "\"thread.max_depth\" must be an integer from 0 to 1000";
    o.limits.max_depth = static_cast<std::uint32_t>(*n);
  }
  return std::nullopt;
}

// Reads and checks a body; the error response if it is not acceptable.
std::optional<HttpResponse> parse(Mesh& mesh, const std::string& body, Parsed& out) {
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
    out.options.context = std::move(*c);
  }
  if (auto bad = parse_conversation(in, out.options)) return HttpResponse::error(400, *bad);
  if (auto t = in.find("timeout_ms"); t != in.end() && !t->is_null()) {
    if (!t->is_number_unsigned() || t->get<std::uint64_t>() == 0 ||
        t->get<std::uint64_t>() > static_cast<std::uint64_t>(kAdminMaxRequestTimeout.count())) {
      return HttpResponse::error(400, "\"timeout_ms\" must be an integer from 1 to " +
                                          std::to_string(kAdminMaxRequestTimeout.count()));
    }
    out.options.timeout = std::chrono::milliseconds(t->get<std::int64_t>());
  }
  const std::string name = target->get<std::string>();
  // Resolved here, as notify/request would (exact id, else a role by the
  // client's default strategy), so that the answer names the agent.
  // ('$' ids are the nodes' own senders: never a target.)
  if (name.front() != '$') out.peer = mesh.directory().resolve(name, mesh.node_client().default_strategy());
  if (!out.peer) return error(404, "no agent matches \"" + name + "\"", ErrorCode::TargetUnknown);
  out.message = std::move(*message);
  return std::nullopt;
}

unsigned status_of(ErrorCode code) {
  switch (code) {
    case ErrorCode::Timeout: return 504;
    case ErrorCode::TargetUnknown:
    case ErrorCode::PeerUnknown: return 404;
    case ErrorCode::PermissionDenied: return 403;
    case ErrorCode::TurnLimit:
    case ErrorCode::Expired:
    case ErrorCode::BudgetExceeded:
    case ErrorCode::Loop: return 409;
    case ErrorCode::Oversized: return 413;
    case ErrorCode::MailboxFull:
    case ErrorCode::Shutdown: return 503;
    default: return 502;
  }
}

std::string failure_text(ErrorCode code, const std::string& id, std::chrono::milliseconds timeout) {
  switch (code) {
    case ErrorCode::Timeout:
      return "no response from " + id + " within " + std::to_string(timeout.count()) + " ms";
    case ErrorCode::PeerDead: return id + "'s node is dead or left";
    case ErrorCode::PeerUnreachable: return id + "'s node cannot be reached";
    case ErrorCode::MailboxFull: return id + "'s mailbox is full";
    case ErrorCode::Rejected: return id + " failed to handle the request";
    case ErrorCode::Oversized: return "the message is too large";
    case ErrorCode::Shutdown: return "the node is stopping";
    case ErrorCode::Unauthenticated: return id + "'s node did not accept this node's identity";
    case ErrorCode::PermissionDenied:
      return id + "'s node does not let this sender reach it (or not with this class of message)";
    case ErrorCode::TurnLimit: return "the thread has had all its turns";
    case ErrorCode::Expired: return "the thread has expired (or is not known to this node)";
    case ErrorCode::BudgetExceeded: return "the thread's cost or depth budget is spent";
    case ErrorCode::Loop: return id + " already waits on this request's path";
    default: return "request to " + id + " failed (" + std::string(to_string(code)) + ")";
  }
}

HttpResponse send(Mesh& mesh, const Parsed& in) {
  const std::string& id = in.peer->card.agent_id;
  if (const ErrorCode refused = mesh.node_client().notify_detailed(id, in.message, in.options);
      refused != ErrorCode::None) {
    return error(status_of(refused), "not accepted for delivery: " + failure_text(refused, id, {}), refused);
  }
  return HttpResponse::from_json(nlohmann::json{{"agent_id", id}, {"node", in.peer->card.node}, {"sent", true}});
}

}  // namespace

void submit_message(Mesh& mesh, const std::shared_ptr<std::atomic<std::size_t>>& in_flight,
                    const std::string& body, const AdminServer::Respond& respond, bool request) {
  try {
    Parsed in;
    if (auto bad = parse(mesh, body, in)) {
      respond(*bad);
      return;
    }
    if (!request) {
      respond(send(mesh, in));
      return;
    }
    if (in_flight->fetch_add(1) >= MeshAdmin::kMaxRequestsInFlight) {
      in_flight->fetch_sub(1);
      respond(error(503, "too many admin requests in flight", ErrorCode::Rejected));
      return;
    }
    const std::string id = in.peer->card.agent_id;
    nlohmann::json head{{"agent_id", id}, {"node", in.peer->card.node}};
    mesh.node_client().request_then(
        id, in.message, in.options,
        [respond, head = std::move(head), id, timeout = *in.options.timeout, in_flight](RequestOutcome r) mutable {
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
            head["thread"] = r.response->thread.to_string();
            head["cost"] = r.response->cost;
            head["class"] = std::string(to_string(r.response->message_class));
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

}  // namespace mesh::admin_api
