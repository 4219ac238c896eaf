// Peers rendered for an LLM agent: tool definitions and a system-prompt
// paragraph describing who is reachable (docs/python.md, "For LLM agents";
// the Python package's peers.as_tools() and get_cognitive_context() are
// these functions).
//
//   auto tools = mesh::peers_as_tools(peers(), {}, mesh::ToolFormat::OpenAi);
//   auto prompt = "You are a planner.\n\n" + mesh::cognitive_context(peers());
//
// Three tools: ask_peer {"target", "message", "timeout"} (a request; its
// result is the answer), notify_peer {"target", "message"} and list_peers
// {}. The model picks a peer through ask_peer's "target", an enum of the
// roles and agent ids reachable now, each role described by its
// capabilities and its agents' descriptions. The agent runs the call
// itself (PeerClient::request with the target and message).
//
// A peer whose card carries an input schema (AgentSpec::input_schema) gets
// a tool of its own besides, "ask_<role>" (or "ask_<agent_id>" when the
// agents of its role do not all declare the same schemas), whose
// parameters are that schema: the model fills in the peer's request
// itself, checked by the schema, and the call's arguments are the message.
// Its output schema, when there is one, is described in the tool's
// description and, in the MCP shape, given as "outputSchema".
//
//   for (const auto& call : model_calls) {
//     if (auto tool = mesh::find_peer_tool(peers(), call.name)) {
//       auto answer = co_await peers().request(tool->target, tool->message_of(call.arguments));
//     } else { /* ask_peer, notify_peer, list_peers */ }
//   }
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mesh/peer_client.hpp"

namespace mesh {

enum class ToolFormat : std::uint8_t {
  Mcp,    // MCP tools/list entries: {"name", "description", "inputSchema"}
  OpenAi  // OpenAI function calling: {"type": "function", "function": {"name", "description", "parameters"}}
};
// "mcp", "openai"; nullopt otherwise.
std::optional<ToolFormat> tool_format_from(std::string_view name);

// A tool of a peer with an input schema.
struct PeerTool {
  std::string name;         // "ask_<role>" or "ask_<agent_id>", [A-Za-z0-9_-]{1,64}, unique
  std::string target;       // where a call goes: the role, or the agent_id
  std::string description;  // who it asks, and what the answer is
  Json parameters;          // the tool's JSON Schema (an object schema)
  Json output_schema;       // the peer's output schema; null when none
  // The peer's input schema is not an object schema (MCP and OpenAI want
  // one): the parameters are {"message": <it>}, and a call's message is
  // its "message".
  bool wrapped = false;

  // The message a call with these arguments sends.
  Json message_of(const Json& arguments) const;
};

// The dedicated tools for the peers `peers` reaches that declare an input
// schema, those matching `query` (a tool is kept when one of its agents
// matches), ordered by name. Names are chosen over every reachable peer,
// whatever the query, so a name means the same in every rendering.
std::vector<PeerTool> peer_tools(const PeerClient& peers, const PeerQuery& query = {});

// The dedicated tool named `name` as the directory has it now; nullopt for
// any other name (ask_peer, notify_peer, list_peers included).
std::optional<PeerTool> find_peer_tool(const PeerClient& peers, std::string_view name);

// The three generic tools, then the dedicated ones (peer_tools), for the
// peers `peers` reaches that match `query` (an empty query: every peer),
// as a JSON array in `format`. Reads the directory only (never the
// network); call it again for a fresh view.
Json peers_as_tools(const PeerClient& peers, const PeerQuery& query = {}, ToolFormat format = ToolFormat::Mcp);

// Who is reachable, as text for a system prompt: a line per role with its
// number of agents and capabilities, then its agents' descriptions, and
// the name of its dedicated tool when it has one.
std::string cognitive_context(const PeerClient& peers, const PeerQuery& query = {});

}  // namespace mesh
