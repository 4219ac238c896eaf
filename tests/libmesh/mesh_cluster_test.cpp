// Several Meshes with P2P on in one process, on 127.0.0.1 with ports
// chosen by the kernel, SWIM on memberlist's `local` profile.
//
// N1 starts alone; N2 and N3 join through it. Each advertises its agents by
// the "rv" tag and serves its registry over the transport, so within
// seconds every node discovers every agent. Messages flow between nodes.
// When N2's SWIM dies without a word, N1 and N3 declare it dead: its agents
// leave their directories and a request N3 has pending at N2 fails at once
// instead of waiting for its timeout. N2 restarts on the same ports and its
// agents reappear. A node that stops gracefully is gone at once.
//
// The node's own client (Mesh::node_client, "$node") reaches agents on
// every node while no node ever lists it or sends it anything.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>

#include "mesh/mesh.hpp"
#include "mesh/peer_tools.hpp"
#include "mesh/swim/membership.hpp"
#include "mesh_fixtures.hpp"

namespace mesh {
namespace {

using namespace std::chrono_literals;
using test::Echo;
using test::eventually;
using test::fast_options;
using test::seed_of;
using test::ids;
using test::Probe;
using test::Silent;

NodeConfig node_config(const std::string& name, std::vector<std::string> seeds, std::uint16_t swim_port = 0,
                       std::uint16_t zmq_port = 0) {
  NodeConfig c;
  c.node_name = name;
  c.p2p_enabled = true;
  c.swim_host = "127.0.0.1";
  c.swim_port = swim_port;
  c.zmq_port = zmq_port;
  c.seeds = std::move(seeds);
  c.profile = swim::Profile::Local;
  c.leave_timeout = 2s;
  return c;
}

bool knows(Agent& a, const std::string& id) { return a.peers().registry().contains(id); }

TEST(MeshCluster, DiscoveryAndMessagingAcrossNodes) {
  Mesh n1(node_config("n1", {}), fast_options());
  auto& e1 = n1.add<Echo>("echo-1", "echo");
  n1.start();
  Mesh n2(node_config("n2", {seed_of(n1)}), fast_options());
  auto& e2 = n2.add<Echo>("echo-2", "echo", std::vector<std::string>{"gpu"});
  // Twenty agents added at once: one tag update, one fetch per peer.
  for (int i = 0; i < 20; ++i) n2.add<Echo>("bulk-" + std::to_string(i), "bulk");
  n2.start();
  Mesh n3(node_config("n3", {seed_of(n1)}), fast_options());
  auto& probe = n3.add<Probe>("probe-3");
  n3.start();

  ASSERT_TRUE(eventually([&] { return probe.peers().discover(by_role("echo")).size() == 2; }))
      << "n3 did not discover the echo agents of n1 and n2";
  ASSERT_TRUE(eventually([&] { return probe.peers().discover(by_role("bulk")).size() == 20; }));
  ASSERT_TRUE(eventually([&] { return knows(e1, "probe-3") && knows(e1, "echo-2") && knows(e2, "echo-1"); }));
  const auto gpu = probe.peers().discover(by_capability("gpu"));
  ASSERT_EQ(gpu.size(), 1u);
  EXPECT_EQ(gpu[0].card.node, "n2");
  EXPECT_FALSE(gpu[0].local);
  EXPECT_EQ(peer_to_json(gpu[0])["location"], "remote");

  // Request across nodes (the first may race the connection handshake).
  std::optional<Response> r;
  ASSERT_TRUE(eventually([&] {
    r = probe.peers().request_blocking("echo-1", {{"x", 1}}, 5s, {{"trace", "c1"}});
    return r.has_value();
  }));
  EXPECT_EQ(r->data["node"], "n1");
  EXPECT_EQ(r->sender_node, "n1");
  EXPECT_EQ(r->context["trace"], "c1");
  ASSERT_TRUE(eventually([&] { return probe.peers().request_blocking("echo-2", {{"x", 2}}, 5s).has_value(); }));

  // Notify across nodes, and n1 -> n2 directly.
  ASSERT_TRUE(probe.peers().notify("echo-2", {{"n", 1}}));
  ASSERT_TRUE(eventually([&] { return e2.notify_count() >= 1; }));
  {
    std::lock_guard lock(e2.mu);
    EXPECT_EQ(e2.notifies[0].sender, "probe-3");
    EXPECT_EQ(e2.notifies[0].sender_node, "n3");
  }
  ASSERT_TRUE(eventually([&] { return e1.peers().request_blocking("echo-2", {{"from", "n1"}}, 5s).has_value(); }));

  // Broadcast: one copy per agent on every node.
  const auto before1 = e1.notify_count(), before2 = e2.notify_count();
  EXPECT_EQ(probe.peers().broadcast({{"all", true}}), 22u);
  ASSERT_TRUE(eventually([&] { return e1.notify_count() == before1 + 1 && e2.notify_count() == before2 + 1; }));

  // Scatter-gather across nodes.
  auto all = probe.peers().request_all_blocking(by_role("echo"), {{"g", 1}}, GatherPolicy::all(10s));
  EXPECT_TRUE(all.satisfied);
  EXPECT_EQ(all.responses.size(), 2u);

  // An agent added after start is advertised by a tag update.
  n1.add<Echo>("late-1", "late");
  ASSERT_TRUE(eventually([&] { return probe.peers().get_peer("late").has_value(); }));
  EXPECT_TRUE(n1.remove("late-1"));
  ASSERT_TRUE(eventually([&] { return !probe.peers().get_peer("late").has_value(); }));

  // Twenty agents at start caused few tag updates, not twenty.
  EXPECT_LT(n2.stats().tag_updates, 5u);
  EXPECT_EQ(n1.stats().messages_malformed + n2.stats().messages_malformed + n3.stats().messages_malformed, 0u);
}

// A node without agents (and without a certificate) says so in its tags:
// nobody fetches its registry, so a cluster of such nodes opens no
// connection for registries. Its first agent is fetched as usual; when the
// last goes, the others learn it from the tags alone.
TEST(MeshCluster, EmptyRegistriesComeFromTagsWithoutAFetch) {
  Mesh n1(node_config("n1", {}), fast_options());
  n1.start();
  Mesh n2(node_config("n2", {seed_of(n1)}), fast_options());
  n2.start();
  ASSERT_TRUE(eventually([&] {
    return n1.stats().registry_from_tags >= 1 && n2.stats().registry_from_tags >= 1;
  })) << "the empty registries were not taken from the tags";
  EXPECT_EQ(n1.stats().registry_fetches, 0u);
  EXPECT_EQ(n2.stats().registry_fetches, 0u);

  n2.add<Echo>("late-2", "echo");
  ASSERT_TRUE(eventually([&] { return n1.node_client().get_peer("echo").has_value(); }));
  EXPECT_GE(n1.stats().registry_fetches, 1u);
  // Every fetch answered, and no new one for a while: a fetch still on its
  // way when the agent goes would bring the empty registry itself (at the
  // newer version), and the tags would then have nothing left to tell.
  ASSERT_TRUE(eventually([&] {
    const auto answered = [&] {
      const auto s = n1.stats();
      return s.registry_fetches == s.registry_applied + s.registry_unchanged + s.registry_failures;
    };
    if (!answered()) return false;
    const auto fetches = n1.stats().registry_fetches;
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    return answered() && n1.stats().registry_fetches == fetches;
  }));
  const auto from_tags = n1.stats().registry_from_tags;
  EXPECT_TRUE(n2.remove("late-2"));
  ASSERT_TRUE(eventually([&] { return !n1.node_client().get_peer("echo").has_value(); }));
  EXPECT_GT(n1.stats().registry_from_tags, from_tags);
  EXPECT_EQ(n1.stats().registry_failures + n2.stats().registry_failures, 0u);
}

TEST(MeshCluster, DeadNodeLeavesDirectoryFailsPendingRequestAndComesBack) {
  Mesh n1(node_config("n1", {}), fast_options());
  auto& e1 = n1.add<Echo>("echo-1", "echo");
  n1.start();
  auto n2 = std::make_unique<Mesh>(node_config("n2", {seed_of(n1)}), fast_options());
  n2->add<Silent>("stuck-2");
  n2->add<Echo>("echo-2", "echo");
  n2->start();
  const auto swim2 = n2->swim_port(), zmq2 = n2->zmq_port();
  Mesh n3(node_config("n3", {seed_of(n1)}), fast_options());
  auto& probe = n3.add<Probe>("probe-3");
  n3.start();

  std::mutex mu;
  std::vector<PeerEvent> events;
  probe.peers().subscribe([&](const PeerEvent& e) {
    std::lock_guard lock(mu);
    events.push_back(e);
  });
  auto saw = [&](PeerEventKind k, const std::string& node) {
    std::lock_guard lock(mu);
    return std::any_of(events.begin(), events.end(), [&](const PeerEvent& e) { return e.kind == k && e.node == node; });
  };

  ASSERT_TRUE(eventually([&] { return knows(probe, "stuck-2") && knows(e1, "echo-2"); }));
  ASSERT_TRUE(eventually([&] { return probe.peers().request_blocking("echo-2", {{"x", 1}}, 5s).has_value(); }));

  // A request n2 will never answer.
  auto* stuck = dynamic_cast<Silent*>(n2->agent("stuck-2"));
  ASSERT_NE(stuck, nullptr);
  auto pending = probe.peers().request_async("stuck-2", {{"wait", true}}, 120s);
  ASSERT_TRUE(eventually([&] { return stuck->requests.load() == 1; }));

  // n2's SWIM stops without a leave; its transport stays up and silent.
  n2->kill_membership_for_test();
  ASSERT_EQ(pending.wait_for(60s), std::future_status::ready) << "the pending request was not failed fast";
  const auto out = pending.get();
  EXPECT_EQ(out.error, ErrorCode::PeerDead) << transport::to_string(out.error);
  ASSERT_TRUE(eventually([&] { return !knows(probe, "stuck-2") && !knows(probe, "echo-2"); }));
  ASSERT_TRUE(eventually([&] { return !knows(e1, "echo-2"); }));
  EXPECT_EQ(probe.peers().discover(by_role("echo")).size(), 1u);
  EXPECT_FALSE(probe.peers().notify("echo-2", {{"late", 1}}));
  EXPECT_TRUE(eventually([&] { return saw(PeerEventKind::NodeDead, "n2"); }));

  // n2 comes back on the same ports; its agents reappear.
  n2->stop();
  n2.reset();
  n2 = std::make_unique<Mesh>(node_config("n2", {seed_of(n1)}, swim2, zmq2), fast_options());
  n2->add<Echo>("echo-2", "echo");
  n2->start();
  ASSERT_TRUE(eventually([&] { return knows(probe, "echo-2") && knows(e1, "echo-2"); }, 90s))
      << "the restarted node's agents did not reappear";
  EXPECT_FALSE(knows(probe, "stuck-2"));
  ASSERT_TRUE(eventually([&] { return probe.peers().request_blocking("echo-2", {{"x", 2}}, 5s).has_value(); }));

  // A graceful stop: gone from the others' directories.
  n2->stop();
  ASSERT_TRUE(eventually([&] { return !knows(probe, "echo-2") && !knows(e1, "echo-2"); }));
  EXPECT_TRUE(eventually([&] { return saw(PeerEventKind::NodeLeft, "n2"); }));
}

// N1's node client discovers and talks to agents of all three nodes; N2
// and N3 (and N1's own agents) never see "$node" in a listing, cannot
// target it, and their broadcasts do not count it.
TEST(MeshCluster, NodeClientReachesEveryNodeAndIsListedNowhere) {
  Mesh n1(node_config("n1", {}), fast_options());
  auto& e1 = n1.add<Echo>("echo-1", "echo");
  n1.start();
  Mesh n2(node_config("n2", {seed_of(n1)}), fast_options());
  auto& e2 = n2.add<Echo>("echo-2", "echo");
  n2.start();
  Mesh n3(node_config("n3", {seed_of(n1)}), fast_options());
  auto& e3 = n3.add<Echo>("echo-3", "echo");
  auto& probe = n3.add<Probe>("probe-3");
  n3.start();
  PeerClient& node = n1.node_client();

  // Discovery from it finds agents on every node.
  ASSERT_TRUE(eventually([&] { return node.discover(by_role("echo")).size() == 3; }))
      << "n1's node client did not discover every node's echo";
  EXPECT_EQ(ids(node.discover(by_role("echo"))), (std::vector<std::string>{"echo-1", "echo-2", "echo-3"}));
  ASSERT_TRUE(eventually([&] { return knows(e2, "probe-3") && knows(e3, "echo-1") && knows(e1, "echo-3"); }));
  EXPECT_EQ(node.registry().size(), 4u);

  // request to a remote agent (the first may race the connection handshake).
  std::optional<Response> r;
  ASSERT_TRUE(eventually([&] {
    r = node.request_blocking("echo-2", {{"x", 1}}, 5s, {{"trace", "nc"}});
    return r.has_value();
  }));
  EXPECT_EQ(r->data["node"], "n2");
  EXPECT_EQ(r->sender_node, "n2");
  EXPECT_EQ(r->context["trace"], "nc");
  ASSERT_TRUE(eventually([&] { return node.request_blocking("echo-3", {{"x", 2}}, 5s).has_value(); }));
  auto fut = node.request_async("echo-2", {{"x", 3}}, 10s);
  ASSERT_EQ(fut.wait_for(20s), std::future_status::ready);
  EXPECT_TRUE(fut.get().ok());

  // notify: the remote receiver sees "$node" of n1.
  ASSERT_TRUE(node.notify("echo-3", {{"n", 1}}));
  ASSERT_TRUE(eventually([&] { return e3.notify_count() == 1; }));
  EXPECT_EQ(e3.notifies_copy().front().sender, "$node");
  EXPECT_EQ(e3.notifies_copy().front().sender_node, "n1");

  // ask_async / check_inbox across nodes.
  const auto ask = node.ask_async("echo-3", {{"job", 1}}, 20s);
  auto answer = node.check_inbox_blocking(ask, 20s);
  ASSERT_TRUE(answer);
  EXPECT_EQ(answer->data["echo"]["job"], 1);
  EXPECT_EQ(answer->data["node"], "n3");

  // request_all and broadcast over the whole cluster.
  auto all = node.request_all_blocking(by_role("echo"), {{"g", 1}}, GatherPolicy::all(10s));
  EXPECT_TRUE(all.satisfied);
  EXPECT_EQ(all.responses.size(), 3u);
  const auto before2 = e2.notify_count();
  EXPECT_EQ(node.broadcast({{"from", "n1"}}), 4u);  // echo-1, echo-2, echo-3, probe-3
  ASSERT_TRUE(eventually([&] { return e2.notify_count() == before2 + 1; }));

  // Nobody lists it, on any node; nobody can target it.
  for (Agent* a : std::vector<Agent*>{&e1, &e2, &e3, &probe}) {
    EXPECT_TRUE(test::lists_no_reserved_id(a->peers())) << a->id();
    EXPECT_FALSE(a->peers().notify("$node", {{"back", 1}})) << a->id();
    EXPECT_EQ(a->peers().request_detailed_blocking("$node", {{"back", 1}}, 1s).error, ErrorCode::TargetUnknown);
  }
  for (Mesh* m : {&n1, &n2, &n3}) {
    for (const auto& p : m->directory().all()) EXPECT_NE(p.card.agent_id.front(), '$') << p.card.agent_id;
    EXPECT_TRUE(test::lists_no_reserved_id(m->node_client()));
  }
  EXPECT_EQ(e2.peers().list_peers().size(), 3u);  // echo-1, echo-3, probe-3
  // A broadcast counts agents only: no node client gets a copy.
  EXPECT_EQ(e2.peers().broadcast({{"from", "echo-2"}}), 3u);
  EXPECT_FALSE(node.receive_blocking(0ms));
  EXPECT_EQ(n1.stats().messages_malformed + n2.stats().messages_malformed + n3.stats().messages_malformed, 0u);
}

// Issue 11, finding 3: notifies a remote node refuses (its mailbox is
// full) reach the agent that sent them through on_delivery_failure and its
// delivery_stats; none is lost without a report.
TEST(MeshCluster, RefusedRemoteNotifiesReachTheSendingAgent) {
  Mesh n1(node_config("n1", {}), fast_options());
  // Never receives. Its mailbox holds ten, of which one remote node may
  // fill half (the transport's inbox_peer_share): five.
  n1.add<Probe>("full", "sink", 10);
  n1.add<Echo>("echo-1", "echo");
  n1.start();
  Mesh n2(node_config("n2", {seed_of(n1)}), fast_options());
  auto& sender = n2.add<Probe>("sender");
  auto& bystander = n2.add<Probe>("bystander");
  n2.start();
  ASSERT_TRUE(eventually([&] { return sender.peers().get_peer("sink").has_value(); }));
  // The connection is up once a request gets through.
  ASSERT_TRUE(eventually([&] { return bystander.peers().request_blocking("echo-1", {{"x", 1}}, 5s).has_value(); }));

  struct Seen {
    std::mutex mu;
    std::vector<DeliveryFailure> items;
  } seen;
  sender.peers().on_delivery_failure([&seen](const DeliveryFailure& f) {
    std::lock_guard lock(seen.mu);
    seen.items.push_back(f);
  });
  constexpr int kSent = 40;
  int accepted = 0;
  for (int i = 0; i < kSent; ++i) accepted += sender.peers().notify("full", {{"i", i}}) ? 1 : 0;
  ASSERT_GT(accepted, 5);
  // Every accepted notify is either in the mailbox (5) or reported.
  ASSERT_TRUE(eventually([&] { return sender.peers().delivery_stats().notifies_failed == std::uint64_t(accepted - 5); }))
      << "failed " << sender.peers().delivery_stats().notifies_failed << " of " << accepted;
  {
    std::lock_guard lock(seen.mu);
    ASSERT_EQ(seen.items.size(), static_cast<std::size_t>(accepted - 5));
    for (const auto& f : seen.items) {
      EXPECT_EQ(f.reason, ErrorCode::MailboxFull);
      EXPECT_EQ(f.target, "full");
      EXPECT_EQ(f.node, "n1");
      EXPECT_EQ(f.message_id.size(), 32u);
    }
  }
  const DeliveryStats s = sender.peers().delivery_stats();
  EXPECT_EQ(s.notifies_accepted + s.notifies_refused, static_cast<std::uint64_t>(kSent));
  EXPECT_EQ(bystander.peers().delivery_stats().notifies_failed, 0u) << "reported to the wrong agent";

  // After the callback is removed, failures are still counted.
  sender.peers().on_delivery_failure(nullptr);
  ASSERT_TRUE(sender.peers().notify("full", {{"late", 1}}));
  ASSERT_TRUE(eventually([&] { return sender.peers().delivery_stats().notifies_failed == std::uint64_t(accepted - 4); }));
  std::lock_guard lock(seen.mu);
  EXPECT_EQ(seen.items.size(), static_cast<std::size_t>(accepted - 5));
}

// Issue 13: a node that advertises another node's agent id draws none of
// its traffic. n1 holds "echo-1"; n2 starts later with an agent of the same
// id. n3, which knew n1's first, reports the conflict and keeps sending
// "echo-1"'s requests (and its role's) to n1.
TEST(MeshCluster, AnAgentIdClaimedByASecondNodeStaysWithTheFirst) {
  Mesh n1(node_config("n1", {}), fast_options());
  n1.add<Echo>("echo-1", "echo");
  n1.start();
  Mesh n3(node_config("n3", {seed_of(n1)}), fast_options());
  auto& probe = n3.add<Probe>("probe-3");
  std::atomic<int> conflicts{0};
  probe.peers().subscribe([&](const PeerEvent& e) {
    if (e.kind == PeerEventKind::AgentConflict && e.node == "n2" && e.card && e.card->agent_id == "echo-1") {
      ++conflicts;
    }
  });
  n3.start();
  ASSERT_TRUE(eventually([&] { return knows(probe, "echo-1"); }));

  Mesh n2(node_config("n2", {seed_of(n1)}), fast_options());
  n2.add<Echo>("echo-1", "echo");
  n2.add<Echo>("echo-2", "echo");
  n2.start();
  ASSERT_TRUE(eventually([&] { return knows(probe, "echo-2"); }));  // n2's registry is in
  ASSERT_TRUE(eventually([&] { return conflicts.load() == 1; }));
  EXPECT_EQ(n3.stats().agent_conflicts, 1u);
  for (int i = 0; i < 5; ++i) {
    const auto r = probe.peers().request_blocking("echo-1", {{"i", i}}, 5s);
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->data["node"], "n1");
  }
  const auto echoes = probe.peers().discover(by_role("echo"));
  ASSERT_EQ(echoes.size(), 2u);
  EXPECT_EQ(echoes[0].card.agent_id + "@" + echoes[0].card.node, "echo-1@n1");
  EXPECT_EQ(echoes[1].card.agent_id + "@" + echoes[1].card.node, "echo-2@n2");

  // n1 leaves: the id is free, and n2's card is admitted.
  n1.stop();
  ASSERT_TRUE(eventually([&] {
    const auto reg = probe.peers().registry();
    const auto p = reg.find("echo-1");
    return p != reg.end() && p->second.card.node == "n2";
  }));
  n2.stop();
  n3.stop();
}

// Mesh::set_tags, as `serf tags`: the node's new tags reach the other
// member by gossip, the mesh's own tags stay, and tags that would not fit
// in member meta are refused with nothing changed.
TEST(MeshCluster, SetTagsGossipsTheNewTagsAndRefusesWhatDoesNotFit) {
  NodeConfig c1 = node_config("n1", {});
  c1.tags = {{"dc", "east"}};
  Mesh n1(c1, fast_options());
  n1.start();
  Mesh n2(node_config("n2", {seed_of(n1)}), fast_options());
  n2.start();
  const auto tags_of_n1_at_n2 = [&] {
    std::map<std::string, std::string> tags;
    n2.with_membership([&](const swim::Membership& m) {
      for (const auto& info : m.members()) {
        if (info.member.name == "n1") tags = info.tags;
      }
    });
    return tags;
  };
  ASSERT_TRUE(eventually([&] { return tags_of_n1_at_n2().count("dc") == 1; }));
  EXPECT_EQ(tags_of_n1_at_n2().at("dc"), "east");

  EXPECT_EQ(n1.set_tags({{"dc", "west"}, {"rack", "r7"}}), std::nullopt);
  ASSERT_TRUE(eventually([&] {
    const auto t = tags_of_n1_at_n2();
    return t.count("dc") == 1 && t.at("dc") == "west" && t.count("rack") == 1;
  })) << "n2 never saw n1's new tags";
  EXPECT_EQ(tags_of_n1_at_n2().count("mesh"), 1U);  // the mesh's own tags stay

  const auto refused = n1.set_tags({{"blob", std::string(600, 'x')}});
  ASSERT_TRUE(refused.has_value());
  EXPECT_NE(refused->find("at most 512"), std::string::npos) << *refused;
  std::this_thread::sleep_for(500ms);  // a change would have been gossiped by now
  EXPECT_EQ(tags_of_n1_at_n2().at("dc"), "west");
  EXPECT_EQ(tags_of_n1_at_n2().count("blob"), 0U);
  n2.stop();
  n1.stop();
}

// An agent declaring input and output schemas; answers {"answer": <data>}.
class Described : public CustomAgent {
 public:
  Described(std::string id, std::string role, Json in, Json out = nullptr)
      : CustomAgent({.role = std::move(role),
                     .capabilities = {"lookup"},
                     .description = "looks things up",
                     .agent_id = std::move(id),
                     .input_schema = std::move(in),
                     .output_schema = std::move(out)}) {}
  std::optional<Json> on_peer_request(const IncomingMessage& m) override { return Json{{"answer", m.data}}; }
};

const Json kLookupIn = {{"type", "object"},
                        {"properties", {{"query", {{"type", "string"}}}}},
                        {"required", {"query"}},
                        {"additionalProperties", false}};
const Json kLookupOut = {{"type", "object"}, {"properties", {{"answer", {{"type", "object"}}}}}};

Json tool_named(const Json& tools, const std::string& name) {
  for (const auto& t : tools) {
    const Json& def = t.contains("function") ? t.at("function") : t;
    if (def.at("name") == name) return def;
  }
  return nullptr;
}

// Issue 18: cards carry input and output schemas across nodes; a peer with
// an input schema is a tool of its own whose parameters are that schema.
TEST(MeshCluster, SchemasTravelWithCardsAndBecomeTools) {
  Mesh n1(node_config("n1", {}), fast_options());
  n1.add<Described>("lookup-1", "lookup", kLookupIn, kLookupOut);
  // Not an object schema: the tool takes it under "message".
  n1.add<Described>("calc-1", "calc", Json{{"type", "string"}});
  n1.add<Echo>("echo-1", "echo");
  // Refused at add-time, with the reason.
  try {
    n1.add<Described>("bad-1", "bad", Json::array({1}));
    ADD_FAILURE() << "a schema that is no object was taken";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "add: input_schema is not a JSON object");
  }
  EXPECT_THROW(n1.add<Described>("bad-2", "bad", Json{{"description", std::string(kMaxSchemaBytes, 'x')}}),
               std::invalid_argument);
  n1.start();
  Mesh n2(node_config("n2", {seed_of(n1)}), fast_options());
  auto& asker = n2.add<Probe>("asker");
  n2.start();
  ASSERT_TRUE(eventually([&] { return knows(asker, "lookup-1") && knows(asker, "calc-1") && knows(asker, "echo-1"); }));

  const auto seen = asker.peers().registry().at("lookup-1");
  EXPECT_FALSE(seen.local);
  EXPECT_EQ(seen.card.input_schema, kLookupIn);
  EXPECT_EQ(seen.card.output_schema, kLookupOut);
  EXPECT_TRUE(asker.peers().registry().at("echo-1").card.input_schema.is_null());
  EXPECT_EQ(peer_to_json(seen).at("input_schema"), kLookupIn);

  const Json mcp = peers_as_tools(asker.peers());
  const Json openai = peers_as_tools(asker.peers(), {}, ToolFormat::OpenAi);
  ASSERT_EQ(mcp.size(), 5u) << mcp.dump();
  ASSERT_EQ(openai.size(), 5u);
  const Json lookup = tool_named(mcp, "ask_lookup");
  ASSERT_FALSE(lookup.is_null()) << mcp.dump();
  EXPECT_EQ(lookup.at("inputSchema"), kLookupIn);
  EXPECT_EQ(lookup.at("outputSchema"), kLookupOut);
  const std::string described = lookup.at("description");
  EXPECT_NE(described.find("looks things up"), std::string::npos) << described;
  EXPECT_NE(described.find(kLookupOut.dump()), std::string::npos) << described;
  EXPECT_EQ(tool_named(openai, "ask_lookup").at("parameters"), kLookupIn);
  EXPECT_FALSE(tool_named(openai, "ask_lookup").contains("outputSchema"));
  const Json calc = tool_named(openai, "ask_calc");
  ASSERT_FALSE(calc.is_null());
  EXPECT_EQ(calc.at("parameters").at("properties").at("message"), (Json{{"type", "string"}}));
  EXPECT_TRUE(tool_named(mcp, "ask_echo").is_null()) << "echo declares no schema";
  EXPECT_NE(tool_named(mcp, "ask_peer").at("description").get<std::string>().find("ask_lookup (lookup)"),
            std::string::npos);
  // Filtered: only the tools of matching peers.
  const Json only_echo = peers_as_tools(asker.peers(), {.role = "echo"});
  EXPECT_EQ(only_echo.size(), 3u);
  EXPECT_NE(cognitive_context(asker.peers()).find("tool of its own, taking its input schema: ask_lookup"),
            std::string::npos)
      << cognitive_context(asker.peers());

  // A call the model made to the tool: its arguments are the message.
  const auto tool = find_peer_tool(asker.peers(), "ask_lookup");
  ASSERT_TRUE(tool.has_value());
  EXPECT_EQ(tool->target, "lookup");
  EXPECT_FALSE(find_peer_tool(asker.peers(), "ask_peer").has_value());
  EXPECT_FALSE(find_peer_tool(asker.peers(), "ask_echo").has_value());
  const Json args = {{"query", "caves"}};
  auto answer = asker.peers().request_blocking(tool->target, tool->message_of(args), 10s);
  ASSERT_TRUE(answer.has_value());
  EXPECT_EQ(answer->data, (Json{{"answer", args}}));
  const auto wrapped = find_peer_tool(asker.peers(), "ask_calc");
  ASSERT_TRUE(wrapped.has_value());
  EXPECT_TRUE(wrapped->wrapped);
  EXPECT_EQ(wrapped->message_of(Json{{"message", "1+1"}}), "1+1");
  n2.stop();
  n1.stop();
}

// Keeps each notify's mailbox place until told (as the Python binding's
// agents do while Python works on a message).
class Keeper : public CustomAgent {
 public:
  Keeper(std::string id, std::size_t mailbox) : CustomAgent({.role = "keeper", .agent_id = std::move(id), .mailbox_limit = mailbox}) {}
  void on_peer_notify(const IncomingMessage&) override {
    auto release = hold_mailbox_place();
    std::lock_guard lock(mu_);
    held_.push_back(std::move(release));
  }
  std::size_t held() {
    std::lock_guard lock(mu_);
    return held_.size();
  }
  void release_all() {
    std::vector<std::function<void()>> all;
    {
      std::lock_guard lock(mu_);
      all.swap(held_);
    }
    for (auto& r : all) {
      r();
      r();  // a second call does nothing
    }
  }

 private:
  std::mutex mu_;
  std::vector<std::function<void()>> held_;
};

// A handler that hands its messages on holds their places: the mailbox
// counts them, and senders, local and remote, are refused as by a full one.
TEST(MeshCluster, HeldMailboxPlacesRefuseLocalAndRemoteSenders) {
  Mesh n1(node_config("n1", {}), fast_options());
  auto& keeper = n1.add<Keeper>("keeper-1", 4);
  auto& local = n1.add<Probe>("local");
  n1.start();
  Mesh n2(node_config("n2", {seed_of(n1)}), fast_options());
  auto& sender = n2.add<Probe>("sender");
  n2.start();
  ASSERT_TRUE(eventually([&] { return knows(sender, "keeper-1"); }));

  std::atomic<int> mailbox_full{0};
  sender.peers().on_delivery_failure([&](const DeliveryFailure& f) {
    if (f.reason == ErrorCode::MailboxFull && f.target == "keeper-1") ++mailbox_full;
  });
  // One at a time, each until it was handled or refused: the places fill up.
  for (int i = 0; i < 7; ++i) {
    ASSERT_TRUE(sender.peers().notify("keeper-1", {{"i", i}})) << i;
    ASSERT_TRUE(eventually([&] { return keeper.held() + static_cast<std::size_t>(mailbox_full.load()) == std::size_t(i) + 1; }))
        << "notify " << i << " neither handled nor refused";
  }
  EXPECT_EQ(keeper.held(), 4u);
  EXPECT_EQ(mailbox_full.load(), 3);
  EXPECT_FALSE(local.peers().notify("keeper-1", {{"local", 1}})) << "a local sender is refused at once";

  keeper.release_all();
  EXPECT_TRUE(local.peers().notify("keeper-1", {{"local", 2}}));
  ASSERT_TRUE(eventually([&] { return keeper.held() == 1; }));
  ASSERT_TRUE(sender.peers().notify("keeper-1", {{"i", 7}}));
  ASSERT_TRUE(eventually([&] { return keeper.held() == 2; }));
  EXPECT_EQ(mailbox_full.load(), 3);
  sender.peers().on_delivery_failure(nullptr);
  n2.stop();
  n1.stop();
  keeper.release_all();  // after the mesh is gone: harmless
}

}  // namespace
}  // namespace mesh
