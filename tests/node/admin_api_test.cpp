// One admin API on every node, across processes: `meshctl members`,
// `meshctl peers` and GET /metrics against a mesh-node (no agents) and
// against a mesh-agents (the example agent host), alone and joined into
// one cluster, where the node without agents lists and reaches the other
// node's agents. The bearer token: POST routes need it, reads with
// admin_read_auth, /healthz never; beyond loopback without a token, POSTs
// are refused. And `--version` / `-v` on every program.
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "mesh/admin_client.hpp"
#include "mesh/admin_endpoint.hpp"
#include "mesh/mesh.hpp"
#include "mesh/mesh_admin.hpp"
#include "loopback_config.hpp"
#include "process.hpp"
#include "wait_for.hpp"

namespace mesh::test {
namespace {

using namespace std::chrono_literals;
using Json = nlohmann::json;

// A node program on 127.0.0.1 with the local profile and ports of its own.
struct Node {
  // `program` is MESH_NODE_BIN or MESH_AGENTS_BIN; `extra` its own flags.
  Node(const TempDir& dir, std::string program, std::string node_name, std::vector<std::string> extra = {},
       const std::string& seeds = {})
      : name(std::move(node_name)), swim(free_port()), admin(free_port()) {
    std::vector<std::string> argv = {std::move(program), "--node-name", name, "--swim-host", "127.0.0.1",
                                     "--swim-port", std::to_string(swim), "--zmq-port", std::to_string(free_port()),
                                     "--admin-port", std::to_string(admin), "--profile", "local"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    if (!seeds.empty()) argv.insert(argv.end(), {"--seeds", seeds});
    process = std::make_unique<Process>(argv, std::map<std::string, std::string>{{"P2P_ENABLED", "true"}},
                                        dir.path(), name);
    wait_for_or_fail(
        name + "'s /healthz", 30s,
        [&] {
          const auto r = http_get("127.0.0.1", admin, "/healthz", 1s);
          return r.ok && r.status == 200;
        },
        [&] { return process->log_tail(); }, 100ms);
  }
  ~Node() {
    process->signal(SIGTERM);
    process->wait_exit(20s);
  }
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  std::string seed() const { return "127.0.0.1:" + std::to_string(swim); }

  RunResult meshctl(std::vector<std::string> args) const {
    args.insert(args.begin(), {MESHCTL_BIN, "--admin", "127.0.0.1:" + std::to_string(admin)});
    return run_to_exit(std::move(args), {}, 30s);
  }

  // meshctl <command> --json, parsed; null when it fails.
  Json meshctl_json(const std::string& command) const {
    const RunResult r = meshctl({command, "--json"});
    if (r.exit_code != 0) return Json();
    return Json::parse(r.out, nullptr, false);
  }

  // Members this node sees alive, by name.
  std::vector<std::string> alive_members() const {
    std::vector<std::string> out;
    const Json list = meshctl_json("members");
    if (!list.is_array()) return out;
    for (const auto& m : list) {
      if (m.value("state", "") == "alive") out.push_back(m.value("name", ""));
    }
    return out;
  }

  // The roles of the agents this node lists (meshctl peers --json).
  std::vector<std::string> agent_roles() const {
    std::vector<std::string> out;
    const Json list = meshctl_json("peers");
    if (!list.is_array()) return out;
    for (const auto& p : list) out.push_back(p.value("role", ""));
    std::sort(out.begin(), out.end());
    return out;
  }

  std::string metrics() const {
    const auto r = http_get("127.0.0.1", admin, "/metrics", 10s);
    return r.ok && r.status == 200 ? r.body : std::string();
  }

  std::string name;
  std::uint16_t swim;
  std::uint16_t admin;
  std::unique_ptr<Process> process;
};

// The value of one series ("mesh_agents", "mesh_swim_members{state=\"alive\"}")
// in a scrape; nullopt when absent.
std::optional<double> metric(const std::string& text, const std::string& series) {
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
  }
  return std::nullopt;
}

const std::string kAlive = "mesh_swim_members{state=\"alive\"}";

// What every node answers alone: itself as the one member (meshctl's
// table too), its agents, and the metrics of SWIM, the transport and the
// Mesh.
void expect_serves_admin_api(const Node& n, const std::vector<std::string>& roles) {
  EXPECT_EQ(n.alive_members(), std::vector<std::string>{n.name}) << n.process->log_tail();
  const RunResult table = n.meshctl({"members"});
  EXPECT_EQ(table.exit_code, 0) << table.err;
  EXPECT_EQ(table.out.rfind(n.name + "  127.0.0.1:" + std::to_string(n.swim) + "  alive", 0), 0u) << table.out;

  const RunResult peers = n.meshctl({"peers"});
  EXPECT_EQ(peers.exit_code, 0) << peers.err;
  EXPECT_EQ(n.agent_roles(), roles);

  const auto self = http_get("127.0.0.1", n.admin, "/v1/self", 5s);
  EXPECT_EQ(self.status, 200u) << self.body;

  const std::string m = n.metrics();
  EXPECT_EQ(metric(m, kAlive), 1.0) << m;
  EXPECT_EQ(metric(m, "mesh_transport_peers_known"), 0.0) << m;
  EXPECT_EQ(metric(m, "mesh_agents"), static_cast<double>(roles.size())) << m;
}

TEST(AdminApi, MeshNodeServesMembersPeersAndMetrics) {
  TempDir dir;
  Node n(dir, MESH_NODE_BIN, "bare");
  expect_serves_admin_api(n, {});
  // No agents: peers prints nothing and succeeds.
  EXPECT_EQ(n.meshctl({"peers"}).out, "");
}

TEST(AdminApi, MeshAgentsServesMembersPeersAndMetrics) {
  TempDir dir;
  Node n(dir, MESH_AGENTS_BIN, "host", {"--agents", "scout,analyst", "--tick", "0"});
  expect_serves_admin_api(n, {"analyst", "scout"});
}

// A mesh-node joined by a mesh-agents: each lists both members, and the
// node without agents lists the other's agents and reaches them.
TEST(AdminApi, NodeWithoutAgentsAndAgentHostFormOneCluster) {
  TempDir dir;
  Node bare(dir, MESH_NODE_BIN, "bare");
  Node host(dir, MESH_AGENTS_BIN, "host", {"--agents", "scout,analyst", "--tick", "0"}, bare.seed());
  const std::vector<std::string> both = {"bare", "host"};
  auto sorted = [](std::vector<std::string> v) {
    std::sort(v.begin(), v.end());
    return v;
  };
  wait_for_or_fail(
      "both nodes to see both alive", 30s,
      [&] { return sorted(bare.alive_members()) == both && sorted(host.alive_members()) == both; },
      [&] { return bare.process->log_tail() + host.process->log_tail(); }, 200ms);
  wait_for_or_fail(
      "bare to list host's agents", 30s,
      [&] { return bare.agent_roles() == std::vector<std::string>{"analyst", "scout"}; },
      [&] { return bare.meshctl({"peers"}).out + bare.process->log_tail(); }, 200ms);

  const RunResult answer = bare.meshctl({"request", "analyst", R"({"kind":"summary"})", "--json"});
  ASSERT_EQ(answer.exit_code, 0) << answer.err;
  const Json a = Json::parse(answer.out);
  EXPECT_EQ(a.at("node"), "host");
  EXPECT_EQ(a.at("response").at("node"), "host");

  // The node without agents talked to the other over the transport.
  const std::string m = bare.metrics();
  EXPECT_EQ(metric(m, kAlive), 2.0) << m;
  EXPECT_GE(metric(m, "mesh_transport_peers_known").value_or(0), 1.0) << m;
  EXPECT_EQ(metric(host.metrics(), kAlive), 2.0);
}

// --- authentication --------------------------------------------------------

const std::string kToken = "s3cret-admin-token-0123";
const std::vector<std::string> kReadRoutes = {"/v1/members", "/v1/self", "/v1/agents", "/metrics"};

HttpResult post(const Node& n, const std::string& path, const HttpHeaders& headers) {
  return http_post("127.0.0.1", n.admin, path, R"({"target":"scout","message":{"kind":"ping"}})", 10s, headers);
}

HttpResult get(const Node& n, const std::string& path, const HttpHeaders& headers = {}) {
  return http_get("127.0.0.1", n.admin, path, 10s, headers);
}

std::string error_text(const HttpResult& r) {
  const Json j = Json::parse(r.body, nullptr, false);
  return j.is_object() && j.contains("error") && j["error"].is_string() ? j["error"].get<std::string>() : r.body;
}

TEST(AdminApi, TokenGuardsPostRoutes) {
  TempDir dir;
  Node n(dir, MESH_AGENTS_BIN, "host", {"--agents", "scout", "--tick", "0", "--admin-token", kToken});
  const auto none = post(n, "/v1/send", {});
  EXPECT_EQ(none.status, 401u) << none.body;
  EXPECT_EQ(none.header("WWW-Authenticate"), "Bearer");
  EXPECT_NE(error_text(none).find("Authorization: Bearer"), std::string::npos) << none.body;
  for (const auto& wrong : {bearer(kToken + "x"), bearer(kToken.substr(1)), bearer("x" + kToken.substr(1)),
                            HttpHeaders{{"Authorization", "Basic " + kToken}}}) {
    const auto r = post(n, "/v1/send", wrong);
    EXPECT_EQ(r.status, 401u) << wrong[0].second;
    EXPECT_EQ(r.header("WWW-Authenticate"), "Bearer");
  }
  EXPECT_EQ(post(n, "/v1/request", {}).status, 401u);

  const auto sent = post(n, "/v1/send", bearer(kToken));
  EXPECT_EQ(sent.status, 200u) << sent.body;
  EXPECT_EQ(Json::parse(sent.body).value("sent", false), true) << sent.body;
  // The scheme is case-insensitive (RFC 7235).
  EXPECT_EQ(post(n, "/v1/send", {{"Authorization", "bearer " + kToken}}).status, 200u);

  // Reads stay open without admin_read_auth, /healthz always.
  for (const auto& path : kReadRoutes) EXPECT_EQ(get(n, path).status, 200u) << path;
  EXPECT_EQ(get(n, "/healthz").status, 200u);

  EXPECT_EQ(metric(n.metrics(), "mesh_admin_unauthorized_total"), 6.0);
}

TEST(AdminApi, ReadAuthGuardsEveryRouteButHealthz) {
  TempDir dir;
  const std::string file = dir.write("admin-token", kToken + "\n");
  Node n(dir, MESH_NODE_BIN, "bare", {"--admin-token-file", file, "--admin-read-auth", "true"});
  for (const auto& path : kReadRoutes) {
    const auto refused = get(n, path);
    EXPECT_EQ(refused.status, 401u) << path;
    EXPECT_EQ(refused.header("WWW-Authenticate"), "Bearer") << path;
    EXPECT_EQ(get(n, path, bearer("wrong-admin-token-0123")).status, 401u) << path;
    EXPECT_EQ(get(n, path, bearer(kToken)).status, 200u) << path;
  }
  EXPECT_EQ(get(n, "/healthz").status, 200u);
  // mesh-node hosts no agents: past the token, the target is unknown.
  EXPECT_EQ(post(n, "/v1/send", {}).status, 401u);
  EXPECT_EQ(post(n, "/v1/send", bearer(kToken)).status, 404u);
}

// Bound beyond loopback (0.0.0.0, reached here over 127.0.0.1) without a
// token: POST routes are refused, reads stay open, and the node says so
// once at start.
TEST(AdminApi, BeyondLoopbackWithoutTokenPostsAreRefused) {
  TempDir dir;
  Node n(dir, MESH_AGENTS_BIN, "host", {"--agents", "scout", "--tick", "0", "--admin-host", "0.0.0.0"});
  for (const std::string path : {"/v1/send", "/v1/request"}) {
    const auto r = post(n, path, {});
    EXPECT_EQ(r.status, 403u) << path << " " << r.body;
    EXPECT_NE(error_text(r).find("set JC_ADMIN_TOKEN"), std::string::npos) << r.body;
  }
  for (const auto& path : kReadRoutes) EXPECT_EQ(get(n, path).status, 200u) << path;
  const std::string log = n.process->log_tail(200);
  const std::string warning = "no admin token, and not on loopback: POST routes are refused";
  const auto first = log.find(warning);
  EXPECT_NE(first, std::string::npos) << log;
  EXPECT_EQ(log.find(warning, first + 1), std::string::npos) << log;
  EXPECT_EQ(metric(n.metrics(), "mesh_admin_unauthorized_total"), 2.0);
}

// With a token, beyond loopback is fine.
TEST(AdminApi, BeyondLoopbackWithTokenPostsWork) {
  TempDir dir;
  Node n(dir, MESH_AGENTS_BIN, "host",
         {"--agents", "scout", "--tick", "0", "--admin-host", "0.0.0.0", "--admin-token", kToken});
  EXPECT_EQ(post(n, "/v1/send", {}).status, 401u);
  EXPECT_EQ(post(n, "/v1/send", bearer(kToken)).status, 200u);
  EXPECT_EQ(n.process->log_tail(200).find("no admin token"), std::string::npos);
}

// --- --version and -v ------------------------------------------------------

TEST(AdminApi, EveryProgramAnswersVersion) {
  const std::vector<std::pair<std::string, std::string>> programs = {
      {MESH_NODE_BIN, "mesh-node"}, {MESHCTL_BIN, "meshctl"}, {MESH_AGENTS_BIN, "mesh-agents"}};
  for (const auto& [bin, name] : programs) {
    for (const std::string flag : {"--version", "-v"}) {
      const RunResult r = run_to_exit({bin, flag}, {});
      EXPECT_EQ(r.exit_code, 0) << name << " " << flag << ": " << r.err;
      EXPECT_EQ(r.out, name + " " + MESH_VERSION_TEXT + "\n") << name << " " << flag;
      EXPECT_EQ(r.err, "") << name << " " << flag;
    }
  }
}


// `meshctl keys` against three mesh-node processes (serf keys' rotation):
// each step reaches every member and says so; the route needs the token
// (it shows the keys); a step a member refuses exits 1 naming it.
TEST(AdminApi, MeshctlKeysRotatesTheGossipKeyOnEveryMember) {
  const std::string old_key = "cg8StVXbQJ0gPvMd9o7yrg==";
  const std::string new_key = "2Yl0jyCkZ6lDYFsMwbGHNT0YVh2WV5l1Lz4bQ6tNp1k=";
  TempDir dir;
  const std::string token_file = dir.write("admin-token", kToken + "\n");
  const std::vector<std::string> flags = {"--gossip-key", old_key, "--admin-token-file", token_file};
  Node a(dir, MESH_NODE_BIN, "ka", flags);
  Node b(dir, MESH_NODE_BIN, "kb", flags, a.seed());
  Node c(dir, MESH_NODE_BIN, "kc", flags, a.seed());
  wait_for_or_fail(
      "three alive members", 30s, [&] { return a.alive_members().size() == 3 && b.alive_members().size() == 3; },
      [&] { return a.process->log_tail() + b.process->log_tail() + c.process->log_tail(); }, 200ms);

  const std::string list = R"({"op":"list"})";
  EXPECT_EQ(http_post("127.0.0.1", a.admin, "/v1/keys", list, 10s, {}).status, 401u);
  EXPECT_EQ(http_post("127.0.0.1", a.admin, "/v1/keys", list, 10s, bearer(kToken + "x")).status, 401u);
  EXPECT_EQ(http_post("127.0.0.1", a.admin, "/v1/keys", R"({"op":"use"})", 10s, bearer(kToken)).status, 400u);
  EXPECT_EQ(b.meshctl({"keys", "list"}).exit_code, 1);  // no token given

  auto keys = [&](const Node& n, std::vector<std::string> args) {
    args.insert(args.begin(), {"--token-file", token_file, "keys"});
    return n.meshctl(std::move(args));
  };
  RunResult r = keys(b, {"list"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("list: 3 of 3 members done"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(old_key + "  on 3/3, primary on 3"), std::string::npos) << r.out;

  r = keys(a, {"install", new_key});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("install: 3 of 3 members done"), std::string::npos) << r.out;
  r = keys(c, {"use", new_key});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  r = keys(a, {"remove", new_key});
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_NE(r.out.find("remove: 0 of 3 members done"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("kb  failed: the primary key cannot be removed"), std::string::npos) << r.out;
  r = keys(b, {"remove", old_key});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;

  r = keys(a, {"list", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const Json listed = Json::parse(r.out, nullptr, false);
  ASSERT_TRUE(listed.is_object()) << r.out;
  EXPECT_EQ(listed["failed"], 0);
  EXPECT_EQ(listed["keys"], Json::parse(R"([{"key":")" + new_key + R"(","installed":3,"primary":3}])")) << r.out;
  // Still one cluster, now under the new key alone.
  std::this_thread::sleep_for(2s);
  EXPECT_EQ(a.alive_members().size(), 3u);
  EXPECT_EQ(c.alive_members().size(), 3u);
  EXPECT_EQ(keys(a, {"install"}).exit_code, 2);  // usage: no key
}

// `meshctl join`, `reload` and `leave` (serf's verbs) against mesh-node
// processes: each needs the token; join reports a seed that answers and
// one that does not; reload takes a good policy file and keeps the old
// policy for a bad one (SIGHUP does the same); leave answers, then the
// node leaves gracefully (its peer sees it "left", not dead) and exits 0.
TEST(AdminApi, MeshctlJoinReloadAndLeave) {
  TempDir dir;
  const std::string token_file = dir.write("admin-token", kToken + "\n");
  const std::string good = "zones:\n  all:\n    nodes: [\"*\"]\nrules:\n  - from: all\n    to: all\n"
                           "    allow: [notify, request]\n";
  const std::string policy = dir.write("policy.yaml", good);
  const std::vector<std::string> flags = {"--admin-token-file", token_file, "--policy", policy};
  Node a(dir, MESH_NODE_BIN, "ja", flags);
  Node b(dir, MESH_NODE_BIN, "jb", flags);
  ASSERT_EQ(b.alive_members().size(), 1u);

  for (const std::string route : {"/v1/join", "/v1/leave", "/v1/reload"}) {
    const auto r = http_post("127.0.0.1", b.admin, route, "{}", 10s, {});
    EXPECT_EQ(r.status, 401u) << route << " " << r.body;
  }
  auto ctl = [&](const Node& n, std::vector<std::string> args) {
    args.insert(args.begin(), {"--token-file", token_file});
    return n.meshctl(std::move(args));
  };

  RunResult r = ctl(b, {"join", "nowhere:99999"});
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_NE(r.err.find("HTTP 400"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("not a port"), std::string::npos) << r.err;
  r = ctl(b, {"join", "127.0.0.1:" + std::to_string(free_port()), "--timeout-ms", "1500"});
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_NE(r.err.find("HTTP 504"), std::string::npos) << r.err;
  r = ctl(b, {"join", a.seed()});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("joined the cluster"), std::string::npos) << r.out;
  wait_for_or_fail(
      "two alive members", 30s, [&] { return a.alive_members().size() == 2 && b.alive_members().size() == 2; },
      [&] { return a.process->log_tail() + b.process->log_tail(); }, 200ms);

  r = ctl(b, {"reload"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("reloaded: policy"), std::string::npos) << r.out;
  dir.write("policy.yaml", "zones:\n  all:\n    nodes: [\"*\"]\nrules:\n  - from: all\n    to: elsewhere\n");
  r = ctl(b, {"reload"});
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_NE(r.err.find("HTTP 400 policy: " + policy + ":6: no zone named"), std::string::npos) << r.err;
  a.process->signal(SIGHUP);
  wait_for_or_fail(
      "SIGHUP's reload, refused", 20s,
      [&] { return a.process->log_tail(50).find("the policy was not reloaded") != std::string::npos; },
      [&] { return a.process->log_tail(); }, 100ms);
  dir.write("policy.yaml", good);
  a.process->signal(SIGHUP);
  wait_for_or_fail(
      "SIGHUP's reload", 20s, [&] { return a.process->log_tail(50).find("policy reloaded from") != std::string::npos; },
      [&] { return a.process->log_tail(); }, 100ms);
  EXPECT_EQ(a.alive_members().size(), 2u);  // a reload leaves membership alone

  r = ctl(b, {"leave"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("is leaving the cluster"), std::string::npos) << r.out;
  EXPECT_EQ(b.process->wait_exit(30s), std::optional<int>(0)) << b.process->log_tail();
  EXPECT_NE(b.process->log_tail(50).find("asked to leave through the admin API"), std::string::npos)
      << b.process->log_tail();
  wait_for_or_fail(
      "jb seen as left", 30s,
      [&] {
        const Json list = a.meshctl_json("members");
        if (!list.is_array()) return false;
        for (const auto& m : list) {
          if (m.value("name", "") == "jb") return m.value("state", "") == "left";
        }
        return false;
      },
      [&] { return a.process->log_tail(); }, 200ms);
}

// --- probes: /livez, /readyz, meshctl health ------------------------------

// A node in this process, its admin endpoint on a port of its own.
NodeConfig probe_config(const std::string& name, std::vector<std::string> seeds) {
  NodeConfig c = loopback_config(name, std::move(seeds));
  c.admin_port = 0;
  return c;
}

// GET `path` on `admin`: the status and the answer's "status" member.
std::pair<unsigned, std::string> probe(const AdminEndpoint& admin, const std::string& path) {
  const auto r = http_get("127.0.0.1", admin.port(), path, 10s);
  if (!r.ok) return {0, r.error};
  const Json j = Json::parse(r.body, nullptr, false);
  return {r.status, j.is_object() ? j.value("status", r.body) : r.body};
}

// /readyz follows the node: starting, joining while its seed is silent,
// ready once another node joins it (and, for that node, once its seed
// answered), leaving from set_leaving on; /livez answers throughout.
// Both are open with a token and admin_read_auth.
TEST(AdminProbes, ReadyzFollowsStartJoinAndLeave) {
  NodeConfig cb = probe_config("pb", {"127.0.0.1:" + std::to_string(free_port())});
  cb.admin_token = kToken;
  cb.admin_read_auth = true;
  Mesh b(cb);
  AdminEndpoint b_admin(b);
  b_admin.start();
  using Status = std::pair<unsigned, std::string>;
  EXPECT_EQ(probe(b_admin, "/readyz"), Status(503, "starting"));
  EXPECT_EQ(probe(b_admin, "/livez"), Status(200, "alive"));
  EXPECT_EQ(b.readiness().status, "starting");

  b.start();
  EXPECT_EQ(probe(b_admin, "/readyz"), Status(503, "joining"));
  const auto r = http_get("127.0.0.1", b_admin.port(), "/readyz", 10s);
  EXPECT_NE(Json::parse(r.body).value("reason", "").find("no seed has answered yet"), std::string::npos) << r.body;
  EXPECT_EQ(probe(b_admin, "/livez"), Status(200, "alive"));
  EXPECT_EQ(http_get("127.0.0.1", b_admin.port(), "/v1/members", 10s).status, 401u);  // reads still need the token

  Mesh a(probe_config("pa", {"127.0.0.1:" + std::to_string(b.swim_port())}));
  AdminEndpoint a_admin(a);
  a_admin.start();
  a.start();
  wait_for_or_fail(
      "pa ready (its seed answered)", 30s, [&] { return probe(a_admin, "/readyz") == Status(200, "ready"); },
      [&] { return probe(a_admin, "/readyz").second; }, 50ms);
  wait_for_or_fail(
      "pb ready (pa joined it)", 30s, [&] { return probe(b_admin, "/readyz") == Status(200, "ready"); },
      [&] { return probe(b_admin, "/readyz").second; }, 50ms);
  EXPECT_TRUE(b.readiness().ready);

  b_admin.set_leaving();
  EXPECT_EQ(probe(b_admin, "/readyz"), Status(503, "leaving"));
  EXPECT_EQ(probe(b_admin, "/healthz"), Status(503, "leaving"));
  EXPECT_EQ(probe(b_admin, "/livez"), Status(200, "alive"));
  b.stop();
  EXPECT_EQ(b.readiness().status, "stopped");
  EXPECT_FALSE(b.readiness().ready);
  EXPECT_EQ(probe(b_admin, "/readyz"), Status(503, "leaving"));
  b_admin.stop();

  // Alone on purpose (no seeds), and with P2P off: ready once started.
  Mesh lone(probe_config("plone", {}));
  lone.start();
  EXPECT_TRUE(lone.readiness().ready) << lone.readiness().reason;
  NodeConfig off = probe_config("poff", {});
  off.p2p_enabled = false;
  Mesh memory(off);
  memory.start();
  EXPECT_TRUE(memory.readiness().ready) << memory.readiness().reason;
  a_admin.stop();
}

// `meshctl health` across processes: 1 while the node's seed is silent
// (saying why), 0 with --live, 0 once it joined, 2 with nobody there.
// And `meshctl members` with its filters and --detailed.
TEST(AdminApi, MeshctlHealthAndMemberFilters) {
  TempDir dir;
  const std::uint16_t later = free_port();
  Node b(dir, MESH_NODE_BIN, "hb", {"--tags", "dc=west,tier=gold"}, "127.0.0.1:" + std::to_string(later));
  RunResult r = b.meshctl({"health"});
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_NE(r.out.find("joining (no seed has answered yet"), std::string::npos) << r.out;
  r = b.meshctl({"health", "--live"});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find(": alive"), std::string::npos) << r.out;
  // The log says why the seed did not answer, as the kernel put it.
  wait_for_or_fail(
      "the join's failure in the log", 30s,
      [&] {
        return b.process->log_tail(50).find("join failed (127.0.0.1:" + std::to_string(later) +
                                             ": connect: Connection refused)") != std::string::npos;
      },
      [&] { return b.process->log_tail(); }, 100ms);

  Node a(dir, MESH_NODE_BIN, "ha", {"--tags", "dc=east"}, b.seed());
  wait_for_or_fail(
      "hb ready", 30s, [&] { return b.meshctl({"health"}).exit_code == 0; },
      [&] { return b.meshctl({"health"}).out + b.process->log_tail(); }, 200ms);
  r = b.meshctl({"health"});
  EXPECT_NE(r.out.find(": ready"), std::string::npos) << r.out;
  r = b.meshctl({"health", "--json"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(Json::parse(r.out).value("status", ""), "ready") << r.out;
  wait_for_or_fail(
      "two alive members", 30s, [&] { return b.alive_members().size() == 2; },
      [&] { return b.process->log_tail(); }, 200ms);

  // The table hides the mesh's own tags; --detailed shows them.
  r = b.meshctl({"members"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("dc=west,tier=gold\n"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("zmq="), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("rv="), std::string::npos) << r.out;
  for (const std::string detailed : {"--detailed", "-detailed", "-d"}) {
    r = b.meshctl({"members", detailed});
    ASSERT_EQ(r.exit_code, 0) << detailed << r.err;
    EXPECT_NE(r.out.find("zmq="), std::string::npos) << detailed << r.out;
    EXPECT_NE(r.out.find("protocol="), std::string::npos) << detailed << r.out;
  }
  auto names = [&](std::vector<std::string> args) {
    args.insert(args.begin(), "members");
    args.push_back("--json");
    const RunResult out = b.meshctl(args);
    std::vector<std::string> v;
    if (out.exit_code != 0) return std::vector<std::string>{"exit " + std::to_string(out.exit_code) + out.err};
    for (const auto& m : Json::parse(out.out)) v.push_back(m.value("name", ""));
    std::sort(v.begin(), v.end());
    return v;
  };
  using Names = std::vector<std::string>;
  EXPECT_EQ(names({}), (Names{"ha", "hb"}));
  EXPECT_EQ(names({"--tag", "dc=east"}), Names{"ha"});
  EXPECT_EQ(names({"--tag", "dc=west", "--tag", "tier=gold"}), Names{"hb"});
  EXPECT_EQ(names({"--tag", "dc=west", "--tag", "tier=silver"}), Names{});
  EXPECT_EQ(names({"--status", "alive"}), (Names{"ha", "hb"}));
  EXPECT_EQ(names({"--status", "dead", "--status", "left"}), Names{});
  r = b.meshctl({"members", "--status", "sleeping"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  r = b.meshctl({"members", "--tag", "dc"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("--tag \"dc\" is not key=value"), std::string::npos) << r.err;

  // Nobody at the endpoint: 2.
  r = run_to_exit({MESHCTL_BIN, "--admin", "127.0.0.1:" + std::to_string(free_port()), "health"}, {}, 30s);
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
  EXPECT_NE(r.err.find("cannot reach the node"), std::string::npos) << r.err;
}

// meshctl finds the admin endpoint in the node's configuration file
// (JC_CONFIG) too, and a stray JC_* variable does not stop it.
TEST(AdminApi, MeshctlReadsTheAdminEndpointFromJcConfig) {
  TempDir dir;
  Node n(dir, MESH_NODE_BIN, "cfg");
  const std::string file = dir.write("mesh.yaml", "admin_port: " + std::to_string(n.admin) + "\n");
  RunResult r = run_to_exit({MESHCTL_BIN, "health"}, {{"JC_CONFIG", file}, {"JC_SEED_NODE", "typo"}}, 30s);
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("127.0.0.1:" + std::to_string(n.admin) + ": ready"), std::string::npos) << r.out;
  dir.write("broken.yaml", "admin_port: [\n");
  r = run_to_exit({MESHCTL_BIN, "health"}, {{"JC_CONFIG", dir.path() + "/broken.yaml"}}, 30s);
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
  EXPECT_NE(r.err.find("give --admin HOST:PORT"), std::string::npos) << r.err;
}

// --- cluster verbs: monitor, query, broadcast, force-leave ----------------

// The state `name` has in `n`'s member list ("" when absent).
std::string state_in(const Node& n, const std::string& name) {
  const Json list = n.meshctl_json("members");
  if (!list.is_array()) return "";
  for (const auto& m : list) {
    if (m.value("name", "") == name) return m.value("state", "");
  }
  return "";
}

// The events `monitor --json` printed so far, as "type node [agent_id]".
std::vector<std::string> monitored(const Process& p) {
  std::vector<std::string> out;
  std::istringstream in(p.stdout_text());
  for (std::string line; std::getline(in, line);) {
    const Json e = Json::parse(line, nullptr, false);
    if (!e.is_object()) continue;
    out.push_back(e.value("type", "") + " " + e.value("node", "") +
                  (e.contains("agent_id") ? " " + e.value("agent_id", "") : ""));
  }
  return out;
}

bool saw(const Process& p, const std::string& what) {
  const auto events = monitored(p);
  return std::find(events.begin(), events.end(), what) != events.end();
}

// Against a mesh-node (mb) in a cluster with two agent hosts (ma, mc):
// `monitor` sees mc join, its agents added, its death and its forced
// leave; `query` gathers the scouts' answers under each policy, by role
// and by capability; `broadcast` reaches every agent (or a role's);
// `force-leave` turns the killed mc left on every member, and refuses an
// alive member and an unknown name.
TEST(AdminApi, MeshctlMonitorQueryBroadcastAndForceLeave) {
  TempDir dir;
  Node a(dir, MESH_AGENTS_BIN, "ma", {"--agents", "scout,scout", "--tick", "0"});
  Node b(dir, MESH_NODE_BIN, "mb", {}, a.seed());
  wait_for_or_fail(
      "mb sees ma's scouts", 30s, [&] { return b.agent_roles() == std::vector<std::string>{"scout", "scout"}; },
      [&] { return b.process->log_tail(); }, 200ms);
  Process monitor({MESHCTL_BIN, "--admin", "127.0.0.1:" + std::to_string(b.admin), "monitor", "--json"}, {},
                  dir.path(), "monitor");
  // What happened before the monitor started is not shown (as with `serf
  // monitor`): wait until it says where it starts.
  wait_for_or_fail(
      "the monitor to start", 30s, [&] { return monitor.stderr_text().find("watching") != std::string::npos; },
      [&] { return monitor.stderr_text(); }, 100ms);

  auto c = std::make_unique<Node>(dir, MESH_AGENTS_BIN, "mc", std::vector<std::string>{"--agents", "scout,analyst", "--tick", "0"},
                                  a.seed());
  wait_for_or_fail(
      "monitor: mc joined, its agents added", 30s,
      [&] {
        const auto events = monitored(monitor);
        const auto added = std::count_if(events.begin(), events.end(),
                                         [](const std::string& e) { return e.rfind("agent_added mc ", 0) == 0; });
        return saw(monitor, "node_joined mc") && added == 2;
      },
      [&] { return monitor.stdout_text() + monitor.stderr_text(); }, 200ms);

  // query: three scouts, two nodes.
  const std::string validate = R"({"kind":"validate","item":{"number":1,"what":"x"}})";
  RunResult r = b.meshctl({"query", "scout", validate});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("3 of 3 answered; policy all met"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("(mc): {\"checked_by\""), std::string::npos) << r.out;
  r = b.meshctl({"query", "--capability", "validate", validate, "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  Json q = Json::parse(r.out);
  EXPECT_EQ(q.at("responses").size(), 3u) << r.out;
  EXPECT_TRUE(q.at("satisfied").get<bool>());
  r = b.meshctl({"query", "scout", validate, "--policy", "first:1"});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("policy first:1 met"), std::string::npos) << r.out;
  r = b.meshctl({"query", "scout", validate, "--policy", "quorum", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_GE(Json::parse(r.out).at("responses").size(), 2u) << r.out;
  r = b.meshctl({"query", "nobody", "{}"});
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_NE(r.err.find("HTTP 404 no agent matches role \"nobody\""), std::string::npos) << r.err;
  r = b.meshctl({"query", "scout", "{}", "--policy", "some"});
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_NE(r.err.find("HTTP 400 \"policy\" must be"), std::string::npos) << r.err;
  r = b.meshctl({"query", "scout"});
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;

  // broadcast: every agent, or a role's.
  r = b.meshctl({"broadcast", R"({"kind":"hello"})"});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(r.out, "sent to 4 agents\n");
  r = b.meshctl({"broadcast", R"({"kind":"hello"})", "--role", "analyst"});
  EXPECT_EQ(r.out, "sent to 1 agents\n") << r.err;
  wait_for_or_fail(
      "mc's agents got the broadcasts", 30s,
      [&] {
        const std::string log = c->process->stdout_text() + c->process->stderr_text();
        std::size_t n = 0;
        for (auto at = log.find("{\"kind\":\"hello\"}"); at != std::string::npos; at = log.find("{\"kind\":\"hello\"}", at + 1)) ++n;
        return n >= 3;  // its scout got one, its analyst two
      },
      [&] { return c->process->log_tail(); }, 200ms);

  // force-leave: refused for an alive member and an unknown name; the
  // killed mc turns left on mb at once and on ma by gossip.
  r = b.meshctl({"force-leave", "ma"});
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_NE(r.err.find("HTTP 409 ma has not failed"), std::string::npos) << r.err;
  r = b.meshctl({"force-leave", "nobody"});
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_NE(r.err.find("HTTP 404"), std::string::npos) << r.err;
  c->process->signal(SIGKILL);
  c->process->wait_exit(10s);
  wait_for_or_fail(
      "mb and ma see mc dead", 60s, [&] { return state_in(b, "mc") == "dead" && state_in(a, "mc") == "dead"; },
      [&] { return b.process->log_tail() + a.process->log_tail(); }, 200ms);
  wait_for_or_fail(
      "monitor: mc dead", 30s, [&] { return saw(monitor, "node_dead mc"); },
      [&] { return monitor.stdout_text(); }, 200ms);
  r = b.meshctl({"force-leave", "mc"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(r.out, "mc is forced to leave: left on every member\n");
  EXPECT_EQ(state_in(b, "mc"), "left");
  wait_for_or_fail(
      "ma sees mc left", 30s, [&] { return state_in(a, "mc") == "left"; },
      [&] { return a.process->log_tail(); }, 200ms);
  wait_for_or_fail(
      "monitor: mc left", 30s, [&] { return saw(monitor, "node_left mc"); },
      [&] { return monitor.stdout_text(); }, 200ms);
  r = b.meshctl({"force-leave", "mc"});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(r.out, "mc had left already\n");
  c.reset();  // its destructor signals a process that is gone: harmless

  // The blocking query itself: an index in the future waits, then answers
  // nothing; a bad parameter is a 400.
  const auto now = http_get("127.0.0.1", b.admin, "/v1/events", 10s);
  ASSERT_EQ(now.status, 200u) << now.body;
  const std::uint64_t index = Json::parse(now.body).at("index").get<std::uint64_t>();
  const auto waited =
      http_get("127.0.0.1", b.admin, "/v1/events?index=" + std::to_string(index) + "&wait_ms=300", 10s);
  ASSERT_EQ(waited.status, 200u) << waited.body;
  EXPECT_TRUE(Json::parse(waited.body).at("events").empty()) << waited.body;
  EXPECT_EQ(http_get("127.0.0.1", b.admin, "/v1/events?index=x", 10s).status, 400u);
  EXPECT_EQ(http_get("127.0.0.1", b.admin, "/v1/events?index=1&wait_ms=999999", 10s).status, 400u);
  const auto all = http_get("127.0.0.1", b.admin, "/v1/events?index=0&wait_ms=0", 10s);
  EXPECT_GE(Json::parse(all.body).at("events").size(), 4u) << all.body;
  monitor.signal(SIGTERM);
}

}  // namespace
}  // namespace mesh::test
