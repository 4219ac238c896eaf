// meshctl's agent commands (peers, send, request) against real nodes that
// host agents (mesh_agents_host: a Mesh with MeshAdmin), and the admin
// endpoint's /v1/agents, /v1/send, /v1/request behind them. Assertions are
// on meshctl's output and its --json, never on logs.
#include <gtest/gtest.h>
#include <signal.h>

#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "mesh/admin_client.hpp"
#include "process.hpp"

namespace mesh::test {
namespace {

using namespace std::chrono_literals;
using Json = nlohmann::json;

std::size_t line_count(const std::string& s) {
  return static_cast<std::size_t>(std::count(s.begin(), s.end(), '\n'));
}

// One mesh_agents_host process with P2P on, on loopback.
struct Host {
  Host(const TempDir& dir, const std::string& name, const std::string& seeds = {})
      : swim(free_port()), admin(free_port()) {
    std::vector<std::string> argv = {AGENTS_HOST_BIN,  "--node-name", name,
                                     "--swim-host",    "127.0.0.1",  "--swim-port",
                                     std::to_string(swim), "--zmq-port", std::to_string(free_port()),
                                     "--admin-port",   std::to_string(admin), "--profile", "local"};
    if (!seeds.empty()) {
      argv.push_back("--seeds");
      argv.push_back(seeds);
    }
    process = std::make_unique<Process>(argv, std::map<std::string, std::string>{{"P2P_ENABLED", "true"}},
                                        dir.path(), name);
  }

  std::string at() const { return "127.0.0.1:" + std::to_string(admin); }

  // Waits until the admin endpoint answers.
  ::testing::AssertionResult ready() {
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (std::chrono::steady_clock::now() < deadline) {
      if (http_get("127.0.0.1", admin, "/healthz", 1s).ok) return ::testing::AssertionSuccess();
      if (!process->running()) return ::testing::AssertionFailure() << process->log_tail();
      std::this_thread::sleep_for(100ms);
    }
    return ::testing::AssertionFailure() << "not ready\n" << process->log_tail();
  }

  RunResult meshctl(std::vector<std::string> args) const {
    args.insert(args.begin(), {MESHCTL_BIN, "--admin", at()});
    return run_to_exit(std::move(args), {}, 30s);
  }

  Json agents() const {
    const auto r = http_get("127.0.0.1", admin, "/v1/agents", 2s);
    if (!r.ok || r.status != 200) return Json::array();
    return Json::parse(r.body);
  }

  std::uint16_t swim;
  std::uint16_t admin;
  std::unique_ptr<Process> process;
};

TEST(AgentsCliTest, PeersSendRequestOnOneNode) {
  TempDir dir;
  Host alpha(dir, "alpha");
  ASSERT_TRUE(alpha.ready());

  // /v1/agents: the three agents, every field, without the endpoint's own
  // sending agent.
  const Json agents = alpha.agents();
  ASSERT_EQ(agents.size(), 3u) << agents.dump();
  EXPECT_EQ(agents[0].at("agent_id"), "echo-alpha");
  EXPECT_EQ(agents[0].at("role"), "echo");
  EXPECT_EQ(agents[0].at("capabilities"), Json::parse(R"(["echo","test"])"));
  EXPECT_EQ(agents[0].at("description"), "answers with what it got");
  EXPECT_EQ(agents[0].at("status"), "active");
  EXPECT_EQ(agents[0].at("node"), "alpha");
  EXPECT_EQ(agents[0].at("location"), "local");
  EXPECT_EQ(agents[0].at("node_health"), "alive");

  // peers --json is that list; filters; the table.
  const RunResult all = alpha.meshctl({"peers", "--json"});
  ASSERT_EQ(all.exit_code, 0) << all.err;
  EXPECT_EQ(Json::parse(all.out), agents);
  const RunResult by_role = alpha.meshctl({"peers", "--role", "sink", "--json"});
  ASSERT_EQ(by_role.exit_code, 0) << by_role.err;
  const Json sinks = Json::parse(by_role.out);
  ASSERT_EQ(sinks.size(), 1u);
  EXPECT_EQ(sinks[0].at("agent_id"), "sink-alpha");
  const RunResult table = alpha.meshctl({"peers", "--capability=test"});
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_EQ(table.out,
            "echo-alpha  echo  alpha  local  active  echo,test\n"
            "slow-alpha  slow  alpha  local  active  test\n");
  EXPECT_EQ(alpha.meshctl({"peers", "--role", "nobody"}).out, "");

  // send: by role and by id, with a context.
  const RunResult sent = alpha.meshctl({"send", "sink", R"({"n":1})", "--json"});
  ASSERT_EQ(sent.exit_code, 0) << sent.err;
  const Json s = Json::parse(sent.out);
  EXPECT_EQ(s.at("sent"), true);
  EXPECT_EQ(s.at("agent_id"), "sink-alpha");
  EXPECT_EQ(s.at("node"), "alpha");
  const RunResult sent2 =
      alpha.meshctl({"send", "sink-alpha", R"({"n":2})", "--context", R"({"trace":"t1"})"});
  ASSERT_EQ(sent2.exit_code, 0) << sent2.err;
  EXPECT_EQ(sent2.out, "sent to sink-alpha on alpha\n");

  // request: the sink tells what it got (notifies arrive asynchronously).
  Json received;
  for (int i = 0; i < 50; ++i) {
    const RunResult r = alpha.meshctl({"request", "sink", "{}", "--json"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    received = Json::parse(r.out).at("response").at("received");
    if (received.size() >= 2) break;
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_EQ(received, Json::parse(R"([{"n":1},{"n":2}])"));

  // request prints the response; --json has the whole answer.
  const RunResult echo = alpha.meshctl({"request", "echo", R"({"x":[1,2]})", "--context",
                                        R"({"k":"v"})", "--timeout-ms", "5000"});
  ASSERT_EQ(echo.exit_code, 0) << echo.err;
  const Json e = Json::parse(echo.out);
  EXPECT_EQ(e.at("echo"), Json::parse(R"({"x":[1,2]})"));
  EXPECT_EQ(e.at("context").at("k"), "v");
  EXPECT_EQ(line_count(echo.out), 1u);
  const RunResult echo_json = alpha.meshctl({"--json", "request", "echo-alpha", "42"});
  ASSERT_EQ(echo_json.exit_code, 0) << echo_json.err;
  const Json ej = Json::parse(echo_json.out);
  EXPECT_EQ(ej.at("agent_id"), "echo-alpha");
  EXPECT_EQ(ej.at("node"), "alpha");
  EXPECT_EQ(ej.at("response").at("echo"), 42);
  EXPECT_TRUE(ej.at("correlation_id").is_string());

  // A request that times out: exit 1, one line.
  const RunResult slow = alpha.meshctl({"request", "slow", "{}", "--timeout-ms", "200"});
  EXPECT_EQ(slow.exit_code, 1);
  EXPECT_EQ(line_count(slow.err), 1u) << slow.err;
  EXPECT_NE(slow.err.find("HTTP 504"), std::string::npos) << slow.err;

  // Unknown targets: exit 1, one line naming it.
  for (const char* command : {"send", "request"}) {
    const RunResult r = alpha.meshctl({command, "nobody", "{}"});
    EXPECT_EQ(r.exit_code, 1) << command;
    EXPECT_EQ(line_count(r.err), 1u) << r.err;
    EXPECT_NE(r.err.find("no agent matches \"nobody\""), std::string::npos) << r.err;
    EXPECT_EQ(r.out, "");
  }
  // Bad JSON and bad usage: exit 2, one line, nothing sent.
  const std::vector<std::vector<std::string>> bad = {
      {"send", "echo", "{bad"},
      {"request", "echo", "[1"},
      {"send", "echo", "{}", "--context", "[1]"},
      {"send", "echo", "{}", "--context", "{x"},
      {"request", "echo", "{}", "--timeout-ms", "soon"},
      {"request", "echo", "{}", "--timeout-ms", "0"},
      {"send", "echo"},
      {"send", "echo", "{}", "--timeout-ms", "5"},
      {"peers", "extra"},
      {"peers", "--role"},
  };
  for (const auto& args : bad) {
    const RunResult r = alpha.meshctl(args);
    EXPECT_EQ(r.exit_code, 2) << args[0] << " " << r.err;
    EXPECT_EQ(line_count(r.err), 1u) << r.err;
    EXPECT_EQ(r.err.rfind("meshctl: ", 0), 0u) << r.err;
  }

  // The endpoint itself: bodies are checked, methods too.
  const auto not_json = http_post("127.0.0.1", alpha.admin, "/v1/send", "{nope", 2s);
  ASSERT_TRUE(not_json.ok) << not_json.error;
  EXPECT_EQ(not_json.status, 400u);
  const auto no_target = http_post("127.0.0.1", alpha.admin, "/v1/request", R"({"message":1})", 2s);
  EXPECT_EQ(no_target.status, 400u);
  const auto bad_timeout = http_post("127.0.0.1", alpha.admin, "/v1/request",
                                     R"({"target":"echo","message":1,"timeout_ms":-1})", 2s);
  EXPECT_EQ(bad_timeout.status, 400u);
  EXPECT_EQ(http_get("127.0.0.1", alpha.admin, "/v1/send", 2s).status, 405u);
  EXPECT_EQ(http_post("127.0.0.1", alpha.admin, "/v1/agents", "{}", 2s).status, 405u);
  // Nothing of that reached the sink.
  const RunResult after = alpha.meshctl({"request", "sink", "{}"});
  ASSERT_EQ(after.exit_code, 0) << after.err;
  EXPECT_EQ(Json::parse(after.out).at("received").size(), 2u);

  alpha.process->signal(SIGTERM);
  const auto code = alpha.process->wait_exit(15s);
  ASSERT_TRUE(code.has_value()) << alpha.process->log_tail();
  EXPECT_EQ(*code, 0) << alpha.process->log_tail();
}

// Two nodes: each lists the other's agents as remote, and meshctl on one
// reaches agents on the other.
TEST(AgentsCliTest, RemoteAgentsAcrossTwoNodes) {
  TempDir dir;
  Host alpha(dir, "alpha");
  ASSERT_TRUE(alpha.ready());
  Host beta(dir, "beta", "127.0.0.1:" + std::to_string(alpha.swim));
  ASSERT_TRUE(beta.ready());

  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (std::chrono::steady_clock::now() < deadline &&
         (alpha.agents().size() < 6 || beta.agents().size() < 6)) {
    std::this_thread::sleep_for(200ms);
  }
  const Json on_alpha = alpha.agents();
  ASSERT_EQ(on_alpha.size(), 6u) << on_alpha.dump() << "\n" << alpha.process->log_tail();
  ASSERT_EQ(beta.agents().size(), 6u) << beta.process->log_tail();
  // Local first, then the remote node's.
  for (std::size_t i = 0; i < 6; ++i) {
    const bool local = i < 3;
    EXPECT_EQ(on_alpha[i].at("location"), local ? "local" : "remote") << on_alpha.dump();
    EXPECT_EQ(on_alpha[i].at("node"), local ? "alpha" : "beta") << on_alpha.dump();
  }

  const RunResult table = alpha.meshctl({"peers", "--role", "echo"});
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_EQ(table.out,
            "echo-alpha  echo  alpha  local   active  echo,test\n"
            "echo-beta   echo  beta   remote  active  echo,test\n");

  const RunResult r = alpha.meshctl({"request", "echo-beta", R"({"hello":"beta"})", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err << alpha.process->log_tail();
  const Json j = Json::parse(r.out);
  EXPECT_EQ(j.at("node"), "beta");
  EXPECT_EQ(j.at("response").at("echo").at("hello"), "beta");

  ASSERT_EQ(alpha.meshctl({"send", "sink-beta", R"("from alpha")"}).exit_code, 0);
  Json received;
  for (int i = 0; i < 50; ++i) {
    const RunResult got = beta.meshctl({"request", "sink-beta", "{}"});
    ASSERT_EQ(got.exit_code, 0) << got.err;
    received = Json::parse(got.out).at("received");
    if (!received.empty()) break;
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_EQ(received, Json::parse(R"(["from alpha"])"));

  for (Host* h : {&beta, &alpha}) {
    h->process->signal(SIGTERM);
    const auto code = h->process->wait_exit(15s);
    ASSERT_TRUE(code.has_value()) << h->process->log_tail();
    EXPECT_EQ(*code, 0) << h->process->log_tail();
  }
}

}  // namespace
}  // namespace mesh::test
