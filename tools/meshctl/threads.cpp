// meshctl threads | thread (threads.hpp).
#include "threads.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <tuple>
#include <vector>

#include "mesh/audit_verify.hpp"
#include "mesh/text.hpp"

namespace mesh::meshctl {
namespace {

using Json = nlohmann::json;

std::string text(const Json& j, const char* key) {
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) return "";
  return it->is_string() ? escape_text(it->get<std::string>()) : it->dump();
}

std::string money(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}

std::optional<Json> get_json(const Call& call, const std::string& target) {
  const auto body = call(target, nullptr, std::chrono::seconds(5));
  if (!body) return std::nullopt;
  Json j = Json::parse(*body, nullptr, false);
  if (j.is_discarded()) {
    std::cerr << "meshctl: GET " << target << ": the answer is not JSON\n";
    return std::nullopt;
  }
  return j;
}

// One line per thread: id, state (and why refused), turns, cost, subject.
std::string thread_line(const Json& t) {
  std::string state = text(t, "state");
  if (!text(t, "last_refusal").empty()) state += " (" + text(t, "last_refusal") + ")";
  std::string line = text(t, "id") + "  " + state + "  turns " + text(t, "turns") + "  spent " +
                     money(t.value("spent", 0.0)) + "  from " + text(t, "origin_agent") + "@" +
                     text(t, "origin_node");
  if (!text(t, "subject").empty()) line += "  \"" + text(t, "subject") + "\"";
  return line;
}

double quantile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  const auto k = static_cast<std::size_t>(std::ceil(q * static_cast<double>(v.size())));
  return v[std::clamp<std::size_t>(k, 1, v.size()) - 1];
}

// The thread's records from every directory, in time order.
std::optional<std::vector<Json>> collect(const std::vector<std::string>& dirs, const std::string& id) {
  std::vector<Json> out;
  for (const auto& dir : dirs) {
    const AuditReadResult r = read_audit_dir(dir, [&](const AuditEntry& e) {
      if (e.record.value("thread", "") == id) out.push_back(e.record);
    });
    if (!r.ok) {
      std::cerr << "meshctl: thread: " << r.error << "\n";
      return std::nullopt;
    }
  }
  // Within one millisecond, a message's events in the order they happen
  // (clocks of different nodes are as good as their synchronisation).
  const auto rank = [](const Json& r) {
    static const std::map<std::string, int> order = {{"sent", 0},    {"refused", 1},  {"received", 1},
                                                     {"handled", 2}, {"answered", 2}, {"answer", 3}};
    const auto it = order.find(r.value("event", ""));
    return it == order.end() ? 4 : it->second;
  };
  std::stable_sort(out.begin(), out.end(), [&](const Json& a, const Json& b) {
    return std::tuple(a.value("at_ms", std::int64_t{0}), rank(a), a.value("node", ""), a.value("seq", std::uint64_t{0})) <
           std::tuple(b.value("at_ms", std::int64_t{0}), rank(b), b.value("node", ""), b.value("seq", std::uint64_t{0}));
  });
  return out;
}

// Per hop (from -> to): the round trips its answers took at the requester,
// and the handling they took at the receiver.
Json latency(const std::vector<Json>& records) {
  std::map<std::string, std::vector<double>> round_trip;
  std::map<std::string, std::vector<double>> handling;
  for (const auto& r : records) {
    if (!r.contains("took_ms")) continue;
    const std::string event = r.value("event", "");
    const double ms = r["took_ms"].get<double>();
    if (event == "answer") round_trip[r.value("to", "") + " -> " + r.value("from", "")].push_back(ms);
    if (event == "answered" || event == "handled") {
      handling[r.value("to", "") + " -> " + r.value("from", "")].push_back(ms);
    }
  }
  Json out = Json::array();
  for (auto* m : {&round_trip, &handling}) {
    for (const auto& [hop, v] : *m) {
      out.push_back({{"hop", hop},
                     {"measure", m == &round_trip ? "round_trip" : "handling"},
                     {"count", v.size()},
                     {"p50_ms", quantile(v, 0.5)},
                     {"p99_ms", quantile(v, 0.99)}});
    }
  }
  return out;
}

// The opening message of the thread, as its sender recorded it.
const Json* opening(const std::vector<Json>& records) {
  for (const auto& r : records) {
    if (r.value("event", "") == "sent" && r.value("turn", 0) == 1) return &r;
  }
  return nullptr;
}

int replay(const Call& call, const std::string& id, const std::vector<Json>& records, const Json& old) {
  const Json* first = opening(records);
  if (!first) {
    std::cerr << "meshctl: thread: no record of the thread's opening message in the audit directories\n";
    return 1;
  }
  if (!first->contains("payload")) {
    std::cerr << "meshctl: thread: the opening message's payload was not recorded (the node ran without "
                 "audit_payloads): nothing to replay\n";
    return 1;
  }
  const std::string role = first->value("to_role", "");
  if (role.empty()) {
    std::cerr << "meshctl: thread: the opening message's target role was not recorded\n";
    return 1;
  }
  const std::string subject = "replay of " + id;
  Json thread{{"subject", subject}};
  const Json limits = first->value("limits", Json::object());
  for (const char* k : {"max_turns", "max_cost", "max_depth"}) {
    if (limits.contains(k)) thread[k] = limits[k];
  }
  if (limits.contains("expires_ms")) {
    thread["ttl_ms"] = std::max<std::int64_t>(1, limits["expires_ms"].get<std::int64_t>() -
                                                     first->value("at_ms", std::int64_t{0}));
  }
  const bool request = first->value("kind", "") == "request";
  Json body{{"target", role}, {"message", (*first)["payload"]}, {"thread", thread},
            {"class", first->value("class", "advisory")}, {"priority", first->value("priority", "normal")}};
  if (request) body["timeout_ms"] = 60'000;
  const std::string text_body = body.dump();
  const auto answer = call(request ? "/v1/request" : "/v1/send", &text_body, std::chrono::seconds(65));
  if (!answer) return 1;
  // The new thread: the one this node knows under the replay's subject.
  std::optional<Json> now;
  for (int i = 0; i < 20 && !now; ++i) {
    if (auto list = get_json(call, "/v1/threads"); list && list->is_array()) {
      for (const auto& t : *list) {
        if (t.value("subject", "") == subject) now = t;
      }
    }
  }
  std::cout << "recorded  " << (old.is_object() ? thread_line(old) : id + "  (not known to this node)") << "\n";
  std::cout << "replayed  " << (now ? thread_line(*now) : std::string("(not found on this node)")) << "\n";
  return now ? 0 : 1;
}

}  // namespace

int threads(const Call& call, bool json) {
  const auto list = get_json(call, "/v1/threads");
  if (!list) return 1;
  if (json) {
    std::cout << list->dump() << "\n";
    return 0;
  }
  for (const auto& t : *list) std::cout << thread_line(t) << "\n";
  return 0;
}

int thread(const Call& call, const ThreadArgs& args, bool json) {
  // The node's record, when it has one (404 otherwise: the audit may still).
  Json record;
  if (const auto r = call("/v1/threads?id=" + args.id, nullptr, std::chrono::seconds(5))) {
    record = Json::parse(*r, nullptr, false);
  } else if (args.audit_dirs.empty()) {
    return 1;
  }
  std::vector<Json> messages;
  if (!args.audit_dirs.empty()) {
    auto got = collect(args.audit_dirs, args.id);
    if (!got) return 2;
    messages = std::move(*got);
  }
  if (args.replay) {
    if (args.audit_dirs.empty()) {
      std::cerr << "meshctl: thread --replay needs the thread's audit records (--audit DIR)\n";
      return 2;
    }
    return replay(call, args.id, messages, record);
  }
  const Json hops = latency(messages);
  if (json) {
    std::cout << Json{{"thread", record}, {"messages", messages}, {"latency", hops}}.dump() << "\n";
    return 0;
  }
  if (record.is_object()) std::cout << thread_line(record) << "\n";
  for (const auto& m : messages) {
    std::string line = text(m, "at_ms") + "  " + text(m, "node") + "  " + text(m, "event") + " " + text(m, "kind") +
                       "  " + text(m, "from") + " -> " + text(m, "to") + "  turn " + text(m, "turn") + "  " +
                       text(m, "class") + "  " + text(m, "outcome");
    if (m.contains("took_ms")) line += "  " + text(m, "took_ms") + " ms";
    if (m.contains("cost") && m["cost"].get<double>() > 0) line += "  cost " + money(m["cost"].get<double>());
    std::cout << line << "\n";
  }
  for (const auto& h : hops) {
    std::cout << "latency " << h["measure"].get<std::string>() << "  " << h["hop"].get<std::string>() << "  n "
              << h["count"] << "  p50 " << h["p50_ms"] << " ms  p99 " << h["p99_ms"] << " ms\n";
  }
  return 0;
}

}  // namespace mesh::meshctl
