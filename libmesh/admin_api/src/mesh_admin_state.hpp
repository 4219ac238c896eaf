// What MeshAdmin's routes share, private to libmesh/admin_api. The routes
// hold it through a weak_ptr, so a route called after MeshAdmin is gone
// answers 503 instead of touching freed memory.
#pragma once

#include <atomic>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "mesh/admin_server.hpp"
#include "mesh/mesh.hpp"
#include "mesh/mesh_admin.hpp"
#include "mesh/metrics.hpp"

namespace mesh {

namespace admin_api {

// What this node saw happen (PeerClient events: mesh nodes joining,
// failing, leaving; agents added, removed, changed), numbered, the last
// kKept of them kept, for GET /v1/events (cluster_routes.cpp): a blocking
// query waits until there is something after its index, or its time is up.
class EventLog : public std::enable_shared_from_this<EventLog> {
 public:
  static constexpr std::size_t kKept = 1024;
  static constexpr std::size_t kMaxWaiters = 64;  // more are answered at once

  void add(const PeerEvent& e);
  // Timers run on `timers`. Answers now, or later from add() or the timer.
  void get(const HttpRequest& req, AdminServer::Respond respond, const boost::asio::any_io_executor& timers);
  // Answers every waiting query 503 and takes no more.
  void close();

 private:
  struct Waiter {
    std::uint64_t after = 0;
    AdminServer::Respond respond;
    std::shared_ptr<boost::asio::steady_timer> timer;
  };
  // An event as kept: its JSON object is made when asked for. A
  // nlohmann::json object of the same fields took ~4 times the memory (a
  // tree node per field), up to ~0.5 MB for kKept events.
  struct Event {
    std::int64_t time_ms = 0;
    std::uint64_t index = 0;
    PeerEventKind kind{};
    bool local = false;
    bool agent = false;  // agent_id and role are set
    std::string node;
    std::string agent_id;
    std::string role;
    nlohmann::json to_json() const;
  };
  nlohmann::json answer_locked(std::uint64_t after) const;

  std::mutex mu_;
  std::deque<Event> events_;
  std::uint64_t next_ = 1;
  std::vector<std::shared_ptr<Waiter>> waiters_;
  bool closed_ = false;
};

}  // namespace admin_api

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
  // GET /v1/events; fed by a subscription of the node's client.
  std::shared_ptr<admin_api::EventLog> events = std::make_shared<admin_api::EventLog>();
  PeerClient::Token events_token = 0;
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
// POST /v1/join, /v1/leave, /v1/force-leave, /v1/reload (operation_routes.cpp).
void route_operations(AdminServer& admin, const std::weak_ptr<MeshAdmin::State>& state);
// POST /v1/query, /v1/broadcast, GET /v1/events (cluster_routes.cpp).
void route_cluster(AdminServer& admin, const std::weak_ptr<MeshAdmin::State>& state);

}  // namespace admin_api
}  // namespace mesh
