#include "core.hpp"

#include <algorithm>

namespace mesh::transport::detail {

Core::Core(TransportOptions opts)
    : options(std::move(opts)), asks(options.ask_limit, options.ask_bytes) {}

std::shared_ptr<Inbox> Core::find_inbox(std::string_view name) const {
  std::shared_lock lock(inbox_mu);
  auto it = inboxes.find(name);
  if (it == inboxes.end() || it->second->closed()) return nullptr;
  return it->second;
}

void Core::register_pool(const std::shared_ptr<ChannelPool>& pool) {
  std::lock_guard lock(pools_mu_);
  if (pools_.size() >= pools_prune_at_) {
    std::erase_if(pools_, [](const auto& w) { return w.expired(); });
    pools_prune_at_ = std::max<std::size_t>(64, 2 * pools_.size());
  }
  pools_.push_back(pool);
}

std::vector<std::shared_ptr<ChannelPool>> Core::live_pools() {
  std::lock_guard lock(pools_mu_);
  std::vector<std::shared_ptr<ChannelPool>> out;
  for (const auto& w : pools_) {
    if (auto p = w.lock()) out.push_back(std::move(p));
  }
  return out;
}

std::shared_ptr<PeerShared> Core::find_peer(std::string_view name) const {
  std::shared_lock lock(peers_mu);
  auto it = peers.find(name);
  return it == peers.end() ? nullptr : it->second;
}

}  // namespace mesh::transport::detail
