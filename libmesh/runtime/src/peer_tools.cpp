#include "mesh/peer_tools.hpp"

#include <algorithm>
#include <cstddef>
#include <map>
#include <set>
#include <utility>
#include <vector>

namespace mesh {

namespace {

struct RoleView {
  std::set<std::string> capabilities;
  std::set<std::string> descriptions;
  std::vector<std::string> agents;
};

bool matches(const PeerInfo& p, const PeerQuery& q) {
  if (!q.role.empty() && p.card.role != q.role) return false;
  if (!q.capability.empty()) {
    const auto& caps = p.card.capabilities;
    if (std::find(caps.begin(), caps.end(), q.capability) == caps.end()) return false;
  }
  return true;
}

// Role -> what its reachable agents offer, in role order.
std::map<std::string, RoleView> roles_of(const PeerClient& peers, const PeerQuery& query) {
  std::map<std::string, RoleView> roles;
  for (const auto& p : peers.list_peers()) {
    if (!matches(p, query)) continue;
    auto& r = roles[p.card.role];
    r.capabilities.insert(p.card.capabilities.begin(), p.card.capabilities.end());
    if (!p.card.description.empty()) r.descriptions.insert(p.card.description);
    r.agents.push_back(p.card.agent_id);
  }
  return roles;
}

std::string join(const std::set<std::string>& items, std::string_view sep) {
  std::string out;
  for (const auto& i : items) {
    if (!out.empty()) out += sep;
    out += i;
  }
  return out;
}

}  // namespace

std::optional<ToolFormat> tool_format_from(std::string_view name) {
  if (name == "mcp") return ToolFormat::Mcp;
  if (name == "openai") return ToolFormat::OpenAi;
  return std::nullopt;
}

Json peers_as_tools(const PeerClient& peers, const PeerQuery& query, ToolFormat format) {
  const auto roles = roles_of(peers, query);
  std::string who;
  std::vector<std::string> ids;
  for (const auto& [role, r] : roles) {
    if (!who.empty()) who += "; ";
    const std::string caps = r.capabilities.empty() ? "none" : join(r.capabilities, ", ");
    who += role + " (" + caps + ")";
    if (!r.descriptions.empty()) who += ": " + join(r.descriptions, "; ");
    ids.insert(ids.end(), r.agents.begin(), r.agents.end());
  }
  if (who.empty()) who = "no peer is reachable now";
  std::sort(ids.begin(), ids.end());

  Json target = {{"type", "string"}, {"description", "A role (one of its agents is chosen) or an agent_id."}};
  if (!roles.empty()) {
    Json names = Json::array();
    for (const auto& [role, r] : roles) names.push_back(role);
    for (const auto& id : ids) names.push_back(id);
    target["enum"] = std::move(names);
  }
  const Json message = {
      {"type", "object"},
      {"description", "The JSON object to send; by convention {\"question\": ...} or {\"task\": ...}."}};
  const Json timeout = {
      {"type", "number"}, {"minimum", 0}, {"description", "Seconds to wait for the answer (default 30)."}};

  struct Tool {
    std::string name, description;
    Json schema;
  };
  const std::vector<Tool> tools = {
      {"ask_peer", "Ask another agent of the mesh and wait for its answer. Reachable: " + who + ".",
       {{"type", "object"},
        {"properties", {{"target", target}, {"message", message}, {"timeout", timeout}}},
        {"required", {"target", "message"}},
        {"additionalProperties", false}}},
      {"notify_peer", "Tell another agent something, without waiting for an answer. Reachable: " + who + ".",
       {{"type", "object"},
        {"properties", {{"target", target}, {"message", message}}},
        {"required", {"target", "message"}},
        {"additionalProperties", false}}},
      {"list_peers", "List the agents reachable now: agent_id, role, capabilities, description, node.",
       {{"type", "object"}, {"properties", Json::object()}, {"additionalProperties", false}}},
  };
  Json out = Json::array();
  for (const auto& t : tools) {
    if (format == ToolFormat::Mcp) {
      out.push_back({{"name", t.name}, {"description", t.description}, {"inputSchema", t.schema}});
    } else {
      out.push_back({{"type", "function"},
                     {"function", {{"name", t.name}, {"description", t.description}, {"parameters", t.schema}}}});
    }
  }
  return out;
}

std::string cognitive_context(const PeerClient& peers, const PeerQuery& query) {
  const auto roles = roles_of(peers, query);
  if (roles.empty()) return "No other agents are reachable right now.";
  std::string out = "Available peers (call the ask_peer tool with target set to a role):";
  for (const auto& [role, r] : roles) {
    const std::size_t n = r.agents.size();
    out += "\n- " + role + " (" + std::to_string(n) + (n == 1 ? " agent" : " agents") +
           "; capabilities: " + (r.capabilities.empty() ? std::string("none") : join(r.capabilities, ", ")) + ")";
    for (const auto& d : r.descriptions) out += "\n  " + d;
  }
  return out;
}

}  // namespace mesh
