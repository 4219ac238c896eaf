// Bounds on the JSON that users and peers hand the mesh.
//
// nlohmann::json's MessagePack encoder, its serialiser and its comparison
// recurse once per nesting level, so a value nested 100 000 deep (200 KB
// of "[[[[...") overflows the stack of whoever touches it. Every JSON
// value that enters from outside (an admin request body, a message or
// context given to PeerClient, a payload received from a peer) is held to
// kMaxJsonDepth levels before anything that recurses without a bound sees
// it.
#pragma once

#include <cstddef>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

namespace mesh {

// Deepest nesting accepted: objects and arrays inside each other. A peer
// refuses deeper payloads as malformed; PeerClient refuses to send them.
inline constexpr std::size_t kMaxJsonDepth = 128;

// Nesting depth of `value`: 0 for a scalar, 1 for a flat array or object.
// Looks no deeper than `stop_at` + 1 levels (enough to know it is over).
std::size_t json_depth(const nlohmann::json& value, std::size_t stop_at = kMaxJsonDepth);

// `text` parsed as one JSON value, or nullopt with `error` saying why
// (syntax, or nesting deeper than `max_depth`). Never throws; the depth is
// checked by a scan of the text before the parser (which keeps a stack of
// its own) builds anything.
std::optional<nlohmann::json> parse_json_bounded(std::string_view text, std::string* error = nullptr,
                                                 std::size_t max_depth = kMaxJsonDepth);

}  // namespace mesh
