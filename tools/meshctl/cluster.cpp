#include "cluster.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <ctime>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <string_view>
#include <utility>

#include "mesh/cli.hpp"
#include "mesh/json_limits.hpp"
#include "mesh/text.hpp"
#include "format.hpp"

namespace mesh::meshctl {
namespace {

using Json = nlohmann::json;

// --tag K=V, checked before anything is asked of the node.
std::map<std::string, std::string> wanted_tags(const std::vector<std::string>& given) {
  std::map<std::string, std::string> out;
  for (const auto& t : given) {
    const auto eq = t.find('=');
    if (eq == std::string::npos || eq == 0) {
      throw UsageError("members: --tag \"" + escape_text(t) + "\" is not key=value");
    }
    out[t.substr(0, eq)] = t.substr(eq + 1);
  }
  return out;
}

bool kept(const Json& m, const MembersArgs& args, const std::map<std::string, std::string>& tags) {
  const std::string state = m.at("state").get<std::string>();
  if (!args.statuses.empty() && std::find(args.statuses.begin(), args.statuses.end(), state) == args.statuses.end()) {
    return false;
  }
  const Json& have = m.at("tags");
  for (const auto& [k, v] : tags) {
    const auto it = have.find(k);
    if (it == have.end() || !it->is_string() || it->get<std::string>() != v) return false;
  }
  return true;
}

Json json_arg(const std::string& command, const std::string& what, const std::string& text, bool object) {
  std::string why;
  auto j = parse_json_bounded(text, &why);
  if (!j) throw UsageError(command + ": " + what + ": " + why);
  if (object && !j->is_object()) throw UsageError(command + ": " + what + " must be a JSON object");
  return std::move(*j);
}

// One line of JSON from the network, safe to print.
std::string compact(const Json& j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace); }

// 2026-12-06T23:30:01.123Z
std::string utc_text(std::int64_t ms) {
  const std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  char out[48];
  std::snprintf(out, sizeof out, "%s.%03dZ", buf, static_cast<int>(ms % 1000));
  return out;
}

std::string versions(const Json& v) {
  return std::to_string(v.at("cur").get<int>()) + " (" + std::to_string(v.at("min").get<int>()) + "-" +
         std::to_string(v.at("max").get<int>()) + ")";
}

}  // namespace

bool internal_tag(const std::string& key) {
  static constexpr std::array<std::string_view, 6> kInternal = {"mesh", "zmq", "rv", "re", "zkey", "skey"};
  return std::find(kInternal.begin(), kInternal.end(), key) != kInternal.end();
}

int members(const Call& call, const MembersArgs& args, bool json, const std::string& where) {
  const auto tags = wanted_tags(args.tags);
  const auto body = call("/v1/members", nullptr, std::chrono::seconds(5));
  if (!body) return 1;
  struct Row {
    std::string name, addr, state, tags, detail;
  };
  std::vector<Row> rows;
  Json selected = Json::array();
  try {
    for (const auto& m : Json::parse(*body)) {
      if (!kept(m, args, tags)) continue;
      selected.push_back(m);
      Row r;
      // Names and tags came from the network: one line each, whatever they hold.
      r.name = escape_text(m.at("name").get<std::string>());
      r.addr = endpoint_text(m.at("addr").get<std::string>(), m.at("port").get<unsigned>());
      r.state = m.at("state").get<std::string>();
      for (const auto& [k, v] : m.at("tags").items()) {
        if (!args.detailed && internal_tag(k)) continue;
        if (!r.tags.empty()) r.tags += ",";
        r.tags += k + "=" + v.get<std::string>();
      }
      if (args.detailed) {
        r.detail = "incarnation=" + std::to_string(m.at("incarnation").get<std::uint64_t>()) +
                   "  protocol=" + versions(m.at("protocol")) + "  delegate=" + versions(m.at("delegate"));
      }
      rows.push_back(std::move(r));
    }
  } catch (const std::exception& e) {
    std::cerr << "meshctl: unexpected answer from " << where << ": " << e.what() << "\n";
    return 1;
  }
  if (json) {
    std::cout << selected.dump() << "\n";
    return 0;
  }
  std::sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) { return a.name < b.name; });
  // serf members: name, address, status, tags; columns padded to the widest.
  std::size_t wn = 0, wa = 0, ws = 0, wt = 0;
  for (const auto& r : rows) {
    wn = std::max(wn, r.name.size());
    wa = std::max(wa, r.addr.size());
    ws = std::max(ws, r.state.size());
    wt = std::max(wt, escape_text(r.tags).size());
  }
  for (const auto& r : rows) {
    std::string line = pad(r.name, wn) + "  " + pad(r.addr, wa) + "  " + pad(r.state, ws) + "  " +
                       (args.detailed ? pad(escape_text(r.tags), wt) + "  " + r.detail : escape_text(r.tags));
    while (!line.empty() && line.back() == ' ') line.pop_back();
    std::cout << line << "\n";
  }
  return 0;
}

int force_leave(const Call& call, const std::string& node, bool json) {
  const std::string body = Json{{"node", node}}.dump();
  const auto answer = call("/v1/force-leave", &body, std::chrono::seconds(10));
  if (!answer) return 1;
  if (json) {
    std::cout << *answer << "\n";
  } else {
    const bool already = Json::parse(*answer, nullptr, false).value("already", false);
    std::cout << escape_text(node) << (already ? " had left already" : " is forced to leave: left on every member")
              << "\n";
  }
  return 0;
}

int query(const Call& call, const QueryArgs& a, bool json, const std::string& where) {
  const std::size_t want = a.capability.empty() ? 2 : 1;
  if (a.words.size() != want) {
    throw UsageError(a.capability.empty() ? "query: give ROLE MESSAGE (or --capability C MESSAGE)"
                                          : "query: with --capability, give MESSAGE only");
  }
  Json in{{"message", json_arg("query", "MESSAGE", a.words.back(), false)},
          {"policy", a.policy},
          {"timeout_ms", a.timeout_ms}};
  if (a.capability.empty()) {
    in["role"] = a.words.front();
  } else {
    in["capability"] = a.capability;
  }
  if (!a.context.empty()) in["context"] = json_arg("query", "--context", a.context, true);
  const std::string body = in.dump();
  const auto answer = call("/v1/query", &body, std::chrono::milliseconds(a.timeout_ms) + std::chrono::seconds(5));
  if (!answer) return 1;
  try {
    const Json out = Json::parse(*answer);
    const bool satisfied = out.at("satisfied").get<bool>();
    if (json) {
      std::cout << *answer << "\n";
      return satisfied ? 0 : 1;
    }
    const auto& responses = out.at("responses");
    const auto& missing = out.at("missing");
    for (const auto& r : responses) {
      std::cout << escape_text(r.at("agent_id").get<std::string>()) << " (" << escape_text(r.at("node").get<std::string>())
                << "): " << compact(r.at("response")) << "\n";
    }
    for (const auto& m : missing) {
      std::cout << escape_text(m.at("agent_id").get<std::string>()) << " (" << escape_text(m.at("node").get<std::string>())
                << "): no answer: " << m.at("code").get<std::string>() << "\n";
    }
    std::cout << responses.size() << " of " << responses.size() + missing.size() << " answered; policy " << a.policy
              << (satisfied ? " met" : " not met") << "\n";
    return satisfied ? 0 : 1;
  } catch (const std::exception& e) {
    std::cerr << "meshctl: unexpected answer from " << where << ": " << e.what() << "\n";
    return 1;
  }
}

int broadcast(const Call& call, const BroadcastArgs& a, bool json, const std::string& where) {
  Json in{{"message", json_arg("broadcast", "MESSAGE", a.message, false)}};
  if (!a.role.empty()) in["role"] = a.role;
  if (!a.capability.empty()) in["capability"] = a.capability;
  if (!a.context.empty()) in["context"] = json_arg("broadcast", "--context", a.context, true);
  const std::string body = in.dump();
  const auto answer = call("/v1/broadcast", &body, std::chrono::seconds(10));
  if (!answer) return 1;
  if (json) {
    std::cout << *answer << "\n";
    return 0;
  }
  try {
    std::cout << "sent to " << Json::parse(*answer).at("sent").get<std::uint64_t>() << " agents\n";
  } catch (const std::exception& e) {
    std::cerr << "meshctl: unexpected answer from " << where << ": " << e.what() << "\n";
    return 1;
  }
  return 0;
}

int monitor(const Call& call, const MonitorArgs& a, bool json, const std::string& where) {
  // Where to start: now.
  auto answer = call("/v1/events", nullptr, std::chrono::seconds(10));
  if (!answer) return 1;
  std::uint64_t index = 0;
  std::uint64_t shown = 0;
  try {
    index = Json::parse(*answer).at("index").get<std::uint64_t>();
    std::cerr << "meshctl: watching " << where << " (events after #" << index << "; Ctrl-C to stop)" << std::endl;
    for (;;) {
      answer = call("/v1/events?index=" + std::to_string(index) + "&wait_ms=20000", nullptr, std::chrono::seconds(30));
      if (!answer) return 1;
      const Json out = Json::parse(*answer);
      if (const auto missed = out.value("missed", std::uint64_t{0}); missed > 0) {
        std::cerr << "meshctl: " << missed << " events were dropped before they could be shown\n";
      }
      for (const auto& e : out.at("events")) {
        if (json) {
          std::cout << compact(e) << std::endl;
        } else {
          std::string line = utc_text(e.at("time_ms").get<std::int64_t>()) + "  " + e.at("type").get<std::string>() + "  " +
                             escape_text(e.at("node").get<std::string>());
          if (e.contains("agent_id")) {
            line += "  " + escape_text(e.at("agent_id").get<std::string>()) + " (" +
                    escape_text(e.at("role").get<std::string>()) + ")";
          }
          std::cout << line << std::endl;
        }
        if (a.count > 0 && ++shown >= a.count) return 0;
      }
      index = std::max(index, out.at("index").get<std::uint64_t>());
    }
  } catch (const std::exception& e) {
    std::cerr << "meshctl: unexpected answer from " << where << ": " << e.what() << "\n";
    return 1;
  }
}

}  // namespace mesh::meshctl
