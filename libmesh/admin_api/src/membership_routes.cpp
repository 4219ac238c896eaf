// GET /v1/members and GET /v1/self: the membership side of the admin API
// (mesh/mesh_admin.hpp), read from the Mesh's SWIM membership.
//
// Membership's snapshot calls post to its strand and wait, so they are
// made on MeshAdmin's snapshot thread, never on the admin server's thread;
// Mesh::with_membership keeps the membership from being shut down
// meanwhile.
#include <boost/asio/post.hpp>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>

#include "mesh/member_json.hpp"
#include "mesh/swim/membership.hpp"
#include "mesh_admin_state.hpp"

namespace mesh::admin_api {
namespace {

using Snapshot = std::function<HttpResponse(const swim::Membership&)>;

HttpResponse no_membership(const Mesh& mesh) {
  if (!mesh.config().p2p_enabled) {
    return HttpResponse::error(503, "no membership: this node runs with P2P off (P2P_ENABLED=false)");
  }
  return HttpResponse::error(503, "no membership: the node is not running");
}

// Answers `respond` with `make` applied to the membership, on the snapshot
// thread; a throw becomes a 500 (an exception leaving a handler on a
// thread pool would end the process).
void take(const std::weak_ptr<MeshAdmin::State>& weak, AdminServer::Respond respond, Snapshot make) {
  auto state = weak.lock();
  std::unique_lock<std::mutex> lock;
  if (state) lock = std::unique_lock(state->mu);
  if (!state || state->closed) {
    respond(HttpResponse::error(503, "the admin API is not served any more"));
    return;
  }
  // The task holds the State: MeshAdmin's destructor joins the thread
  // after `closed` is set, so nothing is left queued in it.
  boost::asio::post(state->snapshots, [state, respond = std::move(respond), make = std::move(make)] {
    try {
      std::optional<HttpResponse> out;
      const bool live = state->mesh.with_membership([&](const swim::Membership& m) { out = make(m); });
      respond(live && out ? std::move(*out) : no_membership(state->mesh));
    } catch (const std::exception& e) {
      respond(HttpResponse::error(500, e.what()));
    } catch (...) {
      respond(HttpResponse::error(500, "membership snapshot failed"));
    }
  });
}

}  // namespace

void route_membership(AdminServer& admin, const std::weak_ptr<MeshAdmin::State>& state) {
  admin.route_async("/v1/members", [state](const HttpRequest&, AdminServer::Respond respond) {
    take(state, std::move(respond), [](const swim::Membership& m) {
      nlohmann::json list = nlohmann::json::array();
      for (const auto& member : m.members()) list.push_back(member_json(member));
      return HttpResponse::from_json(list);
    });
  });
  admin.route_async("/v1/self", [state](const HttpRequest&, AdminServer::Respond respond) {
    take(state, std::move(respond), [](const swim::Membership& m) {
      return HttpResponse::from_json(self_json(m.self(), m.health_score(), m.node_stats(), m.driver_stats()));
    });
  });
}

}  // namespace mesh::admin_api
