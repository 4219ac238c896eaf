#include "cluster.hpp"

#include <algorithm>
#include <array>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <string_view>
#include <utility>

#include "mesh/cli.hpp"
#include "mesh/text.hpp"

namespace mesh::meshctl {
namespace {

using Json = nlohmann::json;

std::string pad(std::string s, std::size_t w) {
  if (s.size() < w) s.resize(w, ' ');
  return s;
}

std::string endpoint_of(const std::string& ip, unsigned port) {
  const bool v6 = ip.find(':') != std::string::npos;
  return (v6 ? "[" + ip + "]" : ip) + ":" + std::to_string(port);
}

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

std::string versions(const Json& v) {
  return std::to_string(v.at("cur").get<int>()) + " (" + std::to_string(v.at("min").get<int>()) + "-" +
         std::to_string(v.at("max").get<int>()) + ")";
}

}  // namespace

bool internal_tag(const std::string& key) {
  static constexpr std::array<std::string_view, 5> kInternal = {"mesh", "zmq", "rv", "zkey", "skey"};
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
      r.addr = endpoint_of(m.at("addr").get<std::string>(), m.at("port").get<unsigned>());
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

}  // namespace mesh::meshctl
