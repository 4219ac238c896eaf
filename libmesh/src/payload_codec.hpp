// JSON payloads and contexts as MessagePack, decoded without trusting the
// bytes: nlohmann's reader recurses once per nesting level, so hostile
// nesting is refused by an iterative pre-scan before it is parsed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <vector>

namespace mesh::detail {

// Deeper JSON is refused (on receipt; a sender that builds it gets it
// refused by the receiver, counted as malformed there).
inline constexpr std::size_t kMaxJsonDepth = 128;

struct PayloadLimits {
  std::size_t max_bytes = 0;  // payload + context of one message
};

std::vector<std::uint8_t> encode_json(const nlohmann::json& value);

// True when `bytes` is exactly one well-formed MessagePack value nested at
// most `max_depth` deep. Never throws.
bool msgpack_well_formed(std::span<const std::uint8_t> bytes, std::size_t max_depth = kMaxJsonDepth);

// nullopt for anything malformed; never throws. Empty bytes are `empty_as`.
std::optional<nlohmann::json> decode_json(std::span<const std::uint8_t> bytes,
                                          const nlohmann::json& empty_as);

}  // namespace mesh::detail
