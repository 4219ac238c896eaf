#include "mesh/serf_tags.hpp"

#include "mesh/msgpack_lite.hpp"
#include "mesh/text.hpp"

namespace mesh {

std::vector<std::uint8_t> encode_serf_tags(const std::map<std::string, std::string>& tags) {
  std::vector<std::uint8_t> out;
  out.push_back(kSerfTagMagicByte);
  mp::Writer w(out);
  w.map_header(tags.size());
  for (const auto& [k, v] : tags) {
    w.raw(k);
    w.raw(v);
  }
  return out;
}

std::optional<std::map<std::string, std::string>> decode_serf_tags(
    std::span<const std::uint8_t> meta) {
  if (meta.empty() || meta[0] != kSerfTagMagicByte) return std::nullopt;
  mp::Reader r(meta.subspan(1));
  auto n = r.map_header();
  if (!n) return std::nullopt;
  std::map<std::string, std::string> tags;
  for (std::size_t i = 0; i < *n; ++i) {
    auto k = r.str();
    if (!k) return std::nullopt;
    auto v = r.str();
    if (!v) return std::nullopt;
    // Meta is bounded on the wire, so the lengths are too; only the text
    // itself is checked.
    if (check_text("tag name", *k, kSerfMetaMax, /*allow_empty=*/true) ||
        check_text("tag value", *v, kSerfMetaMax, /*allow_empty=*/true)) {
      continue;
    }
    tags.insert_or_assign(std::string(*k), std::string(*v));
  }
  return tags;
}

}  // namespace mesh
