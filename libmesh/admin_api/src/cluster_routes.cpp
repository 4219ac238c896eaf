// The cluster-wide routes of the admin API: ask many agents at once, tell
// them all, and watch what happens.
//
//   POST /v1/query      {"role" | "capability", "message", "context"?,
//                       "policy"?: "all" | "first:K" | "quorum",
//                       "timeout_ms"?}: the same request to every agent
//                       matching (PeerClient::request_all, as `serf query`
//                       asks every node). 200 {"satisfied", "responses":
//                       [{"agent_id", "node", "response"}], "missing":
//                       [{"agent_id", "node", "code", "error"}]}; 404 when
//                       no agent matches.
//   POST /v1/broadcast  {"message", "context"?, "role"?, "capability"?}:
//                       a notify to every agent (or every one matching),
//                       one copy each. 200 {"sent": n}.
//   GET  /v1/events     a Consul-style blocking query over what this node
//                       saw happen (EventLog below): ?index=N&wait_ms=M
//                       answers the events after N as soon as there is one,
//                       or an empty list after M ms (at most 60000);
//                       without `index`, at once with none and the index to
//                       start from. 200 {"index", "events": [{"index",
//                       "time_ms", "type", "node", "agent_id"?, "role"?,
//                       "local"}], "missed"}.
#include <algorithm>
#include <boost/asio/steady_timer.hpp>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "mesh/json_limits.hpp"
#include "mesh_admin_state.hpp"

namespace mesh::admin_api {
namespace {

using Json = nlohmann::json;

constexpr std::chrono::milliseconds kMaxWait{60'000};

HttpResponse gone() { return HttpResponse::error(503, "the admin API is not served any more"); }

// "role" / "capability" of a body: the query, or the error text.
std::variant<PeerQuery, std::string> query_of(const Json& in, bool required) {
  PeerQuery q;
  for (auto [key, field] : {std::pair{"role", &q.role}, std::pair{"capability", &q.capability}}) {
    const auto it = in.find(key);
    if (it == in.end() || it->is_null()) continue;
    if (!it->is_string() || it->get<std::string>().empty()) return std::string("\"") + key + "\" must be a non-empty string";
    *field = it->get<std::string>();
  }
  if (required && q.role.empty() && q.capability.empty()) return std::string("give \"role\" or \"capability\"");
  return q;
}

std::variant<GatherPolicy, std::string> policy_of(const Json& in) {
  auto timeout = kDefaultRequestTimeout;
  if (auto t = in.find("timeout_ms"); t != in.end() && !t->is_null()) {
    if (!t->is_number_unsigned() || t->get<std::uint64_t>() == 0 ||
        t->get<std::uint64_t>() > static_cast<std::uint64_t>(kAdminMaxRequestTimeout.count())) {
      return "\"timeout_ms\" must be an integer from 1 to " + std::to_string(kAdminMaxRequestTimeout.count());
    }
    timeout = std::chrono::milliseconds(t->get<std::int64_t>());
  }
  const auto p = in.find("policy");
  if (p == in.end() || p->is_null() || *p == "all") return GatherPolicy::all(timeout);
  if (*p == "quorum") return GatherPolicy::quorum(timeout);
  if (p->is_string()) {
    const std::string text = p->get<std::string>();
    std::size_t k = 0;
    if (text.rfind("first:", 0) == 0) {
      const char* b = text.data() + 6;
      const char* e = text.data() + text.size();
      const auto [end, ec] = std::from_chars(b, e, k);
      if (ec == std::errc() && end == e && k > 0 && k <= 1'000'000) return GatherPolicy::first_k(k, timeout);
    }
  }
  return std::string("\"policy\" must be \"all\", \"first:K\" (K > 0) or \"quorum\"");
}

std::optional<Json> context_of(const Json& in, std::string& why) {
  const auto c = in.find("context");
  if (c == in.end() || c->is_null()) return Json::object();
  if (!c->is_object()) {
    why = "\"context\" must be a JSON object";
    return std::nullopt;
  }
  return *c;
}

Json gather_json(const GatherResult& r) {
  Json responses = Json::array();
  for (const auto& a : r.responses) {
    responses.push_back({{"agent_id", a.peer.card.agent_id}, {"node", a.peer.card.node}, {"response", a.response.data}});
  }
  Json missing = Json::array();
  for (const auto& m : r.missing) {
    missing.push_back({{"agent_id", m.peer.card.agent_id},
                       {"node", m.peer.card.node},
                       {"code", std::string(to_string(m.error))}});
  }
  return {{"satisfied", r.satisfied}, {"responses", std::move(responses)}, {"missing", std::move(missing)}};
}

void query(Mesh& mesh, const std::shared_ptr<std::atomic<std::size_t>>& in_flight, const std::string& body,
           const AdminServer::Respond& respond) {
  std::string why;
  auto parsed = parse_json_bounded(body, &why);
  if (!parsed || !parsed->is_object()) {
    respond(HttpResponse::error(400, parsed ? "the body is not a JSON object" : "the body is not acceptable JSON: " + why));
    return;
  }
  const Json& in = *parsed;
  auto q = query_of(in, true);
  if (auto* bad = std::get_if<std::string>(&q)) return respond(HttpResponse::error(400, *bad));
  auto policy = policy_of(in);
  if (auto* bad = std::get_if<std::string>(&policy)) return respond(HttpResponse::error(400, *bad));
  if (!in.contains("message")) return respond(HttpResponse::error(400, "\"message\" is missing"));
  const auto ctx = context_of(in, why);
  if (!ctx) return respond(HttpResponse::error(400, why));
  const PeerQuery& pq = std::get<PeerQuery>(q);
  if (in_flight->fetch_add(1) >= MeshAdmin::kMaxRequestsInFlight) {
    in_flight->fetch_sub(1);
    return respond(error(503, "too many admin requests in flight", ErrorCode::Rejected));
  }
  // Nobody matched: the gather ends at once with nobody in it.
  const std::string what = pq.role.empty() ? "capability \"" + pq.capability + "\"" : "role \"" + pq.role + "\"";
  mesh.node_client().request_all_then(
      pq, in["message"], std::get<GatherPolicy>(policy), *ctx, [respond, in_flight, what](GatherResult r) {
        in_flight->fetch_sub(1);
        try {
          if (r.responses.empty() && r.missing.empty()) {
            respond(error(404, "no agent matches " + what, ErrorCode::TargetUnknown));
          } else {
            respond(HttpResponse::from_json(gather_json(r)));
          }
        } catch (const std::exception& e) {
          respond(HttpResponse::error(500, e.what()));
        }
      });
}

HttpResponse broadcast(Mesh& mesh, const std::string& body) {
  std::string why;
  auto parsed = parse_json_bounded(body, &why);
  if (!parsed) return HttpResponse::error(400, "the body is not acceptable JSON: " + why);
  if (!parsed->is_object()) return HttpResponse::error(400, "the body is not a JSON object");
  const Json& in = *parsed;
  auto q = query_of(in, false);
  if (auto* bad = std::get_if<std::string>(&q)) return HttpResponse::error(400, *bad);
  if (!in.contains("message")) return HttpResponse::error(400, "\"message\" is missing");
  const auto ctx = context_of(in, why);
  if (!ctx) return HttpResponse::error(400, why);
  const PeerQuery& pq = std::get<PeerQuery>(q);
  const bool everyone = pq.role.empty() && pq.capability.empty();
  const std::size_t sent = everyone ? mesh.node_client().broadcast(in["message"], *ctx)
                                    : mesh.node_client().broadcast_to(pq, in["message"], *ctx);
  return HttpResponse::from_json({{"sent", sent}});
}

// A query parameter's value (undecoded: the ones here are numbers).
std::optional<std::string_view> param(std::string_view query, std::string_view name) {
  while (!query.empty()) {
    const auto amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    if (pair.size() > name.size() && pair.substr(0, name.size()) == name && pair[name.size()] == '=') {
      return pair.substr(name.size() + 1);
    }
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return std::nullopt;
}

std::optional<std::uint64_t> number(std::string_view text) {
  std::uint64_t v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return v;
}

}  // namespace

// --- the event log -----------------------------------------------------------

Json EventLog::answer_locked(std::uint64_t after) const {
  Json list = Json::array();
  std::uint64_t missed = 0;
  const std::uint64_t oldest = events_.empty() ? next_ : events_.front().index;
  if (after + 1 < oldest) missed = oldest - after - 1;
  for (const auto& e : events_) {
    if (e.index > after) list.push_back(e.to_json());
  }
  return {{"index", next_ - 1}, {"events", std::move(list)}, {"missed", missed}};
}

// A waiter's timer is touched only under mu_ (asio timers are not safe
// for concurrent calls), and answers go out after mu_ is released.
Json EventLog::Event::to_json() const {
  Json j{{"time_ms", time_ms}, {"type", std::string(to_string(kind))}, {"node", node}, {"local", local},
         {"index", index}};
  if (agent) {
    j["agent_id"] = agent_id;
    j["role"] = role;
  }
  return j;
}

void EventLog::add(const PeerEvent& e) {
  Event kept;
  kept.time_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count();
  kept.kind = e.kind;
  kept.local = e.local;
  kept.node = e.node;
  if (e.card) {
    kept.agent = true;
    kept.agent_id = e.card->agent_id;
    kept.role = e.card->role;
  }
  std::vector<std::pair<AdminServer::Respond, Json>> answers;
  {
    std::lock_guard lock(mu_);
    if (closed_) return;
    kept.index = next_++;
    events_.push_back(std::move(kept));
    if (events_.size() > kKept) events_.pop_front();
    for (const auto& w : waiters_) {
      w->timer->cancel();
      answers.emplace_back(std::move(w->respond), answer_locked(w->after));
    }
    waiters_.clear();
  }
  for (auto& [respond, answer] : answers) respond(HttpResponse::from_json(answer));
}

void EventLog::get(const HttpRequest& req, AdminServer::Respond respond, const boost::asio::any_io_executor& timers) {
  const auto index_text = param(req.query, "index");
  const auto wait_text = param(req.query, "wait_ms");
  const auto index = index_text ? number(*index_text) : std::optional<std::uint64_t>();
  const auto wait = wait_text ? number(*wait_text) : std::optional<std::uint64_t>(20'000);
  if ((index_text && !index) || !wait || *wait > static_cast<std::uint64_t>(kMaxWait.count())) {
    respond(HttpResponse::error(
        400, "?index must be a whole number, and ?wait_ms one from 0 to " + std::to_string(kMaxWait.count())));
    return;
  }
  Json now;
  {
    std::lock_guard lock(mu_);
    if (closed_) {
      now = nullptr;
    } else {
      // Without an index: where to start from, now.
      const std::uint64_t after = index ? *index : next_ - 1;
      const bool news = next_ - 1 > after;
      if (!index || news || *wait == 0 || waiters_.size() >= kMaxWaiters) {
        now = answer_locked(after);
      } else {
        auto w = std::make_shared<Waiter>();
        w->after = after;
        w->respond = std::move(respond);
        w->timer = std::make_shared<boost::asio::steady_timer>(timers, std::chrono::milliseconds(*wait));
        w->timer->async_wait([this_log = weak_from_this(), w](const boost::system::error_code& ec) {
          if (ec) return;  // cancelled: answered by add() or close()
          auto log = this_log.lock();
          if (!log) return;
          Json a;
          {
            std::lock_guard inner(log->mu_);
            auto it = std::find(log->waiters_.begin(), log->waiters_.end(), w);
            if (it == log->waiters_.end()) return;  // answered meanwhile
            log->waiters_.erase(it);
            a = log->answer_locked(w->after);
          }
          w->respond(HttpResponse::from_json(a));
        });
        waiters_.push_back(std::move(w));
        return;
      }
    }
  }
  respond(now.is_null() ? gone() : HttpResponse::from_json(now));
}

void EventLog::close() {
  std::vector<AdminServer::Respond> left;
  {
    std::lock_guard lock(mu_);
    closed_ = true;
    for (const auto& w : waiters_) {
      w->timer->cancel();
      left.push_back(std::move(w->respond));
    }
    waiters_.clear();
  }
  for (const auto& respond : left) respond(gone());
}

void route_cluster(AdminServer& admin, const std::weak_ptr<MeshAdmin::State>& weak) {
  admin.route_post_async("/v1/query", [weak](const HttpRequest& req, AdminServer::Respond respond) {
    auto state = weak.lock();
    if (!state) return respond(gone());
    try {
      query(state->mesh, state->in_flight, req.body, respond);
    } catch (const std::exception& e) {
      respond(HttpResponse::error(500, e.what()));
    }
  });
  admin.route_post("/v1/broadcast", [weak](const HttpRequest& req) {
    auto state = weak.lock();
    return state ? broadcast(state->mesh, req.body) : gone();
  });
  admin.route_async("/v1/events", [weak](const HttpRequest& req, AdminServer::Respond respond) {
    auto state = weak.lock();
    if (!state) return respond(gone());
    state->events->get(req, std::move(respond), state->snapshots.get_executor());
  });
}

}  // namespace mesh::admin_api
