// Partitions: both sides declare the other dead, and after the network heals
// the two halves become one cluster again.
//
// How they re-merge depends on how long the cut lasted:
//  - healed while both sides still gossip to the nodes they think dead
//    (GossipToTheDeadTime, 30 s after each death): the dead messages cross
//    over, are refuted, and the refutations come back;
//  - healed after both sides reaped each other: memberlist alone never
//    contacts a forgotten node again. Serf re-joins failed members
//    (reconnect), and so does our core (Config::reconnect_interval, see
//    swim/DESIGN.md); without it, a re-join through seeds is what real
//    deployments do.
#include <gtest/gtest.h>

#include <iostream>

#include "sim_test_util.hpp"

namespace mesh::sim::test {
namespace {

const std::vector<NodeId> kLeft{0, 1};
const std::vector<NodeId> kRight{2, 3, 4};

bool each_side_sees_the_other_dead(const Cluster& c) {
  return sees(c, kLeft, kRight, MemberState::Dead) && sees(c, kRight, kLeft, MemberState::Dead);
}

// {S1, S2} and {S3, S4, S5} are cut apart. Each side suspects and then
// declares the other side dead; neither declares one of its own dead. The
// network heals 5 s after the last death, well within GossipToTheDeadTime,
// and the halves merge.
TEST(SimPartition, BothSidesSeeTheOtherDeadAndMergeAfterAQuickHeal) {
  for (auto seed : test_seeds()) {
    MESH_SEED_TRACE(seed);
    Cluster c(options_for(seed));
    ASSERT_TRUE(form_cluster(c, 5, 10s));
    c.run_for(3s);
    c.partition(kLeft, kRight);
    ASSERT_TRUE(c.wait_until([&] { return each_side_sees_the_other_dead(c); }, 60s));
    EXPECT_TRUE(sees(c, kLeft, kLeft, MemberState::Alive));
    EXPECT_TRUE(sees(c, kRight, kRight, MemberState::Alive));
    c.run_for(5s);
    c.heal();
    EXPECT_TRUE(c.wait_until([&] { return c.all_see_alive(); }, 60s))
        << "the halves did not merge after a heal within GossipToTheDeadTime";
    c.run_for(30s);
    EXPECT_TRUE(c.all_see_alive());
  }
}

// The cut lasts 3 minutes, so both sides have reaped each other long
// before the heal. The core's reconnect tries a remembered failed member
// with a push/pull every 30 s (with probability failed/alive, at least 2/3
// here), and that one exchange carries each side's members to the other:
// the halves merge within a few reconnect rounds.
TEST(SimPartition, LongPartitionMergesThroughReconnect) {
  for (auto seed : test_seeds()) {
    MESH_SEED_TRACE(seed);
    Cluster c(options_for(seed));
    ASSERT_TRUE(form_cluster(c, 5, 10s));
    c.partition(kLeft, kRight);
    ASSERT_TRUE(c.wait_until([&] { return each_side_sees_the_other_dead(c); }, 60s));
    c.run_for(180s);
    const auto reconnects = c.total_node_stats().reconnects;
    const Time healed = c.now();
    c.heal();
    EXPECT_TRUE(c.wait_until([&] { return c.all_see_alive(); }, 150s))
        << "the halves did not merge through reconnect";
    std::cout << "[ seed " << seed << " ] merged " << secs(c.now() - healed)
              << " s after the heal\n";
    EXPECT_GT(c.total_node_stats().reconnects, reconnects);
    c.run_for(30s);
    EXPECT_TRUE(c.all_see_alive());
  }
}

// Plain memberlist (reconnect off): after a long cut the halves stay apart
// even though the network is whole again, until S1 re-joins through S3 as
// a deployment's retry-join would.
TEST(SimPartition, WithoutReconnectALongPartitionNeedsARejoin) {
  for (auto seed : test_seeds()) {
    MESH_SEED_TRACE(seed);
    ClusterOptions o = options_for(seed);
    o.configure = [](NodeId, swim::Config& cfg) { cfg.reconnect_interval = Duration::zero(); };
    Cluster c(o);
    ASSERT_TRUE(form_cluster(c, 5, 10s));
    c.partition(kLeft, kRight);
    ASSERT_TRUE(c.wait_until([&] { return each_side_sees_the_other_dead(c); }, 60s));
    c.run_for(120s);
    c.heal();
    EXPECT_FALSE(c.wait_until([&] { return c.all_see_alive(); }, 120s))
        << "merged without reconnect or re-join: did memberlist's behaviour change?";
    c.join(0, {2});
    EXPECT_TRUE(c.wait_until([&] { return c.all_see_alive(); }, 60s))
        << "the halves did not merge after S1 re-joined through S3";
  }
}

}  // namespace
}  // namespace mesh::sim::test
