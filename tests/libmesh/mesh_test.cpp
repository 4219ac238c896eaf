// Mesh, agents and PeerClient in one process with P2P off: every agent
// talks in memory through a local-only transport. The scenarios follow
// peerclient.md's table call by call.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <set>
#include <thread>

#include "mesh/mesh.hpp"
#include "mesh/peer_tools.hpp"
#include "mesh_fixtures.hpp"

namespace mesh {
namespace {

using namespace std::chrono_literals;
using test::Echo;
using test::eventually;
using test::ids;
using test::Probe;
using test::Silent;

NodeConfig local_config(const std::string& name = "solo") {
  NodeConfig c;
  c.node_name = name;
  c.p2p_enabled = false;
  return c;
}

TEST(Mesh, GeneratedIdsAndBadCards) {
  Mesh mesh(local_config());
  auto& a = mesh.add<Probe>("", "coder");
  // "coder-" and 8 lowercase hex digits (std::regex trips GCC 12's
  // -Wmaybe-uninitialized under ASan).
  const auto hex = a.id().substr(6);
  EXPECT_EQ(a.id().rfind("coder-", 0), 0u) << a.id();
  EXPECT_EQ(hex.size(), 8u) << a.id();
  EXPECT_EQ(hex.find_first_not_of("0123456789abcdef"), std::string::npos) << a.id();
  EXPECT_THROW(mesh.add<Probe>("", ""), std::invalid_argument);           // empty role
  EXPECT_THROW(mesh.add<Probe>("has space", "x"), std::invalid_argument);  // bad id
  EXPECT_THROW(mesh.add<Probe>(a.id(), "coder"), std::invalid_argument);   // duplicate
  EXPECT_THROW(mesh.add<Probe>("$registry", "x"), std::invalid_argument);  // reserved
  EXPECT_THROW(mesh.add(std::unique_ptr<Agent>()), std::invalid_argument);
}

TEST(Mesh, ZeroConcurrencyRefused) {
  Mesh mesh(local_config());
  class Zero : public CustomAgent {
   public:
    Zero() : CustomAgent({.role = "z", .concurrency = 0}) {}
  };
  EXPECT_THROW(mesh.add<Zero>(), std::invalid_argument);
  Probe loose("loose");
  EXPECT_THROW(loose.peers(), std::logic_error);
}

class MeshP2POff : public ::testing::Test {
 protected:
  void SetUp() override {
    MeshOptions o;
    o.seed = 42;
    auto config = local_config();
    config.max_message_bytes = 64 * 1024;
    mesh = std::make_unique<Mesh>(config, o);
    probe = &mesh->add<Probe>("probe-1");
    coder_a = &mesh->add<Echo>("coder-a", "coder", std::vector<std::string>{"python"});
    coder_b = &mesh->add<Echo>("coder-b", "coder", std::vector<std::string>{"python", "review"});
    reviewer = &mesh->add<Echo>("reviewer-1", "reviewer", std::vector<std::string>{"review"});
    mesh->start();
  }
  void TearDown() override { mesh->stop(); }

  std::unique_ptr<Mesh> mesh;
  Probe* probe = nullptr;
  Echo* coder_a = nullptr;
  Echo* coder_b = nullptr;
  Echo* reviewer = nullptr;
};

TEST_F(MeshP2POff, DiscoveryByRoleCapabilityAndStrategy) {
  auto& pc = probe->peers();
  EXPECT_EQ(pc.my_id(), "probe-1");
  EXPECT_EQ(pc.my_role(), "probe");
  EXPECT_EQ(ids(pc.discover(by_role("coder"))), (std::vector<std::string>{"coder-a", "coder-b"}));
  EXPECT_EQ(ids(pc.discover(by_capability("review"))), (std::vector<std::string>{"coder-b", "reviewer-1"}));
  EXPECT_EQ(ids(pc.discover({.role = "coder", .capability = "review"})), (std::vector<std::string>{"coder-b"}));
  EXPECT_TRUE(pc.discover(by_role("nobody")).empty());
  for (const auto& p : pc.discover(by_role("coder"))) {
    EXPECT_TRUE(p.local);
    EXPECT_EQ(p.card.node, "solo");
    EXPECT_EQ(p.node_health, NodeHealth::Alive);
  }

  // round_robin: successive calls start at successive peers.
  const auto r1 = pc.discover(by_role("coder"), "round_robin");
  const auto r2 = pc.discover(by_role("coder"), Strategy::RoundRobin);
  EXPECT_NE(r1.front().card.agent_id, r2.front().card.agent_id);
  // random: a permutation of the same set.
  auto rnd = ids(pc.discover(by_role("coder"), "random"));
  std::sort(rnd.begin(), rnd.end());
  EXPECT_EQ(rnd, (std::vector<std::string>{"coder-a", "coder-b"}));
  // least_recent: never used first, then the one used longest ago.
  EXPECT_TRUE(pc.record_peer_usage("coder-a"));
  EXPECT_FALSE(pc.record_peer_usage("ghost"));
  EXPECT_EQ(pc.discover_one(by_role("coder"), "least_recent")->card.agent_id, "coder-b");
  ASSERT_TRUE(pc.notify("coder-b", {{"hi", 1}}));  // notify records usage
  std::this_thread::sleep_for(5ms);
  EXPECT_EQ(pc.discover_one(by_role("coder"), Strategy::LeastRecent)->card.agent_id, "coder-a");

  EXPECT_THROW(pc.discover(by_role("coder"), "fastest"), std::invalid_argument);
  EXPECT_THROW(pc.discover(PeerQuery{"", ""}), std::invalid_argument);
  EXPECT_THROW(pc.set_default_strategy("bogus"), std::invalid_argument);

  EXPECT_EQ(pc.get_peer("coder")->card.agent_id, "coder-a");
  EXPECT_FALSE(pc.get_peer(""));
  EXPECT_FALSE(pc.get_peer("probe")) << "self is never a peer";
  EXPECT_EQ(pc.list_roles(), (std::set<std::string>{"coder", "reviewer"}));
  EXPECT_EQ(pc.list_peers().size(), 3u);
  const auto reg = pc.registry();
  EXPECT_EQ(reg.size(), 3u);
  EXPECT_TRUE(reg.contains("reviewer-1"));
  EXPECT_FALSE(reg.contains("probe-1"));
  EXPECT_EQ(peer_to_json(reg.at("reviewer-1"))["location"], "local");
}

TEST_F(MeshP2POff, NotifyAndReceive) {
  auto& other = mesh->add<Probe>("probe-2");
  ASSERT_TRUE(probe->peers().notify("probe-2", {{"task", "x"}}, {{"trace", "t1"}}));
  auto m = other.peers().receive_blocking(10s);
  ASSERT_TRUE(m);
  EXPECT_TRUE(m->is_notify());
  EXPECT_FALSE(m->is_request());
  EXPECT_EQ(m->sender, "probe-1");
  EXPECT_EQ(m->sender_node, "solo");
  EXPECT_EQ(m->target, "probe-2");
  EXPECT_EQ(m->data["task"], "x");
  EXPECT_EQ(m->context["trace"], "t1");
  EXPECT_EQ(m->id.size(), 32u);
  EXPECT_TRUE(m->correlation_id.empty());
  EXPECT_GT(m->timestamp_ms, 0);
  EXPECT_FALSE(other.peers().receive_blocking(50ms)) << "nothing else";
  EXPECT_FALSE(probe->peers().respond(*m, {{"no", 1}})) << "a notify cannot be answered";

  EXPECT_FALSE(probe->peers().notify("ghost", {{"a", 1}}));
  EXPECT_FALSE(probe->peers().notify("probe-1", {{"a", 1}})) << "self is never a target";
  EXPECT_FALSE(probe->peers().notify("", {{"a", 1}}));
  // A role resolves to one agent of it.
  ASSERT_TRUE(probe->peers().notify("reviewer", {{"r", 1}}));
  EXPECT_TRUE(eventually([&] { return reviewer->notify_count() == 1; }));
}

TEST_F(MeshP2POff, RequestResponseCarriesContext) {
  auto& pc = probe->peers();
  auto r = pc.request_blocking("reviewer-1", {{"x", 1}}, 10s, {{"trace", "abc"}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->data["echo"]["x"], 1);
  EXPECT_EQ(r->data["by"], "reviewer-1");
  EXPECT_EQ(r->sender, "reviewer-1");
  EXPECT_EQ(r->sender_node, "solo");
  EXPECT_EQ(r->context["trace"], "abc") << "the request's context is carried over";
  EXPECT_EQ(r->correlation_id.size(), 32u);

  // By role; the default strategy picks.
  pc.set_default_strategy(Strategy::RoundRobin);
  std::set<std::string> by;
  for (int i = 0; i < 4; ++i) {
    auto rr = pc.request_blocking("coder", {{"i", i}}, 10s);
    ASSERT_TRUE(rr);
    by.insert(rr->data["by"].get<std::string>());
  }
  EXPECT_EQ(by, (std::set<std::string>{"coder-a", "coder-b"}));

  auto missing = pc.request_detailed_blocking("ghost", {{"x", 1}}, 1s);
  EXPECT_EQ(missing.error, ErrorCode::TargetUnknown);
  EXPECT_FALSE(pc.request_blocking("ghost", {{"x", 1}}, 1s));

  auto fut = pc.request_async("coder-a", {{"async", true}}, 10s);
  ASSERT_EQ(fut.wait_for(20s), std::future_status::ready);
  auto out = fut.get();
  ASSERT_TRUE(out.ok()) << transport::to_string(out.error);
  EXPECT_EQ(out.response->data["echo"]["async"], true);
  EXPECT_EQ(out.peer->card.agent_id, "coder-a");
}

TEST_F(MeshP2POff, RespondOnceAndContextOverride) {
  auto& other = mesh->add<Probe>("probe-2");
  auto fut = probe->peers().request_async("probe-2", {{"q", 1}}, 20s, {{"trace", "t"}, {"k", 1}});
  auto m = other.peers().receive_blocking(10s);
  ASSERT_TRUE(m);
  ASSERT_TRUE(m->is_request());
  EXPECT_EQ(m->correlation_id, m->id);
  EXPECT_TRUE(other.peers().respond(*m, {{"a", 2}}, Json{{"trace", "override"}}));
  EXPECT_FALSE(other.peers().respond(*m, {{"a", 3}})) << "answering twice";
  auto out = fut.get();
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out.response->data["a"], 2);
  EXPECT_EQ(out.response->context, (Json{{"trace", "override"}}));
  EXPECT_EQ(out.response->correlation_id, m->id);
}

TEST_F(MeshP2POff, RespondErrorReachesTheRequester) {
  auto& other = mesh->add<Probe>("probe-2");
  auto fut = probe->peers().request_async("probe-2", {{"q", 1}}, 20s);
  auto m = other.peers().receive_blocking(10s);
  ASSERT_TRUE(m);
  EXPECT_FALSE(other.peers().respond_error(*m, ErrorCode::None)) << "an error must say which";
  EXPECT_TRUE(other.peers().respond_error(*m, ErrorCode::Rejected));
  EXPECT_FALSE(other.peers().respond(*m, {{"a", 1}})) << "answered already";
  EXPECT_FALSE(other.peers().respond_error(*m)) << "answered already";
  ASSERT_EQ(fut.wait_for(20s), std::future_status::ready);
  EXPECT_EQ(fut.get().error, ErrorCode::Rejected);

  probe->peers().notify("probe-2", {{"n", 1}});
  auto n = other.peers().receive_blocking(10s);
  ASSERT_TRUE(n);
  EXPECT_FALSE(other.peers().respond_error(*n)) << "a notify cannot be answered";
}

TEST_F(MeshP2POff, PeersAsToolsAndCognitiveContext) {
  auto& pc = probe->peers();
  for (auto format : {ToolFormat::Mcp, ToolFormat::OpenAi}) {
    const Json tools = peers_as_tools(pc, {}, format);
    ASSERT_TRUE(tools.is_array());
    ASSERT_EQ(tools.size(), 3u);
    std::vector<std::string> names;
    for (const auto& t : tools) {
      const Json& def = format == ToolFormat::Mcp ? t : t.at("function");
      if (format == ToolFormat::OpenAi) {
        EXPECT_EQ(t.at("type"), "function");
      }
      names.push_back(def.at("name").get<std::string>());
      const Json& schema = def.at(format == ToolFormat::Mcp ? "inputSchema" : "parameters");
      EXPECT_EQ(schema.at("type"), "object");
      EXPECT_EQ(schema.at("additionalProperties"), false);
    }
    EXPECT_EQ(names, (std::vector<std::string>{"ask_peer", "notify_peer", "list_peers"}));
  }
  const Json ask = peers_as_tools(pc)[0];
  // Roles first, then agent ids, each sorted; never the caller itself.
  EXPECT_EQ(ask["inputSchema"]["properties"]["target"]["enum"],
            (Json{"coder", "reviewer", "coder-a", "coder-b", "reviewer-1"}));
  EXPECT_EQ(ask["inputSchema"]["required"], (Json{"target", "message"}));
  EXPECT_NE(ask["description"].get<std::string>().find("coder (python, review)"), std::string::npos)
      << ask["description"];
  const Json only = peers_as_tools(pc, by_capability("review"))[0];
  EXPECT_EQ(only["inputSchema"]["properties"]["target"]["enum"],
            (Json{"coder", "reviewer", "coder-b", "reviewer-1"}));
  const Json none = peers_as_tools(pc, by_role("ghost"))[0];
  EXPECT_FALSE(none["inputSchema"]["properties"]["target"].contains("enum"));
  EXPECT_NE(none["description"].get<std::string>().find("no peer is reachable now"), std::string::npos);

  EXPECT_EQ(cognitive_context(pc),
            "Available peers (call the ask_peer tool with target set to a role):\n"
            "- coder (2 agents; capabilities: python, review)\n"
            "- reviewer (1 agent; capabilities: review)");
  EXPECT_EQ(cognitive_context(pc, by_role("ghost")), "No other agents are reachable right now.");
  EXPECT_EQ(tool_format_from("openai"), ToolFormat::OpenAi);
  EXPECT_EQ(tool_format_from("mcp"), ToolFormat::Mcp);
  EXPECT_FALSE(tool_format_from("yaml"));
}

TEST_F(MeshP2POff, BroadcastOncePerAgentId) {
  // Three more agents share one role: each gets exactly one copy.
  std::vector<Echo*> workers;
  for (int i = 0; i < 3; ++i) workers.push_back(&mesh->add<Echo>("w" + std::to_string(i), "worker"));
  const auto sent = probe->peers().broadcast({{"hello", "all"}}, {{"c", 1}});
  EXPECT_EQ(sent, 6u);  // coder-a, coder-b, reviewer-1, w0..w2; not the sender
  std::vector<Echo*> all = workers;
  all.insert(all.end(), {coder_a, coder_b, reviewer});
  ASSERT_TRUE(eventually([&] {
    for (auto* e : all)
      if (e->notify_count() < 1) return false;
    return true;
  }));
  std::this_thread::sleep_for(100ms);
  for (auto* e : all) {
    EXPECT_EQ(e->notify_count(), 1u) << e->id();
    std::lock_guard lock(e->mu);
    EXPECT_EQ(e->notifies.front().context["c"], 1);
  }
  EXPECT_EQ(probe->peers().broadcast_to(by_role("worker"), {{"only", "workers"}}), 3u);
  ASSERT_TRUE(eventually([&] { return workers[2]->notify_count() == 2; }));
}

TEST_F(MeshP2POff, AskAsyncAndCheckInbox) {
  auto& pc = probe->peers();
  const auto id = pc.ask_async("coder-a", {{"job", 7}});
  EXPECT_EQ(id.size(), 32u);
  auto r = pc.check_inbox_blocking(id, 10s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->data["echo"]["job"], 7);
  EXPECT_EQ(pc.check_inbox_status_blocking(id).status, AskStatus::Unknown) << "removed once delivered";
  EXPECT_EQ(pc.check_inbox_status_blocking("not-an-id").status, AskStatus::Unknown);

  // Kept when remove=false.
  const auto kept = pc.ask_async("coder-b", {{"job", 8}});
  ASSERT_TRUE(eventually([&] { return pc.check_inbox_status_blocking(kept, 0ms, false).status == AskStatus::Ready; }));
  EXPECT_TRUE(pc.check_inbox_blocking(kept, 0ms, false));
  EXPECT_TRUE(pc.check_inbox_blocking(kept));
  EXPECT_FALSE(pc.check_inbox_blocking(kept));

  // Not yet vs expired.
  auto& silent = mesh->add<Silent>("silent-1");
  const auto slow = pc.ask_async("silent-1", {{"job", 9}}, 300ms);
  EXPECT_EQ(pc.check_inbox_status_blocking(slow).status, AskStatus::Pending);
  ASSERT_TRUE(eventually([&] { return pc.check_inbox_status_blocking(slow, 0ms).status == AskStatus::Expired; }));
  EXPECT_FALSE(pc.check_inbox_blocking(slow));
  EXPECT_EQ(silent.requests.load(), 1);

  try {
    pc.ask_async("ghost", {{"x", 1}});
    ADD_FAILURE() << "ask_async to an unknown target must throw";
  } catch (const MeshError& e) {
    EXPECT_EQ(e.code(), ErrorCode::TargetUnknown);
  }
}

// Answers after `delay`.
class Slow : public CustomAgent {
 public:
  Slow(std::string id, std::string role, std::chrono::milliseconds delay)
      : CustomAgent({.role = std::move(role), .agent_id = std::move(id)}), delay_(delay) {}
  Task<std::optional<Json>> on_request(const IncomingMessage&) override {
    co_await peers().sleep(delay_);
    co_return Json{{"by", id()}};
  }

 private:
  std::chrono::milliseconds delay_;
};

TEST_F(MeshP2POff, RequestAllPolicies) {
  auto& pc = probe->peers();
  mesh->add<Echo>("g1", "gather");
  mesh->add<Echo>("g2", "gather");
  mesh->add<Slow>("g3", "gather", 300ms);
  mesh->add<Silent>("g4", "gather");

  auto all = pc.request_all_blocking(by_role("gather"), {{"q", 1}}, GatherPolicy::all(3s));
  EXPECT_EQ(all.responses.size(), 3u);
  ASSERT_EQ(all.missing.size(), 1u);
  EXPECT_EQ(all.missing[0].peer.card.agent_id, "g4");
  EXPECT_EQ(all.missing[0].error, ErrorCode::Timeout);
  EXPECT_FALSE(all.satisfied);

  auto first = pc.request_all_blocking(by_role("gather"), {{"q", 2}}, GatherPolicy::first_k(2, 20s));
  EXPECT_TRUE(first.satisfied);
  EXPECT_EQ(first.responses.size(), 2u);
  EXPECT_LE(first.responses.size() + first.missing.size(), 4u);

  auto quorum = pc.request_all_blocking(by_role("gather"), {{"q", 3}}, GatherPolicy::quorum(20s));
  EXPECT_TRUE(quorum.satisfied);  // 3 of 4 answer; 3 is a majority
  EXPECT_GE(quorum.responses.size(), 3u);

  auto listed = pc.request_all_blocking(std::vector<std::string>{"g1", "coder-a", "ghost"}, {{"q", 4}},
                               GatherPolicy::all(10s));
  EXPECT_EQ(listed.responses.size(), 2u);
  ASSERT_EQ(listed.missing.size(), 1u);
  EXPECT_EQ(listed.missing[0].error, ErrorCode::TargetUnknown);
  EXPECT_FALSE(listed.satisfied);

  EXPECT_THROW(pc.request_all_blocking(by_role("gather"), {}, GatherPolicy::first_k(0)), std::invalid_argument);
  auto none = pc.request_all_blocking(by_role("nobody"), {{"q", 5}}, GatherPolicy::all(1s));
  EXPECT_TRUE(none.responses.empty());
  EXPECT_FALSE(none.satisfied);
}

// Answers {"round": r} only once all `group` members of its gang got round
// r: the gang answers at once, the way fast local peers do.
struct Gang {
  std::mutex mu;
  std::condition_variable cv;
  int arrived = 0;
};

class Together : public CustomAgent {
 public:
  Together(std::string id, Gang& gang, int group)
      : CustomAgent({.role = "together", .agent_id = std::move(id)}), gang_(gang), group_(group) {}
  Task<std::optional<Json>> on_request(const IncomingMessage& m) override {
    const int round = m.data.at("round").get<int>();
    const auto until = std::chrono::steady_clock::now() + 20s;
    {
      std::lock_guard lock(gang_.mu);
      ++gang_.arrived;
    }
    // Waits without holding a thread: the gang may outnumber the executor's.
    while (std::chrono::steady_clock::now() < until) {
      {
        std::lock_guard lock(gang_.mu);
        if (gang_.arrived >= group_ * (round + 1)) break;
      }
      co_await peers().sleep(1ms);
    }
    co_return Json{{"round", round}, {"by", id()}};
  }

 private:
  Gang& gang_;
  int group_;
};

// first_k(2) against three peers that answer at the same moment: exactly
// two responses every time; the third peer is either "missing" (it had
// not answered when the call returned) or in neither list (it answered
// after the second), never both.
TEST_F(MeshP2POff, RequestAllFirstKReturnsAtMostK) {
  Gang gang;
  for (int i = 0; i < 3; ++i) mesh->add<Together>("t" + std::to_string(i), gang, 3);
  auto& pc = probe->peers();
  for (int round = 0; round < 5; ++round) {
    auto r = pc.request_all_blocking(by_role("together"), {{"round", round}}, GatherPolicy::first_k(2, 20s));
    EXPECT_TRUE(r.satisfied) << "round " << round;
    ASSERT_EQ(r.responses.size(), 2u) << "round " << round;
    EXPECT_LE(r.missing.size(), 1u) << "round " << round;
    std::set<std::string> seen;
    for (const auto& a : r.responses) {
      EXPECT_EQ(a.response.data["round"], round);
      seen.insert(a.peer.card.agent_id);
    }
    for (const auto& m : r.missing) {
      EXPECT_EQ(m.error, ErrorCode::Timeout);
      EXPECT_TRUE(seen.insert(m.peer.card.agent_id).second) << m.peer.card.agent_id << " in both lists";
    }
    EXPECT_EQ(seen.size(), 2u + r.missing.size());
  }
  // Without FirstK nothing is capped.
  auto q = pc.request_all_blocking(by_role("together"), {{"round", 5}}, GatherPolicy::all(20s));
  EXPECT_TRUE(q.satisfied);
  EXPECT_EQ(q.responses.size(), 3u);
}

// ---------------------------------------------------------------- node client

TEST_F(MeshP2POff, NodeClientSendsButIsNoAgent) {
  PeerClient& node = mesh->node_client();
  EXPECT_EQ(&node, &mesh->node_client());
  EXPECT_EQ(node.my_id(), kNodeClientId);
  EXPECT_EQ(node.my_id(), "$node");
  EXPECT_EQ(node.my_role(), "");
  EXPECT_EQ(node.node_name(), "solo");
  EXPECT_EQ(mesh->agent("$node"), nullptr);
  EXPECT_THROW(mesh->add<Probe>("$node"), std::invalid_argument);

  // Its discovery: every agent is a peer, none is "self".
  EXPECT_EQ(ids(node.discover(by_role("coder"))), (std::vector<std::string>{"coder-a", "coder-b"}));
  EXPECT_EQ(node.list_peers().size(), 4u);
  EXPECT_EQ(node.list_roles(), (std::set<std::string>{"coder", "probe", "reviewer"}));
  EXPECT_TRUE(node.registry().contains("probe-1"));
  EXPECT_EQ(node.get_peer("reviewer")->card.agent_id, "reviewer-1");

  // Nobody lists it.
  EXPECT_TRUE(test::lists_no_reserved_id(probe->peers()));
  EXPECT_TRUE(test::lists_no_reserved_id(coder_a->peers()));
  EXPECT_TRUE(test::lists_no_reserved_id(node));
  EXPECT_EQ(probe->peers().list_peers().size(), 3u);
  for (const auto& p : mesh->directory().all()) EXPECT_NE(p.card.agent_id.front(), '$') << p.card.agent_id;

  // request (by id and by role), request_detailed, request_async.
  auto r = node.request_blocking("reviewer-1", {{"x", 1}}, 10s, {{"trace", "n1"}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->data["echo"]["x"], 1);
  EXPECT_EQ(r->context["trace"], "n1");
  EXPECT_TRUE(node.request_blocking("coder", {{"x", 2}}, 10s));
  const auto detailed = node.request_detailed_blocking("coder-b", {{"x", 3}}, 10s);
  ASSERT_TRUE(detailed.ok()) << transport::to_string(detailed.error);
  EXPECT_EQ(detailed.peer->card.agent_id, "coder-b");
  auto fut = node.request_async("coder-a", {{"x", 4}}, 10s);
  ASSERT_EQ(fut.wait_for(20s), std::future_status::ready);
  EXPECT_TRUE(fut.get().ok());

  // notify: the receiver sees "$node" of this node.
  ASSERT_TRUE(node.notify("coder-a", {{"n", 1}}, {{"c", 1}}));
  ASSERT_TRUE(eventually([&] { return coder_a->notify_count() == 1; }));
  const auto got = coder_a->notifies_copy().front();
  EXPECT_EQ(got.sender, "$node");
  EXPECT_EQ(got.sender_node, "solo");
  EXPECT_EQ(got.context["c"], 1);

  // ask_async / check_inbox.
  const auto ask = node.ask_async("reviewer-1", {{"job", 1}});
  auto answer = node.check_inbox_blocking(ask, 10s);
  ASSERT_TRUE(answer);
  EXPECT_EQ(answer->data["echo"]["job"], 1);

  // request_all and broadcast reach every agent.
  auto all = node.request_all_blocking(by_capability("python"), {{"q", 1}}, GatherPolicy::all(10s));
  EXPECT_TRUE(all.satisfied);
  EXPECT_EQ(all.responses.size(), 2u);
  EXPECT_EQ(node.broadcast({{"to", "all"}}), 4u);  // probe-1, coder-a, coder-b, reviewer-1
  ASSERT_TRUE(eventually([&] { return reviewer->notify_count() == 1 && coder_b->notify_count() == 1; }));
  auto plain = probe->peers().receive_blocking(10s);
  ASSERT_TRUE(plain);
  EXPECT_EQ(plain->sender, "$node");

  // A plain agent answers its request; nobody can send to it.
  auto pending = node.request_async("probe-1", {{"q", "?"}}, 20s);
  auto req = probe->peers().receive_blocking(10s);
  ASSERT_TRUE(req);
  ASSERT_TRUE(req->is_request());
  EXPECT_EQ(req->sender, "$node");
  EXPECT_TRUE(probe->peers().respond(*req, {{"a", "!"}}));
  ASSERT_EQ(pending.wait_for(20s), std::future_status::ready);
  auto answered = pending.get();
  ASSERT_TRUE(answered.ok());
  EXPECT_EQ(answered.response->data["a"], "!");
  EXPECT_FALSE(probe->peers().notify(req->sender, {{"back", 1}}));
  EXPECT_FALSE(probe->peers().notify("$node", {{"back", 1}}));
  EXPECT_EQ(probe->peers().request_detailed_blocking("$node", {{"back", 1}}, 1s).error, ErrorCode::TargetUnknown);
  EXPECT_THROW(probe->peers().ask_async("$node", {{"back", 1}}), MeshError);
  EXPECT_FALSE(node.notify("$node", {{"self", 1}}));
  EXPECT_FALSE(node.notify("$registry", {{"x", 1}}));
  auto to_node = probe->peers().request_all_blocking(std::vector<std::string>{"$node"}, {{"x", 1}}, GatherPolicy::all(1s));
  ASSERT_EQ(to_node.missing.size(), 1u);
  EXPECT_EQ(to_node.missing[0].error, ErrorCode::TargetUnknown);

  // An agent's broadcast does not count it, and it has no inbox.
  EXPECT_EQ(probe->peers().broadcast({{"from", "probe"}}), 3u);  // coder-a, coder-b, reviewer-1
  EXPECT_FALSE(node.receive_blocking(0ms));
}

TEST(Mesh, NodeClientBeforeStartAndAfterStop) {
  Mesh mesh(local_config());
  mesh.add<Echo>("e1");
  PeerClient& node = mesh.node_client();
  // Discovery works on what the directory holds: this node's agents.
  EXPECT_EQ(ids(node.discover(by_role("echo"))), (std::vector<std::string>{"e1"}));
  // Sends fail as for any client of a mesh that is not running.
  EXPECT_FALSE(node.notify("e1", {{"x", 1}}));
  EXPECT_EQ(node.request_detailed_blocking("e1", {{"x", 1}}, 1s).error, ErrorCode::Shutdown);
  EXPECT_EQ(node.request_async("e1", {{"x", 1}}, 1s).get().error, ErrorCode::Shutdown);
  try {
    node.ask_async("e1", {{"x", 1}});
    ADD_FAILURE() << "ask_async before start must throw";
  } catch (const MeshError& e) {
    EXPECT_EQ(e.code(), ErrorCode::Shutdown);
  }
  EXPECT_EQ(node.broadcast({{"x", 1}}), 0u);
  auto gathered = node.request_all_blocking(by_role("echo"), {{"x", 1}}, GatherPolicy::all(1s));
  ASSERT_EQ(gathered.missing.size(), 1u);
  EXPECT_EQ(gathered.missing[0].error, ErrorCode::Shutdown);

  mesh.start();
  EXPECT_TRUE(node.request_blocking("e1", {{"x", 2}}, 10s));
  mesh.stop();
  EXPECT_FALSE(node.notify("e1", {{"x", 3}}));
  EXPECT_EQ(node.request_detailed_blocking("e1", {{"x", 3}}, 1s).error, ErrorCode::Shutdown);
}

// Throws on {"boom": true}; counts its lifecycle.
class Flaky : public CustomAgent {
 public:
  Flaky() : CustomAgent({.role = "flaky", .agent_id = "flaky-1"}) {}
  void setup() override { ++setups; }
  void teardown() override { ++teardowns; }
  std::optional<Json> on_peer_request(const IncomingMessage& m) override {
    if (m.data.value("boom", false)) throw std::runtime_error("boom");
    return Json{{"ok", true}};
  }
  void on_error(const std::exception& e, const IncomingMessage* m) override {
    std::lock_guard lock(mu);
    errors.push_back(e.what());
    had_message = m != nullptr;
  }
  std::atomic<int> setups{0}, teardowns{0};
  std::mutex mu;
  std::vector<std::string> errors;
  bool had_message = false;
};

TEST_F(MeshP2POff, HandlerExceptionRestartsAgentAndNodeKeepsServing) {
  auto& flaky = mesh->add<Flaky>();
  auto& pc = probe->peers();
  ASSERT_TRUE(eventually([&] { return flaky.setups.load() == 1; }));
  auto bad = pc.request_detailed_blocking("flaky-1", {{"boom", true}}, 10s);
  EXPECT_EQ(bad.error, ErrorCode::Rejected) << transport::to_string(bad.error);
  ASSERT_TRUE(eventually([&] { return flaky.restarts() >= 1 && flaky.setups.load() >= 2; }));
  {
    std::lock_guard lock(flaky.mu);
    ASSERT_EQ(flaky.errors.size(), 1u);
    EXPECT_EQ(flaky.errors[0], "boom");
    EXPECT_TRUE(flaky.had_message);
  }
  EXPECT_GE(flaky.teardowns.load(), 1);
  // Messages sent while it restarts wait in the mailbox.
  auto again = pc.request_detailed_blocking("flaky-1", {{"boom", true}}, 10s);
  EXPECT_EQ(again.error, ErrorCode::Rejected);
  auto good = pc.request_blocking("flaky-1", {{"boom", false}}, 20s);
  ASSERT_TRUE(good);
  EXPECT_EQ(good->data["ok"], true);
  EXPECT_TRUE(pc.request_blocking("coder-a", {{"still", "up"}}, 10s)) << "other agents unaffected";
  EXPECT_GE(mesh->stats().agent_restarts, 2u);
  EXPECT_GE(mesh->stats().agent_failures, 2u);
}

// Blocks in its handler until released.
class Gate : public CustomAgent {
 public:
  Gate(std::string id, std::size_t concurrency, int expect)
      : CustomAgent({.role = "gate", .agent_id = std::move(id), .concurrency = concurrency}), expect_(expect) {}
  Task<std::optional<Json>> on_request(const IncomingMessage&) override {
    {
      std::lock_guard lock(mu);
      ++active;
      max_active = std::max(max_active, active);
    }
    const auto until = std::chrono::steady_clock::now() + 20s;
    while (std::chrono::steady_clock::now() < until) {
      {
        std::lock_guard lock(mu);
        if (released || max_active >= expect_) break;
      }
      co_await peers().sleep(2ms);
    }
    std::lock_guard lock(mu);
    const int seen = max_active;
    --active;
    co_return Json{{"max_active", seen}};
  }
  void release() {
    std::lock_guard lock(mu);
    released = true;
    cv.notify_all();
  }
  std::mutex mu;
  std::condition_variable cv;
  int active = 0, max_active = 0;
  bool released = false;

 private:
  int expect_;
};

TEST_F(MeshP2POff, SlowHandlerDoesNotBlockOtherAgents) {
  auto& gate = mesh->add<Gate>("gate-1", 1, 1000);
  auto& pc = probe->peers();
  auto blocked = pc.request_async("gate-1", {{"wait", true}}, 30s);
  ASSERT_TRUE(eventually([&] {
    std::lock_guard lock(gate.mu);
    return gate.active == 1;
  }));
  EXPECT_TRUE(pc.request_blocking("coder-a", {{"x", 1}}, 10s)) << "another agent answers meanwhile";
  EXPECT_TRUE(coder_b->peers().request_blocking("reviewer-1", {{"x", 2}}, 10s));
  gate.release();
  ASSERT_EQ(blocked.wait_for(20s), std::future_status::ready);
  EXPECT_TRUE(blocked.get().ok());
}

TEST_F(MeshP2POff, ConcurrencyHandlesInParallel) {
  mesh->add<Gate>("gate-3", 3, 3);
  auto& pc = probe->peers();
  std::vector<std::future<RequestOutcome>> futs;
  for (int i = 0; i < 3; ++i) futs.push_back(pc.request_async("gate-3", {{"i", i}}, 30s));
  for (auto& f : futs) {
    ASSERT_EQ(f.wait_for(40s), std::future_status::ready);
    auto out = f.get();
    ASSERT_TRUE(out.ok()) << transport::to_string(out.error);
    EXPECT_EQ(out.response->data["max_active"], 3) << "three handlers ran at once";
  }
}

TEST_F(MeshP2POff, BadInputs) {
  auto& pc = probe->peers();
  EXPECT_THROW(pc.notify("coder-a", {{"x", 1}}, Json::array({1, 2})), std::invalid_argument);
  EXPECT_THROW(pc.request_blocking("coder-a", {{"x", 1}}, 1s, Json("ctx")), std::invalid_argument);
  EXPECT_TRUE(pc.notify("coder-a", {{"x", 1}}, Json()));  // null context is {}
  const Json big = {{"blob", std::string(100 * 1024, 'x')}};
  EXPECT_FALSE(pc.notify("coder-a", big)) << "over the frame limit";
  EXPECT_EQ(pc.request_detailed_blocking("coder-a", big, 1s).error, ErrorCode::Oversized);
  EXPECT_EQ(pc.broadcast(big), 0u);
  EXPECT_THROW(pc.ask_async("coder-a", big), MeshError);
}

TEST_F(MeshP2POff, MailboxIsBoundedAndSenderLearnsIt) {
  mesh->add<Probe>("tiny", "tiny", 2);
  auto& pc = probe->peers();
  EXPECT_TRUE(pc.notify("tiny", {{"n", 1}}));
  EXPECT_TRUE(pc.notify("tiny", {{"n", 2}}));
  EXPECT_FALSE(pc.notify("tiny", {{"n", 3}})) << "full mailbox: backpressure";
  EXPECT_EQ(pc.request_detailed_blocking("tiny", {{"n", 4}}, 1s).error, ErrorCode::MailboxFull);
}

TEST_F(MeshP2POff, MalformedPayloadsAreCountedAndDropped) {
  auto& target = mesh->add<Probe>("victim");
  auto* t = mesh->transport_for_test();
  ASSERT_NE(t, nullptr);
  auto raw = [&](std::vector<std::uint8_t> payload) {
    transport::OutMessage m;
    m.to = {"", "victim"};
    m.sender_agent = "evil";
    m.payload = std::move(payload);
    return t->notify(std::move(m));
  };
  ASSERT_EQ(raw({0xc1}), ErrorCode::None);                // never-used byte
  ASSERT_EQ(raw({0x92, 0x01}), ErrorCode::None);          // truncated array
  std::vector<std::uint8_t> deep(60000, 0x91);           // hostile nesting
  deep.push_back(0xc0);
  ASSERT_EQ(raw(deep), ErrorCode::None);
  ASSERT_EQ(raw({0x81, 0x01, 0x02}), ErrorCode::None);    // map with an int key
  ASSERT_EQ(raw(Json::to_msgpack(Json{{"fine", true}})), ErrorCode::None);
  auto m = target.peers().receive_blocking(10s);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->data["fine"], true);
  EXPECT_EQ(mesh->stats().messages_malformed, 4u);

  // A malformed request is answered Malformed, not left to time out.
  transport::OutMessage req;
  req.to = {"", "coder-a"};
  req.sender_agent = "evil";
  req.payload = {0xc1};
  EXPECT_EQ(t->request(std::move(req), 10s).error, ErrorCode::Malformed);
}

TEST_F(MeshP2POff, SubscriptionsSeeAgentsComeAndGo) {
  std::mutex mu;
  std::vector<PeerEvent> seen;
  const auto token = probe->peers().subscribe([&](const PeerEvent& e) {
    std::lock_guard lock(mu);
    seen.push_back(e);
  });
  mesh->add<Echo>("late-1", "late");
  ASSERT_TRUE(probe->peers().request_blocking("late", {{"x", 1}}, 10s)) << "added after start: serving at once";
  ASSERT_TRUE(mesh->remove("late-1"));
  EXPECT_FALSE(mesh->remove("late-1"));
  EXPECT_FALSE(probe->peers().get_peer("late"));
  auto has = [&](PeerEventKind k) {
    std::lock_guard lock(mu);
    return std::any_of(seen.begin(), seen.end(), [&](const PeerEvent& e) {
      return e.kind == k && e.card && e.card->agent_id == "late-1" && e.local;
    });
  };
  EXPECT_TRUE(eventually([&] { return has(PeerEventKind::AgentAdded) && has(PeerEventKind::AgentRemoved); }));
  EXPECT_TRUE(probe->peers().unsubscribe(token));
  EXPECT_FALSE(probe->peers().unsubscribe(token));
}

// A plain agent with its own receive loop (the Python style).
class Receiver : public Agent {
 public:
  Receiver() : Agent({.role = "receiver", .agent_id = "recv-1"}) {}
  Task<void> run() override {
    while (!stop_requested()) {
      auto m = co_await peers().receive();
      if (!m) continue;
      if (m->is_request()) peers().respond(*m, {{"got", m->data}});
    }
  }
};

TEST_F(MeshP2POff, PlainAgentRunLoopReceives) {
  mesh->add<Receiver>();
  auto r = probe->peers().request_blocking("receiver", {{"x", 5}}, 10s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->data["got"]["x"], 5);
}

TEST(Mesh, RunForeverReturnsOnRequestStop) {
  Mesh mesh(local_config());
  mesh.add<Echo>("e1");
  std::thread stopper([&] {
    EXPECT_TRUE(eventually([&] { return mesh.running(); }));
    mesh.request_stop();
  });
  mesh.run_forever();
  stopper.join();
  EXPECT_FALSE(mesh.running());
  EXPECT_THROW(mesh.start(), std::logic_error);
  EXPECT_THROW(mesh.add<Echo>("e2"), std::logic_error);
  mesh.stop();  // idempotent
}

TEST(Mesh, StopWithoutStart) {
  Mesh mesh(local_config());
  mesh.add<Echo>("e1");
  EXPECT_TRUE(mesh.agent("e1"));
  EXPECT_FALSE(mesh.agent("e2"));
  EXPECT_FALSE(mesh.agent("e1")->peers().notify("e1", {}));
}

}  // namespace
}  // namespace mesh

namespace mesh {
namespace {

// A thread of its own blocked in receive_blocking() without a timeout:
// stop() must still end it.
class Blocking : public ThreadAgent {
 public:
  Blocking() : ThreadAgent({.role = "blocking", .agent_id = "blocking-1"}) {}
  void run_blocking(std::stop_token stop) override {
    while (!stop.stop_requested()) {
      if (auto m = peers().receive_blocking()) ++received;
    }
  }
  std::atomic<int> received{0};
};

TEST(Mesh, StopEndsAReceiveWithoutTimeout) {
  Mesh mesh(local_config());
  auto& b = mesh.add<Blocking>();
  auto& p = mesh.add<Probe>("p");
  mesh.start();
  ASSERT_TRUE(p.peers().notify("blocking-1", {{"x", 1}}));
  ASSERT_TRUE(eventually([&] { return b.received.load() == 1; }));
  EXPECT_TRUE(mesh.remove("blocking-1"));  // returns: the closed mailbox woke it
  mesh.add<Blocking>();
  mesh.stop();  // the same for stop()
  EXPECT_FALSE(mesh.running());
}

// Issue 11: a same-node target's full mailbox is known at once (false, and
// counted as refused); nothing is reported later for it.
// The defaults agents see change while the node runs (mesh-node's
// SIGHUP): the strategy of clients that chose none, and the timeout of
// requests that give none. A client's own strategy stays.
TEST(Mesh, DiscoveryStrategyAndRequestTimeoutChangeWhileRunning) {
  NodeConfig c = local_config();
  c.request_timeout = 60s;
  Mesh mesh(c);
  auto& picker = mesh.add<Probe>("picker");
  auto& chooser = mesh.add<Probe>("chooser");
  mesh.add<Echo>("echo-a", "echo");
  mesh.add<Echo>("echo-b", "echo");
  mesh.add<Silent>("mute");
  mesh.start();
  chooser.peers().set_default_strategy(Strategy::First);
  const auto picks = [](Agent& a) {
    std::set<std::string> seen;
    for (int i = 0; i < 6; ++i) seen.insert(a.peers().get_peer("echo")->card.agent_id);
    return seen;
  };
  EXPECT_EQ(picks(picker).size(), 1U);  // first, as configured
  mesh.set_discovery_strategy("round_robin");
  EXPECT_EQ(picker.peers().default_strategy(), Strategy::RoundRobin);
  EXPECT_EQ(picks(picker).size(), 2U);
  EXPECT_EQ(picks(chooser).size(), 1U);  // its own choice stays
  EXPECT_THROW(mesh.set_discovery_strategy("nearest"), std::invalid_argument);
  EXPECT_EQ(picker.peers().default_strategy(), Strategy::RoundRobin);

  // A request to an agent that never answers ends at the new default, not
  // the configured 60 s (the bound below is far from both).
  mesh.set_request_timeout(200ms);
  EXPECT_THROW(mesh.set_request_timeout(0ms), std::invalid_argument);
  const auto began = std::chrono::steady_clock::now();
  EXPECT_FALSE(picker.peers().request_blocking("mute", Json::object()).has_value());
  EXPECT_LT(std::chrono::steady_clock::now() - began, 30s);
  EXPECT_EQ(mesh.config().request_timeout, 60s);  // as started
  mesh.stop();
}

// receive_blocking makes the message it returns the one this thread
// handles: what the thread sends next joins that message's conversation.
// Through another Mesh (here one made after the first stopped), it starts
// afresh instead of naming a thread that Mesh never saw (which it refused
// as expired).
TEST(Mesh, AMessageReceivedThroughOneMeshDoesNotFollowTheThreadIntoAnother) {
  {
    Mesh first(local_config("first"));
    auto& p = first.add<Probe>("p-1");
    first.start();
    ASSERT_TRUE(first.node_client().notify("p-1", Json{{"hello", 1}}));
    ASSERT_TRUE(p.peers().receive_blocking(10s).has_value());
    first.stop();
  }
  Mesh second(local_config("second"));
  auto& p = second.add<Probe>("p-2");
  second.add<Echo>("echo-2");
  second.start();
  const RequestOutcome r = p.peers().request_detailed_blocking("echo-2", Json{{"x", 1}}, 10s);
  EXPECT_TRUE(r.ok()) << to_string(r.error);
  second.stop();
}

TEST(Mesh, LocalNotifyToAFullMailboxReturnsFalseAtOnce) {
  Mesh mesh(local_config());
  auto& sender = mesh.add<Probe>("sender");
  mesh.add<Probe>("full", "probe", 2);  // nobody receives: it stays full
  mesh.start();
  std::atomic<int> failures{0};
  sender.peers().on_delivery_failure([&failures](const DeliveryFailure&) { ++failures; });
  EXPECT_TRUE(sender.peers().notify("full", {{"n", 1}}));
  EXPECT_TRUE(sender.peers().notify("full", {{"n", 2}}));
  EXPECT_FALSE(sender.peers().notify("full", {{"n", 3}})) << "a full local mailbox must refuse synchronously";
  EXPECT_FALSE(sender.peers().notify("ghost", {{"n", 4}}));
  const DeliveryStats s = sender.peers().delivery_stats();
  EXPECT_EQ(s.notifies_accepted, 2u);
  EXPECT_EQ(s.notifies_refused, 2u);
  EXPECT_EQ(s.notifies_failed, 0u);
  EXPECT_EQ(failures.load(), 0);
  mesh.stop();
}

}  // namespace
}  // namespace mesh
