// What MeshAdmin's routes share, private to libmesh/admin_api. The routes
// hold it through a weak_ptr, so a route called after MeshAdmin is gone
// answers 503 instead of touching freed memory.
#pragma once

#include <atomic>
#include <boost/asio/thread_pool.hpp>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "mesh/admin_server.hpp"
#include "mesh/mesh.hpp"
#include "mesh/mesh_admin.hpp"
#include "mesh/metrics.hpp"

namespace mesh {

struct MeshAdmin::State {
  explicit State(Mesh& m) : mesh(m) {}

  Mesh& mesh;
  std::atomic<bool> leaving{false};
  // Requests in flight; shared with their completion handlers, which may
  // run after the State is gone.
  std::shared_ptr<std::atomic<std::size_t>> in_flight = std::make_shared<std::atomic<std::size_t>>(0);
  // Membership snapshots post to SWIM's strand and wait: taken here, never
  // on the admin server's thread.
  boost::asio::thread_pool snapshots{1};
  // Join (which waits for a seed) and reload (which reads a file): on a
  // thread of their own, so they hold up neither the server nor snapshots.
  boost::asio::thread_pool operations{1};
  // POST /v1/leave: set once; on_leave (under mu) is what it does, or
  // Mesh::request_stop() when empty.
  std::atomic<bool> leave_asked{false};
  std::function<void()> on_leave;
  // Under mu, so that nothing is posted to `snapshots` once it is joined.
  std::mutex mu;
  bool closed = false;
  std::unique_ptr<MetricsEndpoint> metrics;
};

namespace admin_api {

// {"error": text, "code": code} with `status`: the shape of a failed send.
HttpResponse error(unsigned status, const std::string& text, ErrorCode code);

// GET /v1/agents, POST /v1/send and /v1/request (message_routes.cpp).
HttpResponse list_agents(Mesh& mesh);
void submit_message(Mesh& mesh, const std::shared_ptr<std::atomic<std::size_t>>& in_flight,
                    const std::string& body, const AdminServer::Respond& respond, bool request);

// The admin API's authentication (auth.cpp): with a `token`, POST routes
// need "Authorization: Bearer <token>", and so do GET routes with
// `read_auth`; without one, POST routes are refused unless the server is
// on `loopback`. /healthz is always open. `refused` is called for each
// request turned away (401 or 403).
AdminServer::Guard auth_guard(std::string token, bool read_auth, bool loopback,
                              std::function<void()> refused);

// GET /v1/members and /v1/self (membership_routes.cpp).
void route_membership(AdminServer& admin, const std::weak_ptr<MeshAdmin::State>& state);
// POST /v1/keys (key_routes.cpp).
void route_keys(AdminServer& admin, const std::weak_ptr<MeshAdmin::State>& state);
// GET /v1/threads (thread_routes.cpp), and a thread's JSON form there.
nlohmann::json thread_to_json(const ThreadRecord& r);
void route_threads(AdminServer& admin, const std::weak_ptr<MeshAdmin::State>& state);
// POST /v1/join, /v1/leave, /v1/reload (operation_routes.cpp).
void route_operations(AdminServer& admin, const std::weak_ptr<MeshAdmin::State>& state);

}  // namespace admin_api
}  // namespace mesh
