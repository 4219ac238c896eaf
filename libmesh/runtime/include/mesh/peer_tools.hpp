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
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "mesh/peer_client.hpp"

namespace mesh {

enum class ToolFormat : std::uint8_t {
  Mcp,    // MCP tools/list entries: {"name", "description", "inputSchema"}
  OpenAi  // OpenAI function calling: {"type": "function", "function": {"name", "description", "parameters"}}
};
// "mcp", "openai"; nullopt otherwise.
std::optional<ToolFormat> tool_format_from(std::string_view name);

// The three tools for the peers `peers` reaches that match `query` (an
// empty query: every peer), as a JSON array in `format`. Reads the
// directory only (never the network); call it again for a fresh view.
Json peers_as_tools(const PeerClient& peers, const PeerQuery& query = {}, ToolFormat format = ToolFormat::Mcp);

// Who is reachable, as text for a system prompt: a line per role with its
// number of agents and capabilities, then its agents' descriptions.
std::string cognitive_context(const PeerClient& peers, const PeerQuery& query = {});

}  // namespace mesh
