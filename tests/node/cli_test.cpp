// mesh-node and meshctl as programs: exit codes, the one-line errors on
// stderr, --check-config end to end (file < environment < flags), and one
// node's admin endpoint as meshctl shows it, with and without the admin
// token.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "mesh/admin_client.hpp"
#include "process.hpp"
#include "wait_for.hpp"

namespace mesh::test {
namespace {

using namespace std::chrono_literals;
using Env = std::map<std::string, std::string>;

RunResult node(std::vector<std::string> args, const Env& env = {}) {
  args.insert(args.begin(), MESH_NODE_BIN);
  return run_to_exit(std::move(args), env);
}

RunResult meshctl(std::vector<std::string> args, const Env& env = {}) {
  args.insert(args.begin(), MESHCTL_BIN);
  return run_to_exit(std::move(args), env);
}

std::size_t line_count(const std::string& s) {
  return static_cast<std::size_t>(std::count(s.begin(), s.end(), '\n'));
}

// --- bad configuration: exit 2, one line on stderr, nothing else ----------

struct BadConfig {
  std::vector<std::string> args;
  Env env;
  std::string message;
};

TEST(NodeCliTest, BadConfigurationExitsTwoWithOneLine) {
  TempDir dir;
  const std::string bad_yaml = dir.write("bad.yaml", "profile: moon\n");
  const std::vector<BadConfig> cases = {
      {{}, {{"JC_SWIM_PORT", "70000"}}, "JC_SWIM_PORT: \"70000\" is not a port (1-65535)"},
      {{"--profile", "moon"}, {}, "--profile: unknown profile \"moon\" (lan, wan, local)"},
      {{"--config", "/nonexistent/x.yaml"},
       {},
       "config file /nonexistent/x.yaml: cannot read (No such file or directory)"},
      {{"--config", bad_yaml},
       {},
       "config file " + bad_yaml + ": profile: unknown profile \"moon\" (lan, wan, local)"},
      {{}, {{"JC_ADVERTISE_HOST", "0.0.0.0"}}, "JC_ADVERTISE_HOST: 0.0.0.0 cannot be advertised"},
      {{},
       {{"JC_GOSSIP_KEY", "AAAAAAAAAAAAAAAAAAAAAAAAAAA="}},
       "JC_GOSSIP_KEY: key is 20 bytes, must be 16, 24 or 32"},
      {{"--swim-prot", "1"}, {}, "--swim-prot: unknown option (did you mean --swim-port?)"},
      {{"--node-name", "--swim-port", "1"}, {}, "--node-name: missing value"},
      {{}, {{"P2P_ENABLED", "maybe"}},
       "P2P_ENABLED: \"maybe\" is not a boolean (true, false, 1, 0, yes, no)"},
      {{"--admin-token", "short"}, {}, "--admin-token: token is 5 characters, must be 16 to 1024"},
      {{},
       {{"JC_ADMIN_TOKEN_FILE", "/nonexistent/token"}},
       "JC_ADMIN_TOKEN_FILE: /nonexistent/token: cannot read (No such file or directory)"},
  };
  for (const auto& c : cases) {
    for (bool check : {false, true}) {
      auto args = c.args;
      if (check) args.push_back("--check-config");
      const RunResult r = node(args, c.env);
      EXPECT_EQ(r.exit_code, 2) << c.message;
      EXPECT_EQ(r.err, "mesh-node: " + c.message + "\n");
      EXPECT_EQ(r.out, "") << c.message;
    }
  }
}

// --- --check-config --------------------------------------------------------

TEST(NodeCliTest, CheckConfigShowsPrecedenceFileEnvironmentFlags) {
  TempDir dir;
  const std::string file = dir.write("node.yaml",
                                     "node_name: from-file\n"
                                     "swim_port: 7001\n"
                                     "profile: wan\n"
                                     "log_level: debug\n"
                                     "tags: {source: file}\n");
  const RunResult r = node({"--config", file, "--log-level", "trace", "--check-config"},
                           {{"JC_PROFILE", "local"}, {"JC_LOG_LEVEL", "error"},
                            {"JC_TAGS", "source=env"}});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j.at("node_name"), "from-file");   // file only
  EXPECT_EQ(j.at("swim_port"), 7001);          // file only
  EXPECT_EQ(j.at("admin_port"), 9001);         // derived from the file's port
  EXPECT_EQ(j.at("zmq_port"), 8001);
  EXPECT_EQ(j.at("profile"), "local");         // environment over file
  EXPECT_EQ(j.at("tags").at("source"), "env");  // environment over file
  EXPECT_EQ(j.at("log_level"), "trace");       // flag over environment over file
  EXPECT_EQ(j.at("config_file"), file);
  EXPECT_EQ(j.at("sources").at("swim_port"), "config file " + file);
  EXPECT_EQ(j.at("sources").at("profile"), "JC_PROFILE");
  EXPECT_EQ(j.at("sources").at("log_level"), "--log-level");
  EXPECT_EQ(j.at("sources").at("admin_port"), "derived from swim_port");
}

TEST(NodeCliTest, CheckConfigNeverPrintsTheAdminToken) {
  TempDir dir;
  const std::string token = "never-shown-token-0123";
  const std::string file = dir.write("admin-token", token + "\n");
  for (const Env& env : {Env{{"JC_ADMIN_TOKEN", token}}, Env{{"JC_ADMIN_TOKEN_FILE", file}}}) {
    const RunResult r = node({"--check-config"}, env);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out.find(token), std::string::npos) << r.out;
    EXPECT_EQ(nlohmann::json::parse(r.out).at("admin_token"), "(set, not shown)");
  }
}

TEST(NodeCliTest, CheckConfigBindsNothing) {
  // Hold the SWIM port (TCP and UDP) and the admin port: a node would fail
  // to bind, --check-config must not try.
  const std::uint16_t port = free_port();
  const std::uint16_t admin = free_port();
  auto hold = [](int type, std::uint16_t p) {
    const int fd = ::socket(AF_INET, type, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(p);
    EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    return fd;
  };
  const int fds[] = {hold(SOCK_STREAM, port), hold(SOCK_DGRAM, port), hold(SOCK_STREAM, admin)};
  const RunResult r = node({"--swim-host", "127.0.0.1", "--swim-port", std::to_string(port),
                            "--admin-port", std::to_string(admin), "--check-config"});
  for (int fd : fds) ::close(fd);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out).at("swim_port"), port);
}

TEST(NodeCliTest, VersionAndHelp) {
  const RunResult v = node({"--version"});
  EXPECT_EQ(v.exit_code, 0);
  EXPECT_EQ(v.out.rfind("mesh-node ", 0), 0u) << v.out;
  const RunResult h = node({"--help"});
  EXPECT_EQ(h.exit_code, 0);
  EXPECT_NE(h.out.find("--check-config"), std::string::npos);
  EXPECT_NE(h.out.find("JC_SEED_NODES"), std::string::npos);
}

TEST(NodeCliTest, PortInUseExitsOneWithOneLine) {
  const std::uint16_t port = free_port();
  const int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  const RunResult r = node({"--swim-host", "127.0.0.1", "--swim-port", std::to_string(port),
                            "--admin-port", std::to_string(free_port())});
  ::close(fd);
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_EQ(r.err.rfind("mesh-node: ", 0), 0u) << r.err;
  EXPECT_EQ(line_count(r.err), 1u) << r.err;

  // The admin port taken: the same, and the node must not hang on the way
  // out (run_to_exit reports -1 if it is still running at its deadline).
  const std::uint16_t admin = free_port();
  const int tcp = ::socket(AF_INET, SOCK_STREAM, 0);
  a.sin_port = htons(admin);
  ASSERT_EQ(::bind(tcp, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(::listen(tcp, 1), 0);
  const RunResult r2 = node({"--swim-host", "127.0.0.1", "--swim-port", std::to_string(free_port()),
                             "--admin-port", std::to_string(admin)});
  ::close(tcp);
  EXPECT_EQ(r2.exit_code, 1) << r2.err;
  EXPECT_EQ(r2.err, "mesh-node: admin endpoint 127.0.0.1:" + std::to_string(admin) +
                        ": cannot bind (Address already in use)\n");

  // A second node on the SWIM port of a running one: the admin port it
  // derives from that port is taken too, but the SWIM port is the news.
  std::uint16_t swim = 0;
  do {
    swim = free_port();
  } while (swim > 65535 - 2000);
  TempDir dir;
  Process first({MESH_NODE_BIN, "--swim-host", "127.0.0.1", "--swim-port", std::to_string(swim), "--profile", "local"},
                {}, dir.path(), "first");
  wait_for_or_fail(
      "the first node's /healthz", 30s,
      [&] {
        const auto h = http_get("127.0.0.1", static_cast<std::uint16_t>(swim + 2000), "/healthz", 1s);
        return h.ok && h.status == 200;
      },
      [&] { return first.log_tail(); }, 100ms);
  const RunResult r3 = node({"--swim-host", "127.0.0.1", "--swim-port", std::to_string(swim)});
  EXPECT_EQ(r3.exit_code, 1) << r3.err;
  EXPECT_EQ(r3.err, "mesh-node: SWIM port 127.0.0.1:" + std::to_string(swim) +
                        ": cannot bind (Address already in use): is another node running here with swim_port " +
                        std::to_string(swim) + "?\n");
}

// retry_join_max spent: the node says why it gave up (the kernel's words
// for the last failure) and exits 1, as Consul's agent does. An unknown
// JC_* variable is a warning on the way, with the likely name.
TEST(NodeCliTest, AJoinThatGivesUpExitsOneSayingWhy) {
  const std::uint16_t silent = free_port();
  const RunResult r = node({"--swim-host", "127.0.0.1", "--swim-port", std::to_string(free_port()), "--admin-port",
                            std::to_string(free_port()), "--profile", "local", "--seeds",
                            "127.0.0.1:" + std::to_string(silent), "--retry-join-max", "2", "--retry-join-interval",
                            "50ms"},
                           {{"JC_SEED_NODE", "127.0.0.1:1"}});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  const std::string why = "gave up joining after 2 attempts (last: 127.0.0.1:" + std::to_string(silent) +
                          ": connect: Connection refused)";
  EXPECT_NE(r.err.find("mesh-node: " + why + "\n"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.substr(r.err.size() - why.size() - 12), "mesh-node: " + why + "\n") << r.err;
  EXPECT_NE(r.err.find("JC_SEED_NODE: unknown configuration variable (did you mean JC_SEED_NODES?)"),
            std::string::npos)
      << r.err;
}

// SIGHUP reads the configuration again: the log level applies at once,
// other changes are named as needing a restart, and a file that no longer
// loads changes nothing (the node keeps running).
TEST(NodeCliTest, SighupAppliesTheLogLevelAndNamesWhatNeedsARestart) {
  TempDir dir;
  const std::uint16_t admin = free_port();
  const std::string file = dir.write("mesh.yaml", "log_level: info\ntags: {dc: east}\n");
  Process n({MESH_NODE_BIN, "--config", file, "--swim-host", "127.0.0.1", "--swim-port", std::to_string(free_port()),
             "--zmq-port", std::to_string(free_port()), "--admin-port", std::to_string(admin), "--profile", "local"},
            {}, dir.path(), "hup");
  wait_for_or_fail(
      "the node's /readyz", 30s,
      [&] {
        const auto h = http_get("127.0.0.1", admin, "/readyz", 1s);
        return h.ok && h.status == 200;
      },
      [&] { return n.log_tail(); }, 100ms);
  dir.write("mesh.yaml", "log_level: debug\ntags: {dc: west}\nmailbox_limit: 77\nrequest_timeout: 5s\ndiscovery_strategy: random\n");
  n.signal(SIGHUP);
  wait_for_or_fail(
      "the reload's line", 30s,
      [&] {
        return n.log_tail(200).find("received SIGHUP: applied log_level info -> debug, tags, discovery_strategy "
                                    "first -> random, request_timeout 30s -> 5s; changed, effective after a "
                                    "restart: mailbox_limit") != std::string::npos;
      },
      [&] { return n.log_tail(); }, 100ms);
  // The new tags are gossiped: the node's own member entry carries them.
  wait_for_or_fail(
      "the new tag in /v1/members", 30s,
      [&] {
        const auto m = http_get("127.0.0.1", admin, "/v1/members", 2s);
        return m.ok && m.body.find("\"dc\":\"west\"") != std::string::npos;
      },
      [&] { return http_get("127.0.0.1", admin, "/v1/members", 2s).body; }, 100ms);
  // Debug lines now come: a join through a silent seed logs its failure
  // at debug.
  const std::string silent = "127.0.0.1:" + std::to_string(free_port());
  http_post("127.0.0.1", admin, "/v1/join", "{\"seeds\": [\"" + silent + "\"], \"timeout_ms\": 1000}", 10s, {});
  wait_for_or_fail(
      "a debug line", 30s,
      [&] { return n.log_tail(50).find("join through " + silent + " failed") != std::string::npos; },
      [&] { return n.log_tail(); }, 100ms);
  dir.write("mesh.yaml", "log_level: [\n");
  n.signal(SIGHUP);
  wait_for_or_fail(
      "the refused reload", 30s,
      [&] {
        return n.log_tail(200).find("received SIGHUP: the configuration does not load, nothing changed") !=
               std::string::npos;
      },
      [&] { return n.log_tail(); }, 100ms);
  const auto h = http_get("127.0.0.1", admin, "/readyz", 5s);
  EXPECT_EQ(h.status, 200u) << n.log_tail();
  n.signal(SIGTERM);
  EXPECT_EQ(n.wait_exit(30s), std::optional<int>(0)) << n.log_tail();
}

// --- meshctl ---------------------------------------------------------------

TEST(NodeCliTest, MeshctlCannotConnectExitsOneWithOneLine) {
  const std::uint16_t port = free_port();  // nobody listens there
  const RunResult r = meshctl({"members", "--admin", "127.0.0.1:" + std::to_string(port)});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "meshctl: cannot reach the node at 127.0.0.1:" + std::to_string(port) +
                       " (connect: Connection refused)\n");
  // The default endpoint follows JC_ADMIN_PORT.
  const RunResult e = meshctl({"members"}, {{"JC_ADMIN_PORT", std::to_string(port)}});
  EXPECT_EQ(e.exit_code, 1);
  EXPECT_NE(e.err.find("127.0.0.1:" + std::to_string(port)), std::string::npos) << e.err;
}

TEST(NodeCliTest, MeshctlUsageErrorsExitTwoWithOneLine) {
  const RunResult none = meshctl({});
  EXPECT_EQ(none.exit_code, 2);
  EXPECT_NE(none.err.find("Subcommands:"), std::string::npos) << none.err;  // the usage
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"frobnicate"}, "\"frobnicate\": unknown command"},
      {{"membrs"}, "\"membrs\": unknown command (did you mean members?)"},
      {{"members", "--admin", "nope"}, "--admin: \"nope\" is not host:port"},
      {{"members", "--bogus"}, "--bogus: unknown option"},
      {{"peers", "--rol", "x"}, "--rol: unknown option (did you mean --role?)"},
      {{"members", "extra"}, "\"extra\": unexpected argument"},
      {{"send", "a"}, "send: json is required"},
      {{"send", "a", "{"}, "send: message: not valid JSON"},
      {{"request", "a", "1", "--timeout-ms"}, "request: --timeout-ms: missing value"},
  };
  for (const auto& [args, message] : cases) {
    const RunResult r = meshctl(args);
    EXPECT_EQ(r.exit_code, 2) << message;
    EXPECT_EQ(r.err, "meshctl: " + message + " (meshctl --help)\n");
  }
  const RunResult help = meshctl({"--help"});
  EXPECT_EQ(help.exit_code, 0);
  for (const char* word : {"members", "peers", "send", "request", "--admin", "--json"}) {
    EXPECT_NE(help.out.find(word), std::string::npos) << word;
  }
  const RunResult version = meshctl({"-v"});
  EXPECT_EQ(version.exit_code, 0);
  EXPECT_EQ(version.out.rfind("meshctl ", 0), 0u) << version.out;
}

// One node: the admin endpoint's documents, meshctl's table, and a
// graceful stop.
TEST(NodeCliTest, SingleNodeAdminEndpointAndMeshctl) {
  TempDir dir;
  const std::uint16_t swim = free_port();
  const std::uint16_t admin = free_port();
  Process p({MESH_NODE_BIN, "--node-name", "solo", "--swim-host", "127.0.0.1", "--swim-port",
             std::to_string(swim), "--admin-port", std::to_string(admin), "--zmq-port",
             std::to_string(free_port()), "--profile", "local", "--tags", "role=test,dc=here"},
            {{"P2P_ENABLED", "false"}}, dir.path(), "solo");
  std::optional<HttpResult> health;
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (std::chrono::steady_clock::now() < deadline) {
    health = http_get("127.0.0.1", admin, "/healthz", 1s);
    if (health->ok) break;
    ASSERT_TRUE(p.running()) << p.log_tail();
    std::this_thread::sleep_for(100ms);
  }
  ASSERT_TRUE(health && health->ok) << p.log_tail();
  EXPECT_EQ(health->status, 200u);
  EXPECT_EQ(nlohmann::json::parse(health->body), nlohmann::json::parse(R"({"status":"ok"})"));
  // A shared configuration's P2P_ENABLED=false is for agent hosts: the
  // node runs on the network anyway, and says so once.
  EXPECT_NE(p.log_tail(100).find("p2p_enabled=false (from P2P_ENABLED) does not apply to mesh-node"),
            std::string::npos)
      << p.log_tail();

  const auto self = http_get("127.0.0.1", admin, "/v1/self", 2s);
  ASSERT_TRUE(self.ok) << self.error;
  const auto s = nlohmann::json::parse(self.body);
  EXPECT_EQ(s.at("name"), "solo");
  EXPECT_EQ(s.at("addr"), "127.0.0.1");
  EXPECT_EQ(s.at("port"), swim);
  EXPECT_EQ(s.at("state"), "alive");
  EXPECT_EQ(s.at("tags").at("role"), "test");
  EXPECT_TRUE(s.at("health_score").is_number());
  EXPECT_TRUE(s.at("stats").at("packets_sent").is_number());
  EXPECT_TRUE(s.at("protocol").at("max").is_number());

  const auto members = http_get("127.0.0.1", admin, "/v1/members", 2s);
  ASSERT_TRUE(members.ok);
  const auto m = nlohmann::json::parse(members.body);
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].at("name"), "solo");
  EXPECT_EQ(m[0].at("incarnation"), s.at("incarnation"));

  EXPECT_EQ(http_get("127.0.0.1", admin, "/nope", 2s).status, 404u);

  const std::string at = "127.0.0.1:" + std::to_string(admin);
  // The operator's tags, sorted; the Mesh's own (mesh, rv, zmq) only
  // with --detailed.
  const RunResult table = meshctl({"members", "--admin", at});
  EXPECT_EQ(table.exit_code, 0) << table.err;
  EXPECT_EQ(table.out, "solo  127.0.0.1:" + std::to_string(swim) + "  alive  dc=here,role=test\n");
  const RunResult detailed = meshctl({"members", "--detailed", "--admin", at});
  EXPECT_EQ(detailed.exit_code, 0) << detailed.err;
  EXPECT_EQ(detailed.out.rfind("solo  127.0.0.1:" + std::to_string(swim) + "  alive  dc=here,mesh=1,", 0), 0u)
      << detailed.out;
  EXPECT_NE(detailed.out.find(",role=test,"), std::string::npos) << detailed.out;
  const RunResult json = meshctl({"--json", "members", "--admin=" + at});
  EXPECT_EQ(json.exit_code, 0) << json.err;
  EXPECT_EQ(nlohmann::json::parse(json.out), m);

  // mesh-node hosts no agents but serves the agent routes like every
  // node: an empty list, and a target nobody has.
  const RunResult peers = meshctl({"peers", "--admin", at});
  EXPECT_EQ(peers.exit_code, 0) << peers.err;
  EXPECT_EQ(peers.out, "");
  const RunResult send = meshctl({"send", "x", "{}", "--admin", at});
  EXPECT_EQ(send.exit_code, 1);
  EXPECT_EQ(send.err, "meshctl: POST /v1/send: HTTP 404 no agent matches \"x\"\n");

  p.signal(SIGTERM);
  const auto code = p.wait_exit(15s);
  ASSERT_TRUE(code.has_value()) << "did not exit after SIGTERM\n" << p.log_tail();
  EXPECT_EQ(*code, 0) << p.log_tail();
}

// meshctl and a node with a token (and admin_read_auth, so that reads
// need it too): the token from --token-file, JC_ADMIN_TOKEN_FILE or
// JC_ADMIN_TOKEN; without it, one line and exit 1.
TEST(NodeCliTest, MeshctlSendsTheAdminToken) {
  TempDir dir;
  const std::string token = "meshctl-admin-token-0123";
  const std::string file = dir.write("admin-token", token + "\n");
  const std::string wrong_file = dir.write("wrong-token", "wrong-admin-token-0123\n");
  const std::uint16_t admin = free_port();
  Process p({MESH_NODE_BIN, "--node-name", "guarded", "--swim-host", "127.0.0.1", "--swim-port",
             std::to_string(free_port()), "--admin-port", std::to_string(admin), "--zmq-port",
             std::to_string(free_port()), "--profile", "local", "--admin-read-auth", "true"},
            {{"JC_ADMIN_TOKEN_FILE", file}}, dir.path(), "guarded");
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  bool up = false;
  while (!up && std::chrono::steady_clock::now() < deadline) {
    const auto health = http_get("127.0.0.1", admin, "/healthz", 1s);
    up = health.ok && health.status == 200;
    if (!up) {
      ASSERT_TRUE(p.running()) << p.log_tail();
      std::this_thread::sleep_for(100ms);
    }
  }
  ASSERT_TRUE(up) << p.log_tail();
  const std::string at = "127.0.0.1:" + std::to_string(admin);

  for (const Env& env : {Env{}, Env{{"JC_ADMIN_TOKEN_FILE", file}}, Env{{"JC_ADMIN_TOKEN", token}}}) {
    const bool from_flag = env.empty();
    std::vector<std::string> args = {"members", "--admin", at};
    if (from_flag) args.insert(args.end(), {"--token-file", file});
    const RunResult r = meshctl(args, env);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out.rfind("guarded  127.0.0.1:", 0), 0u) << r.out;
    // Past the token, mesh-node has no agent of that name.
    args[0] = "send";
    args.insert(args.begin() + 1, {"x", "{}"});
    const RunResult send = meshctl(args, env);
    EXPECT_EQ(send.err, "meshctl: POST /v1/send: HTTP 404 no agent matches \"x\"\n");
  }
  // --token-file wins over the environment.
  EXPECT_EQ(meshctl({"members", "--admin", at, "--token-file", file}, {{"JC_ADMIN_TOKEN", "wrong-admin-token-0123"}})
                .exit_code,
            0);

  const RunResult none = meshctl({"members", "--admin", at});
  EXPECT_EQ(none.exit_code, 1);
  EXPECT_EQ(line_count(none.err), 1u) << none.err;
  EXPECT_EQ(none.err.rfind("meshctl: GET /v1/members: HTTP 401 ", 0), 0u) << none.err;
  EXPECT_NE(none.err.find("--token-file"), std::string::npos) << none.err;
  const RunResult wrong = meshctl({"send", "x", "{}", "--admin", at, "--token-file", wrong_file});
  EXPECT_EQ(wrong.exit_code, 1);
  EXPECT_EQ(wrong.err, "meshctl: POST /v1/send: HTTP 401 wrong admin token\n");
  const RunResult unreadable = meshctl({"members", "--admin", at, "--token-file", "/nonexistent/token"});
  EXPECT_EQ(unreadable.exit_code, 2);
  EXPECT_EQ(unreadable.err,
            "meshctl: --token-file: /nonexistent/token: cannot read (No such file or directory) (meshctl --help)\n");

  p.signal(SIGTERM);
  EXPECT_TRUE(p.wait_exit(15s).has_value()) << p.log_tail();
}

}  // namespace
}  // namespace mesh::test
