// Standard base64 with '=' padding (RFC 4648 section 4; Go's
// base64.StdEncoding, the form of Serf's -encrypt keys and of our CURVE
// keys' cousins). Strict about the form, so that a key that is almost
// right is refused instead of read as some other key; written here (a
// table and a loop) rather than taken from a crypto library.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mesh {

// nullopt unless `text` is non-empty, a multiple of four characters long,
// drawn from A-Z a-z 0-9 + /, with '=' only as the last one or two
// characters. No whitespace is skipped.
std::optional<std::vector<std::uint8_t>> decode_base64(std::string_view text);

std::string encode_base64(const std::vector<std::uint8_t>& bytes);

}  // namespace mesh
