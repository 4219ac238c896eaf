// PeerClient::request_all: one request to each of several peers, answers
// gathered until the policy (all, first k, a majority) or the deadline is
// met.
#include <condition_variable>
#include <functional>
#include <mutex>
#include <unordered_set>
#include <utility>

#include "mesh/peer_client.hpp"
#include "mesh_core.hpp"

namespace mesh {

using detail::address_of;
using detail::resolve_target;
using transport::OutMessage;

namespace {

struct Gather {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<PeerInfo> peers;
  std::vector<GatherResult::Miss> unresolved;
  std::vector<std::optional<ErrorCode>> done;  // per peer: its error once finished
  std::vector<std::pair<std::size_t, Response>> answers;
  std::size_t finished = 0;
  std::size_t n = 0;       // peers + unresolved
  std::size_t wanted = 0;  // answers that satisfy the policy
  GatherPolicy policy;
  // Told (outside mu) when the gather is over: every peer finished, or
  // the policy is satisfied. Set before the first request goes out.
  std::function<void()> over;

  bool over_locked() const { return finished == peers.size() || (n > 0 && answers.size() >= wanted); }
};

// Sends the requests; the answers come into the returned state.
std::shared_ptr<Gather> gather_start(detail::MeshCore& core, const std::string& self, const std::string& role,
                                     std::vector<PeerInfo> peers, std::vector<GatherResult::Miss> unresolved,
                                     const Json& message, GatherPolicy policy, const Json& ctx,
                                     std::function<void()> over, std::shared_ptr<Gather>* out = nullptr) {
  if (policy.kind == GatherPolicy::Kind::FirstK && policy.k == 0) {
    throw std::invalid_argument("request_all: first_k needs k > 0");
  }
  auto context = core.encode_context(ctx);
  auto payload = detail::encode_json(message);
  auto state = std::make_shared<Gather>();
  state->peers = std::move(peers);
  state->unresolved = std::move(unresolved);
  state->n = state->peers.size() + state->unresolved.size();
  state->wanted = policy.kind == GatherPolicy::Kind::All      ? state->n
                  : policy.kind == GatherPolicy::Kind::FirstK ? policy.k
                                                              : state->n / 2 + 1;
  state->policy = policy;
  state->over = std::move(over);
  state->done.resize(state->peers.size());
  if (out) *out = state;  // before any answer can end the gather
  auto t = core.get_transport();
  const bool oversized = payload.size() + context.size() > core.limits.max_bytes;
  // One peer finished: note it, and tell `over` once when the gather is.
  auto finish = [](Gather& g, std::size_t i, RequestOutcome o) {
    bool tell = false;
    {
      std::lock_guard lock(g.mu);
      const bool was_over = g.over_locked();
      g.done[i] = o.error;
      ++g.finished;
      if (o.ok()) g.answers.emplace_back(i, std::move(*o.response));
      tell = !was_over && g.over_locked();
    }
    g.cv.notify_all();
    if (tell && g.over) g.over();
  };
  for (std::size_t i = 0; i < state->peers.size(); ++i) {
    const PeerInfo& peer = state->peers[i];
    ErrorCode early = ErrorCode::None;
    if (!t) {
      early = ErrorCode::Shutdown;
    } else if (oversized) {
      early = ErrorCode::Oversized;
    } else if (!core.may_send(self, role, peer, PolicyAction::Request)) {
      early = ErrorCode::PermissionDenied;
    }
    if (early != ErrorCode::None) {
      RequestOutcome o;
      o.error = early;
      finish(*state, i, std::move(o));
      continue;
    }
    OutMessage m;
    m.to = address_of(peer);
    m.sender_agent = self;
    m.payload = payload;
    m.context = context;
    detail::SentRequest sent;
    // Each request is a message of the thread on its own (a turn each).
    if (const ErrorCode e = core.stamp_thread(self, role, peer, SendOptions{}, true, m, &sent); e != ErrorCode::None) {
      RequestOutcome o;
      o.error = e;
      finish(*state, i, std::move(o));
      continue;
    }
    core.directory.record_usage(peer.card.agent_id);
    detail::MeshCore* c = &core;
    t->request_async(std::move(m), policy.deadline, [state, i, c, finish, sent = std::move(sent)](transport::Reply reply) {
      finish(*state, i, c->to_outcome(std::move(reply), &sent));
    });
  }
  if (state->peers.empty() && state->over) state->over();
  return state;
}

GatherResult gather_result(Gather& state) {
  GatherResult result;
  std::lock_guard lock(state.mu);
  const auto& peers = state.peers;
  // FirstK returns at most k: answers past the k-th (they arrive together
  // when peers are fast) are dropped, and their peers are not "missing".
  const std::size_t cap = state.policy.kind == GatherPolicy::Kind::FirstK ? state.wanted : state.answers.size();
  std::vector<bool> answered(peers.size(), false);
  for (auto& [i, r] : state.answers) {
    answered[i] = true;
    if (result.responses.size() < cap) result.responses.push_back(GatherResult::Answer{peers[i], r});
  }
  for (std::size_t i = 0; i < peers.size(); ++i) {
    if (answered[i]) continue;
    const ErrorCode e = state.done[i] ? *state.done[i] : ErrorCode::Timeout;
    result.missing.push_back(GatherResult::Miss{peers[i], e == ErrorCode::None ? ErrorCode::Timeout : e});
  }
  for (auto& m : state.unresolved) result.missing.push_back(m);
  result.satisfied = state.n > 0 && result.responses.size() >= state.wanted;
  return result;
}

GatherResult gather_blocking(detail::MeshCore& core, const std::string& self, const std::string& role,
                             std::vector<PeerInfo> peers, std::vector<GatherResult::Miss> unresolved,
                             const Json& message, GatherPolicy policy, const Json& ctx) {
  detail::forbid_blocking("request_all_blocking");
  const auto deadline = std::chrono::steady_clock::now() + policy.deadline;
  auto state = gather_start(core, self, role, std::move(peers), std::move(unresolved), message, policy, ctx, {});
  {
    std::unique_lock lock(state->mu);
    state->cv.wait_until(lock, deadline, [&] { return state->over_locked(); });
  }
  return gather_result(*state);
}

// Awaits the gather: over, the deadline, or the caller's stop.
Task<GatherResult> await_gather(detail::MeshCore& core, detail::AwaitScope& scope, std::string self,
                                std::string role, std::vector<PeerInfo> peers,
                                std::vector<GatherResult::Miss> unresolved, Json message, GatherPolicy policy,
                                Json ctx) {
  std::shared_ptr<Gather> state;
  // A named awaiter: GCC 12 mishandles a non-trivial temporary awaiter
  // (it frees what the lambda captured by move twice).
  auto op = detail::await_op<bool>(
      scope,
      [&](auto c) {
        detail::complete_after(core.pool->get_executor(), policy.deadline, c, true);
        gather_start(core, self, role, std::move(peers), std::move(unresolved), message, policy, ctx,
                     [c] { c->complete(true); }, &state);
      },
      false);
  co_await op;
  co_return gather_result(*state);
}

}  // namespace

namespace {

// request_all's targets, resolved as request() resolves one.
void resolve_all(detail::MeshCore& core, const std::vector<std::string>& targets, Strategy strategy,
                 const std::string& self, const std::string& role, std::vector<PeerInfo>& peers,
                 std::vector<GatherResult::Miss>& unresolved) {
  std::unordered_set<std::string> seen;
  for (const auto& target : targets) {
    auto p = resolve_target(core, target, strategy, self, role, PolicyAction::Request);
    if (!p) {
      GatherResult::Miss miss;
      miss.peer.card.agent_id = target;
      miss.error = ErrorCode::TargetUnknown;
      unresolved.push_back(std::move(miss));
    } else if (seen.insert(p->card.agent_id).second) {
      peers.push_back(std::move(*p));
    }
  }
}

}  // namespace

GatherResult PeerClient::request_all_blocking(const PeerQuery& query, const Json& message, GatherPolicy policy,
                                              const Json& ctx) {
  return gather_blocking(core_, agent_id_, role_, discover(query, Strategy::First), {}, message, policy, ctx);
}

GatherResult PeerClient::request_all_blocking(const std::vector<std::string>& targets, const Json& message,
                                              GatherPolicy policy, const Json& ctx) {
  std::vector<PeerInfo> peers;
  std::vector<GatherResult::Miss> unresolved;
  resolve_all(core_, targets, default_strategy(), agent_id_, role_, peers, unresolved);
  return gather_blocking(core_, agent_id_, role_, std::move(peers), std::move(unresolved), message, policy, ctx);
}

void PeerClient::request_all_then(const PeerQuery& query, const Json& message, GatherPolicy policy, const Json& ctx,
                                  std::function<void(GatherResult)> done) {
  // The state holds `over`, which must reach the state: through a slot
  // that `over` empties, so that nothing keeps the state alive after.
  auto slot = std::make_shared<std::shared_ptr<Gather>>();
  gather_start(
      core_, agent_id_, role_, discover(query, Strategy::First), {}, message, policy, ctx,
      [slot, done = std::move(done)] {
        const std::shared_ptr<Gather> state = std::move(*slot);
        if (state) done(gather_result(*state));
      },
      slot.get());
}

Task<GatherResult> PeerClient::request_all(const PeerQuery& query, const Json& message, GatherPolicy policy,
                                           const Json& ctx) {
  if (policy.kind == GatherPolicy::Kind::FirstK && policy.k == 0) {
    throw std::invalid_argument("request_all: first_k needs k > 0");
  }
  (void)core_.encode_context(ctx);  // a bad context throws here, at the call
  return await_gather(core_, await_scope(), agent_id_, role_, discover(query, Strategy::First), {}, message,
                      policy, ctx);
}

Task<GatherResult> PeerClient::request_all(const std::vector<std::string>& targets, const Json& message,
                                           GatherPolicy policy, const Json& ctx) {
  if (policy.kind == GatherPolicy::Kind::FirstK && policy.k == 0) {
    throw std::invalid_argument("request_all: first_k needs k > 0");
  }
  (void)core_.encode_context(ctx);
  std::vector<PeerInfo> peers;
  std::vector<GatherResult::Miss> unresolved;
  resolve_all(core_, targets, default_strategy(), agent_id_, role_, peers, unresolved);
  return await_gather(core_, await_scope(), agent_id_, role_, std::move(peers), std::move(unresolved), message,
                      policy, ctx);
}

}  // namespace mesh
