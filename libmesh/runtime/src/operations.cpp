// What an operator does to a running node besides keys (keys.cpp): join
// more seeds, as `serf join` does, and reload the policy file. The admin
// API's POST /v1/join and /v1/reload call these; mesh-node reloads on
// SIGHUP too. Force a failed member out, as `serf force-leave` does. And
// what its probes ask: whether the node is ready.
#include <algorithm>
#include <chrono>
#include <future>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <stdexcept>

#include "mesh/mesh.hpp"
#include "mesh/swim/membership.hpp"
#include "mesh_core.hpp"

namespace mesh {

using detail::MeshCore;

std::optional<std::string> Mesh::join(const std::vector<std::string>& seeds, std::chrono::milliseconds timeout) {
  detail::forbid_blocking("Mesh::join");
  if (seeds.empty()) throw ConfigError("join: no seed given");
  std::vector<std::string> addresses;
  addresses.reserve(seeds.size());
  for (const auto& s : seeds) addresses.push_back(parse_seed_address(s));

  MeshCore& c = *core_;
  // Set once, on SWIM's strand, when a seed answers; the future outlives
  // an answer that comes after we stopped waiting.
  auto answered = std::make_shared<std::promise<void>>();
  auto done = answered->get_future();
  {
    // Only to start the join: stop() must not wait for our timeout.
    std::shared_lock readers(c.membership_readers);
    swim::Membership* m = c.live_membership();
    if (!m) throw std::logic_error("join: membership is not running on this node");
    m->join(std::move(addresses), [answered, &c] {
      c.joined.store(true);
      {
        std::lock_guard lock(c.join_mu);
        c.join_failure.clear();
      }
      answered->set_value();
    });
  }
  // Waits in slices so that a node that stops meanwhile ends the wait (an
  // admin endpoint shutting down waits for this call).
  const auto until = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const auto left = until - std::chrono::steady_clock::now();
    if (left <= std::chrono::steady_clock::duration::zero()) break;
    if (done.wait_for(std::min<std::chrono::steady_clock::duration>(left, std::chrono::milliseconds(50))) ==
        std::future_status::ready) {
      return std::nullopt;
    }
    if (!c.membership_alive.load()) return "the node is stopping";
  }
  return "no seed answered within " + std::to_string(timeout.count()) + " ms (still trying in the background)";
}

Mesh::ForceLeave Mesh::force_leave(const std::string& node) {
  MeshCore& c = *core_;
  std::shared_lock readers(c.membership_readers);
  swim::Membership* m = c.live_membership();
  if (!m) throw std::logic_error("force-leave: membership is not running on this node");
  switch (m->force_leave(node)) {
    case swim::Membership::ForceLeave::Done: return ForceLeave::Done;
    case swim::Membership::ForceLeave::AlreadyLeft: return ForceLeave::AlreadyLeft;
    case swim::Membership::ForceLeave::Unknown: return ForceLeave::Unknown;
    case swim::Membership::ForceLeave::NotFailed: return ForceLeave::NotFailed;
  }
  return ForceLeave::Unknown;
}

std::optional<std::string> Mesh::reload_policy() { return core_->reload_policy(); }

Mesh::Readiness Mesh::readiness() const {
  const MeshCore& c = *core_;
  MeshCore::State state = MeshCore::State::Created;
  {
    std::lock_guard lock(c.mu);
    state = c.state;
  }
  switch (state) {
    case MeshCore::State::Created: return {false, "starting", "the node has not started"};
    case MeshCore::State::Stopped:
      if (c.stop_done.load()) return {false, "stopped", "the node has stopped"};
      return {false, "leaving", c.config.p2p_enabled ? "the node is leaving the cluster" : "the node is stopping"};
    case MeshCore::State::Running: break;
  }
  if (!c.joined.load()) {
    {
      std::lock_guard lock(c.join_mu);
      if (!c.join_failure.empty()) return {false, "join_failed", c.join_failure};
    }
    std::string seeds;
    for (const auto& s : c.config.seeds) seeds += (seeds.empty() ? "" : ", ") + s;
    return {false, "joining", "no seed has answered yet (" + seeds + "); still trying"};
  }
  return {true, "ready", {}};
}

}  // namespace mesh
