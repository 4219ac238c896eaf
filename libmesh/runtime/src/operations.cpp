// What an operator does to a running node besides keys (keys.cpp): join
// more seeds, as `serf join` does, and reload the policy file. The admin
// API's POST /v1/join and /v1/reload call these; mesh-node reloads on
// SIGHUP too. Force a failed member out, as `serf force-leave` does;
// change the node's tags, as `serf tags` does. And what its probes and
// metrics ask: whether the node is ready, how its agents' roles fare.
#include <algorithm>
#include <chrono>
#include <future>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <stdexcept>
#include <utility>

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

std::optional<std::string> Mesh::set_tags(const std::map<std::string, std::string>& tags) {
  MeshCore& c = *core_;
  for (const auto& [key, value] : tags) {
    if (key.empty()) return std::string("tags: an empty tag name");
  }
  // What would be gossiped, the mesh's own tags included, must fit.
  const auto meta = swim::encode_serf_tags(c.with_mesh_tags(tags, c.advertised_zmq_port()));
  if (meta.size() > swim::kMetaMaxSize) {
    return "tags: they would take " + std::to_string(meta.size()) + " bytes in node meta, at most " +
           std::to_string(swim::kMetaMaxSize);
  }
  {
    std::lock_guard lock(c.user_tags_mu);
    c.user_tags = tags;
  }
  c.schedule_tag_update();
  return std::nullopt;
}

void Mesh::set_discovery_strategy(std::string_view strategy) {
  const auto s = parse_strategy(strategy);
  if (!s) {
    throw std::invalid_argument("discovery_strategy: unknown strategy \"" + std::string(strategy) + "\" (" +
                                std::string(kStrategyNames) + ")");
  }
  core_->default_strategy = static_cast<int>(*s);
}

void Mesh::set_request_timeout(std::chrono::milliseconds timeout) {
  if (timeout <= std::chrono::milliseconds(0)) throw std::invalid_argument("request_timeout must be positive");
  core_->request_timeout_ms = timeout.count();
}

std::vector<RoleStats> Mesh::role_stats() const {
  const MeshCore& c = *core_;
  // The agents' roles and mailboxes first, then each mailbox's depth
  // outside the table's lock (a mailbox has its own).
  std::vector<std::pair<const detail::RoleCounters*, std::shared_ptr<transport::Inbox>>> slots;
  {
    std::lock_guard lock(c.mu);
    slots.reserve(c.agents.size());
    for (const auto& [id, slot] : c.agents) slots.emplace_back(slot->role, slot->inbox);
  }
  std::map<std::string_view, RoleStats> by_role;
  {
    std::lock_guard lock(c.roles_mu);
    for (const auto& [name, counters] : c.roles) {
      RoleStats& r = by_role[counters->role];
      r.role = counters->role;
      for (std::size_t b = 0; b < r.handler_buckets.size(); ++b) {
        r.handler_buckets[b] = counters->buckets[b].load(std::memory_order_relaxed);
        r.handled += r.handler_buckets[b];
      }
      r.handler_seconds = static_cast<double>(counters->nanos.load(std::memory_order_relaxed)) / 1e9;
    }
  }
  for (const auto& [role, inbox] : slots) {
    RoleStats& r = by_role[role->role];
    ++r.agents;
    if (inbox) r.mailbox_depth += inbox->size();
  }
  std::vector<RoleStats> out;
  out.reserve(by_role.size());
  for (auto& [name, r] : by_role) out.push_back(std::move(r));
  return out;
}

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
