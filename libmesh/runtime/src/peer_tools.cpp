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
  std::vector<std::string> tools;  // dedicated tools of its agents (peer_tools)
};

constexpr std::size_t kMaxToolName = 64;
// An output schema longer than this (as JSON text) is named, not shown, in
// a tool's description: descriptions are read by the model on every turn.
constexpr std::size_t kMaxSchemaInDescription = 1024;
const std::set<std::string, std::less<>> kGenericTools = {"ask_peer", "notify_peer", "list_peers"};

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

template <class Items>
std::string join(const Items& items, std::string_view sep) {
  std::string out;
  for (const auto& i : items) {
    if (!out.empty()) out += sep;
    out += i;
  }
  return out;
}

// "ask_" and `who` in the characters MCP and OpenAI allow in a tool name,
// others replaced by '_', cut to fit kMaxToolName.
std::string tool_base_name(std::string_view who) {
  std::string name = "ask_";
  for (const char ch : who) {
    const auto c = static_cast<unsigned char>(ch);
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
    name += ok ? ch : '_';
  }
  if (name.size() > kMaxToolName) name.resize(kMaxToolName);
  return name;
}

bool is_object_schema(const Json& schema) {
  const auto t = schema.find("type");
  return t != schema.end() && *t == "object";
}

// A group of agents one dedicated tool asks: a whole role whose agents
// declare the same schemas, or one agent.
struct ToolGroup {
  std::string target;
  std::vector<const PeerInfo*> agents;
};

// The tools before the query: names are chosen over every reachable peer,
// so that a name means the same whatever the query.
std::vector<std::pair<PeerTool, std::vector<const PeerInfo*>>> all_peer_tools(const std::vector<PeerInfo>& peers) {
  std::map<std::string, std::vector<const PeerInfo*>> by_role;
  for (const auto& p : peers) by_role[p.card.role].push_back(&p);
  std::vector<ToolGroup> groups;
  for (auto& [role, agents] : by_role) {
    const auto& first = agents.front()->card;
    const bool alike = std::all_of(agents.begin(), agents.end(), [&](const PeerInfo* p) {
      return p->card.input_schema == first.input_schema && p->card.output_schema == first.output_schema;
    });
    if (alike) {
      if (!first.input_schema.is_null()) groups.push_back({role, agents});
      continue;
    }
    std::sort(agents.begin(), agents.end(),
              [](const PeerInfo* a, const PeerInfo* b) { return a->card.agent_id < b->card.agent_id; });
    for (const PeerInfo* p : agents) {
      if (!p->card.input_schema.is_null()) groups.push_back({p->card.agent_id, {p}});
    }
  }

  std::set<std::string, std::less<>> taken(kGenericTools.begin(), kGenericTools.end());
  std::vector<std::pair<PeerTool, std::vector<const PeerInfo*>>> out;
  for (auto& g : groups) {
    const AgentCard& card = g.agents.front()->card;
    PeerTool t;
    t.target = g.target;
    // Unique: a name cut short, or made of replaced characters, may meet
    // another; a number tells them apart.
    const std::string base = tool_base_name(g.target);
    t.name = base;
    for (int n = 2; taken.contains(t.name); ++n) {
      const std::string suffix = "_" + std::to_string(n);
      t.name = base.substr(0, kMaxToolName - suffix.size()) + suffix;
    }
    taken.insert(t.name);

    std::set<std::string> caps;
    std::set<std::string> descriptions;
    for (const PeerInfo* p : g.agents) {
      caps.insert(p->card.capabilities.begin(), p->card.capabilities.end());
      if (!p->card.description.empty()) descriptions.insert(p->card.description);
    }
    const bool role = g.target == card.role;
    t.description = "Ask " + (role ? "the " + card.role + " agent" : "the agent " + g.target + " (" + card.role + ")") +
                    " and wait for its answer";
    if (!caps.empty()) t.description += "; capabilities: " + join(caps, ", ");
    t.description += ".";
    if (!descriptions.empty()) t.description += " " + join(descriptions, " ");
    t.wrapped = !is_object_schema(card.input_schema);
    if (t.wrapped) {
      t.parameters = {{"type", "object"},
                      {"properties", {{"message", card.input_schema}}},
                      {"required", {"message"}},
                      {"additionalProperties", false}};
      t.description += " Put the request in \"message\".";
    } else {
      t.parameters = card.input_schema;
    }
    t.output_schema = card.output_schema;
    if (!t.output_schema.is_null()) {
      const std::string text = t.output_schema.dump(-1, ' ', false, Json::error_handler_t::replace);
      if (text.size() <= kMaxSchemaInDescription) {
        t.description += " Its answer follows this JSON Schema: " + text;
      } else {
        t.description += " Its answer follows a JSON Schema of its own (" + std::to_string(text.size()) +
                         " bytes, not shown here).";
      }
    }
    out.emplace_back(std::move(t), std::move(g.agents));
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.first.name < b.first.name; });
  return out;
}

}  // namespace

Json PeerTool::message_of(const Json& arguments) const {
  if (!wrapped) return arguments;
  const auto it = arguments.is_object() ? arguments.find("message") : arguments.end();
  return it == arguments.end() ? Json() : *it;
}

std::vector<PeerTool> peer_tools(const PeerClient& peers, const PeerQuery& query) {
  const auto listed = peers.list_peers();
  std::vector<PeerTool> out;
  for (auto& [tool, agents] : all_peer_tools(listed)) {
    if (std::any_of(agents.begin(), agents.end(), [&](const PeerInfo* p) { return matches(*p, query); })) {
      out.push_back(std::move(tool));
    }
  }
  return out;
}

std::optional<PeerTool> find_peer_tool(const PeerClient& peers, std::string_view name) {
  if (kGenericTools.contains(name)) return std::nullopt;
  for (auto& t : peer_tools(peers)) {
    if (t.name == name) return std::move(t);
  }
  return std::nullopt;
}

std::optional<ToolFormat> tool_format_from(std::string_view name) {
  if (name == "mcp") return ToolFormat::Mcp;
  if (name == "openai") return ToolFormat::OpenAi;
  return std::nullopt;
}

Json peers_as_tools(const PeerClient& peers, const PeerQuery& query, ToolFormat format) {
  const auto roles = roles_of(peers, query);
  const auto dedicated = peer_tools(peers, query);
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
  std::string own;
  if (!dedicated.empty()) {
    std::vector<std::string> names;
    for (const auto& t : dedicated) names.push_back(t.name + " (" + t.target + ")");
    own = " Peers with a tool of their own take their request in its shape: " + join(names, ", ") + ".";
  }

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
    Json output_schema = nullptr;
  };
  std::vector<Tool> tools = {
      {"ask_peer", "Ask another agent of the mesh and wait for its answer. Reachable: " + who + "." + own,
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
  for (const auto& t : dedicated) tools.push_back({t.name, t.description, t.parameters, t.output_schema});
  Json out = Json::array();
  for (const auto& t : tools) {
    if (format == ToolFormat::Mcp) {
      Json def = {{"name", t.name}, {"description", t.description}, {"inputSchema", t.schema}};
      // MCP's outputSchema must describe an object (structured content).
      if (!t.output_schema.is_null() && is_object_schema(t.output_schema)) def["outputSchema"] = t.output_schema;
      out.push_back(std::move(def));
    } else {
      out.push_back({{"type", "function"},
                     {"function", {{"name", t.name}, {"description", t.description}, {"parameters", t.schema}}}});
    }
  }
  return out;
}

std::string cognitive_context(const PeerClient& peers, const PeerQuery& query) {
  auto roles = roles_of(peers, query);
  if (roles.empty()) return "No other agents are reachable right now.";
  const auto listed = peers.list_peers();
  for (const auto& t : peer_tools(peers, query)) {
    // The tool's role: its target, or the role of the agent it names.
    std::string role = t.target;
    for (const auto& p : listed) {
      if (p.card.agent_id == t.target) role = p.card.role;
    }
    if (auto r = roles.find(role); r != roles.end()) r->second.tools.push_back(t.name);
  }
  std::string out = "Available peers (call the ask_peer tool with target set to a role):";
  for (const auto& [role, r] : roles) {
    const std::size_t n = r.agents.size();
    out += "\n- " + role + " (" + std::to_string(n) + (n == 1 ? " agent" : " agents") +
           "; capabilities: " + (r.capabilities.empty() ? std::string("none") : join(r.capabilities, ", ")) + ")";
    for (const auto& d : r.descriptions) out += "\n  " + d;
    if (!r.tools.empty()) out += "\n  tool of its own, taking its input schema: " + join(r.tools, ", ");
  }
  return out;
}

}  // namespace mesh
