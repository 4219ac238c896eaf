#include "mesh/swim/types.hpp"

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "mesh/swim/messages.hpp"
#include "mesh/text.hpp"

namespace mesh::swim {

namespace {

void append_hex16(std::string& out, unsigned v) {
  constexpr char kHex[] = "0123456789abcdef";
  bool started = false;
  for (int shift = 12; shift >= 0; shift -= 4) {
    const unsigned nibble = (v >> shift) & 0xfu;
    if (nibble != 0 || started || shift == 0) {
      out.push_back(kHex[nibble]);
      started = true;
    }
  }
}

void append_ipv4(std::string& out, const std::uint8_t* b) {
  for (int i = 0; i < 4; ++i) {
    if (i != 0) out.push_back('.');
    out += std::to_string(b[i]);
  }
}

// RFC 5952 text form: lowercase, no leading zeros, the longest run of two
// or more zero groups (the first one on a tie) shortened to "::".
void append_ipv6(std::string& out, const std::array<std::uint8_t, 16>& ip) {
  unsigned groups[8];
  for (std::size_t i = 0; i < 8; ++i) groups[i] = (unsigned{ip[2 * i]} << 8) | ip[2 * i + 1];
  int best_start = -1;
  int best_len = 0;
  for (int i = 0; i < 8;) {
    if (groups[i] != 0) {
      ++i;
      continue;
    }
    int j = i;
    while (j < 8 && groups[j] == 0) ++j;
    if (j - i > best_len && j - i >= 2) {
      best_start = i;
      best_len = j - i;
    }
    i = j;
  }
  for (int i = 0; i < 8; ++i) {
    if (i == best_start) {
      out += "::";
      i += best_len - 1;
      continue;
    }
    if (i != 0 && i != best_start + best_len) out.push_back(':');
    append_hex16(out, groups[i]);
  }
}

bool is_v4_mapped(const std::array<std::uint8_t, 16>& ip) {
  for (std::size_t i = 0; i < 10; ++i) {
    if (ip[i] != 0) return false;
  }
  return ip[10] == 0xff && ip[11] == 0xff;
}

}  // namespace

std::string Address::to_string() const {
  std::string out;
  if (ip_len == 4) {
    append_ipv4(out, ip.data());
  } else if (ip_len == 16 && is_v4_mapped(ip)) {
    // Go's net.IP prints an IPv4-mapped address in dotted form, and peers
    // often send IPv4 as 16 bytes; showing it the way memberlist logs it
    // keeps our logs comparable with theirs.
    append_ipv4(out, ip.data() + 12);
  } else if (ip_len == 16) {
    out.push_back('[');
    append_ipv6(out, ip);
    out.push_back(']');
  } else {
    out = "<no-ip>";
  }
  out.push_back(':');
  out += std::to_string(port);
  return out;
}

std::string_view to_string(DecodeError e) {
  switch (e) {
    case DecodeError::Truncated: return "truncated";
    case DecodeError::Malformed: return "malformed";
    case DecodeError::UnknownType: return "unknown_type";
    case DecodeError::TooLarge: return "too_large";
    case DecodeError::BadCrc: return "bad_crc";
    case DecodeError::BadCompression: return "bad_compression";
    case DecodeError::TooDeep: return "too_deep";
    case DecodeError::Incomplete: return "incomplete";
    case DecodeError::BadName: return "bad_name";
    case DecodeError::Count_: break;
  }
  return "unknown";
}

std::string_view to_string(MemberState s) {
  switch (s) {
    case MemberState::Alive: return "alive";
    case MemberState::Suspect: return "suspect";
    case MemberState::Dead: return "dead";
    case MemberState::Left: return "left";
  }
  return "unknown";
}

bool valid_member_name(std::string_view name) noexcept {
  return !name.empty() && name.size() <= kMemberNameMax && valid_utf8(name) &&
         !has_control_characters(name);
}

std::optional<std::string> validate_member_name(std::string_view name) {
  if (valid_member_name(name)) return std::nullopt;
  return check_text("member name", name, kMemberNameMax);
}

}  // namespace mesh::swim
