// Following membership: nodes joining and leaving, and fetching the agent
// registries they advertise.
#include "mesh_core.hpp"

#include <spdlog/spdlog.h>

#include "mesh/swim/membership.hpp"

namespace mesh::detail {

void MeshCore::on_member_event(const swim::MemberEvent& event) {
  if (link) link->on_member_event(event);
  const auto& m = event.member;
  if (m.name == node_name) return;
  const auto tags = swim::decode_serf_tags(m.meta);
  const bool is_mesh = tags && tags->contains(kMeshTag) && tags->contains(kZmqPortTag);
  switch (event.kind) {
    case swim::EventKind::Joined:
    case swim::EventKind::Updated:
    case swim::EventKind::Recovered: {
      if (!is_mesh) {
        // A member that dropped its mesh tags (or never had them).
        if (directory.remove_node(m.name)) publish(PeerEvent{PeerEventKind::NodeLeft, m.name, {}, false});
        return;
      }
      const bool known = directory.known_version(m.name).has_value();
      // Announce before fetching: a node removed as dead is accepted again.
      directory.set_node_health(
          m.name, m.state == swim::MemberState::Suspect ? NodeHealth::Suspect : NodeHealth::Alive);
      if (event.kind == swim::EventKind::Joined || !known) {
        publish(PeerEvent{PeerEventKind::NodeJoined, m.name, {}, false});
      }
      const auto it = tags->find(kRegistryVersionTag);
      if (it != tags->end()) {
        if (auto rv = parse_u64(it->second)) want_registry(m.name, *rv);
      }
      break;
    }
    case swim::EventKind::Suspect:
      if (is_mesh) directory.set_node_health(m.name, NodeHealth::Suspect);
      break;
    case swim::EventKind::Dead:
    case swim::EventKind::Left:
      {
        std::lock_guard lock(fetch_mu);
        fetch_backoff.erase(m.name);  // so it holds live members only
      }
      if (directory.remove_node(m.name) || is_mesh) {
        publish(PeerEvent{event.kind == swim::EventKind::Dead ? PeerEventKind::NodeDead : PeerEventKind::NodeLeft,
                          m.name, {}, false});
      }
      break;
    case swim::EventKind::Conflict:
      break;
  }
}

void MeshCore::want_registry(const std::string& node, std::uint64_t version) {
  const auto known = directory.known_version(node);
  if (known && *known >= version) return;
  post([this, node, version] { start_fetch(node, version); });
}

void MeshCore::start_fetch(const std::string& node, std::uint64_t version) {
  {
    std::lock_guard lock(fetch_mu);
    if (fetching.contains(node)) {
      auto& wanted = fetch_again[node];
      wanted = std::max(wanted, version);
      return;
    }
    // After a failure, wait: the repair round asks again later.
    if (auto b = fetch_backoff.find(node); b != fetch_backoff.end() && steady_ms() < b->second.at) return;
    fetching.insert(node);
  }
  auto t = get_transport();
  if (!t) {
    fetch_done(node);
    return;
  }
  stats.registry_fetches.fetch_add(1);
  transport::OutMessage m;
  m.to = {node, kRegistryInbox};
  m.sender_agent = "$mesh";
  t->request_async(std::move(m), options.registry_fetch_timeout, [this, node](transport::Reply reply) {
    // The transport thread (or ours, when it failed at once): decode and
    // apply; the directory refuses a registry of a node declared dead since.
    bool ok = false;
    if (reply.ok()) {
      auto reg = decode_registry(reply.envelope.payload);
      if (reg && reg->node == node) {
        ok = true;
        if (directory.apply_remote(std::move(*reg))) stats.registry_applied.fetch_add(1);
      }
    }
    if (!ok) stats.registry_failures.fetch_add(1);
    {
      std::lock_guard lock(fetch_mu);
      if (ok) {
        fetch_backoff.erase(node);
      } else {
        auto& b = fetch_backoff[node];
        b.wait = std::clamp(b.wait * 2, kFetchBackoffMin, kFetchBackoffMax);
        b.at = steady_ms() + b.wait;
      }
    }
    post([this, node] { fetch_done(node); });
  });
}

void MeshCore::fetch_done(const std::string& node) {
  std::optional<std::uint64_t> wanted;
  {
    std::lock_guard lock(fetch_mu);
    fetching.erase(node);
    if (auto it = fetch_again.find(node); it != fetch_again.end()) {
      wanted = it->second;
      fetch_again.erase(it);
    }
  }
  // The fetch that just ended may already have brought that version.
  if (!wanted) return;
  const auto known = directory.known_version(node);
  if (!known || *known < *wanted) start_fetch(node, *wanted);
}

}  // namespace mesh::detail
