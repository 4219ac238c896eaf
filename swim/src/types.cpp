#include "mesh/swim/types.hpp"

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "mesh/swim/messages.hpp"

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

std::optional<Bytes> decode_base64(std::string_view text) {
  auto sextet = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  if (text.empty() || text.size() % 4 != 0) return std::nullopt;
  Bytes out;
  for (std::size_t i = 0; i < text.size(); i += 4) {
    const bool last = i + 4 == text.size();
    std::array<int, 4> v{};
    int pad = 0;
    for (std::size_t j = 0; j < 4; ++j) {
      const char c = text[i + j];
      if (c == '=' && last && j >= 2) {
        ++pad;
        v[j] = 0;
        continue;
      }
      if (pad > 0) return std::nullopt;  // data after padding
      v[j] = sextet(c);
      if (v[j] < 0) return std::nullopt;
    }
    const auto n = static_cast<std::uint32_t>((v[0] << 18) | (v[1] << 12) | (v[2] << 6) | v[3]);
    out.push_back(static_cast<std::uint8_t>(n >> 16));
    if (pad < 2) out.push_back(static_cast<std::uint8_t>(n >> 8));
    if (pad < 1) out.push_back(static_cast<std::uint8_t>(n));
  }
  return out;
}

namespace {

enum class NameFault : std::uint8_t { None, Empty, TooLong, BadUtf8, Control };

// One pass over the bytes: decodes each UTF-8 sequence by hand (shortest
// form only, no surrogates, nothing above U+10FFFF) and refuses C0, DEL and
// C1 control characters.
NameFault check_name(std::string_view name) noexcept {
  if (name.empty()) return NameFault::Empty;
  if (name.size() > kMemberNameMax) return NameFault::TooLong;
  const auto* p = reinterpret_cast<const unsigned char*>(name.data());
  const std::size_t n = name.size();
  for (std::size_t i = 0; i < n;) {
    const unsigned c = p[i];
    if (c < 0x80) {
      if (c < 0x20 || c == 0x7f) return NameFault::Control;
      ++i;
      continue;
    }
    std::size_t len = 0;
    std::uint32_t cp = 0;
    std::uint32_t min = 0;
    if ((c & 0xe0u) == 0xc0u) {
      len = 2, cp = c & 0x1fu, min = 0x80;
    } else if ((c & 0xf0u) == 0xe0u) {
      len = 3, cp = c & 0x0fu, min = 0x800;
    } else if ((c & 0xf8u) == 0xf0u) {
      len = 4, cp = c & 0x07u, min = 0x10000;
    } else {
      return NameFault::BadUtf8;  // a continuation byte or 0xf8..0xff
    }
    if (n - i < len) return NameFault::BadUtf8;
    for (std::size_t k = 1; k < len; ++k) {
      const unsigned cc = p[i + k];
      if ((cc & 0xc0u) != 0x80u) return NameFault::BadUtf8;
      cp = (cp << 6) | (cc & 0x3fu);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return NameFault::BadUtf8;
    if (cp <= 0x9f) return NameFault::Control;  // C1 (U+0080..U+009F)
    i += len;
  }
  return NameFault::None;
}

}  // namespace

bool valid_member_name(std::string_view name) noexcept { return check_name(name) == NameFault::None; }

std::optional<std::string> validate_member_name(std::string_view name) {
  switch (check_name(name)) {
    case NameFault::None: return std::nullopt;
    case NameFault::Empty: return "member name must not be empty";
    case NameFault::TooLong:
      return "member name is " + std::to_string(name.size()) + " bytes, more than " +
             std::to_string(kMemberNameMax);
    case NameFault::BadUtf8: return "member name is not valid UTF-8";
    case NameFault::Control: return "member name contains a control character";
  }
  return "member name is not acceptable";
}

}  // namespace mesh::swim
