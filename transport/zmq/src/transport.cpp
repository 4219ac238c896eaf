// The public Transport: construction, the node's addresses, the peer
// table (add_peer, remove_peer and its tombstones) and the inboxes. The
// rest of the caller side is listed in transport_impl.hpp.
#include "mesh/transport/transport.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <utility>
#include <vector>

#include "command_queue.hpp"
#include "core.hpp"
#include "peer_shared.hpp"
#include "transport_impl.hpp"

namespace mesh::transport {

using detail::Core;
using detail::PeerShared;
using detail::PeerState;

Transport::Transport(TransportOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}

Transport::~Transport() = default;

const std::string& Transport::node_name() const { return impl_->core->options.node_name; }
std::uint16_t Transport::bound_port() const { return impl_->core->port; }
std::string Transport::endpoint() const { return impl_->core->endpoint; }

void Transport::add_peer(PeerAddress peer) {
  Core& core = *impl_->core;
  // local_only: no peers, so that a send to another node is PeerUnknown.
  if (core.options.local_only || core.stopping.load() || peer.name.empty() || peer.name.front() == '\0' ||
      core.is_local(peer.name)) {
    return;
  }
  std::shared_ptr<PeerShared> shared;
  {
    std::unique_lock lock(core.peers_mu);
    if (core.tombstones.erase(peer.name) > 0) {
      std::erase(core.tombstone_order, peer.name);
    }
    auto& slot = core.peers[peer.name];
    if (!slot) {
      slot = std::make_shared<PeerShared>(peer.name);
      core.register_pool(slot->channels);
      // Decided here, not on the thread, so that a send right after
      // add_peer already sees it.
      if (core.options.curve && !is_valid_curve_key(peer.curve_public_key)) {
        slot->state.store(PeerState::Unreachable);
      }
    }
    shared = slot;
  }
  core.commands.push(detail::CmdAddPeer{std::move(shared), std::move(peer)});
}

void Transport::remove_peer(const std::string& name, ErrorCode reason) {
  Core& core = *impl_->core;
  if (core.options.local_only) return;
  if (reason == ErrorCode::None) reason = ErrorCode::PeerDead;
  std::shared_ptr<PeerShared> shared;
  {
    std::unique_lock lock(core.peers_mu);
    auto it = core.peers.find(name);
    if (it != core.peers.end()) {
      shared = std::move(it->second);
      core.peers.erase(it);
      shared->removed.store(reason);
    }
    if (core.tombstones.insert(name).second) {
      core.tombstone_order.push_back(name);
      if (core.tombstone_order.size() > detail::kTombstones) {
        core.tombstones.erase(core.tombstone_order.front());
        core.tombstone_order.pop_front();
      }
    }
  }
  if (!shared) return;
  shared->wake_watchers();  // direct requests to it fail with `reason` now
  core.commands.push(detail::CmdRemovePeer{std::move(shared), reason});
}

void Transport::readmit(const std::string& node) { impl_->core->commands.push(detail::CmdReadmit{node}); }

std::vector<std::string> Transport::peers() const {
  Core& core = *impl_->core;
  std::shared_lock lock(core.peers_mu);
  std::vector<std::string> out;
  out.reserve(core.peers.size());
  for (const auto& [name, p] : core.peers) out.push_back(name);
  return out;
}

bool Transport::peer_connected(const std::string& name) const {
  auto p = impl_->core->find_peer(name);
  return p && p->state.load(std::memory_order_acquire) == PeerState::Connected;
}

std::shared_ptr<Inbox> Transport::open_inbox(const std::string& name, std::size_t limit, QuickHandler quick) {
  Core& core = *impl_->core;
  std::unique_lock lock(core.inbox_mu);
  if (core.inboxes.size() >= core.inbox_prune_at) {
    std::erase_if(core.inboxes, [](const auto& entry) { return entry.second->closed(); });
    core.inbox_prune_at = std::max<std::size_t>(64, 2 * core.inboxes.size());
  }
  auto& slot = core.inboxes[name];
  if (slot && !slot->closed()) throw TransportError("inbox '" + name + "' is already open");
  slot = std::make_shared<Inbox>(name, limit == 0 ? core.options.inbox_limit : limit, std::move(quick),
                                 core.options.inbox_bytes, core.options.inbox_peer_share);
  if (core.stopping.load()) slot->close();
  return slot;
}

}  // namespace mesh::transport
