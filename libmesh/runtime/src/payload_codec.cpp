#include "payload_codec.hpp"

#include <stdexcept>
#include <string>

#include "mesh/msgpack_lite.hpp"

namespace mesh::detail {

namespace {
constexpr std::size_t kEncodeReserve = 64;

// Where nlohmann's MessagePack writer puts its bytes: the vector of the
// call at hand. to_msgpack makes its output adapter with make_shared, an
// allocation (and a free) per message for a few bytes of output; one
// adapter per thread, pointed at each call's vector, takes none. The
// writer is the same, so are the bytes.
class VectorSink final : public nlohmann::detail::output_adapter_protocol<std::uint8_t> {
 public:
  std::vector<std::uint8_t>* out = nullptr;
  void write_character(std::uint8_t c) override { out->push_back(c); }
  void write_characters(const std::uint8_t* s, std::size_t length) override { out->insert(out->end(), s, s + length); }
};

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
  thread_local const auto sink = std::make_shared<VectorSink>();
  sink->out = &out;
  nlohmann::detail::binary_writer<nlohmann::json, std::uint8_t>(sink).write_msgpack(value);
  sink->out = nullptr;
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
