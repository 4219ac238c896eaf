// The agent directory: local and remote agents, node health, the four
// strategies, target resolution, change events, and a concurrency test
// meant to run under ThreadSanitizer too.
#include "mesh/agent_directory.hpp"
#include "test_seeds.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <map>
#include <random>
#include <stdexcept>
#include <thread>

namespace mesh {
namespace {

AgentCard card(std::string id, std::string role, std::vector<std::string> caps = {}) {
  AgentCard c;
  c.agent_id = std::move(id);
  c.role = std::move(role);
  c.capabilities = std::move(caps);
  return c;
}

NodeRegistry registry(std::string node, std::uint64_t version, std::vector<AgentCard> cards) {
  return NodeRegistry{std::move(node), version, std::move(cards)};
}

std::vector<std::string> ids(const std::vector<PeerInfo>& peers) {
  std::vector<std::string> out;
  for (const auto& p : peers) out.push_back(p.card.agent_id);
  return out;
}

using Ids = std::vector<std::string>;

// node-a is local with coder-1, coder-2 and planner-1 (who asks); node-c and
// node-b (applied in that order) hold remote coders.
class DirectoryTest : public ::testing::Test {
 protected:
  DirectoryTest() : dir_("node-a", 42) {
    EXPECT_EQ(dir_.put_local(card("coder-1", "coder", {"python"})), std::nullopt);
    EXPECT_EQ(dir_.put_local(card("planner-1", "planner", {"plan"})), std::nullopt);
    EXPECT_EQ(dir_.put_local(card("coder-2", "coder", {"rust", "python"})), std::nullopt);
    EXPECT_TRUE(dir_.apply_remote(registry(
        "node-c", 5, {card("coder-c1", "coder", {"python"}), card("tester-c", "tester", {"python"})})));
    EXPECT_TRUE(dir_.apply_remote(
        registry("node-b", 9, {card("coder-b2", "coder", {"go"}), card("coder-b1", "coder")})));
  }

  // The stable order of every coder, as planner-1 sees it.
  const Ids kCoders = {"coder-1", "coder-2", "coder-b2", "coder-b1", "coder-c1"};

  AgentDirectory dir_;
};

// ---------------------------------------------------------------------------
// Strategy names

TEST(Strategy, ParsesExactlyTheFourNames) {
  EXPECT_EQ(parse_strategy("first"), Strategy::First);
  EXPECT_EQ(parse_strategy("random"), Strategy::Random);
  EXPECT_EQ(parse_strategy("round_robin"), Strategy::RoundRobin);
  EXPECT_EQ(parse_strategy("least_recent"), Strategy::LeastRecent);
  for (const char* bad : {"", "First", "round-robin", "roundrobin", "least", "random ", "fastest"}) {
    EXPECT_EQ(parse_strategy(bad), std::nullopt) << bad;
  }
  for (auto s : {Strategy::First, Strategy::Random, Strategy::RoundRobin, Strategy::LeastRecent}) {
    EXPECT_EQ(parse_strategy(to_string(s)), s);
  }
  EXPECT_EQ(to_string(NodeHealth::Alive), "alive");
  EXPECT_EQ(to_string(NodeHealth::Suspect), "suspect");
}

// ---------------------------------------------------------------------------
// Local agents

TEST(LocalAgents, PutSetsNodeAndVersionAndReplacesInPlace) {
  AgentDirectory dir("me", 1);
  EXPECT_EQ(dir.local_version(), 0u);
  AgentCard a = card("a", "r");
  a.node = "elsewhere";
  EXPECT_EQ(dir.put_local(a), std::nullopt);
  EXPECT_EQ(dir.put_local(card("b", "r")), std::nullopt);
  EXPECT_EQ(dir.local_version(), 2u);

  NodeRegistry reg = dir.local_registry();
  EXPECT_EQ(reg.node, "me");
  EXPECT_EQ(reg.version, 2u);
  ASSERT_EQ(reg.cards.size(), 2u);
  EXPECT_EQ(reg.cards[0].node, "me");
  EXPECT_EQ(reg.cards[0].version, 1u);
  EXPECT_EQ(reg.cards[1].version, 2u);

  // Replacing keeps the card's place in the registration order.
  AgentCard a2 = card("a", "r2", {"x"});
  EXPECT_EQ(dir.put_local(a2), std::nullopt);
  reg = dir.local_registry();
  EXPECT_EQ(reg.version, 3u);
  EXPECT_EQ(ids(dir.all()), (Ids{"a", "b"}));
  EXPECT_EQ(reg.cards[0].role, "r2");
  EXPECT_EQ(reg.cards[0].version, 3u);

  // The same card again changes nothing.
  EXPECT_EQ(dir.put_local(a2), std::nullopt);
  EXPECT_EQ(dir.local_version(), 3u);
  EXPECT_EQ(dir.known_version("me"), 3u);
}

TEST(LocalAgents, InvalidCardsChangeNothing) {
  AgentDirectory dir("me", 1);
  EXPECT_EQ(dir.put_local(card("", "r")), "agent_id is empty");
  EXPECT_EQ(dir.put_local(card("a", "")), "role is empty");
  EXPECT_EQ(dir.put_local(card("a b", "r")), "agent_id contains whitespace or a control character");
  EXPECT_EQ(dir.put_local(card("a", "r", {""})), "capabilities[0] is empty");
  EXPECT_EQ(dir.local_version(), 0u);
  EXPECT_TRUE(dir.all().empty());
}

TEST(LocalAgents, RemoveBumpsVersion) {
  AgentDirectory dir("me", 1, /*initial_version=*/1000);
  EXPECT_EQ(dir.local_version(), 1000u);
  EXPECT_EQ(dir.put_local(card("a", "r")), std::nullopt);
  EXPECT_TRUE(dir.remove_local("a"));
  EXPECT_EQ(dir.local_version(), 1002u);
  EXPECT_FALSE(dir.remove_local("a"));
  EXPECT_EQ(dir.local_version(), 1002u);
  EXPECT_TRUE(dir.local_registry().cards.empty());
}

TEST(LocalAgents, RegistryRoundTripsThroughTheCodec) {
  AgentDirectory a("node-a", 1);
  ASSERT_EQ(a.put_local(card("x", "r", {"c"})), std::nullopt);
  const auto reg = decode_registry(encode_registry(a.local_registry()));
  ASSERT_TRUE(reg.has_value());
  AgentDirectory b("node-b", 2);
  EXPECT_TRUE(b.apply_remote(*reg));
  const auto x = b.find("x");
  ASSERT_TRUE(x.has_value());
  EXPECT_EQ(x->card, a.local_registry().cards[0]);
  EXPECT_FALSE(x->local);
}

// ---------------------------------------------------------------------------
// Remote nodes

TEST_F(DirectoryTest, RemoteRegistriesReplacedOnlyByNewerVersions) {
  EXPECT_EQ(dir_.known_version("node-b"), 9u);
  EXPECT_EQ(dir_.known_version("node-c"), 5u);
  EXPECT_EQ(dir_.known_version("node-z"), std::nullopt);
  EXPECT_EQ(dir_.nodes(), (Ids{"node-b", "node-c"}));

  // Same and older versions are refused, whatever they hold.
  EXPECT_FALSE(dir_.apply_remote(registry("node-b", 9, {})));
  EXPECT_FALSE(dir_.apply_remote(registry("node-b", 3, {card("old", "coder")})));
  EXPECT_TRUE(dir_.find("coder-b1").has_value());
  EXPECT_FALSE(dir_.find("old").has_value());

  // A newer one replaces all of the node's cards.
  AgentCard moved = card("coder-b3", "coder");
  moved.node = "node-x";  // forced to the registry's node
  EXPECT_TRUE(dir_.apply_remote(registry("node-b", 10, {moved})));
  EXPECT_EQ(dir_.known_version("node-b"), 10u);
  EXPECT_FALSE(dir_.find("coder-b1").has_value());
  EXPECT_FALSE(dir_.find("coder-b2").has_value());
  const auto b3 = dir_.find("coder-b3");
  ASSERT_TRUE(b3.has_value());
  EXPECT_EQ(b3->card.node, "node-b");
  EXPECT_FALSE(b3->local);
}

TEST_F(DirectoryTest, OwnNodeAndInvalidRegistriesAreRefused) {
  EXPECT_FALSE(dir_.apply_remote(registry("node-a", 100, {card("fake", "coder")})));
  EXPECT_FALSE(dir_.find("fake").has_value());
  EXPECT_EQ(dir_.local_version(), 3u);
  EXPECT_FALSE(dir_.apply_remote(registry("node-d", 1, {card("", "coder")})));
  EXPECT_FALSE(dir_.apply_remote(registry("node-d", 1, {card("d", "coder"), card("d", "coder")})));
  EXPECT_FALSE(dir_.apply_remote(registry("", 1, {})));
  EXPECT_EQ(dir_.known_version("node-d"), std::nullopt);
}

TEST_F(DirectoryTest, SuspectNodesAreMarkedAndComeBack) {
  dir_.set_node_health("node-b", NodeHealth::Suspect);
  for (const auto& p : dir_.discover({"coder", ""}, Strategy::First, "planner-1")) {
    const bool on_b = p.card.node == "node-b";
    EXPECT_EQ(p.node_health, on_b ? NodeHealth::Suspect : NodeHealth::Alive) << p.card.agent_id;
  }
  EXPECT_EQ(ids(dir_.discover({"coder", ""}, Strategy::First, "planner-1")), kCoders);
  EXPECT_EQ(dir_.find("coder-b1")->node_health, NodeHealth::Suspect);

  dir_.set_node_health("node-b", NodeHealth::Alive);
  EXPECT_EQ(dir_.find("coder-b1")->node_health, NodeHealth::Alive);

  // The local node is always alive.
  dir_.set_node_health("node-a", NodeHealth::Suspect);
  EXPECT_EQ(dir_.find("coder-1")->node_health, NodeHealth::Alive);
}

TEST_F(DirectoryTest, HealthAnnouncedBeforeTheRegistryHolds) {
  dir_.set_node_health("node-d", NodeHealth::Suspect);
  EXPECT_EQ(dir_.known_version("node-d"), std::nullopt);
  EXPECT_EQ(dir_.nodes(), (Ids{"node-b", "node-c", "node-d"}));
  EXPECT_TRUE(dir_.apply_remote(registry("node-d", 1, {card("d", "coder")})));
  EXPECT_EQ(dir_.find("d")->node_health, NodeHealth::Suspect);
}

TEST_F(DirectoryTest, DeadNodesVanishAndStayGoneUntilAnnounced) {
  dir_.record_usage("coder-b1", 5);
  EXPECT_TRUE(dir_.remove_node("node-b"));
  EXPECT_FALSE(dir_.find("coder-b1").has_value());
  EXPECT_EQ(ids(dir_.discover({"coder", ""}, Strategy::First, "planner-1")),
            (Ids{"coder-1", "coder-2", "coder-c1"}));
  EXPECT_EQ(dir_.known_version("node-b"), std::nullopt);
  EXPECT_EQ(dir_.nodes(), (Ids{"node-c"}));
  EXPECT_FALSE(dir_.remove_node("node-b"));
  EXPECT_FALSE(dir_.remove_node("node-a"));  // never the local node

  // A fetch that completes after the death must not bring it back.
  EXPECT_FALSE(dir_.apply_remote(registry("node-b", 11, {card("coder-b1", "coder")})));
  EXPECT_FALSE(dir_.find("coder-b1").has_value());

  // Announced again (it rejoined): its registry is taken, at any version,
  // and its old usage is forgotten.
  dir_.set_node_health("node-b", NodeHealth::Alive);
  EXPECT_TRUE(dir_.apply_remote(registry("node-b", 1, {card("coder-b1", "coder")})));
  EXPECT_TRUE(dir_.find("coder-b1").has_value());
  EXPECT_EQ(ids(dir_.discover({"coder", ""}, Strategy::LeastRecent, "planner-1")),
            (Ids{"coder-1", "coder-2", "coder-b1", "coder-c1"}));

  // Removing a node never seen refuses its later registry too.
  EXPECT_FALSE(dir_.remove_node("node-q"));
  EXPECT_FALSE(dir_.apply_remote(registry("node-q", 1, {card("q", "coder")})));
}

// ---------------------------------------------------------------------------
// Queries

TEST_F(DirectoryTest, DiscoverByRoleCapabilityOrBoth) {
  EXPECT_EQ(ids(dir_.discover({"coder", ""}, Strategy::First, "planner-1")), kCoders);
  EXPECT_EQ(ids(dir_.discover({"", "python"}, Strategy::First, "planner-1")),
            (Ids{"coder-1", "coder-2", "coder-c1", "tester-c"}));
  EXPECT_EQ(ids(dir_.discover({"coder", "python"}, Strategy::First, "planner-1")),
            (Ids{"coder-1", "coder-2", "coder-c1"}));
  EXPECT_EQ(ids(dir_.discover({"tester", "rust"}, Strategy::First, "planner-1")), Ids{});
  EXPECT_EQ(ids(dir_.discover({"nobody", ""}, Strategy::RoundRobin, "planner-1")), Ids{});
  // Matching is exact.
  EXPECT_EQ(ids(dir_.discover({"Coder", ""}, Strategy::First)), Ids{});
  EXPECT_EQ(ids(dir_.discover({"", "pyth"}, Strategy::First)), Ids{});
}

TEST_F(DirectoryTest, DiscoverWithoutRoleOrCapabilityThrows) {
  EXPECT_THROW(dir_.discover({}, Strategy::First), std::invalid_argument);
  EXPECT_THROW(dir_.discover({"", ""}, Strategy::Random, "planner-1"), std::invalid_argument);
}

TEST_F(DirectoryTest, SelfIsNeverReturned) {
  for (auto s : {Strategy::First, Strategy::Random, Strategy::RoundRobin, Strategy::LeastRecent}) {
    for (int i = 0; i < 10; ++i) {
      const auto found = ids(dir_.discover({"coder", ""}, s, "coder-2"));
      EXPECT_EQ(found.size(), 4u);
      EXPECT_EQ(std::count(found.begin(), found.end(), "coder-2"), 0);
      const auto r = dir_.resolve("coder", s, "coder-2");
      ASSERT_TRUE(r.has_value());
      EXPECT_NE(r->card.agent_id, "coder-2");
    }
  }
  EXPECT_FALSE(dir_.find("coder-2", "coder-2").has_value());
  EXPECT_FALSE(dir_.resolve("coder-2", Strategy::First, "coder-2").has_value());
  EXPECT_FALSE(dir_.resolve("planner", Strategy::First, "planner-1").has_value());
  EXPECT_TRUE(dir_.resolve("planner", Strategy::First, "coder-1").has_value());
  EXPECT_EQ(ids(dir_.all("coder-c1")).size(), 6u);
  EXPECT_EQ(dir_.roles("tester-c"), (std::set<std::string>{"coder", "planner"}));
  EXPECT_EQ(dir_.roles(), (std::set<std::string>{"coder", "planner", "tester"}));
}

TEST_F(DirectoryTest, FirstIsTheStableOrder) {
  // Local in registration order, then node-b before node-c (by name, though
  // applied later), each in its registry's order.
  EXPECT_EQ(ids(dir_.all()), (Ids{"coder-1", "planner-1", "coder-2", "coder-b2", "coder-b1",
                                  "coder-c1", "tester-c"}));
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(ids(dir_.discover({"coder", ""}, Strategy::First, "planner-1")), kCoders);
    EXPECT_EQ(dir_.resolve("coder", Strategy::First, "planner-1")->card.agent_id, "coder-1");
  }
  const auto all = dir_.all();
  EXPECT_TRUE(all[0].local);
  EXPECT_FALSE(all[3].local);
}

TEST_F(DirectoryTest, RoundRobinReturnsEachOncePerCycle) {
  for (int cycle = 0; cycle < 3; ++cycle) {
    Ids firsts;
    for (std::size_t i = 0; i < kCoders.size(); ++i) {
      const Ids got = ids(dir_.discover({"coder", ""}, Strategy::RoundRobin, "planner-1"));
      // Each answer is the stable order rotated by one more.
      Ids expect = kCoders;
      std::rotate(expect.begin(), expect.begin() + static_cast<std::ptrdiff_t>(i), expect.end());
      EXPECT_EQ(got, expect) << "cycle " << cycle << " call " << i;
      firsts.push_back(got.front());
    }
    EXPECT_EQ(firsts, kCoders);
  }
}

TEST_F(DirectoryTest, RoundRobinKeepsOneCounterPerCallerAndQuery) {
  auto first_of = [&](const PeerQuery& q, std::string_view caller) {
    return dir_.discover(q, Strategy::RoundRobin, caller).front().card.agent_id;
  };
  EXPECT_EQ(first_of({"coder", ""}, "planner-1"), "coder-1");
  EXPECT_EQ(first_of({"coder", ""}, "planner-1"), "coder-2");
  // Another caller, another query: their own rotations, from the start.
  EXPECT_EQ(first_of({"coder", ""}, "tester-c"), "coder-1");
  EXPECT_EQ(first_of({"coder", "python"}, "planner-1"), "coder-1");
  EXPECT_EQ(first_of({"coder", ""}, "planner-1"), "coder-b2");
  // resolve by role shares discover's rotation for that role.
  EXPECT_EQ(dir_.resolve("coder", Strategy::RoundRobin, "planner-1")->card.agent_id, "coder-b1");
  EXPECT_EQ(first_of({"coder", ""}, "planner-1"), "coder-c1");
  EXPECT_EQ(first_of({"coder", ""}, "planner-1"), "coder-1");
}

TEST_F(DirectoryTest, RoundRobinResolveCyclesThroughAll) {
  std::map<std::string, int> seen;
  for (int i = 0; i < 50; ++i) {
    ++seen[dir_.resolve("coder", Strategy::RoundRobin, "planner-1")->card.agent_id];
  }
  ASSERT_EQ(seen.size(), kCoders.size());
  for (const auto& [id, n] : seen) EXPECT_EQ(n, 10) << id;
}

TEST_F(DirectoryTest, LeastRecentOrdersByLastUse) {
  // Nothing used yet: the stable order.
  EXPECT_EQ(ids(dir_.discover({"coder", ""}, Strategy::LeastRecent, "planner-1")), kCoders);
  EXPECT_TRUE(dir_.record_usage("coder-1", 100));
  EXPECT_TRUE(dir_.record_usage("coder-b1", 50));
  EXPECT_TRUE(dir_.record_usage("coder-c1", 100));
  // Never used first (stable among themselves), then by time, ties stable.
  EXPECT_EQ(ids(dir_.discover({"coder", ""}, Strategy::LeastRecent, "planner-1")),
            (Ids{"coder-2", "coder-b2", "coder-b1", "coder-1", "coder-c1"}));
  EXPECT_TRUE(dir_.record_usage("coder-1", 10));  // times come from the caller, as given
  EXPECT_EQ(dir_.resolve("coder", Strategy::LeastRecent, "planner-1")->card.agent_id, "coder-2");
  EXPECT_FALSE(dir_.record_usage("nobody", 1));

  // Using each in turn walks through all of them.
  std::int64_t now = 1000;
  Ids order;
  for (std::size_t i = 0; i < kCoders.size(); ++i) {
    const auto p = dir_.resolve("coder", Strategy::LeastRecent, "planner-1");
    ASSERT_TRUE(p.has_value());
    order.push_back(p->card.agent_id);
    dir_.record_usage(p->card.agent_id, now++);
  }
  std::sort(order.begin(), order.end());
  Ids sorted = kCoders;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(order, sorted);
}

TEST_F(DirectoryTest, UsesWithoutATimeComeAfterEveryUseBefore) {
  // Untimed uses are ordered by when they were recorded.
  EXPECT_TRUE(dir_.record_usage("coder-b1"));
  EXPECT_TRUE(dir_.record_usage("coder-1"));
  EXPECT_TRUE(dir_.record_usage("coder-c1"));
  EXPECT_FALSE(dir_.record_usage("nobody"));
  EXPECT_EQ(ids(dir_.discover({"coder", ""}, Strategy::LeastRecent, "planner-1")),
            (Ids{"coder-2", "coder-b2", "coder-b1", "coder-1", "coder-c1"}));
  // A timed use far ahead, then an untimed one: the untimed one is later.
  EXPECT_TRUE(dir_.record_usage("coder-2", 1'000'000));
  EXPECT_TRUE(dir_.record_usage("coder-b2"));
  EXPECT_EQ(ids(dir_.discover({"coder", ""}, Strategy::LeastRecent, "planner-1")),
            (Ids{"coder-b1", "coder-1", "coder-c1", "coder-2", "coder-b2"}));
  // A timed use before all the others stays before them.
  EXPECT_TRUE(dir_.record_usage("coder-c1", 0));
  EXPECT_EQ(dir_.resolve("coder", Strategy::LeastRecent, "planner-1")->card.agent_id, "coder-c1");
}

TEST_F(DirectoryTest, UsageIsForgottenWhenTheAgentLeaves) {
  dir_.record_usage("coder-1", 100);
  EXPECT_EQ(dir_.resolve("coder", Strategy::LeastRecent, "planner-1")->card.agent_id, "coder-2");
  EXPECT_TRUE(dir_.remove_local("coder-1"));
  EXPECT_EQ(dir_.put_local(card("coder-1", "coder")), std::nullopt);
  // Back, never used, and now last in registration order.
  EXPECT_EQ(ids(dir_.discover({"coder", ""}, Strategy::LeastRecent, "planner-1")),
            (Ids{"coder-2", "coder-1", "coder-b2", "coder-b1", "coder-c1"}));
  // Same for a remote agent dropped by a newer registry.
  dir_.record_usage("coder-b2", 1);
  EXPECT_TRUE(dir_.apply_remote(registry("node-b", 10, {card("coder-b1", "coder")})));
  EXPECT_TRUE(dir_.apply_remote(registry("node-b", 11, {card("coder-b1", "coder"),
                                                        card("coder-b2", "coder")})));
  EXPECT_EQ(ids(dir_.discover({"coder", ""}, Strategy::LeastRecent, "planner-1")),
            (Ids{"coder-2", "coder-1", "coder-b1", "coder-b2", "coder-c1"}));
}

TEST_F(DirectoryTest, RandomIsAPermutationAndCoversAllMatches) {
  std::map<std::string, int> first_counts;
  for (int i = 0; i < 2000; ++i) {
    Ids got = ids(dir_.discover({"coder", ""}, Strategy::Random, "planner-1"));
    ++first_counts[got.front()];
    std::sort(got.begin(), got.end());
    Ids sorted = kCoders;
    std::sort(sorted.begin(), sorted.end());
    ASSERT_EQ(got, sorted);
  }
  ASSERT_EQ(first_counts.size(), kCoders.size());
  // 2000 draws over 5: each about 400; a generous band that still catches
  // a sampler stuck on one end.
  for (const auto& [id, n] : first_counts) {
    EXPECT_GT(n, 300) << id;
    EXPECT_LT(n, 500) << id;
  }
}

TEST(Random, ReplaysFromTheSeed) {
  const std::uint64_t seed = ::mesh::test::test_seed(7);
  MESH_SEED_TRACE(seed);
  auto run = [](std::uint64_t s) {
    AgentDirectory dir("me", s);
    for (int i = 0; i < 20; ++i) {
      EXPECT_EQ(dir.put_local(card("w-" + std::to_string(i), "worker")), std::nullopt);
    }
    std::vector<Ids> out;
    for (int i = 0; i < 50; ++i) out.push_back(ids(dir.discover({"worker", ""}, Strategy::Random)));
    out.push_back({dir.resolve("worker", Strategy::Random)->card.agent_id});
    return out;
  };
  const auto a = run(seed);
  EXPECT_EQ(a, run(seed));
  EXPECT_NE(a, run(seed + 1));
}

TEST(Random, KnownSequenceForSeed42) {
  // Pins the engine and the sampler: a change here changes every replay.
  AgentDirectory dir("me", 42);
  for (const char* id : {"a", "b", "c", "d", "e", "f"}) {
    ASSERT_EQ(dir.put_local(card(id, "r")), std::nullopt);
  }
  std::string seq;
  for (int i = 0; i < 4; ++i) {
    for (const auto& id : ids(dir.discover({"r", ""}, Strategy::Random))) seq += id;
    seq += ' ';
  }
  EXPECT_EQ(seq, "fedcba abcfde cfadbe abcedf ");  // as mesh::Rng(42) shuffles
}

TEST_F(DirectoryTest, FindAndResolve) {
  const auto c1 = dir_.find("coder-c1");
  ASSERT_TRUE(c1.has_value());
  EXPECT_EQ(c1->card.node, "node-c");
  EXPECT_EQ(c1->card.status, "active");
  EXPECT_FALSE(c1->local);
  EXPECT_FALSE(dir_.find("coder").has_value());  // a role is not an id
  EXPECT_FALSE(dir_.find("").has_value());

  // An exact agent_id wins over a role of the same name.
  ASSERT_TRUE(dir_.apply_remote(registry("node-d", 1, {card("coder", "planner")})));
  for (auto s : {Strategy::First, Strategy::Random, Strategy::RoundRobin, Strategy::LeastRecent}) {
    const auto r = dir_.resolve("coder", s, "planner-1");
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->card.agent_id, "coder");
    EXPECT_EQ(r->card.node, "node-d");
  }
  EXPECT_EQ(dir_.resolve("tester", Strategy::First, "planner-1")->card.agent_id, "tester-c");
  EXPECT_FALSE(dir_.resolve("nobody", Strategy::First, "planner-1").has_value());
  EXPECT_FALSE(dir_.resolve("", Strategy::First, "planner-1").has_value());
}

// Issue 13: a node that lists another node's agent id must not draw its
// traffic. The first holder keeps the id; the claimant's card is withheld
// (reported once), and admitted when the holder drops the id.
TEST_F(DirectoryTest, AnAgentIdClaimedTwiceStaysWithItsFirstHolder) {
  std::vector<DirectoryEvent> events;
  dir_.subscribe([&](const DirectoryEvent& e) { events.push_back(e); });
  // node-0 (sorted before node-b and node-c) claims coder-b1 and the local coder-1.
  ASSERT_TRUE(dir_.apply_remote(registry(
      "node-0", 1, {card("coder-b1", "coder"), card("coder-1", "coder"), card("own-0", "coder")})));
  EXPECT_EQ(dir_.conflicts(), 2u);
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].kind, DirectoryEventKind::AgentConflict);
  EXPECT_EQ(events[0].node, "node-0");
  EXPECT_EQ(events[0].card.agent_id, "coder-b1");
  EXPECT_EQ(events[0].holder, "node-b");
  EXPECT_EQ(events[1].kind, DirectoryEventKind::AgentConflict);
  EXPECT_EQ(events[1].holder, "node-a");
  EXPECT_EQ(events[2].kind, DirectoryEventKind::AgentAdded);
  EXPECT_EQ(events[2].card.agent_id, "own-0");
  for (auto s : {Strategy::First, Strategy::Random, Strategy::RoundRobin, Strategy::LeastRecent}) {
    EXPECT_EQ(dir_.resolve("coder-b1", s, "planner-1")->card.node, "node-b");
    EXPECT_EQ(dir_.resolve("coder-1", s, "planner-1")->card.node, "node-a");
  }
  const auto all_coders = ids(dir_.discover({.role = "coder"}, Strategy::First, "planner-1"));
  EXPECT_EQ(std::count(all_coders.begin(), all_coders.end(), "coder-b1"), 1);
  EXPECT_EQ(std::count(all_coders.begin(), all_coders.end(), "coder-1"), 1);

  // A newer registry of the claimant still claiming: reported once only.
  events.clear();
  ASSERT_TRUE(dir_.apply_remote(registry("node-0", 2, {card("coder-b1", "coder"), card("own-0", "coder")})));
  EXPECT_EQ(dir_.conflicts(), 2u);
  EXPECT_TRUE(events.empty());

  // The holder drops the id: the claimant gets it now.
  ASSERT_TRUE(dir_.apply_remote(registry("node-b", 10, {card("coder-b2", "coder", {"go"})})));
  const auto b1 = dir_.find("coder-b1");
  ASSERT_TRUE(b1.has_value());
  EXPECT_EQ(b1->card.node, "node-0");

  // A local agent always holds its id: registering one takes it from a remote node.
  events.clear();
  ASSERT_EQ(dir_.put_local(card("own-0", "coder")), std::nullopt);
  EXPECT_EQ(dir_.conflicts(), 3u);
  EXPECT_EQ(dir_.find("own-0")->card.node, "node-a");
  EXPECT_TRUE(dir_.find("own-0")->local);
  const auto coders = ids(dir_.discover({.role = "coder"}, Strategy::First, "planner-1"));
  EXPECT_EQ(std::count(coders.begin(), coders.end(), "own-0"), 1);
  // ...and when it goes, the remote claimant has it back.
  ASSERT_TRUE(dir_.remove_local("own-0"));
  EXPECT_EQ(dir_.find("own-0")->card.node, "node-0");
}

TEST_F(DirectoryTest, PeerJson) {
  dir_.set_node_health("node-c", NodeHealth::Suspect);
  const auto j = peer_to_json(*dir_.find("coder-c1"));
  EXPECT_EQ(j.at("agent_id"), "coder-c1");
  EXPECT_EQ(j.at("node"), "node-c");
  EXPECT_EQ(j.at("location"), "remote");
  EXPECT_EQ(j.at("node_health"), "suspect");
  EXPECT_EQ(j.at("status"), "active");
  EXPECT_EQ(peer_to_json(*dir_.find("coder-1")).at("location"), "local");
}

// ---------------------------------------------------------------------------
// Events

struct Recorded {
  DirectoryEventKind kind;
  std::string node;
  std::string agent_id;
  bool local;
  bool operator==(const Recorded&) const = default;
};

std::ostream& operator<<(std::ostream& os, const Recorded& r) {
  return os << static_cast<int>(r.kind) << ":" << r.node << ":" << r.agent_id << ":" << r.local;
}

using K = DirectoryEventKind;

TEST(Events, EveryChangeIsReported) {
  AgentDirectory dir("me", 1);
  std::vector<Recorded> got;
  const auto token = dir.subscribe([&](const DirectoryEvent& e) {
    got.push_back({e.kind, e.node, e.card.agent_id, e.local});
  });

  ASSERT_EQ(dir.put_local(card("a", "r")), std::nullopt);
  ASSERT_EQ(dir.put_local(card("a", "r")), std::nullopt);  // no change, no event
  ASSERT_EQ(dir.put_local(card("a", "r", {"x"})), std::nullopt);
  ASSERT_TRUE(dir.remove_local("a"));
  ASSERT_TRUE(dir.apply_remote(registry("n", 1, {card("b", "r"), card("c", "r")})));
  ASSERT_TRUE(dir.apply_remote(registry("n", 2, {card("c", "r2"), card("d", "r"), card("b", "r")})));
  ASSERT_TRUE(dir.apply_remote(registry("n", 3, {card("d", "r"), card("b", "r")})));
  dir.set_node_health("n", NodeHealth::Suspect);
  dir.set_node_health("n", NodeHealth::Suspect);  // no change
  dir.set_node_health("n", NodeHealth::Alive);
  dir.set_node_health("fresh", NodeHealth::Alive);  // a new alive node: nothing to say
  ASSERT_TRUE(dir.remove_node("n"));

  const std::vector<Recorded> expect = {
      {K::AgentAdded, "me", "a", true},    {K::AgentUpdated, "me", "a", true},
      {K::AgentRemoved, "me", "a", true},  {K::AgentAdded, "n", "b", false},
      {K::AgentAdded, "n", "c", false},    {K::AgentUpdated, "n", "c", false},
      {K::AgentAdded, "n", "d", false},    {K::AgentRemoved, "n", "c", false},
      {K::NodeSuspect, "n", "", false},    {K::NodeAlive, "n", "", false},
      {K::AgentRemoved, "n", "d", false},  {K::AgentRemoved, "n", "b", false},
  };
  EXPECT_EQ(got, expect);

  EXPECT_TRUE(dir.unsubscribe(token));
  EXPECT_FALSE(dir.unsubscribe(token));
  ASSERT_EQ(dir.put_local(card("z", "r")), std::nullopt);
  EXPECT_EQ(got.size(), expect.size());
}

TEST(Events, CarryTheNewCard) {
  AgentDirectory dir("me", 1);
  std::vector<AgentCard> cards;
  dir.subscribe([&](const DirectoryEvent& e) { cards.push_back(e.card); });
  ASSERT_EQ(dir.put_local(card("a", "r", {"x"})), std::nullopt);
  ASSERT_EQ(cards.size(), 1u);
  EXPECT_EQ(cards[0].node, "me");
  EXPECT_EQ(cards[0].version, 1u);
  EXPECT_EQ(cards[0].capabilities, (std::vector<std::string>{"x"}));
}

TEST(Events, ListenersMayCallAndChangeTheDirectory) {
  AgentDirectory dir("me", 1);
  std::vector<std::string> seen;
  dir.subscribe([&](const DirectoryEvent& e) {
    // Queries see the change already made.
    EXPECT_TRUE(e.kind != K::AgentAdded || dir.find(e.card.agent_id).has_value());
    seen.push_back(e.card.agent_id);
    // A change made from a listener is delivered after this event, not inside it.
    if (e.kind == K::AgentAdded && e.card.agent_id == "a") {
      EXPECT_EQ(dir.put_local(card("b", "r")), std::nullopt);
      EXPECT_EQ(seen.back(), "a");
    }
  });
  ASSERT_EQ(dir.put_local(card("a", "r")), std::nullopt);
  EXPECT_EQ(seen, (Ids{"a", "b"}));
  EXPECT_EQ(ids(dir.all()), (Ids{"a", "b"}));
}

TEST(Events, AThrowingListenerDoesNotWedgeDelivery) {
  AgentDirectory dir("me", 1);
  int calls = 0;
  dir.subscribe([&](const DirectoryEvent&) {
    if (++calls == 1) throw std::runtime_error("listener failed");
  });
  EXPECT_THROW((void)dir.put_local(card("a", "r")), std::runtime_error);
  EXPECT_TRUE(dir.find("a").has_value());  // the change itself stands
  ASSERT_EQ(dir.put_local(card("b", "r")), std::nullopt);
  EXPECT_EQ(calls, 2);
}

// ---------------------------------------------------------------------------
// Concurrency: four threads change and query one directory at once. Under
// ThreadSanitizer this is the race check; in every build it checks that
// events replayed in delivery order rebuild the final state (so they were
// delivered in the order of the changes) and that queries never return
// the excluded agent or a non-match.

TEST(Concurrency, FourThreadsMutateAndQuery) {
  const std::uint64_t seed = ::mesh::test::test_seed(1234);
  MESH_SEED_TRACE(seed);
  AgentDirectory dir("local", seed);
  std::map<std::pair<std::string, std::string>, std::string> replayed;  // (node, id) -> role
  std::atomic<int> in_listener{0};
  std::atomic<bool> overlap{false};
  dir.subscribe([&](const DirectoryEvent& e) {
    if (in_listener.fetch_add(1) != 0) overlap = true;
    const auto key = std::make_pair(e.node, e.card.agent_id);
    switch (e.kind) {
      case K::AgentAdded:
      case K::AgentUpdated: replayed[key] = e.card.role; break;
      case K::AgentRemoved: replayed.erase(key); break;
      case K::NodeSuspect:
      case K::NodeAlive:
      case K::AgentConflict: break;
    }
    in_listener.fetch_sub(1);
  });

  constexpr int kIters = 1500;
  std::atomic<bool> bad_query{false};
  auto local_agents = [&](int t) {
    std::mt19937_64 rng(seed + 1);
    for (int i = 0; i < kIters; ++i) {
      const std::string id = "l" + std::to_string(t) + "-" + std::to_string(rng() % 20);
      if (rng() % 3 == 0) {
        dir.remove_local(id);
      } else {
        (void)dir.put_local(card(id, rng() % 2 ? "coder" : "tester", {"c" + std::to_string(rng() % 3)}));
      }
      if (i % 50 == 0) (void)dir.local_registry();
    }
  };
  auto remote_nodes = [&] {
    std::mt19937_64 rng(seed + 2);
    std::map<std::string, std::uint64_t> versions;
    for (int i = 0; i < kIters; ++i) {
      const std::string node = "r" + std::to_string(rng() % 4);
      switch (rng() % 6) {
        case 0: dir.remove_node(node); break;
        case 1: dir.set_node_health(node, NodeHealth::Suspect); break;
        case 2: dir.set_node_health(node, NodeHealth::Alive); break;
        default: {
          std::vector<AgentCard> cards;
          const auto n = rng() % 6;
          for (std::uint64_t k = 0; k < n; ++k) {
            cards.push_back(card(node + "-" + std::to_string(k), rng() % 2 ? "coder" : "tester",
                                 {"c" + std::to_string(rng() % 3)}));
          }
          dir.apply_remote(registry(node, ++versions[node], std::move(cards)));
        }
      }
      (void)dir.known_version(node);
      (void)dir.nodes();
    }
  };
  auto queries = [&] {
    std::mt19937_64 rng(seed + 3);
    std::int64_t now = 0;
    const Strategy strategies[] = {Strategy::First, Strategy::Random, Strategy::RoundRobin,
                                   Strategy::LeastRecent};
    for (int i = 0; i < kIters; ++i) {
      const Strategy s = strategies[rng() % 4];
      const std::string me = "l0-" + std::to_string(rng() % 20);
      const PeerQuery q{rng() % 2 ? "coder" : "", "c" + std::to_string(rng() % 3)};
      for (const auto& p : dir.discover(q, s, me)) {
        if (p.card.agent_id == me || (!q.role.empty() && p.card.role != q.role)) bad_query = true;
        dir.record_usage(p.card.agent_id, ++now);
      }
      if (auto r = dir.resolve("coder", s, me); r && r->card.agent_id == me) bad_query = true;
      (void)dir.find("r1-0", me);
      (void)dir.roles(me);
      (void)dir.all(me);
    }
  };

  std::vector<std::thread> threads;
  threads.emplace_back(local_agents, 0);
  threads.emplace_back(local_agents, 1);
  threads.emplace_back(remote_nodes);
  threads.emplace_back(queries);
  for (auto& t : threads) t.join();

  EXPECT_FALSE(bad_query.load());
  EXPECT_FALSE(overlap.load()) << "listeners ran concurrently";
  std::map<std::pair<std::string, std::string>, std::string> actual;
  for (const auto& p : dir.all()) actual[{p.card.node, p.card.agent_id}] = p.card.role;
  EXPECT_EQ(replayed, actual);
}

}  // namespace
}  // namespace mesh
