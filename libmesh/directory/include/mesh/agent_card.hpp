// Agent cards: what a node advertises about each of its agents, and the
// wire form of a node's whole agent registry. The registry travels outside
// SWIM's 512-byte node meta, which carries only its version: a node that
// sees a newer version asks the owner for the registry over the transport.
//
// A registry on the wire is one MessagePack map (nlohmann::json::to_msgpack):
//
//   {
//     "v":       1,                 format version; anything else is refused
//     "node":    "node-a",          the advertising node's SWIM name
//     "version": 17,                registry version, grows with every change
//     "cards": [                    at most kMaxCards, agent_ids unique
//       { "agent_id":     "coder-1a2b3c4d",
//         "role":         "coder",
//         "capabilities": ["python", "review"],   at most kMaxCapabilities
//         "description":  "writes code",
//         "status":       "active",
//         "version":      17,       registry version when the card last changed
//         "input_schema":  "{\"type\":\"object\",...}",   optional: JSON text
//         "output_schema": "{...}" },                       optional: JSON text
//       ...
//     ]
//   }
//
// Every key shown is required but the two schemas; unknown keys are
// ignored, so a later sender may add fields without bumping "v" (a change
// old readers would misread must bump it). A card's node is not sent per
// card: the receiver sets it from "node". Strings are UTF-8 of at most
// kMaxStringBytes.
//
// The schemas (what the agent takes in a request, what it answers: JSON
// Schema objects, for LLM tools, see mesh/peer_tools.hpp) travel as compact
// JSON text in a string, not as nested MessagePack: a reader that predates
// them sees one string under a key it ignores, within the depth and size
// bounds it applies to every registry. Each is at most kMaxSchemaBytes of
// text, nested at most kMaxSchemaDepth deep, and must be a JSON object; a
// card holding a schema that is not (or not a string, or not JSON) makes
// the registry malformed, as any other bad field does.
#pragma once

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace mesh {

inline constexpr std::uint64_t kRegistryFormatVersion = 1;
inline constexpr std::size_t kMaxCards = 10'000;
inline constexpr std::size_t kMaxCapabilities = 256;
inline constexpr std::size_t kMaxStringBytes = 64 * 1024;
// Larger input is refused before it is parsed.
inline constexpr std::size_t kMaxRegistryBytes = 16 * 1024 * 1024;
// An input or output schema: its compact JSON text, and how deep objects
// and arrays nest in it (the schema itself is level 1). Below
// kMaxStringBytes, so a reader that ignores the schemas takes the card.
inline constexpr std::size_t kMaxSchemaBytes = 32 * 1024;
inline constexpr std::size_t kMaxSchemaDepth = 32;

struct AgentCard {
  std::string agent_id;
  std::string role;
  std::vector<std::string> capabilities;
  std::string description;
  std::string status = "active";
  std::string node;           // the node the agent lives on
  std::uint64_t version = 0;  // registry version of the card's last change
  // JSON Schemas of what the agent takes in a request and what it answers;
  // null when it declares none, a JSON object otherwise (validate_card).
  nlohmann::json input_schema{};
  nlohmann::json output_schema{};

  bool operator==(const AgentCard&) const = default;
};

struct NodeRegistry {
  std::string node;
  std::uint64_t version = 0;
  std::vector<AgentCard> cards;

  bool operator==(const NodeRegistry&) const = default;
};

// nullopt when the card may be registered or advertised; otherwise one line
// naming the first problem: agent_id or role empty, or holding whitespace or
// a control character; status empty or holding a control character; a
// capability empty or holding a control character; more than
// kMaxCapabilities capabilities; a string longer than kMaxStringBytes or not
// valid UTF-8 (the admin endpoint prints cards as JSON text, which must be
// UTF-8); an input or output schema that is neither null nor a JSON object,
// is longer than kMaxSchemaBytes as compact JSON text, nests deeper than
// kMaxSchemaDepth, or holds what JSON text cannot carry (invalid UTF-8, a
// binary value, a NaN or infinite number). The node and version fields are
// not checked: the directory sets them.
std::optional<std::string> validate_card(const AgentCard& card);

// validate_card for every card, plus: node non-empty, without whitespace or
// control characters and valid UTF-8; at most kMaxCards cards; agent_ids
// unique within the registry.
std::optional<std::string> validate_registry(const NodeRegistry& registry);

// The wire form above. Cards' node fields are not encoded.
std::vector<std::uint8_t> encode_registry(const NodeRegistry& registry);

// Never throws. nullopt for anything malformed: not MessagePack, more than
// kMaxRegistryBytes, nested deeper than the shape needs (bounded, so hostile
// nesting cannot exhaust the stack), a missing key or a wrong type, an
// unknown "v", or a registry validate_registry refuses. Each card's node is
// set to the registry's node.
std::optional<NodeRegistry> decode_registry(std::span<const std::uint8_t> bytes);

// The card as the admin endpoint and meshctl show it:
// {agent_id, role, capabilities, description, status, node, version}, and
// input_schema / output_schema (JSON objects) when the card has them.
nlohmann::json card_to_json(const AgentCard& card);

// The reverse, never throws. agent_id and role are required strings; the
// other keys are optional (defaults as in AgentCard) but must have the right
// type when present (the schemas: an object or null). Unknown keys are ignored. The result is not validated:
// call validate_card for a message to show the user.
std::optional<AgentCard> card_from_json(const nlohmann::json& j);

}  // namespace mesh
