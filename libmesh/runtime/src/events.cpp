// Peer events (agents and nodes coming and going) to their subscribers.
#include "mesh_core.hpp"

#include <spdlog/spdlog.h>

namespace mesh::detail {

std::uint64_t MeshCore::subscribe(EventCallback cb) {
  std::lock_guard lock(subs_mu);
  const auto token = next_token++;
  subscribers.emplace(token, std::make_shared<EventCallback>(std::move(cb)));
  return token;
}

bool MeshCore::unsubscribe(std::uint64_t token) {
  // Waits for a delivery in progress on another thread.
  std::lock_guard deliver_lock(deliver_mu);
  std::lock_guard lock(subs_mu);
  return subscribers.erase(token) > 0;
}

void MeshCore::publish(PeerEvent event) {
  post([this, e = std::move(event)] { deliver(e); });
}

void MeshCore::deliver(const PeerEvent& event) {
  std::lock_guard deliver_lock(deliver_mu);
  std::vector<std::uint64_t> tokens;
  {
    std::lock_guard lock(subs_mu);
    for (const auto& [t, cb] : subscribers) tokens.push_back(t);
  }
  for (auto t : tokens) {
    std::shared_ptr<EventCallback> cb;
    {
      std::lock_guard lock(subs_mu);
      auto it = subscribers.find(t);
      if (it == subscribers.end()) continue;
      cb = it->second;
    }
    try {
      (*cb)(event);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "mesh: event subscriber threw: %s\n", e.what());
    } catch (...) {
      std::fprintf(stderr, "mesh: event subscriber threw\n");
    }
  }
}

}  // namespace mesh::detail
