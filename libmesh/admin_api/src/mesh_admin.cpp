// MeshAdmin: registers the admin API's routes (mesh/mesh_admin.hpp) and
// answers the probes (/healthz, /livez, /readyz). The routes themselves: message_routes.cpp (agents,
// send, request), membership_routes.cpp (members, self), key_routes.cpp
// (keys), operation_routes.cpp (join, leave, force-leave, reload),
// cluster_routes.cpp (query, broadcast, events), thread_routes.cpp
// (threads), and MetricsEndpoint (metrics).
#include "mesh/mesh_admin.hpp"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/registry.h>
#include <spdlog/spdlog.h>

#include <utility>

#include "mesh_admin_state.hpp"

namespace mesh {
namespace {

HttpResponse health_of(const MeshAdmin::State& state) {
  if (state.leaving) return HttpResponse::json(R"({"status":"leaving"})", 503);
  if (state.mesh.running()) return HttpResponse::json(R"({"status":"ok"})");
  return HttpResponse::json(R"({"status":"stopped"})", 503);
}

HttpResponse readiness_of(const MeshAdmin::State& state) {
  if (state.leaving) {
    return HttpResponse::from_json({{"status", "leaving"}, {"reason", "the node is leaving the cluster"}}, 503);
  }
  const Mesh::Readiness r = state.mesh.readiness();
  if (r.ready) return HttpResponse::json(R"({"status":"ready"})");
  return HttpResponse::from_json({{"status", r.status}, {"reason", r.reason}}, 503);
}

}  // namespace

MeshAdmin::MeshAdmin(Mesh& mesh, AdminServer& admin) : state_(std::make_shared<State>(mesh)) {
  const std::weak_ptr<State> weak = state_;
  auto gone = [] { return HttpResponse::error(503, "the admin API is not served any more"); };
  admin.route("/healthz", [weak, gone](const HttpRequest&) {
    auto state = weak.lock();
    return state ? health_of(*state) : gone();
  });
  // Liveness: the process answers. Readiness: it can take work.
  admin.route("/livez", [](const HttpRequest&) { return HttpResponse::json(R"({"status":"alive"})"); });
  admin.route("/readyz", [weak, gone](const HttpRequest&) {
    auto state = weak.lock();
    return state ? readiness_of(*state) : gone();
  });
  admin.route("/v1/agents", [weak, gone](const HttpRequest&) {
    auto state = weak.lock();
    return state ? admin_api::list_agents(state->mesh) : gone();
  });
  auto post = [weak, gone](bool request) {
    return [weak, gone, request](const HttpRequest& req, AdminServer::Respond respond) {
      auto state = weak.lock();
      if (!state) {
        respond(gone());
        return;
      }
      admin_api::submit_message(state->mesh, state->in_flight, req.body, respond, request);
    };
  };
  admin.route_post_async("/v1/send", post(false));
  admin.route_post_async("/v1/request", post(true));
  admin_api::route_membership(admin, weak);
  admin_api::route_keys(admin, weak);
  admin_api::route_operations(admin, weak);
  admin_api::route_threads(admin, weak);
  admin_api::route_cluster(admin, weak);
  // Held weakly: a callback that comes as the State goes does nothing.
  state_->events_token = mesh.node_client().subscribe(
      [log = std::weak_ptr<admin_api::EventLog>(state_->events)](const PeerEvent& e) {
        if (auto l = log.lock()) l->add(e);
      });

  auto metrics = std::make_shared<Metrics>();
  metrics->watch(mesh);
  auto& refused = prometheus::BuildCounter()
                      .Name("mesh_admin_unauthorized_total")
                      .Help("Admin API requests refused for want of the admin token (401 or 403).")
                      .Register(metrics->registry())
                      .Add({});
  const NodeConfig& config = mesh.config();
  // The guard may outlive this object (the server does): it holds the
  // Metrics that owns the counter.
  admin.guard(admin_api::auth_guard(config.admin_token, config.admin_read_auth, admin.loopback(),
                                    [metrics, &refused] { refused.Increment(); }));
  if (config.admin_token.empty() && !admin.loopback()) {
    spdlog::warn(
        "admin endpoint {}: no admin token, and not on loopback: POST routes are refused (set "
        "JC_ADMIN_TOKEN_FILE or JC_ADMIN_TOKEN)",
        admin.endpoint());
  }
  state_->metrics = std::make_unique<MetricsEndpoint>(admin, std::move(metrics));
}

MeshAdmin::~MeshAdmin() {
  state_->mesh.node_client().unsubscribe(state_->events_token);
  state_->events->close();  // cancels the waits' timers before the pool is joined
  {
    std::lock_guard lock(state_->mu);
    state_->closed = true;
  }
  state_->snapshots.join();
  state_->operations.join();  // a join waits at most its timeout
  state_->metrics.reset();  // waits for a scrape in progress
}

HttpResponse MeshAdmin::agents() const { return admin_api::list_agents(state_->mesh); }

HttpResponse MeshAdmin::health() const { return health_of(*state_); }

HttpResponse MeshAdmin::readiness() const { return readiness_of(*state_); }

void MeshAdmin::submit(const std::string& body, const AdminServer::Respond& respond, bool request) {
  admin_api::submit_message(state_->mesh, state_->in_flight, body, respond, request);
}

void MeshAdmin::set_leaving() { state_->leaving = true; }

void MeshAdmin::on_leave(std::function<void()> leave) {
  std::lock_guard lock(state_->mu);
  state_->on_leave = std::move(leave);
}

}  // namespace mesh
