#include "endpoint.hpp"

#include <algorithm>
#include <utility>

#include "mesh/host_port.hpp"

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

std::optional<SeedSpec> parse_seed(std::string_view text, std::uint16_t default_port) {
  if (auto slash = text.find('/'); slash != std::string_view::npos) {
    if (slash == 0) return std::nullopt;
    text.remove_prefix(slash + 1);
  }
  auto split = split_host_port(text, {.default_port = default_port, .bare_ipv6 = true});
  auto* hp = std::get_if<HostPort>(&split);
  if (hp == nullptr || hp->host.empty() || hp->port == 0) return std::nullopt;
  return SeedSpec{std::move(hp->host), hp->port};
}

}  // namespace mesh::swim::detail
