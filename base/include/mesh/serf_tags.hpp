// Node tags as Serf keeps them in memberlist's node meta: a magic byte
// 0xFF, then a go-msgpack map of string to string. Serf agents list a
// member's tags from this; the mesh reads its own markers (the ZeroMQ port,
// the registry version) from it too. Meta is at most 512 bytes on the wire
// (memberlist's MetaMaxSize), which bounds every tag.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace mesh {

// Serf's tagMagicByte.
inline constexpr std::uint8_t kSerfTagMagicByte = 0xff;
// memberlist's MetaMaxSize: the encoded tags must fit.
inline constexpr std::size_t kSerfMetaMax = 512;

std::vector<std::uint8_t> encode_serf_tags(const std::map<std::string, std::string>& tags);

// nullopt when the meta is not Serf-encoded (Serf then reads it as a role).
// Tags whose name or value is not printable text (invalid UTF-8, control
// characters) are left out: they would reach JSON, logs and tables.
std::optional<std::map<std::string, std::string>> decode_serf_tags(
    std::span<const std::uint8_t> meta);

}  // namespace mesh
