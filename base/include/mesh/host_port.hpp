// "host:port" as every program here writes addresses: seeds, admin
// endpoints, --admin flags. One splitter, so that "[::1]:7946", a bare
// host and a missing port mean the same thing everywhere; each caller
// then checks the host the way its context needs (an IP literal, a DNS
// name) and words its own errors.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

namespace mesh {

struct HostPort {
  std::string host;        // without brackets; may be empty (the caller decides)
  std::uint16_t port = 0;
  bool bracketed = false;  // written as [host]
};

struct HostPortRules {
  // Fills a missing port; without it a port is required.
  std::optional<std::uint16_t> default_port;
  // Whether "fe80::1" (colons, no brackets) is an IPv6 host without a port,
  // as memberlist reads seeds. Otherwise it is refused as ambiguous.
  bool bare_ipv6 = false;
};

struct HostPortError {
  enum Kind {
    MissingBracket,  // "[::1" : no ']'
    AfterBracket,    // "[::1]x": something other than ":port" after ']'
    EmptyPort,       // "host:" or "[::1]:"
    NoPort,          // "host" and no default port
    BadPort,         // not 1-65535 in digits; `text` is what was given
    Ambiguous,       // several ':' without brackets (and bare_ipv6 off)
  } kind;
  std::string_view text;  // the offending part (for BadPort: the port text)
};

std::variant<HostPort, HostPortError> split_host_port(std::string_view text, HostPortRules rules);

// 1-65535, decimal digits only.
std::optional<std::uint16_t> parse_port(std::string_view text);

}  // namespace mesh
