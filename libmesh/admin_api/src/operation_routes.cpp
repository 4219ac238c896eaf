// POST /v1/join, /v1/leave, /v1/force-leave and /v1/reload: what `serf
// join`, `serf leave`, `serf force-leave` and `serf reload` do, for a node
// of the mesh. POST routes, so they need
// the admin token (auth.cpp).
//
//   /v1/join    {"seeds": ["host:port", ...], "timeout_ms"?}: joins through
//               them (Mesh::join). 200 {"joined": true} once one answered;
//               504 when none did in time (the join goes on retrying); 400
//               for a malformed seed.
//   /v1/leave   {} or no body: 202 {"status": "leaving"}, then the node
//               leaves gracefully and stops (MeshAdmin::on_leave says how;
//               mesh-node exits as after SIGTERM). A second call answers
//               the same and does nothing more.
//   /v1/force-leave {"node": name}: as `serf force-leave`, a failed member
//               becomes left everywhere (Mesh::force_leave). 200 {"node",
//               "state": "left"} (and "already": true when it was); 404 no
//               such member; 409 it has not failed.
//   /v1/reload  re-reads the node's files that can change while it runs:
//               the policy file. 200 {"reloaded": ["policy"]} (or [] when
//               the node has none); 400 with the file's one-line error, and
//               the policy in force stays.
//
// Join waits and reload reads a file: both run on MeshAdmin's operations
// thread, never on the server's.
#include <boost/asio/post.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "mesh/json_limits.hpp"
#include "mesh_admin_state.hpp"

namespace mesh::admin_api {
namespace {

constexpr std::chrono::milliseconds kDefaultJoinTimeout{10'000};
constexpr std::chrono::milliseconds kMaxJoinTimeout{120'000};

HttpResponse gone() { return HttpResponse::error(503, "the admin API is not served any more"); }

// Runs `work` on the operations thread and answers what it returns; a
// throw becomes a 500 (an exception leaving a task on a thread pool would
// end the process).
void on_ops_thread(const std::weak_ptr<MeshAdmin::State>& weak, AdminServer::Respond respond,
                   std::function<HttpResponse(Mesh&)> work) {
  auto state = weak.lock();
  std::unique_lock<std::mutex> lock;
  if (state) lock = std::unique_lock(state->mu);
  if (!state || state->closed) {
    respond(gone());
    return;
  }
  boost::asio::post(state->operations, [state, respond = std::move(respond), work = std::move(work)] {
    try {
      respond(work(state->mesh));
    } catch (const std::exception& e) {
      respond(HttpResponse::error(500, e.what()));
    } catch (...) {
      respond(HttpResponse::error(500, "the operation failed"));
    }
  });
}

// The join's seeds and timeout from the body, or the 400 that says why not.
std::variant<std::pair<std::vector<std::string>, std::chrono::milliseconds>, HttpResponse> join_request(
    const std::string& text) {
  const auto bad = [] {
    return HttpResponse::error(400, "the body must be {\"seeds\": [\"host:port\", ...], \"timeout_ms\"?: n}");
  };
  const auto parsed = parse_json_bounded(text);
  if (!parsed) return bad();
  const nlohmann::json& body = *parsed;
  if (!body.is_object() || !body.contains("seeds") || !body["seeds"].is_array() || body["seeds"].empty()) {
    return bad();
  }
  std::vector<std::string> seeds;
  for (const auto& s : body["seeds"]) {
    if (!s.is_string()) return bad();
    seeds.push_back(s.get<std::string>());
  }
  auto timeout = kDefaultJoinTimeout;
  if (const auto t = body.find("timeout_ms"); t != body.end()) {
    if (!t->is_number_unsigned() || t->get<std::uint64_t>() == 0 ||
        t->get<std::uint64_t>() > static_cast<std::uint64_t>(kMaxJoinTimeout.count())) {
      return HttpResponse::error(400, "\"timeout_ms\" must be 1-" + std::to_string(kMaxJoinTimeout.count()));
    }
    timeout = std::chrono::milliseconds(t->get<std::uint64_t>());
  }
  return std::make_pair(std::move(seeds), timeout);
}

}  // namespace

void route_operations(AdminServer& admin, const std::weak_ptr<MeshAdmin::State>& weak) {
  admin.route_post_async("/v1/join", [weak](const HttpRequest& req, AdminServer::Respond respond) {
    auto parsed = join_request(req.body);
    if (auto* r = std::get_if<HttpResponse>(&parsed)) {
      respond(std::move(*r));
      return;
    }
    auto [seeds, timeout] = std::get<0>(std::move(parsed));
    on_ops_thread(weak, std::move(respond), [seeds = std::move(seeds), timeout = timeout](Mesh& mesh) {
      try {
        if (auto why = mesh.join(seeds, timeout)) return HttpResponse::error(504, *why);
      } catch (const ConfigError& e) {
        return HttpResponse::error(400, e.what());
      } catch (const std::logic_error& e) {
        return HttpResponse::error(503, e.what());
      }
      return HttpResponse::from_json({{"joined", true}});
    });
  });

  admin.route_post_async("/v1/leave", [weak](const HttpRequest&, AdminServer::Respond respond) {
    auto state = weak.lock();
    if (!state) {
      respond(gone());
      return;
    }
    respond(HttpResponse::from_json({{"status", "leaving"}}, 202));
    state->leaving = true;
    if (state->leave_asked.exchange(true)) return;
    std::function<void()> leave;
    {
      std::lock_guard lock(state->mu);
      leave = state->on_leave;
    }
    if (leave) {
      leave();
    } else {
      state->mesh.request_stop();
    }
  });

  admin.route_post_async("/v1/force-leave", [weak](const HttpRequest& req, AdminServer::Respond respond) {
    const auto body = parse_json_bounded(req.body);
    if (!body || !body->is_object() || !body->contains("node") || !(*body)["node"].is_string() ||
        (*body)["node"].get<std::string>().empty()) {
      respond(HttpResponse::error(400, "the body must be {\"node\": \"<member name>\"}"));
      return;
    }
    on_ops_thread(weak, std::move(respond), [node = (*body)["node"].get<std::string>()](Mesh& mesh) {
      Mesh::ForceLeave r = Mesh::ForceLeave::Unknown;
      try {
        r = mesh.force_leave(node);
      } catch (const std::logic_error& e) {
        return HttpResponse::error(503, e.what());
      }
      switch (r) {
        case Mesh::ForceLeave::Done: return HttpResponse::from_json({{"node", node}, {"state", "left"}});
        case Mesh::ForceLeave::AlreadyLeft:
          return HttpResponse::from_json({{"node", node}, {"state", "left"}, {"already", true}});
        case Mesh::ForceLeave::Unknown: return HttpResponse::error(404, "no member named \"" + node + "\"");
        case Mesh::ForceLeave::NotFailed: break;
      }
      return HttpResponse::error(409, node + " has not failed (it is alive or only suspect): only a failed member "
                                              "can be forced to leave");
    });
  });

  admin.route_post_async("/v1/reload", [weak](const HttpRequest&, AdminServer::Respond respond) {
    on_ops_thread(weak, std::move(respond), [](Mesh& mesh) {
      nlohmann::json reloaded = nlohmann::json::array();
      if (!mesh.config().policy_file.empty()) {
        if (auto error = mesh.reload_policy()) return HttpResponse::error(400, *error);
        reloaded.push_back("policy");
      }
      return HttpResponse::from_json({{"reloaded", std::move(reloaded)}});
    });
  });
}

}  // namespace mesh::admin_api
