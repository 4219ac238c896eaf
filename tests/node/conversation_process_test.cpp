// Governed conversations across processes: two mesh_agents_host nodes,
// alpha and beta (P2P on, 127.0.0.1, local profile), each with a player,
// an asker, a pricey agent and an authority-only closer
// (AGENTS_HOST_CONVERSATIONS=1). The test drives them through their admin
// APIs (POST /v1/send, /v1/request with thread options; GET /v1/threads):
// every limit is enforced by the node that receives the message.
#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "mesh/admin_client.hpp"
#include "process.hpp"

namespace mesh::test {
namespace {

using namespace std::chrono_literals;
using Json = nlohmann::json;
using Clock = std::chrono::steady_clock;

bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds limit = 30s) {
  const auto until = Clock::now() + limit;
  while (!pred()) {
    if (Clock::now() > until) return false;
    std::this_thread::sleep_for(50ms);
  }
  return true;
}

struct Node {
  Node(const TempDir& dir, std::string node_name, std::string partner, const std::string& seed)
      : name(std::move(node_name)), swim(free_port()), zmq(free_port()), admin(free_port()) {
    std::vector<std::string> argv = {AGENTS_HOST_BIN, "--node-name", name,  "--swim-host", "127.0.0.1",
                                     "--swim-port",   std::to_string(swim), "--zmq-port",  std::to_string(zmq),
                                     "--admin-port",  std::to_string(admin), "--profile",  "local"};
    if (!seed.empty()) {
      argv.push_back("--seeds");
      argv.push_back(seed);
    }
    process = std::make_unique<Process>(argv,
                                        std::map<std::string, std::string>{{"P2P_ENABLED", "true"},
                                                                           {"AGENTS_HOST_CONVERSATIONS", "1"},
                                                                           {"AGENTS_HOST_PARTNER", partner}},
                                        dir.path(), name);
  }

  Json post(const std::string& path, const Json& body, int* status = nullptr) const {
    const auto r = http_post("127.0.0.1", admin, path, body.dump(), 20s);
    if (status) *status = r.ok ? static_cast<int>(r.status) : -1;
    return r.ok ? Json::parse(r.body, nullptr, false) : Json();
  }

  Json get(const std::string& target) const {
    const auto r = http_get("127.0.0.1", admin, target, 5s);
    return r.ok && r.status == 200 ? Json::parse(r.body, nullptr, false) : Json();
  }

  // This node's record of a thread (null when it knows none).
  Json thread(const std::string& id) const { return get("/v1/threads?id=" + id); }

  std::string seed() const { return "127.0.0.1:" + std::to_string(swim); }

  std::string name;
  std::uint16_t swim;
  std::uint16_t zmq;
  std::uint16_t admin;
  std::unique_ptr<Process> process;
};

class ConversationProcess : public ::testing::Test {
 protected:
  void SetUp() override {
    alpha = std::make_unique<Node>(dir, "alpha", "player-beta", "");
    beta = std::make_unique<Node>(dir, "beta", "player-alpha", alpha->seed());
    // Both list each other's agents: the cluster is ready.
    ASSERT_TRUE(eventually([&] {
      for (auto* n : {alpha.get(), beta.get()}) {
        const Json agents = n->get("/v1/agents");
        if (!agents.is_array()) return false;
        int remote = 0;
        for (const auto& a : agents) remote += a.value("location", "") == "remote" ? 1 : 0;
        if (remote < 7) return false;  // echo, sink, slow, player, asker, pricey, closer
      }
      return true;
    })) << logs();
  }

  std::string logs() const {
    return "--- alpha\n" + alpha->process->log_tail(20) + "--- beta\n" + beta->process->log_tail(20);
  }

  TempDir dir;
  std::unique_ptr<Node> alpha;
  std::unique_ptr<Node> beta;
};

// alpha's player and beta's pass a ball back and forth as notifies in one
// thread of 10 turns: the 11th is refused by its receiver, which records
// it; the sender learns TurnLimit through its delivery failure.
TEST_F(ConversationProcess, PingPongStopsAtMaxTurnsAtBothEnds) {
  int status = 0;
  alpha->post("/v1/send", {{"target", "player-alpha"}, {"message", {{"ball", 0}}},
                           {"thread", {{"subject", "rally"}, {"max_turns", 10}}}}, &status);
  ASSERT_EQ(status, 200) << logs();
  Json a;
  Json b;
  ASSERT_TRUE(eventually([&] {
    a = alpha->post("/v1/request", {{"target", "player-alpha"}, {"message", Json::object()}});
    b = alpha->post("/v1/request", {{"target", "player-beta"}, {"message", Json::object()}});
    return a.contains("response") && b.contains("response") &&
           (a["response"]["refused"] != "" || b["response"]["refused"] != "");
  })) << a << b << logs();
  // Turns 1..10 were handled (alpha's player got the odd ones); beta's 10th
  // pass back was refused by alpha's node.
  EXPECT_EQ(a["response"]["received"].get<int>() + b["response"]["received"].get<int>(), 10) << a << b;
  EXPECT_EQ(b["response"]["refused"], "turn_limit") << b;
  // The receiving node's record of it.
  const Json threads = alpha->get("/v1/threads");
  ASSERT_TRUE(threads.is_array());
  Json rally;
  for (const auto& t : threads)
    if (t.value("subject", "") == "rally") rally = t;
  ASSERT_FALSE(rally.is_null()) << threads;
  EXPECT_EQ(rally["state"], "refused");
  EXPECT_EQ(rally["last_refusal"], "turn_limit");
  EXPECT_EQ(rally["limits"]["max_turns"], 10);
  const Json seen_by_beta = beta->thread(rally["id"].get<std::string>());
  EXPECT_EQ(seen_by_beta.value("subject", ""), "rally") << seen_by_beta;
}

// alpha's asker asks beta's, which asks alpha's again in the same thread.
TEST_F(ConversationProcess, AskingBackAcrossNodesIsALoop) {
  const Json out = alpha->post("/v1/request", {{"target", "asker-alpha"},
                                               {"message", {{"path", {"asker-beta", "asker-alpha"}}}}});
  EXPECT_EQ(out["response"], (Json{{"error", "loop"}})) << out << logs();
  // A path that does not come back is fine: depth 3 at its end.
  const Json fine = alpha->post("/v1/request", {{"target", "asker-alpha"},
                                                {"message", {{"path", {"asker-beta", "pricey-alpha"}}}}});
  EXPECT_TRUE(fine["response"].contains("spent_before")) << fine;
}

TEST_F(ConversationProcess, CostCapAndTtl) {
  Json first = alpha->post("/v1/request", {{"target", "pricey-beta"}, {"message", Json::object()},
                                           {"thread", {{"max_cost", 2.5}}}});
  ASSERT_TRUE(first.contains("thread")) << first << logs();
  EXPECT_EQ(first["cost"], 1.0);
  const std::string id = first["thread"];
  int status = 0;
  for (int i = 0; i < 2; ++i) {
    const Json next = alpha->post("/v1/request", {{"target", "pricey-beta"}, {"message", Json::object()},
                                                  {"thread", {{"id", id}}}}, &status);
    EXPECT_EQ(status, 200) << next;
  }
  const Json over = alpha->post("/v1/request", {{"target", "pricey-beta"}, {"message", Json::object()},
                                                {"thread", {{"id", id}}}}, &status);
  EXPECT_EQ(status, 409) << over;
  EXPECT_EQ(over["code"], "budget_exceeded");
  EXPECT_EQ(beta->thread(id)["last_refusal"], "budget_exceeded");

  Json brief = alpha->post("/v1/request", {{"target", "pricey-beta"}, {"message", Json::object()},
                                           {"thread", {{"ttl_ms", 300}}}});
  ASSERT_TRUE(brief.contains("thread")) << brief;
  std::this_thread::sleep_for(500ms);
  const Json late = alpha->post("/v1/request", {{"target", "pricey-beta"}, {"message", Json::object()},
                                                {"thread", {{"id", brief["thread"]}}}}, &status);
  EXPECT_EQ(status, 409) << late;
  EXPECT_EQ(late["code"], "expired");
}

TEST_F(ConversationProcess, AdvisoryCannotSatisfyAnAuthorityOnlyHandler) {
  int status = 0;
  const Json advisory = alpha->post("/v1/request", {{"target", "closer-beta"}, {"message", {{"close", 7}}}}, &status);
  EXPECT_EQ(status, 403) << advisory;
  EXPECT_EQ(advisory["code"], "permission_denied");
  const Json order = alpha->post("/v1/request", {{"target", "closer-beta"}, {"message", {{"close", 7}}},
                                                 {"class", "authority"}}, &status);
  EXPECT_EQ(status, 200) << order;
  EXPECT_EQ(order["response"], (Json{{"closed", true}}));
  EXPECT_EQ(order["class"], "authority");
}

}  // namespace
}  // namespace mesh::test
