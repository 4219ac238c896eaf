// The policy file (mesh/policy.hpp): zones by node name, certified claim and
// role; rules per action; the default; and the one-line errors a bad file
// gets, naming its line.
#include "mesh/policy.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace mesh {
namespace {

const char* kCompanies = R"(
zones:
  acme:
    nodes: ["acme-*"]
    claims: ["acme"]
  globex:
    nodes: ["globex-?"]
  auditors:
    roles: ["auditor"]
rules:
  - from: acme
    to: acme
    allow: [notify, request, broadcast]
  - from: globex
    to: globex
    allow: [notify, request, broadcast]
  - from: globex
    to: acme
    allow: [request]
  - from: auditors
    to: "*"
    allow: [request, authority]
)";

PolicySubject at(std::string_view node, std::string_view role = "worker",
                 const std::vector<std::string>* claims = nullptr) {
  return PolicySubject{node, role, claims};
}

TEST(Policy, ZonesByNodeClaimAndRole) {
  const Policy p = Policy::parse(kCompanies, "companies.yaml");
  EXPECT_EQ(p.zones_of(at("acme-1")), std::vector<std::string>{"acme"});
  EXPECT_EQ(p.zones_of(at("globex-7")), std::vector<std::string>{"globex"});
  EXPECT_TRUE(p.zones_of(at("globex-17")).empty());  // ? is one character
  const std::vector<std::string> acme_claim = {"acme"};
  EXPECT_EQ(p.zones_of(at("n9", "worker", &acme_claim)), std::vector<std::string>{"acme"});
  EXPECT_EQ(p.zones_of(at("globex-1", "auditor")), (std::vector<std::string>{"globex", "auditors"}));
  EXPECT_TRUE(p.zones_of(at("stranger")).empty());
}

TEST(Policy, RulesAllowPerActionAndTheRestIsDenied) {
  const Policy p = Policy::parse(kCompanies, "companies.yaml");
  EXPECT_TRUE(p.allows(at("acme-1"), at("acme-2"), PolicyAction::Notify));
  EXPECT_TRUE(p.allows(at("globex-1"), at("acme-2"), PolicyAction::Request));
  EXPECT_FALSE(p.allows(at("globex-1"), at("acme-2"), PolicyAction::Notify));
  EXPECT_FALSE(p.allows(at("acme-1"), at("globex-2"), PolicyAction::Request));
  EXPECT_FALSE(p.allows(at("acme-1"), at("acme-2"), PolicyAction::Authority));
  EXPECT_TRUE(p.allows(at("stranger", "auditor"), at("acme-2"), PolicyAction::Authority));
  EXPECT_FALSE(p.allows(at("stranger"), at("acme-2"), PolicyAction::Request));
  // A node's own sender has no role: only its node's zones count.
  EXPECT_FALSE(p.allows(at("globex-1", ""), at("acme-2"), PolicyAction::Notify));
  EXPECT_TRUE(p.allows(at("globex-1", ""), at("acme-2"), PolicyAction::Request));
}

TEST(Policy, DefaultAllowAndTheEmptyPolicy) {
  const Policy open = Policy::parse("default: allow\n", "open.yaml");
  EXPECT_TRUE(open.allows(at("a"), at("b"), PolicyAction::Authority));
  const Policy closed = Policy::parse("rules: []\n", "closed.yaml");
  EXPECT_FALSE(closed.allows(at("a"), at("b"), PolicyAction::Notify));
  const Policy none;
  EXPECT_TRUE(none.empty());
  EXPECT_TRUE(none.allows(at("a"), at("b"), PolicyAction::Request));
}

// The example in conf/ is a valid policy and means what its comments say.
TEST(Policy, TheExampleInConfLoads) {
  const Policy p = Policy::load(std::string(MESH_SOURCE_DIR) + "/conf/policy.yaml");
  const std::vector<std::string> acme = {"acme"};
  EXPECT_TRUE(p.allows(at("globex-1"), at("n7", "worker", &acme), PolicyAction::Request));
  EXPECT_FALSE(p.allows(at("globex-1"), at("n7", "worker", &acme), PolicyAction::Notify));
  EXPECT_FALSE(p.allows(at("n7"), at("globex-1"), PolicyAction::Request));  // no certified claim
  EXPECT_TRUE(p.allows(at("n7", "auditor"), at("globex-1"), PolicyAction::Authority));
}

TEST(Policy, ABadFileGetsOneLineNamingItsLine) {
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"zones:\n  a:\n    nodes: [\"x\"]\nrules:\n  - from: a\n    to: b\n    allow: [notify]\n",
       "policy: p.yaml:6: no zone named \"b\""},
      {"zones:\n  a:\n    hosts: [\"x\"]\n", "policy: p.yaml:3: zone a: unknown selector \"hosts\" (nodes, claims, roles)"},
      {"rules:\n  - from: \"*\"\n    to: \"*\"\n    allow: [shout]\n",
       "policy: p.yaml:4: unknown action \"shout\" (notify, request, broadcast, authority)"},
      {"default: maybe\n", "policy: p.yaml:1: default must be allow or deny"},
      {"zone: {}\n", "policy: p.yaml:1: unknown key \"zone\" (zones, rules, default)"},
      {"zones:\n  a: {}\n", "policy: p.yaml:2: zone a selects nothing"},
      {"rules:\n  - from: \"*\"\n    to: \"*\"\n", "policy: p.yaml:2: a rule needs from, to and a non-empty allow"},
      // yaml-cpp's own words follow (they vary with its version).
      {"zones: [\n", "policy: p.yaml:2: not YAML: *"},
      {"? [a, b]\n: 1\n", "policy: p.yaml:1: *"},  // a list where a key's name belongs
      {"zones:\n  ? {x: 1}\n  : {nodes: [\"a\"]}\n", "policy: p.yaml:2: *"},
  };
  for (const auto& [text, want] : bad) {
    try {
      (void)Policy::parse(text, "p.yaml");
      ADD_FAILURE() << "accepted: " << text;
    } catch (const std::invalid_argument& e) {
      if (want.ends_with('*')) {
        EXPECT_TRUE(std::string(e.what()).starts_with(want.substr(0, want.size() - 1))) << e.what();
      } else {
        EXPECT_EQ(std::string(e.what()), want) << text;
      }
    }
  }
  EXPECT_THROW((void)Policy::load("/nonexistent/policy.yaml"), std::invalid_argument);
}

}  // namespace
}  // namespace mesh
