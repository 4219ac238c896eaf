// Trust zones and policy across P2P Meshes on 127.0.0.1, all with a gossip
// key (so CURVE, signed registries): a zone-to-zone request denied at the
// sender (fail fast) and at the receiver (PermissionDenied, counted, never
// delivered) while the permitted one goes through; discovery showing only
// what may be reached; broadcast copies judged as broadcasts; and zone
// claims believed only from a certificate of the cluster's trust key.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include "mesh/base64.hpp"
#include "mesh/ed25519.hpp"
#include "mesh/mesh.hpp"
#include "mesh/node_cert.hpp"
#include "mesh/transport/transport.hpp"
#include "mesh_fixtures.hpp"

namespace mesh {
namespace {

using namespace std::chrono_literals;
using test::Echo;
using test::eventually;
using test::fast_options;
using test::Probe;
using test::seed_of;

constexpr char kGossipKey[] = "cg8StVXbQJ0gPvMd9o7yrg==";

using test::ScratchDir;

// A P2P node on 127.0.0.1 with the gossip key, ports of the kernel's
// choosing, and the given extra settings (JC_POLICY, JC_TRUST_KEY, ...).
NodeConfig node(const std::string& name, std::vector<std::string> seeds, Environment extra = {}) {
  Environment env = {{"P2P_ENABLED", "true"}, {"JC_NODE_NAME", name},        {"JC_SWIM_HOST", "127.0.0.1"},
                     {"JC_PROFILE", "local"}, {"JC_LEAVE_TIMEOUT", "2s"},     {"JC_GOSSIP_KEY", kGossipKey}};
  for (auto& [k, v] : extra) env[k] = v;
  NodeConfig c = load_node_config({}, env);
  c.swim_port = 0;
  c.zmq_port = 0;
  c.seeds = std::move(seeds);
  return c;
}

constexpr char kCompanies[] = R"(
zones:
  acme:
    nodes: ["acme-*"]
  globex:
    nodes: ["globex-*"]
  vault:
    nodes: ["vault-*"]
rules:
  - from: acme
    to: acme
    allow: [notify, request, broadcast]
  - from: globex
    to: acme
    allow: [request, broadcast]
  - from: acme
    to: vault
    allow: [request]
)";

// globex may ask acme but not tell it anything, and may not reach the vault
// at all; acme may ask the vault. Each refusal is tried twice: from a node
// that runs the policy (refused before sending) and from one that does not
// (refused by the receiver, which does).
TEST(MeshPolicy, ZoneToZoneRulesHoldAtBothEnds) {
  ScratchDir dir;
  ASSERT_FALSE(dir.path.empty());
  const Environment policy = {{"JC_POLICY", dir.write("policy.yaml", kCompanies)}};
  Mesh acme(node("acme-1", {}, policy), fast_options());
  auto& echo = acme.add<Echo>("acme-echo");
  auto& insider = acme.add<Probe>("acme-probe");
  acme.start();
  Mesh vault(node("vault-1", {seed_of(acme)}, policy), fast_options());
  vault.add<Echo>("vault-echo", "safe");
  vault.start();
  Mesh globex(node("globex-1", {seed_of(acme)}, policy), fast_options());
  auto& client = globex.add<Probe>("globex-probe");
  globex.start();
  Mesh rogue(node("globex-2", {seed_of(acme)}), fast_options());  // no policy of its own
  auto& outsider = rogue.add<Probe>("rogue-probe");
  std::atomic<int> denied_reports{0};
  outsider.peers().on_delivery_failure([&](const DeliveryFailure& f) {
    if (f.reason == ErrorCode::PermissionDenied && f.target == "acme-echo") ++denied_reports;
  });
  rogue.start();

  ASSERT_TRUE(eventually([&] { return outsider.peers().registry().size() == 4; }));
  ASSERT_TRUE(eventually([&] { return insider.peers().registry().contains("vault-echo"); }));
  ASSERT_TRUE(eventually([&] { return client.peers().registry().contains("acme-echo"); }));
  // Every node knows every agent (discovery then shows each what it may reach).
  for (Mesh* m : {&acme, &vault, &globex}) {
    ASSERT_TRUE(eventually([&] { return m->directory().all().size() == 5; })) << m->node_name();
  }

  // Discovery shows what may be reached: globex sees acme's agents only.
  const auto seen = client.peers().registry();
  EXPECT_TRUE(seen.contains("acme-echo"));
  EXPECT_TRUE(seen.contains("acme-probe"));
  EXPECT_FALSE(seen.contains("vault-echo"));
  EXPECT_FALSE(seen.contains("rogue-probe"));  // globex -> globex: no rule either
  EXPECT_TRUE(client.peers().discover(PeerQuery{"safe", {}}).empty());
  EXPECT_FALSE(insider.peers().discover(PeerQuery{"safe", {}}).empty());

  // The permitted: globex asks acme, acme asks the vault.
  const auto asked = client.peers().request_detailed_blocking("acme-echo", {{"q", 1}}, 10s);
  EXPECT_TRUE(asked.ok()) << transport::to_string(asked.error);
  EXPECT_TRUE(insider.peers().request_detailed_blocking("vault-echo", {{"q", 2}}, 10s).ok());
  EXPECT_TRUE(outsider.peers().request_detailed_blocking("acme-echo", {{"q", 3}}, 10s).ok());

  // Refused before sending, by globex-1's own policy.
  const auto sent_before = globex.stats().policy_denied_sent;
  EXPECT_FALSE(client.peers().notify("acme-echo", {{"n", 1}}));
  EXPECT_EQ(client.peers().request_detailed_blocking("vault-echo", {{"q", 4}}, 10s).error, ErrorCode::PermissionDenied);
  EXPECT_EQ(globex.stats().policy_denied_sent, sent_before + 2);

  // Refused by the receivers' policy: globex-2 runs none, so it sends.
  const auto vault_before = vault.stats().policy_denied_received;
  EXPECT_EQ(outsider.peers().request_detailed_blocking("vault-echo", {{"q", 5}}, 10s).error, ErrorCode::PermissionDenied);
  EXPECT_EQ(vault.stats().policy_denied_received, vault_before + 1);
  EXPECT_TRUE(outsider.peers().notify("acme-echo", {{"n", 2}}));
  ASSERT_TRUE(eventually([&] { return denied_reports.load() == 1; }));
  EXPECT_GE(acme.transport_for_test()->stats().frames_denied, 1u);
  // A broadcast copy is judged as one: globex may broadcast to acme.
  EXPECT_GE(outsider.peers().broadcast({{"b", 1}}), 1u);
  ASSERT_TRUE(eventually([&] { return echo.notify_count() == 1; }));
  std::this_thread::sleep_for(300ms);
  ASSERT_EQ(echo.notify_count(), 1u);  // the broadcast copy, never the refused notify
  EXPECT_EQ(echo.notifies_copy()[0].data["b"], 1);

  rogue.stop();
  globex.stop();
  vault.stop();
  acme.stop();
}

// Zones by claim: only a certificate signed by the cluster's trust key, for
// the node's name and CURVE key, puts a node in one. A node whose
// certificate is signed by another key is in no zone for the others (and
// counted); a node refuses to start with a certificate that is not its own.
TEST(MeshPolicy, OnlyACertifiedClaimPutsANodeInAZone) {
  ScratchDir dir;
  ASSERT_FALSE(dir.path.empty());
  const auto trust = *ed25519::random_seed();
  const auto trust_pub = *ed25519::public_key(trust);
  const auto forger = *ed25519::random_seed();
  const auto forger_pub = *ed25519::public_key(forger);
  auto b64 = [](const auto& k) { return encode_base64(std::vector<std::uint8_t>(k.begin(), k.end())); };
  const std::string policy = dir.write("policy.yaml", R"(
zones:
  acme:
    claims: ["acme"]
rules:
  - from: acme
    to: acme
    allow: [request]
)");
  const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::system_clock::now().time_since_epoch()).count();
  // Each node with a key pair of its own, certified for it.
  auto certified = [&](const std::string& name, const ed25519::Seed& signer, const ed25519::PublicKey& trusted) {
    const auto keys = transport::generate_curve_keypair();
    const std::string cert = issue_cert(NodeCert{name, keys.public_key, {"acme"}, now + 3600}, signer);
    return Environment{{"JC_POLICY", policy},
                       {"JC_TRUST_KEY", b64(trusted)},
                       {"JC_CURVE_SECRET_KEY", keys.secret_key},
                       {"JC_CURVE_PUBLIC_KEY", keys.public_key},
                       {"JC_NODE_CERT_FILE", dir.write(name + ".cert", cert + "\n")}};
  };
  Mesh c1(node("c1", {}, certified("c1", trust, trust_pub)), fast_options());
  auto& echo = c1.add<Echo>("echo-1");
  c1.start();
  Mesh c2(node("c2", {seed_of(c1)}, certified("c2", trust, trust_pub)), fast_options());
  auto& member = c2.add<Probe>("member-2");
  c2.start();
  // c3's certificate is signed by a key it trusts and nobody else does; it
  // runs no policy of its own, so it sends what the others then judge.
  Environment pretending = certified("c3", forger, forger_pub);
  pretending.erase("JC_POLICY");
  Mesh c3(node("c3", {seed_of(c1)}, pretending), fast_options());
  auto& pretender = c3.add<Probe>("pretender-3");
  c3.start();

  ASSERT_TRUE(eventually([&] { return member.peers().registry().contains("echo-1"); }));
  EXPECT_TRUE(member.peers().request_detailed_blocking("echo-1", {{"q", 1}}, 10s).ok());
  // c3 claims acme; c1 does not believe it, and refuses.
  ASSERT_TRUE(eventually([&] { return pretender.peers().registry().contains("echo-1"); }));
  EXPECT_EQ(pretender.peers().request_detailed_blocking("echo-1", {{"q", 2}}, 10s).error, ErrorCode::PermissionDenied);
  EXPECT_GE(c1.stats().certificates_refused, 1u);
  EXPECT_GE(c1.stats().policy_denied_received, 1u);
  // c1 hides c3's agent from its own (c3 is in no zone it believes).
  EXPECT_FALSE(echo.peers().registry().contains("pretender-3"));
  EXPECT_TRUE(echo.peers().registry().contains("member-2"));

  // A certificate for another node, or unsigned by the trust key, stops the start.
  Environment wrong = certified("c9", trust, trust_pub);
  try {
    Mesh bad(node("c8", {}, wrong), fast_options());
    ADD_FAILURE() << "a certificate for c9 was taken by c8";
  } catch (const std::invalid_argument& e) {
    EXPECT_EQ(std::string(e.what()), "node_cert: issued for another node (it names c9)");
  }
  Environment forged = certified("c8", forger, forger_pub);
  forged["JC_TRUST_KEY"] = b64(trust_pub);
  try {
    Mesh bad(node("c8", {}, forged), fast_options());
    ADD_FAILURE() << "a certificate of another trust key was taken";
  } catch (const std::invalid_argument& e) {
    EXPECT_EQ(std::string(e.what()), "node_cert: not signed by the trust key");
  }
  c3.stop();
  c2.stop();
  c1.stop();
}

// A broken policy file stops the start with one line naming file and line.
TEST(MeshPolicy, ABadPolicyFileStopsTheStart) {
  ScratchDir dir;
  ASSERT_FALSE(dir.path.empty());
  const std::string path = dir.write("policy.yaml", "zones:\n  a:\n    nodes: [\"x\"]\nrules:\n  - from: a\n    to: nowhere\n    allow: [notify]\n");
  try {
    Mesh m(node("p1", {}, {{"JC_POLICY", path}}), fast_options());
    ADD_FAILURE() << "a policy naming an unknown zone was taken";
  } catch (const std::invalid_argument& e) {
    EXPECT_EQ(std::string(e.what()), "policy: " + path + ":6: no zone named \"nowhere\"");
  }
}

// A reload puts a new policy in force from the next message on, at both
// ends and in discovery; a file that does not parse changes nothing; a node
// started without a policy has none to reload.
TEST(MeshPolicy, AReloadedPolicyHoldsFromTheNextMessage) {
  ScratchDir dir;
  ASSERT_FALSE(dir.path.empty());
  const std::string closed = "zones:\n  all:\n    nodes: [\"*\"]\nrules: []\n";
  const std::string open = "zones:\n  all:\n    nodes: [\"*\"]\nrules:\n  - from: all\n    to: all\n"
                           "    allow: [notify, request]\n";
  const std::string path = dir.write("policy.yaml", closed);
  Mesh a(node("reload-a", {}, {{"JC_POLICY", path}}), fast_options());
  a.add<Echo>("a-echo");
  a.start();
  Mesh b(node("reload-b", {seed_of(a)}, {{"JC_POLICY", path}}), fast_options());
  auto& probe = b.add<Probe>("b-probe");
  b.start();
  ASSERT_TRUE(eventually([&] { return b.directory().all().size() == 2; }));
  EXPECT_TRUE(probe.peers().registry().empty());
  EXPECT_EQ(probe.peers().request_detailed_blocking("a-echo", {{"q", 1}}, 10s).error, ErrorCode::PermissionDenied);

  // b allows, a does not yet: refused at the receiver.
  dir.write("policy.yaml", open);
  EXPECT_EQ(b.reload_policy(), std::nullopt);
  EXPECT_TRUE(probe.peers().registry().contains("a-echo"));
  const auto denied = a.stats().policy_denied_received;
  EXPECT_EQ(probe.peers().request_detailed_blocking("a-echo", {{"q", 2}}, 10s).error, ErrorCode::PermissionDenied);
  EXPECT_EQ(a.stats().policy_denied_received, denied + 1);
  EXPECT_EQ(a.reload_policy(), std::nullopt);
  EXPECT_TRUE(probe.peers().request_detailed_blocking("a-echo", {{"q", 3}}, 10s).ok());

  // A broken file: the policy in force stays.
  dir.write("policy.yaml", "zones: [\n");
  const auto error = b.reload_policy();
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->rfind("policy: " + path + ":", 0), 0u) << *error;
  EXPECT_TRUE(probe.peers().request_detailed_blocking("a-echo", {{"q", 4}}, 10s).ok());

  Mesh plain(node("reload-plain", {}), fast_options());
  EXPECT_THROW(plain.reload_policy(), std::logic_error);
  b.stop();
  a.stop();
}

}  // namespace
}  // namespace mesh
