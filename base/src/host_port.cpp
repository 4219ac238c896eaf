#include "mesh/host_port.hpp"

#include <algorithm>
#include <charconv>

namespace mesh {

std::optional<std::uint16_t> parse_port(std::string_view text) {
  if (text.empty() || text.size() > 5) return std::nullopt;
  unsigned v = 0;
  const char* end = text.data() + text.size();
  auto [p, ec] = std::from_chars(text.data(), end, v);
  if (ec != std::errc{} || p != end || v == 0 || v > 65535) return std::nullopt;
  return static_cast<std::uint16_t>(v);
}

std::variant<HostPort, HostPortError> split_host_port(std::string_view text, HostPortRules rules) {
  using E = HostPortError;
  HostPort out;
  std::optional<std::string_view> port_text;  // set when a ':' introduced one
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos) return E{E::MissingBracket, text};
    out.host.assign(text.substr(1, close - 1));
    out.bracketed = true;
    const auto rest = text.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return E{E::AfterBracket, rest};
      port_text = rest.substr(1);
    }
  } else {
    const auto colons = std::count(text.begin(), text.end(), ':');
    if (colons > 1) {
      if (!rules.bare_ipv6) return E{E::Ambiguous, text};
      out.host.assign(text);
    } else if (colons == 1) {
      const auto colon = text.find(':');
      out.host.assign(text.substr(0, colon));
      port_text = text.substr(colon + 1);
    } else {
      out.host.assign(text);
    }
  }
  if (port_text) {
    if (port_text->empty()) return E{E::EmptyPort, text};
    auto port = parse_port(*port_text);
    if (!port) return E{E::BadPort, *port_text};
    out.port = *port;
  } else if (rules.default_port) {
    out.port = *rules.default_port;
  } else {
    return E{E::NoPort, text};
  }
  return out;
}

}  // namespace mesh
