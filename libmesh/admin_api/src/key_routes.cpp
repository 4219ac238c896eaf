// POST /v1/keys: gossip key operations across the cluster (Mesh::keys_async),
// `serf keys`' verbs. The body: {"op": "list" | "install" | "use" |
// "remove", "key": <base64>}. The answer names every member and how it
// went; for "list", how many members hold each key and use it as primary.
// 200 when every member did it, 502 when one or more did not (the body says
// which), 400 for a malformed body. A POST route, so it needs the admin
// token (it shows the keys).
#include <boost/asio/post.hpp>

#include <map>
#include <string>

#include "mesh/json_limits.hpp"
#include "mesh_admin_state.hpp"

namespace mesh::admin_api {
namespace {

constexpr std::chrono::milliseconds kMemberTimeout{5000};

HttpResponse answer(Mesh::KeyOp op, const std::vector<Mesh::KeyResult>& results) {
  nlohmann::json members = nlohmann::json::array();
  std::size_t failed = 0;
  // key -> [installed on, primary on], over the members that answered
  std::map<std::string, std::pair<std::size_t, std::size_t>> keys;
  for (const auto& r : results) {
    nlohmann::json m = {{"node", r.node}, {"ok", r.ok()}};
    if (!r.ok()) {
      m["error"] = r.error;
      ++failed;
    }
    for (std::size_t i = 0; i < r.keys.size(); ++i) {
      auto& k = keys[r.keys[i]];
      ++k.first;
      if (i == 0) ++k.second;
    }
    members.push_back(std::move(m));
  }
  nlohmann::json body = {{"op", std::string(Mesh::to_string(op))},
                         {"members", results.size()},
                         {"failed", failed},
                         {"results", std::move(members)}};
  if (op == Mesh::KeyOp::List) {
    nlohmann::json list = nlohmann::json::array();
    for (const auto& [key, n] : keys) list.push_back({{"key", key}, {"installed", n.first}, {"primary", n.second}});
    body["keys"] = std::move(list);
  }
  HttpResponse out = HttpResponse::from_json(body);
  if (failed > 0) out.status = 502;
  return out;
}

}  // namespace

void route_keys(AdminServer& admin, const std::weak_ptr<MeshAdmin::State>& weak) {
  admin.route_post_async("/v1/keys", [weak](const HttpRequest& req, AdminServer::Respond respond) {
    auto state = weak.lock();
    if (!state) {
      respond(HttpResponse::error(503, "the admin API is not served any more"));
      return;
    }
    const auto parsed = parse_json_bounded(req.body);
    const nlohmann::json body = parsed ? *parsed : nlohmann::json();
    if (!body.is_object() || !body.contains("op") || !body["op"].is_string()) {
      respond(HttpResponse::error(400, "the body must be {\"op\": \"list\" | \"install\" | \"use\" | \"remove\", "
                                       "\"key\": <base64>}"));
      return;
    }
    const auto op = Mesh::key_op_from(body["op"].get<std::string>());
    if (!op) {
      respond(HttpResponse::error(400, "\"op\" must be list, install, use or remove"));
      return;
    }
    std::string key;
    if (*op != Mesh::KeyOp::List) {
      if (!body.contains("key") || !body["key"].is_string()) {
        respond(HttpResponse::error(400, "\"" + std::string(Mesh::to_string(*op)) + "\" needs \"key\" (base64)"));
        return;
      }
      key = body["key"].get<std::string>();
    }
    std::lock_guard lock(state->mu);
    if (state->closed) {
      respond(HttpResponse::error(503, "the admin API is not served any more"));
      return;
    }
    // Keyring changes post to SWIM's strand and wait: not on the server's thread.
    boost::asio::post(state->snapshots, [state, op = *op, key = std::move(key), respond = std::move(respond)] {
      try {
        state->mesh.keys_async(op, key, kMemberTimeout, [op, respond](std::vector<Mesh::KeyResult> results) {
          respond(answer(op, results));
        });
      } catch (const std::invalid_argument& e) {
        respond(HttpResponse::error(400, e.what()));
      } catch (const std::exception& e) {
        respond(HttpResponse::error(503, e.what()));
      }
    });
  });
}

}  // namespace mesh::admin_api
