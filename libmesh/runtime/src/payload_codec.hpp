// JSON payloads and contexts as MessagePack, decoded without trusting the
// bytes: nlohmann's reader recurses once per nesting level, so hostile
// nesting is refused by an iterative pre-scan before it is parsed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include "mesh/json_limits.hpp"
#include <optional>
#include <span>
#include <vector>

namespace mesh::detail {

// Deeper JSON is refused: on receipt (counted as malformed there) and
// when a sender hands it to encode_json.
using mesh::kMaxJsonDepth;

struct PayloadLimits {
  std::size_t max_bytes = 0;  // payload + context of one message
};

// Throws std::invalid_argument for a value nested deeper than
// kMaxJsonDepth (the encoder recurses per level; so would the receiver's
// decoder, which refuses it).
std::vector<std::uint8_t> encode_json(const nlohmann::json& value);

// True when `bytes` is exactly one well-formed MessagePack value nested at
// most `max_depth` deep. Never throws.
bool msgpack_well_formed(std::span<const std::uint8_t> bytes, std::size_t max_depth = kMaxJsonDepth);

// nullopt for anything malformed; never throws. Empty bytes are `empty_as`.
std::optional<nlohmann::json> decode_json(std::span<const std::uint8_t> bytes,
                                          const nlohmann::json& empty_as);

}  // namespace mesh::detail
