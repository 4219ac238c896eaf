#include "endpoint.hpp"

#include <algorithm>
#include <charconv>

namespace mesh::swim::detail {

namespace ip = boost::asio::ip;

Address to_address(const ip::address& addr, std::uint16_t port) {
  Address a;
  a.port = port;
  if (addr.is_v6() && addr.to_v6().is_v4_mapped()) {
    const auto b = ip::make_address_v4(ip::v4_mapped, addr.to_v6()).to_bytes();
    std::copy(b.begin(), b.end(), a.ip.begin());
    a.ip_len = 4;
  } else if (addr.is_v4()) {
    const auto b = addr.to_v4().to_bytes();
    std::copy(b.begin(), b.end(), a.ip.begin());
    a.ip_len = 4;
  } else {
    const auto b = addr.to_v6().to_bytes();
    std::copy(b.begin(), b.end(), a.ip.begin());
    a.ip_len = 16;
  }
  return a;
}

ip::address to_ip(const Address& a) {
  if (a.ip_len == 4) {
    ip::address_v4::bytes_type b;
    std::copy_n(a.ip.begin(), 4, b.begin());
    return ip::address_v4(b);
  }
  ip::address_v6::bytes_type b;
  std::copy_n(a.ip.begin(), 16, b.begin());
  return ip::address_v6(b);
}

namespace {
std::optional<std::uint16_t> parse_port(std::string_view s) {
  unsigned v = 0;
  const auto* end = s.data() + s.size();
  auto [p, ec] = std::from_chars(s.data(), end, v);
  if (ec != std::errc{} || p != end || v == 0 || v > 65535) return std::nullopt;
  return static_cast<std::uint16_t>(v);
}
}  // namespace

std::optional<SeedSpec> parse_seed(std::string_view text, std::uint16_t default_port) {
  if (auto slash = text.find('/'); slash != std::string_view::npos) {
    if (slash == 0) return std::nullopt;
    text.remove_prefix(slash + 1);
  }
  if (text.empty()) return std::nullopt;
  SeedSpec s;
  s.port = default_port;
  if (text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos || close == 1) return std::nullopt;
    s.host.assign(text.substr(1, close - 1));
    std::string_view rest = text.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return std::nullopt;
      auto p = parse_port(rest.substr(1));
      if (!p) return std::nullopt;
      s.port = *p;
    }
  } else if (std::count(text.begin(), text.end(), ':') == 1) {
    const auto colon = text.find(':');
    if (colon == 0) return std::nullopt;
    s.host.assign(text.substr(0, colon));
    auto p = parse_port(text.substr(colon + 1));
    if (!p) return std::nullopt;
    s.port = *p;
  } else {
    s.host.assign(text);  // a name, an IPv4 literal, or a bare IPv6 literal
  }
  if (s.port == 0) return std::nullopt;
  return s;
}

}  // namespace mesh::swim::detail
