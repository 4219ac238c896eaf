// The control strand: tag updates, registry repair, deferred work.
#include "mesh_core.hpp"

#include <future>
#include <spdlog/spdlog.h>

#include "mesh/swim/membership.hpp"

namespace mesh::detail {

// Control work runs one task at a time on the control strand: the tasks
// posted here, the tag update (coalesced: one per burst of local changes,
// MeshOptions::tag_coalesce after the first) and the repair round every
// MeshOptions::repair_interval. Each waits on a timer, never a poll.
void MeshCore::post(std::function<void()> task) {
  if (control_stop.load() || !control) return;
  boost::asio::post(*control, [this, task = std::move(task)] {
    if (control_stop.load()) return;
    try {
      task();
    } catch (const std::exception& e) {
      spdlog::error("{}: control task failed: {}", node_name, e.what());
    } catch (...) {
      spdlog::error("{}: control task failed", node_name);
    }
  });
}

void MeshCore::start_control() {
  control.emplace(boost::asio::make_strand(pool->get_executor()));
  tag_timer.emplace(*control);
  repair_timer.emplace(*control);
  boost::asio::post(*control, [this] { arm_repair(); });
}

void MeshCore::arm_repair() {
  if (control_stop.load()) return;
  repair_timer->expires_after(options.repair_interval);
  repair_timer->async_wait([this](const boost::system::error_code& ec) {
    if (ec || control_stop.load()) return;
    try {
      repair();
    } catch (const std::exception& e) {
      spdlog::error("{}: registry repair failed: {}", node_name, e.what());
    }
    arm_repair();
  });
}

void MeshCore::schedule_tag_update() {
  post([this] {
    if (tag_update_pending) return;
    tag_update_pending = true;
    tag_timer->expires_after(options.tag_coalesce);
    tag_timer->async_wait([this](const boost::system::error_code& ec) {
      tag_update_pending = false;
      if (ec || control_stop.load()) return;
      try {
        update_tags();
      } catch (const std::exception& e) {
        spdlog::error("{}: tag update failed: {}", node_name, e.what());
      }
    });
  });
}

void MeshCore::stop_control() {
  if (!control || control_stop.exchange(true)) return;
  // On the strand: the timers are cancelled after any task in progress,
  // and stop() goes on only then.
  std::promise<void> done;
  auto ended = done.get_future();
  boost::asio::post(*control, [this, &done] {
    tag_timer->cancel();
    repair_timer->cancel();
    held_fetch_timers.clear();  // a destroyed timer's wait ends as cancelled
    done.set_value();
  });
  ended.wait();
}

std::uint16_t MeshCore::advertised_zmq_port() const {
  auto tr = get_transport();
  return tr ? tr->bound_port() : config.zmq_port;
}

std::map<std::string, std::string> MeshCore::tags() const { return tags_with(advertised_zmq_port()); }

std::map<std::string, std::string> MeshCore::tags_with(std::uint16_t zmq_port) const {
  std::map<std::string, std::string> user;
  {
    std::lock_guard lock(user_tags_mu);
    user = user_tags;
  }
  return with_mesh_tags(std::move(user), zmq_port);
}

std::map<std::string, std::string> MeshCore::with_mesh_tags(std::map<std::string, std::string> t,
                                                             std::uint16_t zmq_port) const {
  // Ours win over a user tag of the same name.
  // Not `= "1"`: GCC 12 reports a false -Wrestrict for assigning a short
  // literal here (its bug 105329).
  t.insert_or_assign(kMeshTag, std::string("1"));
  t[kZmqPortTag] = std::to_string(zmq_port);
  const auto registry = directory.local_state();
  t[kRegistryVersionTag] = std::to_string(registry.version);
  if (registry.empty && signing_key_tag.empty()) {
    t.insert_or_assign(kRegistryEmptyTag, std::string("1"));
  } else {
    t.erase(kRegistryEmptyTag);  // a user tag may not claim it either
  }
  // PeerLink on the other nodes authenticates us by this key.
  if (config.p2p_enabled && !config.curve_public_key.empty()) t[kCurveKeyTag] = config.curve_public_key;
  // ...and checks the registry we serve against this one.
  if (!signing_key_tag.empty()) t[kSigningKeyTag] = signing_key_tag;
  return t;
}

// membership is read here only after membership_alive (set once it is in
// place, cleared before it goes), so no lock is needed for the pointer.
void MeshCore::update_tags() {
  if (!membership_alive.load() || !membership) return;
  if (membership->set_tags(tags())) stats.tag_updates.fetch_add(1);
}

void MeshCore::repair() {
  if (!membership_alive.load() || !membership) return;
  for (const auto& info : membership->members()) {
    const auto& m = info.member;
    if (m.name == node_name) continue;
    if (m.state != swim::MemberState::Alive && m.state != swim::MemberState::Suspect) continue;
    // Repairs are for members known to exist: one that never answered a
    // probe may be a phantom a stranger announced (its first fetch, on
    // the join event, still happens).
    if (!m.verified) continue;
    if (!info.tags.contains(kMeshTag) || !info.tags.contains(kZmqPortTag)) continue;
    follow_registry(m.name, info.tags);
  }
}

}  // namespace mesh::detail
