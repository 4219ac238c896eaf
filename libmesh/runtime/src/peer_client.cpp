#include "mesh/peer_client.hpp"

#include <algorithm>
#include <condition_variable>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "mesh_core.hpp"

namespace mesh {

using transport::Address;
using transport::OutMessage;

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

// Ids starting with '$' are the node's own senders and inboxes ("$node",
// "$registry"): never a target, even if some node advertised such a card.
std::optional<PeerInfo> resolve_target(detail::MeshCore& core, std::string_view target, Strategy strategy,
                                       const std::string& self) {
  if (target.empty() || target.front() == '$') return std::nullopt;
  return core.directory.resolve(target, strategy, self);
}

Address address_of(const PeerInfo& peer) {
  return Address{peer.local ? std::string() : peer.card.node, peer.card.agent_id};
}

}  // namespace

// ---- delivery failures ------------------------------------------------------
//
// The transport reports a refused notify on its own thread with the
// sending agent's id. Clients are found through a registry keyed by
// (mesh, agent id) that each client joins in its constructor and leaves in
// its destructor; it lives here rather than in MeshCore so that the lookup
// takes no lock the Mesh holds while it stops the transport.

struct PeerClient::DeliverySink {
  std::atomic<std::uint64_t> accepted{0};
  std::atomic<std::uint64_t> refused{0};
  std::atomic<std::uint64_t> failed{0};
  std::mutex mu;  // held while the callback runs: replacing it waits for that call
  DeliveryFailureCallback callback;
};

namespace {

struct SinkKey {
  const detail::MeshCore* core;
  std::string agent_id;
  bool operator==(const SinkKey&) const = default;
};
struct SinkKeyHash {
  std::size_t operator()(const SinkKey& k) const noexcept {
    return std::hash<const void*>{}(k.core) ^ std::hash<std::string>{}(k.agent_id);
  }
};

std::mutex g_sinks_mu;
std::unordered_map<SinkKey, std::weak_ptr<PeerClient::DeliverySink>, SinkKeyHash>& sinks() {
  static auto* table = new std::unordered_map<SinkKey, std::weak_ptr<PeerClient::DeliverySink>, SinkKeyHash>();
  return *table;
}

}  // namespace

PeerClient::PeerClient(detail::MeshCore& core, std::string agent_id, std::string role)
    : core_(core),
      agent_id_(std::move(agent_id)),
      role_(std::move(role)),
      delivery_(std::make_shared<DeliverySink>()) {
  std::lock_guard lock(g_sinks_mu);
  sinks()[SinkKey{&core_, agent_id_}] = delivery_;
}

PeerClient::~PeerClient() {
  {
    std::lock_guard lock(g_sinks_mu);
    auto it = sinks().find(SinkKey{&core_, agent_id_});
    if (it != sinks().end() && it->second.lock() == delivery_) sinks().erase(it);
  }
  std::set<Token> tokens;
  {
    std::lock_guard lock(tokens_mu_);
    tokens.swap(tokens_);
  }
  for (Token t : tokens) core_.unsubscribe(t);
}

void PeerClient::on_delivery_failure(DeliveryFailureCallback callback) {
  std::lock_guard lock(delivery_->mu);
  delivery_->callback = std::move(callback);
}

DeliveryStats PeerClient::delivery_stats() const {
  DeliveryStats s;
  s.notifies_accepted = delivery_->accepted.load(std::memory_order_relaxed);
  s.notifies_refused = delivery_->refused.load(std::memory_order_relaxed);
  s.notifies_failed = delivery_->failed.load(std::memory_order_relaxed);
  return s;
}

void PeerClient::count_notify(bool accepted, std::uint64_t n) {
  (accepted ? delivery_->accepted : delivery_->refused).fetch_add(n, std::memory_order_relaxed);
}

bool PeerClient::report_delivery_failure(const detail::MeshCore& core, const transport::UndeliverableNotify& r) {
  std::shared_ptr<DeliverySink> sink;
  {
    std::lock_guard lock(g_sinks_mu);
    auto it = sinks().find(SinkKey{&core, std::string(r.sender_agent)});
    if (it != sinks().end()) sink = it->second.lock();
  }
  if (!sink) return false;
  sink->failed.fetch_add(1, std::memory_order_relaxed);
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

Strategy PeerClient::default_strategy() const { return static_cast<Strategy>(strategy_.load()); }

// ---------------------------------------------------------------- discovery

std::optional<PeerInfo> PeerClient::get_peer(std::string_view role) {
  if (role.empty()) return std::nullopt;
  auto found = core_.directory.discover(PeerQuery{std::string(role), {}}, default_strategy(), agent_id_);
  if (found.empty()) return std::nullopt;
  return std::move(found.front());
}

std::vector<PeerInfo> PeerClient::discover(const PeerQuery& query, Strategy strategy) {
  if (query.role.empty() && query.capability.empty()) {
    throw std::invalid_argument("discover: give a role, a capability or both");
  }
  return core_.directory.discover(query, strategy, agent_id_);
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
  return core_.directory.record_usage(agent_id, detail::steady_ms());
}

std::set<std::string> PeerClient::list_roles() const { return core_.directory.roles(agent_id_); }

std::vector<PeerInfo> PeerClient::list_peers() const { return core_.directory.all(agent_id_); }

std::map<std::string, PeerInfo> PeerClient::registry() const {
  std::map<std::string, PeerInfo> out;
  for (auto& p : core_.directory.all(agent_id_)) {
    auto id = p.card.agent_id;
    out.emplace(std::move(id), std::move(p));  // the first (local) wins a duplicate id
  }
  return out;
}

// ---------------------------------------------------------------- messaging

namespace {

struct Prepared {
  ErrorCode error = ErrorCode::None;
  std::optional<PeerInfo> peer;
  OutMessage message;
};

}  // namespace

// Resolves the target and encodes the message: everything a send needs.
static Prepared prepare(detail::MeshCore& core, PeerClient& client, std::string_view target,
                        const Json& message, const Json& ctx, Strategy strategy) {
  Prepared p;
  std::vector<std::uint8_t> context = core.encode_context(ctx);  // throws on a non-object
  p.peer = resolve_target(core, target, strategy, client.my_id());
  if (!p.peer) {
    p.error = ErrorCode::TargetUnknown;
    return p;
  }
  p.message.to = address_of(*p.peer);
  p.message.sender_agent = client.my_id();
  p.message.payload = detail::encode_json(message);
  p.message.context = std::move(context);
  if (p.message.payload.size() + p.message.context.size() > core.limits.max_bytes) {
    p.error = ErrorCode::Oversized;
  }
  return p;
}

bool PeerClient::notify(std::string_view target, const Json& message, const Json& ctx) {
  Prepared p = prepare(core_, *this, target, message, ctx, default_strategy());
  auto t = core_.get_transport();
  if (p.error != ErrorCode::None || !t) {
    count_notify(false);
    return false;
  }
  const std::string id = p.peer->card.agent_id;
  if (t->notify(std::move(p.message)) != ErrorCode::None) {
    count_notify(false);
    return false;
  }
  count_notify(true);
  record_peer_usage(id);
  return true;
}

std::optional<Response> PeerClient::request(std::string_view target, const Json& message,
                                            std::optional<std::chrono::milliseconds> timeout,
                                            const Json& ctx) {
  return request_detailed(target, message, timeout, ctx).response;
}

RequestOutcome PeerClient::request_detailed(std::string_view target, const Json& message,
                                            std::optional<std::chrono::milliseconds> timeout,
                                            const Json& ctx) {
  Prepared p = prepare(core_, *this, target, message, ctx, default_strategy());
  RequestOutcome out;
  out.peer = p.peer;
  if (p.error != ErrorCode::None) {
    out.error = p.error;
    return out;
  }
  auto t = core_.get_transport();
  if (!t) {
    out.error = ErrorCode::Shutdown;
    return out;
  }
  record_peer_usage(p.peer->card.agent_id);
  RequestOutcome got =
      core_.to_outcome(t->request(std::move(p.message), timeout.value_or(core_.config.request_timeout)));
  got.peer = std::move(out.peer);
  return got;
}

std::future<RequestOutcome> PeerClient::request_async(std::string_view target, const Json& message,
                                                      std::optional<std::chrono::milliseconds> timeout,
                                                      const Json& ctx) {
  auto promise = std::make_shared<std::promise<RequestOutcome>>();
  auto future = promise->get_future();
  request_then(target, message, timeout, ctx,
               [promise](RequestOutcome out) { promise->set_value(std::move(out)); });
  return future;
}

void PeerClient::request_then(std::string_view target, const Json& message,
                              std::optional<std::chrono::milliseconds> timeout, const Json& ctx,
                              std::function<void(RequestOutcome)> done) {
  Prepared p = prepare(core_, *this, target, message, ctx, default_strategy());
  auto t = core_.get_transport();
  if (p.error != ErrorCode::None || !t) {
    RequestOutcome out;
    out.error = p.error != ErrorCode::None ? p.error : ErrorCode::Shutdown;
    out.peer = std::move(p.peer);
    done(std::move(out));
    return;
  }
  record_peer_usage(p.peer->card.agent_id);
  detail::MeshCore* core = &core_;
  t->request_async(std::move(p.message), timeout.value_or(core_.config.request_timeout),
                   [core, done = std::move(done), peer = std::move(p.peer)](transport::Reply reply) mutable {
                     RequestOutcome out = core->to_outcome(std::move(reply));
                     out.peer = std::move(peer);
                     done(std::move(out));
                   });
}

bool PeerClient::respond(const IncomingMessage& incoming, const Json& message, const std::optional<Json>& ctx) {
  if (!incoming.handle || !incoming.is_request()) return false;
  auto context = core_.encode_context(ctx ? *ctx : incoming.context);
  auto payload = detail::encode_json(message);
  if (payload.size() + context.size() > core_.limits.max_bytes) return false;
  auto t = core_.get_transport();
  if (!t) return false;
  return t->respond(*incoming.handle, std::move(payload), std::move(context)) == ErrorCode::None;
}

namespace {

std::size_t send_to_each(detail::MeshCore& core, const std::string& self, std::vector<PeerInfo> peers,
                         const Json& message, const Json& ctx) {
  auto context = core.encode_context(ctx);
  auto payload = detail::encode_json(message);
  if (payload.size() + context.size() > core.limits.max_bytes) return 0;
  auto t = core.get_transport();
  if (!t) return 0;
  std::unordered_set<std::string> seen;
  std::vector<Address> to;
  for (const auto& p : peers) {
    if (seen.insert(p.card.agent_id).second) to.push_back(address_of(p));
  }
  OutMessage m;
  m.sender_agent = self;
  m.payload = std::move(payload);
  m.context = std::move(context);
  std::size_t accepted = 0;
  for (const auto& o : t->broadcast(to, m)) accepted += o.error == ErrorCode::None ? 1 : 0;
  return accepted;
}

}  // namespace

std::size_t PeerClient::broadcast(const Json& message, const Json& ctx) {
  const auto peers = core_.directory.all(agent_id_);
  const std::size_t accepted = send_to_each(core_, agent_id_, peers, message, ctx);
  count_notify(true, accepted);
  count_notify(false, peers.size() - std::min(accepted, peers.size()));
  return accepted;
}

std::size_t PeerClient::broadcast_to(const PeerQuery& query, const Json& message, const Json& ctx) {
  const auto peers = discover(query, Strategy::First);
  const std::size_t accepted = send_to_each(core_, agent_id_, peers, message, ctx);
  count_notify(true, accepted);
  count_notify(false, peers.size() - std::min(accepted, peers.size()));
  return accepted;
}

std::optional<IncomingMessage> PeerClient::receive(std::optional<std::chrono::milliseconds> timeout) {
  auto inbox = core_.inbox_of(agent_id_);
  if (!inbox) return std::nullopt;
  const auto until = timeout ? std::optional(std::chrono::steady_clock::now() + *timeout) : std::nullopt;
  while (true) {
    std::optional<std::chrono::milliseconds> left;
    if (until) {
      left = std::chrono::duration_cast<std::chrono::milliseconds>(*until - std::chrono::steady_clock::now());
      if (left->count() < 0) left = std::chrono::milliseconds(0);
    }
    auto raw = inbox->pop(left);
    if (!raw) return std::nullopt;
    if (auto msg = core_.to_incoming(std::move(*raw))) return msg;
    if (until && std::chrono::steady_clock::now() >= *until) return std::nullopt;
  }
}

std::string PeerClient::ask_async(std::string_view target, const Json& message,
                                  std::chrono::milliseconds timeout, const Json& ctx) {
  Prepared p = prepare(core_, *this, target, message, ctx, default_strategy());
  if (p.error == ErrorCode::TargetUnknown) {
    throw MeshError("ask_async: no agent \"" + std::string(target) + "\" to ask", p.error);
  }
  if (p.error != ErrorCode::None) {
    throw MeshError("ask_async: " + std::string(transport::to_string(p.error)), p.error);
  }
  auto t = core_.get_transport();
  if (!t) throw MeshError("ask_async: the mesh is not running", ErrorCode::Shutdown);
  const std::string id = p.peer->card.agent_id;
  auto ticket = t->ask_async(std::move(p.message), timeout);
  if (ticket.error != ErrorCode::None) {
    throw MeshError("ask_async to " + id + ": " + std::string(transport::to_string(ticket.error)),
                    ticket.error);
  }
  record_peer_usage(id);
  return ticket.id.to_string();
}

AskCheck PeerClient::check_inbox_status(std::string_view request_id, std::chrono::milliseconds timeout,
                                        bool remove) {
  AskCheck out;
  const auto id = transport::MessageId::parse(request_id);
  auto t = core_.get_transport();
  if (!id || !t) return out;
  auto res = t->check_inbox(*id, timeout, remove);
  switch (res.state) {
    case transport::AskState::Pending: out.status = AskStatus::Pending; break;
    case transport::AskState::Expired: out.status = AskStatus::Expired; break;
    case transport::AskState::Unknown: out.status = AskStatus::Unknown; break;
    case transport::AskState::Ready: {
      out.status = AskStatus::Ready;
      RequestOutcome o = core_.to_outcome(std::move(res.reply));
      out.error = o.error;
      out.response = std::move(o.response);
      break;
    }
  }
  return out;
}

std::optional<Response> PeerClient::check_inbox(std::string_view request_id, std::chrono::milliseconds timeout,
                                                bool remove) {
  return check_inbox_status(request_id, timeout, remove).response;
}

// ---------------------------------------------------------------- scatter-gather

namespace {

struct Gather {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::optional<ErrorCode>> done;  // per peer: its error once finished
  std::vector<std::pair<std::size_t, Response>> answers;
  std::size_t finished = 0;
};

GatherResult gather(detail::MeshCore& core, const std::string& self, std::vector<PeerInfo> peers,
                    std::vector<GatherResult::Miss> unresolved, const Json& message, GatherPolicy policy,
                    const Json& ctx) {
  if (policy.kind == GatherPolicy::Kind::FirstK && policy.k == 0) {
    throw std::invalid_argument("request_all: first_k needs k > 0");
  }
  auto context = core.encode_context(ctx);
  auto payload = detail::encode_json(message);
  const std::size_t n = peers.size() + unresolved.size();
  const std::size_t wanted = policy.kind == GatherPolicy::Kind::All      ? n
                             : policy.kind == GatherPolicy::Kind::FirstK ? policy.k
                                                                         : n / 2 + 1;
  auto state = std::make_shared<Gather>();
  state->done.resize(peers.size());
  auto t = core.get_transport();
  const bool oversized = payload.size() + context.size() > core.limits.max_bytes;
  const auto deadline = std::chrono::steady_clock::now() + policy.deadline;
  for (std::size_t i = 0; i < peers.size(); ++i) {
    auto finish_now = [&](ErrorCode e) {
      std::lock_guard lock(state->mu);
      state->done[i] = e;
      ++state->finished;
    };
    if (!t) {
      finish_now(ErrorCode::Shutdown);
      continue;
    }
    if (oversized) {
      finish_now(ErrorCode::Oversized);
      continue;
    }
    OutMessage m;
    m.to = address_of(peers[i]);
    m.sender_agent = self;
    m.payload = payload;
    m.context = context;
    core.directory.record_usage(peers[i].card.agent_id, detail::steady_ms());
    detail::MeshCore* c = &core;
    t->request_async(std::move(m), policy.deadline, [state, i, c](transport::Reply reply) {
      RequestOutcome o = c->to_outcome(std::move(reply));
      {
        std::lock_guard lock(state->mu);
        state->done[i] = o.error;
        ++state->finished;
        if (o.ok()) state->answers.emplace_back(i, std::move(*o.response));
      }
      state->cv.notify_all();
    });
  }
  GatherResult result;
  std::unique_lock lock(state->mu);
  state->cv.wait_until(lock, deadline, [&] {
    return state->finished == peers.size() || (n > 0 && state->answers.size() >= wanted);
  });
  // FirstK returns at most k: answers past the k-th (they arrive together
  // when peers are fast) are dropped, and their peers are not "missing".
  const std::size_t cap = policy.kind == GatherPolicy::Kind::FirstK ? wanted : state->answers.size();
  std::vector<bool> answered(peers.size(), false);
  for (auto& [i, r] : state->answers) {
    answered[i] = true;
    if (result.responses.size() < cap) result.responses.push_back(GatherResult::Answer{peers[i], r});
  }
  for (std::size_t i = 0; i < peers.size(); ++i) {
    if (answered[i]) continue;
    const ErrorCode e = state->done[i] ? *state->done[i] : ErrorCode::Timeout;
    result.missing.push_back(GatherResult::Miss{peers[i], e == ErrorCode::None ? ErrorCode::Timeout : e});
  }
  for (auto& m : unresolved) result.missing.push_back(std::move(m));
  result.satisfied = n > 0 && result.responses.size() >= wanted;
  return result;
}

}  // namespace

GatherResult PeerClient::request_all(const PeerQuery& query, const Json& message, GatherPolicy policy,
                                     const Json& ctx) {
  return gather(core_, agent_id_, discover(query, Strategy::First), {}, message, policy, ctx);
}

GatherResult PeerClient::request_all(const std::vector<std::string>& targets, const Json& message,
                                     GatherPolicy policy, const Json& ctx) {
  std::vector<PeerInfo> peers;
  std::vector<GatherResult::Miss> unresolved;
  std::unordered_set<std::string> seen;
  for (const auto& target : targets) {
    auto p = resolve_target(core_, target, default_strategy(), agent_id_);
    if (!p) {
      GatherResult::Miss miss;
      miss.peer.card.agent_id = target;
      miss.error = ErrorCode::TargetUnknown;
      unresolved.push_back(std::move(miss));
    } else if (seen.insert(p->card.agent_id).second) {
      peers.push_back(std::move(*p));
    }
  }
  return gather(core_, agent_id_, std::move(peers), std::move(unresolved), message, policy, ctx);
}

// ---------------------------------------------------------------- events

PeerClient::Token PeerClient::subscribe(EventCallback callback) {
  const Token t = core_.subscribe(std::move(callback));
  std::lock_guard lock(tokens_mu_);
  tokens_.insert(t);
  return t;
}

bool PeerClient::unsubscribe(Token token) {
  {
    std::lock_guard lock(tokens_mu_);
    if (tokens_.erase(token) == 0) return false;
  }
  return core_.unsubscribe(token);
}

}  // namespace mesh
