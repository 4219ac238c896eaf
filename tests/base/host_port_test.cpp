// mesh/host_port.hpp: the one host:port splitter behind seeds, --admin and
// the admin client.
#include "mesh/host_port.hpp"

#include <gtest/gtest.h>

namespace mesh {
namespace {

HostPort ok(std::string_view text, HostPortRules rules) {
  auto r = split_host_port(text, rules);
  EXPECT_TRUE(std::holds_alternative<HostPort>(r)) << text;
  return std::holds_alternative<HostPort>(r) ? std::get<HostPort>(r) : HostPort{};
}

HostPortError::Kind error(std::string_view text, HostPortRules rules) {
  auto r = split_host_port(text, rules);
  EXPECT_TRUE(std::holds_alternative<HostPortError>(r)) << text;
  return std::holds_alternative<HostPortError>(r) ? std::get<HostPortError>(r).kind
                                                  : HostPortError::Kind{};
}

TEST(HostPort, Forms) {
  const HostPortRules need_port{};
  auto a = ok("10.0.0.1:7946", need_port);
  EXPECT_EQ(a.host, "10.0.0.1");
  EXPECT_EQ(a.port, 7946);
  EXPECT_FALSE(a.bracketed);
  auto b = ok("[::1]:65535", need_port);
  EXPECT_EQ(b.host, "::1");
  EXPECT_EQ(b.port, 65535);
  EXPECT_TRUE(b.bracketed);
  auto c = ok("node.example:1", need_port);
  EXPECT_EQ(c.host, "node.example");
  EXPECT_EQ(c.port, 1);
}

TEST(HostPort, DefaultPortAndBareIpv6) {
  const HostPortRules seeds{.default_port = 7946, .bare_ipv6 = true};
  EXPECT_EQ(ok("example.org", seeds).port, 7946);
  EXPECT_EQ(ok("[fe80::1]", seeds).port, 7946);
  auto v6 = ok("fe80::1", seeds);
  EXPECT_EQ(v6.host, "fe80::1");
  EXPECT_EQ(v6.port, 7946);
  EXPECT_EQ(error("fe80::1", {.default_port = 7946}), HostPortError::Ambiguous);
}

TEST(HostPort, Errors) {
  const HostPortRules need_port{};
  EXPECT_EQ(error("host", need_port), HostPortError::NoPort);
  EXPECT_EQ(error("host:", need_port), HostPortError::EmptyPort);
  EXPECT_EQ(error("[::1]:", need_port), HostPortError::EmptyPort);
  EXPECT_EQ(error("[::1", need_port), HostPortError::MissingBracket);
  EXPECT_EQ(error("[::1]7946", need_port), HostPortError::AfterBracket);
  for (const char* bad : {"h:0", "h:65536", "h:123456", "h:+1", "h:-1", "h:7x", "h: 1"}) {
    auto r = split_host_port(bad, need_port);
    ASSERT_TRUE(std::holds_alternative<HostPortError>(r)) << bad;
    EXPECT_EQ(std::get<HostPortError>(r).kind, HostPortError::BadPort) << bad;
  }
  auto r = split_host_port("h:99999", need_port);
  EXPECT_EQ(std::get<HostPortError>(r).text, "99999");
}

TEST(HostPort, EmptyHostIsTheCallersCall) {
  EXPECT_EQ(ok(":80", {}).host, "");
  EXPECT_EQ(ok("[]:80", {}).host, "");
}

}  // namespace
}  // namespace mesh
