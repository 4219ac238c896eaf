// PeerClient::request_all: one request to each of several peers, answers
// gathered until the policy (all, first k, a majority) or the deadline is
// met.
#include <condition_variable>
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
  std::vector<std::optional<ErrorCode>> done;  // per peer: its error once finished
  std::vector<std::pair<std::size_t, Response>> answers;
  std::size_t finished = 0;
};

GatherResult gather(detail::MeshCore& core, const std::string& self, const std::string& role,
                    std::vector<PeerInfo> peers,
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
    if (!core.may_send(self, role, peers[i], PolicyAction::Request)) {
      finish_now(ErrorCode::PermissionDenied);
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
  return gather(core_, agent_id_, role_, discover(query, Strategy::First), {}, message, policy, ctx);
}

GatherResult PeerClient::request_all(const std::vector<std::string>& targets, const Json& message,
                                     GatherPolicy policy, const Json& ctx) {
  std::vector<PeerInfo> peers;
  std::vector<GatherResult::Miss> unresolved;
  std::unordered_set<std::string> seen;
  for (const auto& target : targets) {
    auto p = resolve_target(core_, target, default_strategy(), agent_id_, role_, PolicyAction::Request);
    if (!p) {
      GatherResult::Miss miss;
      miss.peer.card.agent_id = target;
      miss.error = ErrorCode::TargetUnknown;
      unresolved.push_back(std::move(miss));
    } else if (seen.insert(p->card.agent_id).second) {
      peers.push_back(std::move(*p));
    }
  }
  return gather(core_, agent_id_, role_, std::move(peers), std::move(unresolved), message, policy, ctx);
}

}  // namespace mesh
