#include "mesh/agent_directory.hpp"

#include <algorithm>
#include <stdexcept>

namespace mesh {
namespace {

// Enough to cover a fetch in flight for every node of a large cluster that
// died at once; beyond it the oldest tombstone goes (and with it only the
// protection against a fetch that is by then long finished).
constexpr std::size_t kMaxTombstones = 1024;
// Distinct (caller, role, capability) rotations kept. Past it they all
// restart from zero, which only shifts where each rotation begins.
constexpr std::size_t kMaxRoundRobinKeys = 4096;

bool matches(const AgentCard& card, const PeerQuery& q) {
  if (!q.role.empty() && card.role != q.role) return false;
  if (!q.capability.empty() &&
      std::find(card.capabilities.begin(), card.capabilities.end(), q.capability) ==
          card.capabilities.end()) {
    return false;
  }
  return true;
}

std::string round_robin_key(const PeerQuery& q, std::string_view exclude_agent) {
  std::string key;
  key.reserve(exclude_agent.size() + q.role.size() + q.capability.size() + 2);
  key.append(exclude_agent).push_back('\0');
  key.append(q.role).push_back('\0');
  key.append(q.capability);
  return key;
}

}  // namespace

std::optional<Strategy> parse_strategy(std::string_view text) {
  if (text == "first") return Strategy::First;
  if (text == "random") return Strategy::Random;
  if (text == "round_robin") return Strategy::RoundRobin;
  if (text == "least_recent") return Strategy::LeastRecent;
  return std::nullopt;
}

std::string_view to_string(Strategy s) {
  switch (s) {
    case Strategy::First: return "first";
    case Strategy::Random: return "random";
    case Strategy::RoundRobin: return "round_robin";
    case Strategy::LeastRecent: return "least_recent";
  }
  return "unknown";
}

std::string_view to_string(NodeHealth h) {
  switch (h) {
    case NodeHealth::Alive: return "alive";
    case NodeHealth::Suspect: return "suspect";
  }
  return "unknown";
}

nlohmann::json peer_to_json(const PeerInfo& peer) {
  nlohmann::json j = card_to_json(peer.card);
  j["location"] = peer.local ? "local" : "remote";
  j["node_health"] = std::string(to_string(peer.node_health));
  return j;
}

PeerRef ref_of(const PeerInfo& peer) {
  return PeerRef{peer.card.agent_id, peer.card.node, peer.card.role, peer.local};
}

AgentDirectory::AgentDirectory(std::string local_node, std::uint64_t seed,
                               std::uint64_t initial_version)
    : local_node_(std::move(local_node)), local_version_(initial_version), rng_(seed) {}

// ---- local agents ---------------------------------------------------------

std::optional<std::string> AgentDirectory::put_local(AgentCard card) {
  if (auto err = validate_card(card)) return err;
  card.node = local_node_;
  std::unique_lock lock(mu_);
  const std::size_t at = local_index_locked(card.agent_id);
  const auto it = at == kNotLocal ? local_.end() : local_.begin() + static_cast<std::ptrdiff_t>(at);
  if (it != local_.end()) {
    card.version = it->version;
    if (card == *it) return std::nullopt;
    card.version = ++local_version_;
    *it = card;
    id_holder_.find(card.agent_id)->second.role = card.role;  // its role may have changed
    emit_locked(DirectoryEventKind::AgentUpdated, local_node_, std::move(card), true);
  } else {
    if (local_.size() >= kMaxCards) {
      return "more than " + std::to_string(kMaxCards) + " local agents";
    }
    card.version = ++local_version_;
    // A local agent holds its id: a remote node listing it loses it.
    const auto holder = id_holder_.find(card.agent_id);
    const auto node = holder == id_holder_.end() ? remote_.end() : remote_.find(holder->second.node);
    const auto r = node == remote_.end()
                       ? std::vector<AgentCard>::iterator()
                       : std::find_if(node->second.cards.begin(), node->second.cards.end(),
                                      [&](const AgentCard& c) { return c.agent_id == card.agent_id; });
    if (node != remote_.end() && r != node->second.cards.end()) {
      auto& [name, rn] = *node;
      AgentCard shadowed = std::move(*r);
      rn.cards.erase(r);
      uncount_id_locked(shadowed.agent_id);
      ++conflicts_;
      emit_locked(DirectoryEventKind::AgentRemoved, name, shadowed, false);
      emit_locked(DirectoryEventKind::AgentConflict, name, shadowed, false);
      if (!pending_.empty()) pending_.back().holder = local_node_;
      rn.withheld.push_back(std::move(shadowed));
    }
    // Doubling would leave up to half of 10 000 cards' room unused (~150
    // bytes per agent); an eighth at a time costs a few more moves of
    // cards when agents are added, which is cheap next to adding one.
    if (local_.size() == local_.capacity()) local_.reserve(local_.size() + local_.size() / 8 + 16);
    count_id_locked(card, std::string(), local_.size());
    local_.push_back(card);
    emit_locked(DirectoryEventKind::AgentAdded, local_node_, std::move(card), true);
  }
  deliver(lock);
  return std::nullopt;
}

bool AgentDirectory::remove_local(std::string_view agent_id) {
  std::unique_lock lock(mu_);
  const std::size_t index = local_index_locked(agent_id);
  if (index == kNotLocal) return false;
  const auto it = local_.begin() + static_cast<std::ptrdiff_t>(index);
  AgentCard card = std::move(*it);
  local_.erase(it);
  for (std::size_t i = index; i < local_.size(); ++i) id_holder_.find(local_[i].agent_id)->second.local_index = i;
  ++local_version_;
  uncount_id_locked(card.agent_id);
  emit_locked(DirectoryEventKind::AgentRemoved, local_node_, std::move(card), true);
  readmit_locked();
  deliver(lock);
  return true;
}

NodeRegistry AgentDirectory::local_registry() const {
  std::lock_guard lock(mu_);
  return NodeRegistry{local_node_, local_version_, local_};
}

std::uint64_t AgentDirectory::local_version() const {
  std::lock_guard lock(mu_);
  return local_version_;
}

AgentDirectory::LocalState AgentDirectory::local_state() const {
  std::lock_guard lock(mu_);
  return {local_version_, local_.empty()};
}

// ---- remote nodes ---------------------------------------------------------

bool AgentDirectory::apply_remote(NodeRegistry registry) {
  if (registry.node == local_node_) return false;
  if (validate_registry(registry)) return false;
  for (auto& c : registry.cards) c.node = registry.node;

  std::unique_lock lock(mu_);
  if (std::find(removed_.begin(), removed_.end(), registry.node) != removed_.end()) return false;
  auto [it, inserted] = remote_.try_emplace(registry.node);
  RemoteNode& rn = it->second;
  if (rn.version && registry.version <= *rn.version) return false;

  std::vector<AgentCard> old = std::move(rn.cards);
  std::vector<AgentCard> old_withheld = std::move(rn.withheld);
  rn.version = registry.version;
  rn.cards.clear();
  rn.withheld.clear();
  // This node's own ids are free for it while its new cards are placed.
  for (const auto& c : old) uncount_id_locked(c.agent_id);
  for (auto& c : registry.cards) {
    if (!held_locked(c.agent_id)) {
      count_id_locked(c, registry.node);
      rn.cards.push_back(std::move(c));
      continue;
    }
    const bool reported = std::any_of(old_withheld.begin(), old_withheld.end(),
                                      [&](const AgentCard& w) { return w.agent_id == c.agent_id; });
    if (!reported) {
      ++conflicts_;
      emit_locked(DirectoryEventKind::AgentConflict, registry.node, c, false);
      if (!pending_.empty()) pending_.back().holder = holder_locked(c.agent_id);
    }
    rn.withheld.push_back(std::move(c));
  }

  if (!listeners_.empty()) {
    std::unordered_map<std::string_view, const AgentCard*> before;
    before.reserve(old.size());
    for (const auto& c : old) before.emplace(c.agent_id, &c);
    for (const auto& c : rn.cards) {
      const auto b = before.find(c.agent_id);
      if (b == before.end()) {
        emit_locked(DirectoryEventKind::AgentAdded, registry.node, c, false);
      } else {
        if (!(*b->second == c)) emit_locked(DirectoryEventKind::AgentUpdated, registry.node, c, false);
        before.erase(b);
      }
    }
    for (const auto& c : old) {
      if (before.contains(c.agent_id)) {
        emit_locked(DirectoryEventKind::AgentRemoved, registry.node, c, false);
      }
    }
  }
  readmit_locked();
  deliver(lock);
  return true;
}

void AgentDirectory::set_node_health(std::string_view node, NodeHealth health) {
  if (node == local_node_) return;
  std::unique_lock lock(mu_);
  if (const auto r = std::find(removed_.begin(), removed_.end(), node); r != removed_.end()) {
    removed_.erase(r);
  }
  auto [it, inserted] = remote_.try_emplace(std::string(node));
  const NodeHealth before = it->second.health;
  it->second.health = health;
  if (health == NodeHealth::Suspect && (inserted || before == NodeHealth::Alive)) {
    emit_locked(DirectoryEventKind::NodeSuspect, it->first, AgentCard{}, false);
  } else if (health == NodeHealth::Alive && !inserted && before == NodeHealth::Suspect) {
    emit_locked(DirectoryEventKind::NodeAlive, it->first, AgentCard{}, false);
  }
  deliver(lock);
}

bool AgentDirectory::remove_node(std::string_view node) {
  if (node == local_node_) return false;
  std::unique_lock lock(mu_);
  if (std::find(removed_.begin(), removed_.end(), node) == removed_.end()) {
    if (removed_.size() >= kMaxTombstones) removed_.pop_front();
    removed_.emplace_back(node);
  }
  const auto it = remote_.find(node);
  if (it == remote_.end()) return false;
  std::vector<AgentCard> cards = std::move(it->second.cards);
  remote_.erase(it);
  for (auto& c : cards) {
    uncount_id_locked(c.agent_id);
    emit_locked(DirectoryEventKind::AgentRemoved, std::string(node), std::move(c), false);
  }
  readmit_locked();
  deliver(lock);
  return true;
}

std::optional<std::uint64_t> AgentDirectory::known_version(std::string_view node) const {
  std::lock_guard lock(mu_);
  if (node == local_node_) return local_version_;
  const auto it = remote_.find(node);
  if (it == remote_.end()) return std::nullopt;
  return it->second.version;
}

std::uint64_t AgentDirectory::conflicts() const {
  std::lock_guard lock(mu_);
  return conflicts_;
}

bool AgentDirectory::held_locked(std::string_view agent_id) const { return id_holder_.contains(agent_id); }

std::string AgentDirectory::holder_locked(std::string_view agent_id) const {
  const auto it = id_holder_.find(agent_id);
  return it == id_holder_.end() ? std::string() : node_of(it->second);
}

std::size_t AgentDirectory::local_index_locked(std::string_view agent_id) const {
  const auto it = id_holder_.find(agent_id);
  return it == id_holder_.end() ? kNotLocal : it->second.local_index;
}

bool AgentDirectory::holds(std::string_view node, std::string_view agent_id) const {
  std::lock_guard lock(mu_);
  const auto it = id_holder_.find(agent_id);
  return it != id_holder_.end() && node_of(it->second) == node;
}

std::optional<std::string> AgentDirectory::role_of(std::string_view agent_id) const {
  std::lock_guard lock(mu_);
  const auto it = id_holder_.find(agent_id);
  if (it == id_holder_.end()) return std::nullopt;
  return it->second.role;
}

// The first claimant by node name gets a freed id; its card goes after the
// node's visible ones.
void AgentDirectory::readmit_locked() {
  for (auto& [name, rn] : remote_) {
    for (auto w = rn.withheld.begin(); w != rn.withheld.end();) {
      if (held_locked(w->agent_id)) {
        ++w;
        continue;
      }
      count_id_locked(*w, name);
      emit_locked(DirectoryEventKind::AgentAdded, name, *w, false);
      rn.cards.push_back(std::move(*w));
      w = rn.withheld.erase(w);
    }
  }
}

std::vector<std::string> AgentDirectory::nodes() const {
  std::lock_guard lock(mu_);
  std::vector<std::string> out;
  out.reserve(remote_.size());
  for (const auto& [name, rn] : remote_) out.push_back(name);
  return out;
}

// ---- queries --------------------------------------------------------------

template <class F>
void AgentDirectory::for_each_locked(std::string_view exclude_agent, F&& f) const {
  const bool excluding = !exclude_agent.empty();
  for (const auto& c : local_) {
    if (excluding && c.agent_id == exclude_agent) continue;
    f(c, true, NodeHealth::Alive);
  }
  for (const auto& [name, rn] : remote_) {
    for (const auto& c : rn.cards) {
      if (excluding && c.agent_id == exclude_agent) continue;
      f(c, false, rn.health);
    }
  }
}

std::vector<PeerInfo> AgentDirectory::matches_locked(const PeerQuery& query,
                                                     std::string_view exclude_agent) const {
  std::vector<PeerInfo> out;
  for_each_locked(exclude_agent, [&](const AgentCard& c, bool local, NodeHealth h) {
    if (matches(c, query)) out.push_back(PeerInfo{c, local, h});
  });
  return out;
}

void AgentDirectory::order_locked(std::vector<PeerInfo>& peers, Strategy strategy,
                                  const PeerQuery& query, std::string_view exclude_agent) {
  switch (strategy) {
    case Strategy::First:
      return;
    case Strategy::Random:
      rng_.shuffle(peers);
      return;
    case Strategy::RoundRobin: {
      // The counter advances even when nothing matches, which keeps the
      // rule simple: one step per call.
      std::string key = round_robin_key(query, exclude_agent);
      auto it = round_robin_.find(key);
      if (it == round_robin_.end()) {
        if (round_robin_.size() >= kMaxRoundRobinKeys) round_robin_.clear();
        it = round_robin_.emplace(std::move(key), 0).first;
      }
      const std::uint64_t step = it->second++;
      if (!peers.empty()) {
        const auto shift = static_cast<std::ptrdiff_t>(step % peers.size());
        std::rotate(peers.begin(), peers.begin() + shift, peers.end());
      }
      return;
    }
    case Strategy::LeastRecent: {
      // Never used sorts before any use: a new agent gets work first.
      auto last_use = [&](const PeerInfo& p) -> std::pair<bool, std::int64_t> {
        const auto h = id_holder_.find(p.card.agent_id);
        if (h == id_holder_.end() || h->second.last_used == kNeverUsed) return {false, 0};
        return {true, h->second.last_used};
      };
      std::stable_sort(peers.begin(), peers.end(), [&](const PeerInfo& a, const PeerInfo& b) {
        return last_use(a) < last_use(b);
      });
      return;
    }
  }
}

std::vector<PeerInfo> AgentDirectory::discover(const PeerQuery& query, Strategy strategy,
                                               std::string_view exclude_agent) {
  if (query.role.empty() && query.capability.empty()) {
    throw std::invalid_argument("discover: give a role, a capability, or both");
  }
  std::lock_guard lock(mu_);
  auto peers = matches_locked(query, exclude_agent);
  order_locked(peers, strategy, query, exclude_agent);
  return peers;
}

const AgentCard* AgentDirectory::find_card_locked(std::string_view agent_id, std::string_view exclude_agent,
                                                  bool& local, NodeHealth& health) const {
  if (agent_id.empty() || agent_id == exclude_agent) return nullptr;
  const auto holder = id_holder_.find(agent_id);
  if (holder == id_holder_.end()) return nullptr;
  if (holder->second.local_index != kNotLocal) {
    local = true;
    health = NodeHealth::Alive;
    return &local_[holder->second.local_index];
  }
  const auto node = remote_.find(holder->second.node);
  if (node == remote_.end()) return nullptr;
  for (const auto& c : node->second.cards) {
    if (c.agent_id == agent_id) {
      local = false;
      health = node->second.health;
      return &c;
    }
  }
  return nullptr;
}

std::optional<PeerInfo> AgentDirectory::find_locked(std::string_view agent_id,
                                                    std::string_view exclude_agent) const {
  bool local = false;
  NodeHealth health = NodeHealth::Alive;
  const AgentCard* c = find_card_locked(agent_id, exclude_agent, local, health);
  if (!c) return std::nullopt;
  return PeerInfo{*c, local, health};
}

std::optional<PeerInfo> AgentDirectory::find(std::string_view agent_id,
                                             std::string_view exclude_agent) const {
  std::lock_guard lock(mu_);
  return find_locked(agent_id, exclude_agent);
}

std::optional<PeerInfo> AgentDirectory::resolve(std::string_view target, Strategy strategy,
                                                std::string_view exclude_agent) {
  // Self is never a target, even when the caller's id is also some role.
  if (target.empty() || target == exclude_agent) return std::nullopt;
  std::lock_guard lock(mu_);
  if (auto exact = find_locked(target, exclude_agent)) return exact;
  const PeerQuery query{std::string(target), {}};
  auto peers = matches_locked(query, exclude_agent);
  order_locked(peers, strategy, query, exclude_agent);
  if (peers.empty()) return std::nullopt;
  return std::move(peers.front());
}

std::optional<PeerRef> AgentDirectory::find_ref(std::string_view agent_id, std::string_view exclude_agent) const {
  std::lock_guard lock(mu_);
  bool local = false;
  NodeHealth health = NodeHealth::Alive;
  const AgentCard* c = find_card_locked(agent_id, exclude_agent, local, health);
  if (!c) return std::nullopt;
  return PeerRef{c->agent_id, c->node, c->role, local};
}

// resolve(), step for step (a role still goes through the strategy's
// ordering, which advances its state the same way).
std::optional<PeerRef> AgentDirectory::resolve_ref(std::string_view target, Strategy strategy,
                                                   std::string_view exclude_agent) {
  if (target.empty() || target == exclude_agent) return std::nullopt;
  std::lock_guard lock(mu_);
  bool local = false;
  NodeHealth health = NodeHealth::Alive;
  if (const AgentCard* c = find_card_locked(target, exclude_agent, local, health)) {
    return PeerRef{c->agent_id, c->node, c->role, local};
  }
  const PeerQuery query{std::string(target), {}};
  auto peers = matches_locked(query, exclude_agent);
  order_locked(peers, strategy, query, exclude_agent);
  if (peers.empty()) return std::nullopt;
  return ref_of(peers.front());
}

std::vector<PeerInfo> AgentDirectory::all(std::string_view exclude_agent) const {
  std::lock_guard lock(mu_);
  std::vector<PeerInfo> out;
  for_each_locked(exclude_agent, [&](const AgentCard& c, bool local, NodeHealth h) {
    out.push_back(PeerInfo{c, local, h});
  });
  return out;
}

std::set<std::string> AgentDirectory::roles(std::string_view exclude_agent) const {
  std::lock_guard lock(mu_);
  std::set<std::string> out;
  for_each_locked(exclude_agent,
                  [&](const AgentCard& c, bool, NodeHealth) { out.insert(c.role); });
  return out;
}

bool AgentDirectory::record_usage(std::string_view agent_id) {
  std::lock_guard lock(mu_);
  const auto it = id_holder_.find(agent_id);
  if (it == id_holder_.end()) return false;
  if (last_use_ < INT64_MAX) ++last_use_;
  it->second.last_used = last_use_;
  return true;
}

bool AgentDirectory::record_usage(std::string_view agent_id, std::int64_t now_ms) {
  std::lock_guard lock(mu_);
  const auto it = id_holder_.find(agent_id);
  if (it == id_holder_.end()) return false;
  it->second.last_used = now_ms;
  last_use_ = std::max(last_use_, now_ms);
  return true;
}

// An entry that is there already (a remote holder's, for a local agent
// that takes its id) keeps its last use.
void AgentDirectory::count_id_locked(const AgentCard& card, const std::string& node, std::size_t local_index) {
  Holder& h = id_holder_.try_emplace(card.agent_id).first->second;
  h.node = node;
  h.role = card.role;
  h.local_index = local_index;
}

// An agent's usage is forgotten when its id is given up.
void AgentDirectory::uncount_id_locked(const std::string& agent_id) {
  const auto it = id_holder_.find(agent_id);
  if (it == id_holder_.end()) return;
  id_holder_.erase(it);
}

// ---- events ---------------------------------------------------------------

AgentDirectory::Token AgentDirectory::subscribe(Listener listener) {
  std::lock_guard lock(mu_);
  const Token token = next_token_++;
  listeners_.emplace_back(token, std::make_shared<const Listener>(std::move(listener)));
  return token;
}

bool AgentDirectory::unsubscribe(Token token) {
  std::lock_guard lock(mu_);
  const auto it = std::find_if(listeners_.begin(), listeners_.end(),
                               [&](const auto& l) { return l.first == token; });
  if (it == listeners_.end()) return false;
  listeners_.erase(it);
  return true;
}

void AgentDirectory::emit_locked(DirectoryEventKind kind, std::string node, AgentCard card,
                                 bool local) {
  if (listeners_.empty()) return;
  pending_.push_back(DirectoryEvent{kind, std::move(node), std::move(card), local, {}});
}

// One thread at a time drains the queue, so listeners see events in the
// order of the changes and never run concurrently with each other; a change
// made by a listener (same thread) or by another thread meanwhile is queued
// and picked up by the loop below rather than delivered out of order.
void AgentDirectory::deliver(std::unique_lock<std::mutex>& lock) {
  if (delivering_ || pending_.empty()) return;
  delivering_ = true;
  struct Reset {
    AgentDirectory& self;
    std::unique_lock<std::mutex>& lock;
    ~Reset() {
      if (!lock.owns_lock()) lock.lock();
      self.delivering_ = false;
    }
  } reset{*this, lock};
  while (!pending_.empty()) {
    DirectoryEvent event = std::move(pending_.front());
    pending_.pop_front();
    std::vector<std::shared_ptr<const Listener>> targets;
    targets.reserve(listeners_.size());
    for (const auto& l : listeners_) targets.push_back(l.second);
    lock.unlock();
    for (const auto& l : targets) (*l)(event);
    lock.lock();
  }
}

}  // namespace mesh
