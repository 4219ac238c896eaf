#include "payload_codec.hpp"

#include <stdexcept>
#include <string>

namespace mesh::detail {

std::vector<std::uint8_t> encode_json(const nlohmann::json& value) {
  if (json_depth(value) > kMaxJsonDepth) {
    throw std::invalid_argument("a message or context nested deeper than " +
                                std::to_string(kMaxJsonDepth) + " levels");
  }
  return nlohmann::json::to_msgpack(value);
}

bool msgpack_well_formed(std::span<const std::uint8_t> bytes, std::size_t max_depth) {
  std::size_t pos = 0;
  const std::size_t size = bytes.size();
  auto need = [&](std::uint64_t n) { return n <= size - pos; };
  auto read_be = [&](std::size_t width, std::uint64_t& out) {
    if (!need(width)) return false;
    out = 0;
    for (std::size_t i = 0; i < width; ++i) out = (out << 8) | bytes[pos + i];
    pos += width;
    return true;
  };
  auto skip = [&](std::uint64_t n) {
    if (!need(n)) return false;
    pos += static_cast<std::size_t>(n);
    return true;
  };
  // Items still expected at each open level; the bottom level is the value.
  std::vector<std::uint64_t> open{1};
  while (!open.empty()) {
    if (open.back() == 0) {
      open.pop_back();
      continue;
    }
    --open.back();
    if (!need(1)) return false;
    const std::uint8_t b = bytes[pos++];
    std::uint64_t n = 0;
    std::uint64_t items = 0;  // children of a container
    bool container = false;
    if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {
      continue;
    } else if (b >= 0x80 && b <= 0x8f) {
      container = true;
      items = 2u * (b & 0x0fu);
    } else if (b >= 0x90 && b <= 0x9f) {
      container = true;
      items = b & 0x0fu;
    } else if (b >= 0xa0 && b <= 0xbf) {
      if (!skip(b & 0x1fu)) return false;
      continue;
    } else {
      switch (b) {
        case 0xc4: case 0xd9: if (!read_be(1, n) || !skip(n)) return false; break;
        case 0xc5: case 0xda: if (!read_be(2, n) || !skip(n)) return false; break;
        case 0xc6: case 0xdb: if (!read_be(4, n) || !skip(n)) return false; break;
        case 0xc7: if (!read_be(1, n) || !skip(n + 1)) return false; break;
        case 0xc8: if (!read_be(2, n) || !skip(n + 1)) return false; break;
        case 0xc9: if (!read_be(4, n) || !skip(n + 1)) return false; break;
        case 0xca: case 0xce: case 0xd2: if (!skip(4)) return false; break;
        case 0xcb: case 0xcf: case 0xd3: if (!skip(8)) return false; break;
        case 0xcc: case 0xd0: if (!skip(1)) return false; break;
        case 0xcd: case 0xd1: if (!skip(2)) return false; break;
        case 0xd4: if (!skip(2)) return false; break;
        case 0xd5: if (!skip(3)) return false; break;
        case 0xd6: if (!skip(5)) return false; break;
        case 0xd7: if (!skip(9)) return false; break;
        case 0xd8: if (!skip(17)) return false; break;
        case 0xdc: if (!read_be(2, items)) return false; container = true; break;
        case 0xdd: if (!read_be(4, items)) return false; container = true; break;
        case 0xde: if (!read_be(2, items)) return false; items *= 2; container = true; break;
        case 0xdf: if (!read_be(4, items)) return false; items *= 2; container = true; break;
        default: return false;  // 0xc1 is never used
      }
    }
    if (container && items > 0) {
      if (items > size - pos) return false;  // every item takes a byte at least
      if (open.size() > max_depth) return false;
      open.push_back(items);
    }
  }
  return pos == size;
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
