// The trust features of docs/security.md ("The trust model") across
// processes: one node per host of a NetnsLab (network namespaces on a
// bridge, 10.251.<lab>.<i+1>), all with the same gossip key, so agent
// traffic is CURVE and registries are signed. Each node is a
// mesh-trust-probe (trust_probe.cpp): a Mesh with recording agents, which
// print every message they get, and its admin endpoint on 127.0.0.1 of its
// own namespace. The test process stays in the root namespace and asks
// the nodes through `ip netns exec <ns> meshctl ...` (members, peers,
// request) and `mesh-trust-probe --get` (GET /metrics).
//
//  - Forge: a member sends raw envelopes naming another node as sender, and
//    naming an agent a third node holds; none is delivered, the receiver
//    counts them forged, and the same member's honest messages arrive.
//  - Bad signature: a member whose registry is signed with another key
//    than the one its gossip names is alive, yet its agent enters no other
//    node's directory, the receivers count the bad signatures, and that
//    agent's requests are refused Unauthenticated.
//  - Policy: zones by certified claim (meshctl certs keygen / issue, each
//    node's CURVE key given to it); zone a may request zone b, not the
//    reverse: a -> b is answered, b -> a is refused at the sender (its own
//    policy), and, from a node of zone b whose own policy allows
//    everything, at the receiver (PermissionDenied, counted, not
//    delivered).
//  - Uncertified claim: a node claiming zone a with a certificate signed by
//    another key, or with no certificate and the zone in its tags, gets
//    none of a's rights; the receiver counts the refused certificate.
//
// Root only (namespaces): skipped otherwise. Every wait is a predicate
// polled up to a generous deadline; nothing checks a duration. Each test
// declares its lab first, so its nodes are killed before the namespaces
// and the scratch directory (data dirs, keys, logs) go.
#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "netns_lab.hpp"
#include "process.hpp"
#include "wait_for.hpp"

namespace mesh::test {
namespace {

using namespace std::chrono_literals;
using Json = nlohmann::json;

// Bounded waits (each test's sum is under the TIMEOUT in CMakeLists.txt).
constexpr auto kPoll = 1s;
// Sums: forge 3 kUp + 2 kConverge + kForged + 2 kDeliver = 390 s; bad
// signature 3 kUp + 2 kConverge + 3 kDeliver + kWindow = 360 s; policy
// 3 kUp + 2 kConverge + 4 kDeliver = 390 s; uncertified claim 4 kUp +
// 2 kConverge + 6 kDeliver = 510 s.
constexpr auto kUp = 30s;        // a node's admin endpoint answers
constexpr auto kConverge = 60s;  // members alive, agents listed
constexpr auto kForged = 90s;    // the forger found its targets and sent (it waits 80 s itself)
constexpr auto kDeliver = 45s;   // a message arrives, a counter rises, a refusal comes
constexpr auto kWindow = 15s;    // how long something must stay absent

constexpr int kSwimPort = 7946;
constexpr int kAdminPort = 9946;
constexpr const char* kGossipKey = "dHJ1c3QtbmV0bnMtdGVzdC1nb3NzaXAta2V5LTMyYnk=";  // 32 bytes

// The value of the Prometheus sample `name{labels}` (labels: exactly
// these, in any order) in an exposition text; nullopt if absent.
std::optional<double> sample(const std::string& text, const std::string& name,
                             const std::map<std::string, std::string>& labels = {}) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    const auto name_end = line.find_first_of("{ ");
    if (name_end == std::string::npos || line.compare(0, name_end, name) != 0 || name.size() != name_end) continue;
    std::map<std::string, std::string> got;
    std::size_t at = name_end;
    if (line[at] == '{') {
      const auto close = line.find('}', at);
      if (close == std::string::npos) continue;
      std::string body = line.substr(at + 1, close - at - 1);
      std::size_t p = 0;
      while (p < body.size()) {
        const auto eq = body.find('=', p);
        const auto q1 = body.find('"', eq);
        const auto q2 = body.find('"', q1 + 1);
        if (eq == std::string::npos || q1 == std::string::npos || q2 == std::string::npos) break;
        got[body.substr(p, eq - p)] = body.substr(q1 + 1, q2 - q1 - 1);
        p = q2 + 1;
        if (p < body.size() && body[p] == ',') ++p;
      }
      at = close + 1;
    }
    if (got != labels) continue;
    try {
      return std::stod(line.substr(at));
    } catch (const std::exception&) {
      return std::nullopt;
    }
  }
  return std::nullopt;
}

// Nodes of one test, node i on lab host i, each a mesh-trust-probe.
class TrustLab {
 public:
  explicit TrustLab(int hosts) : lab_(hosts) {
    procs_.resize(static_cast<std::size_t>(hosts));
    names_.resize(static_cast<std::size_t>(hosts));
  }

  const std::string& dir() const { return dir_.path(); }
  std::string write(const std::string& name, const std::string& text) const { return dir_.write(name, text); }
  const std::string& name(int i) const { return names_.at(static_cast<std::size_t>(i)); }
  Process& process(int i) { return *procs_.at(static_cast<std::size_t>(i)); }

  std::vector<std::string> in_ns(int i, std::vector<std::string> argv) const {
    std::vector<std::string> full = lab_.exec_prefix(i);
    full.insert(full.end(), argv.begin(), argv.end());
    return full;
  }

  // Starts node i as `name` with the probe's `args` and the common
  // environment plus `extra`; node 0 is everyone's seed. Waits until its
  // admin endpoint answers.
  void start(int i, const std::string& name, std::vector<std::string> args,
             const std::map<std::string, std::string>& extra = {}) {
    names_.at(static_cast<std::size_t>(i)) = name;
    const std::string host = lab_.ip(i);
    std::map<std::string, std::string> env = {
        {"JC_NODE_NAME", name},           {"JC_SWIM_HOST", host},
        {"JC_ADVERTISE_HOST", host},      {"JC_SWIM_PORT", std::to_string(kSwimPort)},
        {"JC_ADMIN_HOST", "127.0.0.1"},   {"JC_ADMIN_PORT", std::to_string(kAdminPort)},
        {"JC_PROFILE", "local"},          {"JC_GOSSIP_KEY", kGossipKey},
        {"JC_DATA_DIR", dir() + "/data-" + name}, {"JC_LOG_LEVEL", "debug"}};
    if (i != 0) env["JC_SEED_NODES"] = lab_.ip(0) + ":" + std::to_string(kSwimPort);
    for (const auto& [k, v] : extra) env[k] = v;
    args.insert(args.begin(), MESH_TRUST_PROBE_BIN);
    procs_.at(static_cast<std::size_t>(i)) = std::make_unique<Process>(in_ns(i, args), env, dir(), name);
    wait_for(name + "'s admin endpoint to answer", kUp, [&] { return metrics(i).has_value(); });
  }

  // meshctl inside host i against node i's admin endpoint.
  RunResult meshctl(int i, std::vector<std::string> args) const {
    std::vector<std::string> argv = {MESHCTL_BIN};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.insert(argv.end(), {"--admin", "127.0.0.1:" + std::to_string(kAdminPort)});
    return run_to_exit(in_ns(i, argv), {}, 40s);
  }

  std::optional<std::string> metrics(int i) const {
    const auto r = run_to_exit(
        in_ns(i, {MESH_TRUST_PROBE_BIN, "--get", "127.0.0.1:" + std::to_string(kAdminPort), "/metrics"}), {}, 20s);
    if (r.exit_code != 0) return std::nullopt;
    return r.out;
  }

  // A counter of node i (0 when it has none yet; -1 when the node does not answer).
  double counter(int i, const std::string& name, const std::map<std::string, std::string>& labels = {}) const {
    const auto text = metrics(i);
    if (!text) return -1;
    return sample(*text, name, labels).value_or(0);
  }

  // Node i's members, name -> state.
  std::map<std::string, std::string> members(int i) const {
    std::map<std::string, std::string> out;
    const auto r = meshctl(i, {"members", "--json"});
    if (r.exit_code != 0) return out;
    try {
      for (const auto& m : Json::parse(r.out)) out[m.value("name", "")] = m.value("state", "");
    } catch (const std::exception&) {
    }
    return out;
  }

  // The agent ids node i lists (meshctl peers: GET /v1/agents), id -> node.
  std::map<std::string, std::string> agents(int i) const {
    std::map<std::string, std::string> out;
    const auto r = meshctl(i, {"peers", "--json"});
    if (r.exit_code != 0) return out;
    try {
      for (const auto& a : Json::parse(r.out)) out[a.value("agent_id", "")] = a.value("node", "");
    } catch (const std::exception&) {
    }
    return out;
  }

  bool all_alive() const {
    for (std::size_t o = 0; o < procs_.size(); ++o) {
      if (!procs_[o]) continue;
      const auto view = members(static_cast<int>(o));
      for (std::size_t s = 0; s < procs_.size(); ++s) {
        if (!procs_[s]) continue;
        const auto it = view.find(names_[s]);
        if (it == view.end() || it->second != "alive") return false;
      }
    }
    return true;
  }

  // The JSON lines node i printed on stdout that have `key`.
  std::vector<Json> lines(int i, const std::string& key) const {
    std::vector<Json> out;
    std::istringstream in(procs_.at(static_cast<std::size_t>(i))->stdout_text());
    std::string line;
    while (std::getline(in, line)) {
      const Json j = Json::parse(line, nullptr, false);
      if (j.is_object() && j.contains(key)) out.push_back(j);
    }
    return out;
  }
  std::vector<Json> received(int i) const { return lines(i, "got"); }

  void wait_for(const std::string& what, std::chrono::milliseconds timeout, const std::function<bool()>& pred) {
    wait_for_or_fail(what, timeout, pred, [this] { return describe(); }, kPoll);
  }

  std::string describe() const {
    std::string out;
    for (std::size_t i = 0; i < procs_.size(); ++i) {
      if (!procs_[i]) continue;
      const int n = static_cast<int>(i);
      out += "  " + names_[i] + " (" + lab_.ip(n) + ") members:";
      for (const auto& [m, st] : members(n)) out += " " + m + "=" + st;
      out += "; agents:";
      for (const auto& [a, node] : agents(n)) out += " " + a + "@" + node;
      out += "\n  stdout:\n" + procs_[i]->stdout_text() + "  log:\n" + procs_[i]->log_tail(20);
    }
    return out;
  }

 private:
  NetnsLab lab_;  // first: removed after the nodes are killed
  TempDir dir_;   // data dirs, keys, policies, logs: outlive the processes
  std::vector<std::unique_ptr<Process>> procs_;
  std::vector<std::string> names_;
};

std::string dump(const std::vector<Json>& js) {
  std::string out;
  for (const auto& j : js) out += "    " + j.dump() + "\n";
  return out;
}

class TrustNetns : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string reason = NetnsLab::unavailable_reason();
    if (!reason.empty()) GTEST_SKIP() << reason;
  }
};

// ---- a member that lies about who sends ------------------------------------

// forger sends rec-0 (on receiver) envelopes naming `victim` as their node
// and victim-1 (victim's agent) as their agent: refused, counted forged,
// never printed by rec-0; forger's honest messages on the same connection
// arrive.
TEST_F(TrustNetns, AForgedSenderIsRefusedAndNothingIsDelivered) {
  TrustLab t(3);
  t.start(0, "receiver", {"--agent", "rec-0"});
  t.start(1, "victim", {"--agent", "victim-1"});
  t.wait_for("receiver to list victim-1", kConverge, [&] { return t.agents(0).count("victim-1") == 1; });
  const double forged_before =
      t.counter(0, "mesh_transport_frames_dropped_total", {{"reason", "forged"}});
  ASSERT_GE(forged_before, 0);
  t.start(2, "forger",
          {"--agent", "forger-2", "--forge", "victim", "--foreign-agent", "victim-1", "--to", "receiver/rec-0"});
  t.wait_for("all three alive everywhere", kConverge, [&] { return t.all_alive(); });
  t.wait_for("the forger to send everything", kForged, [&] { return !t.lines(2, "forged_all").empty(); });
  ASSERT_TRUE(t.lines(2, "forge_error").empty()) << t.describe();
  for (const auto& s : t.lines(2, "sent")) EXPECT_EQ(s.value("result", ""), "none") << s.dump();

  // The honest ones arrive, from forger-2 on forger.
  std::set<std::string> honest;
  t.wait_for("both honest messages to reach rec-0", kDeliver, [&] {
    honest.clear();
    for (const auto& m : t.received(0)) honest.insert(m["got"].value("label", ""));
    return honest.count("honest-raw-notify") == 1 && honest.count("honest-api-notify") == 1;
  });
  // Four lies refused and counted: two naming another node, two another
  // node's agent (the latter possibly after a registry fetch of the
  // forger's node, which does not list victim-1).
  double forged = 0;
  t.wait_for("receiver to count four forged frames", kDeliver, [&] {
    forged = t.counter(0, "mesh_transport_frames_dropped_total", {{"reason", "forged"}});
    return forged >= forged_before + 4;
  });
  std::this_thread::sleep_for(3s);  // anything still on its way
  const auto got = t.received(0);
  for (const auto& m : got) {
    EXPECT_FALSE(m["got"].value("forged", true)) << "delivered: " << m.dump();
    EXPECT_EQ(m.value("from_node", ""), "forger") << m.dump();
    EXPECT_EQ(m.value("from", ""), "forger-2") << m.dump();
  }
  EXPECT_EQ(got.size(), 2u) << dump(got);
  EXPECT_TRUE(t.received(1).empty()) << dump(t.received(1));
}

// ---- a registry with a bad signature ----------------------------------------

// liar (its registry signed with a key of its own drawing, not the one its
// skey tag names) is a live member, but forged-1 enters no directory but
// its own, while honest-2, which joined after it, is listed everywhere.
// Both speak to watcher-0 the ordinary way: honest-2 is answered and
// heard; forged-1, an agent nobody lists, is refused Unauthenticated and
// never heard.
TEST_F(TrustNetns, ACardWithABadSignatureNeverAppearsInAnyDirectory) {
  TrustLab t(3);
  t.start(0, "watcher", {"--agent", "watcher-0"});
  t.start(1, "liar", {"--agent", "forged-1", "--bad-signature", "--say-to", "watcher-0"});
  t.start(2, "honest", {"--agent", "honest-2", "--say-to", "watcher-0"});
  t.wait_for("all three alive everywhere", kConverge, [&] { return t.all_alive(); });
  t.wait_for("honest-2 and watcher-0 listed by watcher, honest and liar", kConverge, [&] {
    for (int i = 0; i < 3; ++i) {
      const auto a = t.agents(i);
      if (a.count("honest-2") == 0 || a.count("watcher-0") == 0) return false;
    }
    return true;
  });
  EXPECT_EQ(t.agents(1).count("forged-1"), 1u) << "liar lists its own agent";
  t.wait_for("watcher and honest to count a bad signature", kDeliver, [&] {
    return t.counter(0, "mesh_registry_bad_signatures_total") >= 1 &&
           t.counter(2, "mesh_registry_bad_signatures_total") >= 1;
  });
  // Never listed, however long one looks (registry repairs refetch it).
  const auto until = std::chrono::steady_clock::now() + kWindow;
  int looks = 0;
  while (std::chrono::steady_clock::now() < until) {
    for (int i : {0, 2}) {
      const auto a = t.agents(i);
      ASSERT_FALSE(a.empty()) << t.name(i) << " did not answer\n" << t.describe();
      ASSERT_EQ(a.count("forged-1"), 0u) << t.name(i) << " lists forged-1\n" << t.describe();
    }
    ++looks;
    std::this_thread::sleep_for(kPoll);
  }
  EXPECT_GE(looks, 3);
  EXPECT_EQ(t.members(0).at("liar"), "alive");
  EXPECT_EQ(t.members(2).at("liar"), "alive");

  // Spoken to: the honest agent is answered, the unlisted one refused.
  t.wait_for("liar and honest to have asked and told watcher-0", kDeliver,
             [&] { return t.lines(1, "said").size() == 2 && t.lines(2, "said").size() == 2; });
  const auto honest_said = t.lines(2, "said");
  EXPECT_EQ(honest_said[0].value("result", ""), "none") << dump(honest_said);
  EXPECT_EQ(honest_said[0]["response"].value("by", ""), "watcher-0") << dump(honest_said);
  const auto liar_said = t.lines(1, "said");
  EXPECT_EQ(liar_said[0].value("result", ""), "unauthenticated") << dump(liar_said);
  t.wait_for("honest-2's notify to reach watcher-0", kDeliver, [&] { return t.received(0).size() == 2; });
  std::this_thread::sleep_for(3s);  // forged-1's notify, were it on its way
  const auto heard = t.received(0);
  for (const auto& m : heard) EXPECT_EQ(m.value("from", ""), "honest-2") << m.dump();
  EXPECT_EQ(heard.size(), 2u) << dump(heard);
}

// ---- zones and policy ---------------------------------------------------------

// zone a may request zone b; nothing else is allowed.
constexpr const char* kPolicy = R"(zones:
  a:
    claims: ["a"]
  b:
    claims: ["b"]
rules:
  - from: a
    to: b
    allow: [request]
default: deny
)";
// The same zones, and everything allowed: a node that sends what it is
// told to, and leaves the judging to the receiver.
constexpr const char* kPermissive = R"(zones:
  a:
    claims: ["a"]
  b:
    claims: ["b"]
rules:
  - from: "*"
    to: "*"
    allow: [notify, request, broadcast]
default: allow
)";

// A trust key, and certified nodes: name, CURVE key pair, certificate.
class Certifier {
 public:
  explicit Certifier(TrustLab& t, const std::string& label) : t_(t) {
    key_file_ = t.dir() + "/" + label + ".trust";
    const auto r = run_to_exit({MESHCTL_BIN, "certs", "keygen", "--out", key_file_}, {});
    if (r.exit_code != 0 || r.out.rfind("JC_TRUST_KEY=", 0) != 0) {
      throw std::runtime_error("meshctl certs keygen: " + r.out + r.err);
    }
    public_ = r.out.substr(13);
    while (!public_.empty() && (public_.back() == '\n' || public_.back() == ' ')) public_.pop_back();
  }
  const std::string& public_key() const { return public_; }

  // The environment of node `name` certified for `zone`: its CURVE key
  // pair, its certificate, and `trusted` as the trust key it believes.
  std::map<std::string, std::string> node(const std::string& name, const std::string& zone,
                                          const std::string& trusted) const {
    const auto k = run_to_exit({MESH_TRUST_PROBE_BIN, "--curve-keygen"}, {});
    if (k.exit_code != 0) throw std::runtime_error("mesh-trust-probe --curve-keygen: " + k.err);
    const Json keys = Json::parse(k.out);
    const std::string pub = keys.at("public_key");
    const auto c = run_to_exit({MESHCTL_BIN, "certs", "issue", "--trust-key-file", key_file_, "--name", name,
                                "--public-key", pub, "--zone", zone, "--valid-days", "1"},
                               {});
    if (c.exit_code != 0) throw std::runtime_error("meshctl certs issue: " + c.out + c.err);
    return {{"JC_CURVE_PUBLIC_KEY", pub},
            {"JC_CURVE_SECRET_KEY", keys.at("secret_key").get<std::string>()},
            {"JC_NODE_CERT_FILE", t_.write(name + ".cert", c.out)},
            {"JC_TRUST_KEY", trusted}};
  }

 private:
  TrustLab& t_;
  std::string key_file_;
  std::string public_;
};

std::map<std::string, std::string> with(std::map<std::string, std::string> env, const std::string& k,
                                        const std::string& v) {
  env[k] = v;
  return env;
}

const std::map<std::string, std::string> kReceiverDenied = {{"side", "receiver"}};
const std::map<std::string, std::string> kSenderDenied = {{"side", "sender"}};

// Polls `meshctl request` from node `from` to `target` until it is refused
// HTTP 403 (PermissionDenied); fails at once if it is ever answered.
// (Until the target's card has reached the sender, the answer is 404.)
void expect_refused(TrustLab& t, int from, const std::string& target) {
  RunResult last;
  t.wait_for(t.name(from) + "'s request to " + target + " to be refused 403", kDeliver, [&] {
    last = t.meshctl(from, {"request", target, R"({"q":"denied?"})", "--timeout-ms", "10000"});
    if (last.exit_code == 0) throw std::runtime_error(t.name(from) + " reached " + target + ": " + last.out);
    return last.err.find("HTTP 403") != std::string::npos;
  });
  EXPECT_NE(last.err.find("does not let this sender reach it"), std::string::npos) << last.err;
}

// alpha (a) asks bravo (b): answered. bravo asks alpha: refused by its own
// policy before sending. charlie (b, permissive policy) asks alpha: sent,
// refused by alpha (PermissionDenied, counted at the receiver), and
// rec-alpha never sees it.
TEST_F(TrustNetns, APolicyDeniesAtBothEndsAndAllowsThePermitted) {
  TrustLab t(3);
  Certifier ca(t, "cluster");
  const std::string policy = t.write("policy.yaml", kPolicy);
  const std::string permissive = t.write("permissive.yaml", kPermissive);
  t.start(0, "alpha", {"--agent", "rec-alpha"}, with(ca.node("alpha", "a", ca.public_key()), "JC_POLICY", policy));
  t.start(1, "bravo", {"--agent", "rec-bravo"}, with(ca.node("bravo", "b", ca.public_key()), "JC_POLICY", policy));
  t.start(2, "charlie", {"--agent", "rec-charlie"},
          with(ca.node("charlie", "b", ca.public_key()), "JC_POLICY", permissive));
  t.wait_for("all three alive everywhere", kConverge, [&] { return t.all_alive(); });
  t.wait_for("alpha to list rec-bravo and charlie to list rec-alpha", kConverge,
             [&] { return t.agents(0).count("rec-bravo") == 1 && t.agents(2).count("rec-alpha") == 1; });

  // The permitted: a -> b.
  RunResult ok;
  t.wait_for("alpha's request to rec-bravo to be answered", kDeliver, [&] {
    ok = t.meshctl(0, {"request", "rec-bravo", R"({"q":"allowed"})", "--json", "--timeout-ms", "10000"});
    return ok.exit_code == 0;
  });
  const Json answer = Json::parse(ok.out);
  EXPECT_EQ(answer["response"]["by"], "rec-bravo") << ok.out;
  EXPECT_EQ(answer["response"]["echo"]["q"], "allowed") << ok.out;
  const auto at_bravo = t.received(1);
  ASSERT_EQ(at_bravo.size(), 1u) << dump(at_bravo);
  EXPECT_EQ(at_bravo[0].value("from_node", ""), "alpha");

  // b -> a from bravo: refused by bravo's own policy, never sent.
  const double alpha_denied_before = t.counter(0, "mesh_policy_denied_total", kReceiverDenied);
  expect_refused(t, 1, "rec-alpha");
  // A notify the same way: 403 with its reason, not the 503 of a full mailbox.
  const RunResult told = t.meshctl(1, {"send", "rec-alpha", R"({"n":1})"});
  EXPECT_EQ(told.exit_code, 1) << told.out;
  EXPECT_NE(told.err.find("HTTP 403 not accepted for delivery"), std::string::npos) << told.err;
  EXPECT_GE(t.counter(1, "mesh_policy_denied_total", kSenderDenied), 2) << t.describe();
  EXPECT_EQ(t.counter(0, "mesh_policy_denied_total", kReceiverDenied), alpha_denied_before);

  // b -> a from charlie, whose policy lets it send: alpha refuses it.
  expect_refused(t, 2, "rec-alpha");
  EXPECT_EQ(t.counter(2, "mesh_policy_denied_total", kSenderDenied), 0);
  t.wait_for("alpha to count the refusal", kDeliver,
             [&] { return t.counter(0, "mesh_policy_denied_total", kReceiverDenied) >= alpha_denied_before + 1; });
  EXPECT_GE(t.counter(0, "mesh_transport_frames_dropped_total", {{"reason", "denied"}}), 1);
  std::this_thread::sleep_for(2s);
  EXPECT_TRUE(t.received(0).empty()) << dump(t.received(0));
  EXPECT_EQ(t.counter(0, "mesh_certificates_refused_total"), 0);
}

// mallory claims zone a with a certificate signed by a trust key of its
// own (which it alone believes) and runs a permissive policy: bravo does
// not believe the claim (certificates refused, counted), so mallory is in
// no zone there and its request is refused, while certified alpha's is
// answered. eve has no certificate and names zone a in its tags: no claim
// either.
TEST_F(TrustNetns, AnUncertifiedZoneClaimIsIgnored) {
  TrustLab t(4);
  Certifier ca(t, "cluster");
  Certifier rogue(t, "rogue");
  const std::string policy = t.write("policy.yaml", kPolicy);
  const std::string permissive = t.write("permissive.yaml", kPermissive);
  t.start(0, "alpha", {"--agent", "rec-alpha"}, with(ca.node("alpha", "a", ca.public_key()), "JC_POLICY", policy));
  t.start(1, "bravo", {"--agent", "rec-bravo"}, with(ca.node("bravo", "b", ca.public_key()), "JC_POLICY", policy));
  t.start(2, "mallory", {"--agent", "rec-mallory"},
          with(rogue.node("mallory", "a", rogue.public_key()), "JC_POLICY", permissive));
  t.start(3, "eve", {"--agent", "rec-eve"},
          {{"JC_POLICY", permissive}, {"JC_TRUST_KEY", ca.public_key()}, {"JC_TAGS", "zone=a,zones=a,claims=a"}});
  t.wait_for("all four alive everywhere", kConverge, [&] { return t.all_alive(); });
  t.wait_for("alpha, mallory and eve to list rec-bravo", kConverge, [&] {
    return t.agents(0).count("rec-bravo") == 1 && t.agents(2).count("rec-bravo") == 1 &&
           t.agents(3).count("rec-bravo") == 1;
  });
  t.wait_for("bravo to refuse mallory's certificate", kDeliver,
             [&] { return t.counter(1, "mesh_certificates_refused_total") >= 1; });
  // The claim, not the registry, is refused: bravo's directory (what
  // /v1/agents shows, unfiltered by policy) holds rec-mallory. (That its
  // agents' discovery hides it is tested in process, MeshPolicy.*.)
  EXPECT_EQ(t.agents(1).count("rec-mallory"), 1u);

  RunResult ok;
  t.wait_for("alpha's request to rec-bravo to be answered", kDeliver, [&] {
    ok = t.meshctl(0, {"request", "rec-bravo", R"({"q":"certified"})", "--json", "--timeout-ms", "10000"});
    return ok.exit_code == 0;
  });
  EXPECT_EQ(Json::parse(ok.out)["response"]["by"], "rec-bravo") << ok.out;

  const double bravo_denied_before = t.counter(1, "mesh_policy_denied_total", kReceiverDenied);
  expect_refused(t, 2, "rec-bravo");
  t.wait_for("bravo to count the refusal", kDeliver,
             [&] { return t.counter(1, "mesh_policy_denied_total", kReceiverDenied) >= bravo_denied_before + 1; });
  expect_refused(t, 3, "rec-bravo");
  t.wait_for("bravo to count eve's refusal too", kDeliver,
             [&] { return t.counter(1, "mesh_policy_denied_total", kReceiverDenied) >= bravo_denied_before + 2; });
  std::this_thread::sleep_for(2s);
  const auto at_bravo = t.received(1);
  ASSERT_EQ(at_bravo.size(), 1u) << dump(at_bravo);  // alpha's only
  EXPECT_EQ(at_bravo[0].value("from_node", ""), "alpha");
  // alpha does not believe it either.
  EXPECT_GE(t.counter(0, "mesh_certificates_refused_total"), 1);
}

}  // namespace
}  // namespace mesh::test
