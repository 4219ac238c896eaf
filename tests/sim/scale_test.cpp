// Scale: 1000 nodes form one cluster through 3 seeds. Heavy, so labelled
// "slow" (suite SimSlow*).
#include <gtest/gtest.h>

#include <iostream>

#include "sim_test_util.hpp"

namespace mesh::sim::test {
namespace {

// S1, S2 and S3 start and join each other; the other 997 join through them,
// one every 5 ms (so 5 s in all; see docs/simulator.md on staggering). Every
// one of them ends up seeing all 999 others alive, and nobody is suspected
// on the way.
TEST(SimSlowScale, ThousandNodesConvergeFromThreeSeeds) {
  for (auto seed : test_seeds({1})) {
    MESH_SEED_TRACE(seed);
    ClusterOptions o = options_for(seed);
    o.join_stagger = 5ms;
    o.record_events = false;
    Cluster c(o);
    c.add_nodes(1000);
    c.join_all_through({0, 1, 2});
    EXPECT_TRUE(c.wait_until([&] { return c.all_see_alive(); }, 300s));
    std::cout << "[ seed " << seed << " ] 1000 nodes converged after " << secs(c.elapsed())
              << " s virtual, " << c.counters().sim_events << " events\n";
    EXPECT_EQ(c.counters().member_events[static_cast<std::size_t>(EventKind::Suspect)], 0u);
    EXPECT_EQ(c.total_node_stats().decode_errors_total(), 0u);
    EXPECT_EQ(c.check_views_for_test(), "");
  }
}

}  // namespace
}  // namespace mesh::sim::test
