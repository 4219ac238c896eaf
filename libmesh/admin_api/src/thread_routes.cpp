// GET /v1/threads: the conversations this node knows (mesh/thread_table.hpp),
// most recently active first; /v1/threads?id=<32 hex digits> one of them.
#include <nlohmann/json.hpp>

#include "mesh_admin_state.hpp"

namespace mesh::admin_api {

nlohmann::json thread_to_json(const ThreadRecord& r) {
  nlohmann::json j{{"id", r.id.to_string()},
                   {"parent", r.parent ? nlohmann::json(r.parent->to_string()) : nlohmann::json()},
                   {"origin_agent", r.origin_agent},
                   {"origin_node", r.origin_node},
                   {"subject", r.subject},
                   {"state", std::string(to_string(r.state))},
                   {"turns", r.turns},
                   {"max_depth_seen", r.max_depth_seen},
                   {"spent", r.spent},
                   {"sent", r.sent},
                   {"received", r.received},
                   {"refused", r.refused},
                   {"authority", r.authority},
                   {"opened_ms", r.opened_ms},
                   {"last_ms", r.last_ms}};
  j["last_refusal"] = r.last_refusal == Refusal::None ? nlohmann::json() : nlohmann::json(to_string(r.last_refusal));
  nlohmann::json limits = nlohmann::json::object();
  if (r.max_turns) limits["max_turns"] = *r.max_turns;
  if (r.expires_ms) limits["expires_ms"] = *r.expires_ms;
  if (r.max_cost) limits["max_cost"] = *r.max_cost;
  if (r.max_depth) limits["max_depth"] = *r.max_depth;
  j["limits"] = std::move(limits);
  return j;
}

namespace {

// The value of `key` in an undecoded query string ("id=...&x=y").
std::string query_value(const std::string& query, const std::string& key) {
  std::size_t pos = 0;
  while (pos <= query.size()) {
    const std::size_t end = std::min(query.find('&', pos), query.size());
    const std::string_view part(query.data() + pos, end - pos);
    if (part.size() > key.size() && part.substr(0, key.size()) == key && part[key.size()] == '=') {
      return std::string(part.substr(key.size() + 1));
    }
    pos = end + 1;
  }
  return {};
}

HttpResponse threads(Mesh& mesh, const HttpRequest& req) {
  if (req.query.empty()) {
    nlohmann::json list = nlohmann::json::array();
    for (const auto& r : mesh.threads()) list.push_back(thread_to_json(r));
    return HttpResponse::from_json(list);
  }
  const std::string id_text = query_value(req.query, "id");
  const auto id = ThreadId::parse(id_text);
  if (!id) return HttpResponse::error(400, "id must be a thread id: 32 hex digits");
  const auto r = mesh.thread(*id);
  if (!r) return error(404, "this node knows no thread " + id_text, ErrorCode::TargetUnknown);
  return HttpResponse::from_json(thread_to_json(*r));
}

}  // namespace

void route_threads(AdminServer& admin, const std::weak_ptr<MeshAdmin::State>& weak) {
  admin.route("/v1/threads", [weak](const HttpRequest& req) {
    auto state = weak.lock();
    if (!state) return HttpResponse::error(503, "the admin API is not served any more");
    return threads(state->mesh, req);
  });
}

}  // namespace mesh::admin_api
