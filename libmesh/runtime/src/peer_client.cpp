// PeerClient (mesh/peer_client.hpp) is split by what an agent does with it:
//   peer_client.cpp     discovery, strategies, delivery failures, events
//   peer_messaging.cpp  notify, request, respond, broadcast, receive, ask_async
//   scatter_gather.cpp  request_all
#include "mesh/peer_client.hpp"

#include <algorithm>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "mesh_core.hpp"

#include <spdlog/spdlog.h>

namespace mesh {

const Json& empty_context() {
  static const Json empty = Json::object();
  return empty;
}

using transport::Address;

std::string_view to_string(PeerEventKind kind) {
  switch (kind) {
    case PeerEventKind::NodeJoined: return "node_joined";
    case PeerEventKind::NodeLeft: return "node_left";
    case PeerEventKind::NodeDead: return "node_dead";
    case PeerEventKind::NodeSuspect: return "node_suspect";
    case PeerEventKind::NodeAlive: return "node_alive";
    case PeerEventKind::AgentAdded: return "agent_added";
    case PeerEventKind::AgentRemoved: return "agent_removed";
    case PeerEventKind::AgentUpdated: return "agent_updated";
    case PeerEventKind::AgentConflict: return "agent_conflict";
  }
  return "unknown";
}

namespace {

Strategy strategy_or_throw(std::string_view name) {
  auto s = parse_strategy(name);
  if (!s) {
    throw std::invalid_argument("unknown strategy \"" + std::string(name) + "\" (" + std::string(kStrategyNames) +
                                ")");
  }
  return *s;
}

}  // namespace

namespace detail {

namespace {

// Under a policy, a role resolves to the first agent, by the strategy,
// that this one may reach with `action` (the caller's check then passes),
// or to the first at all (which the check refuses). One rule for both
// forms of the lookup below.
std::optional<PeerInfo> first_reachable(MeshCore& core, std::string_view role, Strategy strategy,
                                        const std::string& self, std::string_view self_role, PolicyAction action) {
  auto peers = core.directory.discover(PeerQuery{std::string(role), {}}, strategy, self);
  for (auto& p : peers) {
    if (core.allows_send(self_role, p, action)) return std::move(p);
  }
  if (peers.empty()) return std::nullopt;
  return std::move(peers.front());
}

// Ids starting with '$' are the node's own senders and inboxes ("$node",
// "$registry"): never a target, even if some node advertised such a card.
bool never_a_target(std::string_view target) { return target.empty() || target.front() == '$'; }

}  // namespace

std::optional<PeerInfo> resolve_target(MeshCore& core, std::string_view target, Strategy strategy,
                                       const std::string& self, std::string_view self_role, PolicyAction action) {
  if (never_a_target(target)) return std::nullopt;
  if (!core.policy_on) return core.directory.resolve(target, strategy, self);
  // An exact id resolves as usual: the caller's check refuses it if it must.
  if (auto exact = core.directory.find(target, self)) return exact;
  return first_reachable(core, target, strategy, self, self_role, action);
}

std::optional<PeerRef> resolve_target_ref(MeshCore& core, std::string_view target, Strategy strategy,
                                          const std::string& self, std::string_view self_role, PolicyAction action) {
  if (never_a_target(target)) return std::nullopt;
  if (!core.policy_on) return core.directory.resolve_ref(target, strategy, self);
  if (auto exact = core.directory.find_ref(target, self)) return exact;
  auto peer = first_reachable(core, target, strategy, self, self_role, action);
  if (!peer) return std::nullopt;
  return ref_of(*peer);
}

Address address_of(const PeerInfo& peer) {
  return Address{peer.local ? std::string() : peer.card.node, peer.card.agent_id};
}

Address address_of(const PeerRef& peer) { return Address{peer.local ? std::string() : peer.node, peer.agent_id}; }

}  // namespace detail

// ---- delivery failures ------------------------------------------------------
//
// The transport reports a refused notify on its own thread with the
// sending agent's id. The client is found in the node's agent table under
// MeshCore::agents_mu, never MeshCore::mu, which the Mesh holds while it
// stops the transport.

// A client's failure callback. Its lock is held while the callback runs:
// replacing the callback waits for that call.
struct PeerClient::DeliverySink {
  std::mutex mu;
  DeliveryFailureCallback callback;
};

namespace {
// Guards every client's delivery_ pointer and tokens_ (both rarely set).
std::mutex g_client_mu;
}  // namespace

PeerClient::PeerClient(detail::MeshCore& core, const std::string& agent_id, const std::string& role)
    : core_(core), agent_id_(agent_id), role_(role) {}

PeerClient::~PeerClient() {
  std::vector<std::pair<Token, std::shared_ptr<std::atomic<bool>>>> tokens;
  {
    std::lock_guard lock(g_client_mu);
    tokens.swap(tokens_);
  }
  for (auto& [t, alive] : tokens) {
    alive->store(false);
    core_.unsubscribe(t);
  }
}

detail::AwaitScope& PeerClient::await_scope() const { return slot_ ? slot_->scope : core_.node_scope; }

void PeerClient::on_delivery_failure(DeliveryFailureCallback callback) {
  std::shared_ptr<DeliverySink> sink;
  {
    std::lock_guard lock(g_client_mu);
    if (!delivery_) {
      if (!callback) return;
      delivery_ = std::make_shared<DeliverySink>();
    }
    sink = delivery_;
  }
  std::lock_guard lock(sink->mu);
  sink->callback = std::move(callback);
}

DeliveryStats PeerClient::delivery_stats() const {
  DeliveryStats s;
  s.notifies_accepted = accepted_.load(std::memory_order_relaxed);
  s.notifies_refused = refused_.load(std::memory_order_relaxed);
  s.notifies_failed = failed_.load(std::memory_order_relaxed);
  return s;
}

void PeerClient::count_notify(bool accepted, std::uint64_t n) {
  (accepted ? accepted_ : refused_).fetch_add(n, std::memory_order_relaxed);
}

// Holding the sender's slot keeps its client alive while the report runs.
bool PeerClient::report_delivery_failure(const detail::MeshCore& core, const transport::UndeliverableNotify& r) {
  std::shared_ptr<const detail::AgentSlot> slot;
  PeerClient* client = nullptr;
  if (r.sender_agent == core.node_client->agent_id_) {
    client = core.node_client.get();
  } else {
    std::shared_lock lock(core.agents_mu);
    const auto it = core.agents.find(r.sender_agent);
    if (it == core.agents.end() || !it->second->client) return false;
    slot = it->second;
    client = slot->client.get();
  }
  client->failed_.fetch_add(1, std::memory_order_relaxed);
  std::shared_ptr<DeliverySink> sink;
  {
    std::lock_guard lock(g_client_mu);
    sink = client->delivery_;
  }
  if (!sink) return true;
  std::lock_guard lock(sink->mu);
  if (sink->callback) {
    DeliveryFailure f{r.id.to_string(), std::string(r.target), std::string(r.node), r.reason};
    try {
      sink->callback(f);
    } catch (...) {
      // A user callback must not take the transport thread down.
    }
  }
  return true;
}

const std::string& PeerClient::node_name() const { return core_.node_name; }

void PeerClient::set_default_strategy(Strategy strategy) { strategy_.store(static_cast<int>(strategy)); }

void PeerClient::set_default_strategy(std::string_view strategy) {
  set_default_strategy(strategy_or_throw(strategy));
}

Strategy PeerClient::default_strategy() const {
  const int own = strategy_.load();
  return static_cast<Strategy>(own >= 0 ? own : core_.default_strategy.load());
}

// ---------------------------------------------------------------- discovery

std::optional<PeerInfo> PeerClient::get_peer(std::string_view role) {
  if (role.empty()) return std::nullopt;
  auto found = core_.directory.discover(PeerQuery{std::string(role), {}}, default_strategy(), agent_id_);
  core_.keep_reachable(found, role_);
  if (found.empty()) return std::nullopt;
  return std::move(found.front());
}

std::vector<PeerInfo> PeerClient::discover(const PeerQuery& query, Strategy strategy) {
  if (query.role.empty() && query.capability.empty()) {
    throw std::invalid_argument("discover: give a role, a capability or both");
  }
  auto found = core_.directory.discover(query, strategy, agent_id_);
  core_.keep_reachable(found, role_);  // a policy shows only what may be reached
  return found;
}

std::vector<PeerInfo> PeerClient::discover(const PeerQuery& query, std::string_view strategy) {
  return discover(query, strategy_or_throw(strategy));
}

std::optional<PeerInfo> PeerClient::discover_one(const PeerQuery& query, Strategy strategy) {
  auto found = discover(query, strategy);
  if (found.empty()) return std::nullopt;
  return std::move(found.front());
}

std::optional<PeerInfo> PeerClient::discover_one(const PeerQuery& query, std::string_view strategy) {
  return discover_one(query, strategy_or_throw(strategy));
}

bool PeerClient::record_peer_usage(std::string_view agent_id) {
  return core_.directory.record_usage(agent_id);
}

std::set<std::string> PeerClient::list_roles() const {
  if (!core_.policy_on) return core_.directory.roles(agent_id_);
  std::set<std::string> out;
  for (const auto& p : list_peers()) out.insert(p.card.role);
  return out;
}

std::vector<PeerInfo> PeerClient::list_peers() const {
  auto all = core_.directory.all(agent_id_);
  core_.keep_reachable(all, role_);
  return all;
}

std::map<std::string, PeerInfo> PeerClient::registry() const {
  std::map<std::string, PeerInfo> out;
  for (auto& p : list_peers()) {
    auto id = p.card.agent_id;
    out.emplace(std::move(id), std::move(p));  // the first (local) wins a duplicate id
  }
  return out;
}
// ---------------------------------------------------------------- events

PeerClient::Token PeerClient::subscribe(EventCallback callback) {
  auto alive = std::make_shared<std::atomic<bool>>(true);
  Token t = 0;
  if (!slot_) {
    // The node client's callbacks run on the control strand, as delivered.
    t = core_.subscribe([cb = std::move(callback), alive](const PeerEvent& e) {
      if (alive->load()) cb(e);
    });
  } else {
    // An agent's run on its strand: in turn with its handlers, in order.
    auto cb = std::make_shared<EventCallback>(std::move(callback));
    t = core_.subscribe([weak = slot_->weak_from_this(), cb, alive](const PeerEvent& e) {
      auto slot = weak.lock();
      if (!slot || !alive->load()) return;
      boost::asio::post(slot->strand, [weak, cb, alive, e] {
        auto s = weak.lock();
        if (!s || !alive->load() || s->stopping.load()) return;
        try {
          (*cb)(e);
        } catch (const std::exception& ex) {
          spdlog::error("{}: agent {}: event callback threw: {}", s->core->node_name, s->agent->id(), ex.what());
        } catch (...) {
          spdlog::error("{}: agent {}: event callback threw", s->core->node_name, s->agent->id());
        }
      });
    });
  }
  std::lock_guard lock(g_client_mu);
  tokens_.emplace_back(t, std::move(alive));
  return t;
}

bool PeerClient::unsubscribe(Token token) {
  {
    std::lock_guard lock(g_client_mu);
    auto it = std::find_if(tokens_.begin(), tokens_.end(), [&](const auto& e) { return e.first == token; });
    if (it == tokens_.end()) return false;
    it->second->store(false);
    tokens_.erase(it);
  }
  return core_.unsubscribe(token);
}

}  // namespace mesh
