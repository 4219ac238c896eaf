// Conversions between the core's Address (memberlist's raw IP bytes and a
// port) and Asio endpoints, and the parsing of seed strings.
#pragma once

#include <boost/asio/ip/address.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "mesh/swim/types.hpp"

namespace mesh::swim::detail {

// A v4-mapped IPv6 address (from a dual-stack socket) becomes plain IPv4,
// so that it compares equal to what peers advertise.
Address to_address(const boost::asio::ip::address& ip, std::uint16_t port);
boost::asio::ip::address to_ip(const Address& a);

// A seed as memberlist's resolveAddr reads it: an optional "name/" prefix,
// then "host", "host:port", "[v6]" or "[v6]:port"; a bare IPv6 literal has
// no port. `default_port` fills a missing port.
struct SeedSpec {
  std::string host;
  std::uint16_t port = 0;
};
std::optional<SeedSpec> parse_seed(std::string_view text, std::uint16_t default_port);

}  // namespace mesh::swim::detail
