#include "payload_codec.hpp"

#include <stdexcept>
#include <string>

#include "mesh/msgpack_lite.hpp"

namespace mesh::detail {

namespace {
constexpr std::size_t kEncodeReserve = 64;
}  // namespace

std::vector<std::uint8_t> encode_json(const nlohmann::json& value) {
  if (json_depth(value) > kMaxJsonDepth) {
    throw std::invalid_argument("a message or context nested deeper than " +
                                std::to_string(kMaxJsonDepth) + " levels");
  }
  // The writer appends a byte or a few at a time: from an empty vector, a
  // small payload (a number, a short object) grew through four or five
  // allocations. Room for one up front makes that one.
  std::vector<std::uint8_t> out;
  out.reserve(kEncodeReserve);
  nlohmann::json::to_msgpack(value, out);
  return out;
}

bool msgpack_well_formed(std::span<const std::uint8_t> bytes, std::size_t max_depth) {
  return mp::well_formed(bytes, max_depth);
}

std::optional<nlohmann::json> decode_json(std::span<const std::uint8_t> bytes,
                                          const nlohmann::json& empty_as) {
  if (bytes.empty()) return empty_as;
  if (!msgpack_well_formed(bytes)) return std::nullopt;
  try {
    return nlohmann::json::from_msgpack(bytes.begin(), bytes.end());
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

}  // namespace mesh::detail
