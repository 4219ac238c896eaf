// The control thread: tag updates, registry repair, deferred work.
#include "mesh_core.hpp"

#include <spdlog/spdlog.h>

#include "mesh/swim/membership.hpp"

namespace mesh::detail {

void MeshCore::post(std::function<void()> task) {
  {
    std::lock_guard lock(control_mu);
    if (control_stop) return;
    tasks.push_back(std::move(task));
  }
  control_cv.notify_one();
}

void MeshCore::schedule_tag_update() {
  {
    std::lock_guard lock(control_mu);
    if (tag_update_pending) return;
    tag_update_pending = true;
    tag_due = std::chrono::steady_clock::now() + options.tag_coalesce;
  }
  control_cv.notify_one();
}

void MeshCore::control_loop() {
  using Clock = std::chrono::steady_clock;
  std::unique_lock lock(control_mu);
  auto next_repair = Clock::now() + options.repair_interval;
  while (true) {
    auto wake = next_repair;
    if (tag_update_pending) wake = std::min(wake, tag_due);
    control_cv.wait_until(lock, wake, [&] { return control_stop || !tasks.empty(); });
    if (control_stop) break;
    std::deque<std::function<void()>> batch;
    batch.swap(tasks);
    const auto now = Clock::now();
    const bool do_tags = tag_update_pending && now >= tag_due;
    if (do_tags) tag_update_pending = false;
    const bool do_repair = now >= next_repair;
    if (do_repair) next_repair = now + options.repair_interval;
    lock.unlock();
    for (auto& task : batch) {
      try {
        task();
      } catch (const std::exception& e) {
        std::fprintf(stderr, "mesh: control task failed: %s\n", e.what());
      } catch (...) {
        std::fprintf(stderr, "mesh: control task failed\n");
      }
    }
    try {
      if (do_tags) update_tags();
      if (do_repair) repair();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "mesh: control step failed: %s\n", e.what());
    }
    lock.lock();
  }
}

std::map<std::string, std::string> MeshCore::tags() const {
  auto tr = get_transport();
  return tags_with(tr ? tr->bound_port() : config.zmq_port);
}

std::map<std::string, std::string> MeshCore::tags_with(std::uint16_t zmq_port) const {
  // Ours win over a user tag of the same name.
  auto t = config.tags;
  // Not `= "1"`: GCC 12 reports a false -Wrestrict for assigning a short
  // literal here (its bug 105329).
  t.insert_or_assign(kMeshTag, std::string("1"));
  t[kZmqPortTag] = std::to_string(zmq_port);
  t[kRegistryVersionTag] = std::to_string(directory.local_version());
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
    auto it = info.tags.find(kRegistryVersionTag);
    if (it == info.tags.end()) continue;
    if (auto rv = parse_u64(it->second)) want_registry(m.name, *rv);
  }
}

}  // namespace mesh::detail
