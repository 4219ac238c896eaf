// Packet loss: 20 nodes run for 5 virtual minutes at 5, 10, 20 and 50 %
// loss on every packet (TCP streams are reliable but slower, see
// network.hpp). At and below kNoFalseDeathLoss no live node may be declared
// dead; above it the count is only recorded (docs/simulator.md has the
// figures that put the bound there). At every level, once the loss stops,
// the cluster must become whole again.
#include <gtest/gtest.h>

#include <iostream>

#include "sim_test_util.hpp"

namespace mesh::sim::test {
namespace {

// The highest loss of the tested levels at which no live node was declared
// dead in any seed we tried (see docs/simulator.md, "Loss bound").
constexpr double kNoFalseDeathLoss = 0.10;

class SimLoss : public ::testing::TestWithParam<double> {};

TEST_P(SimLoss, TwentyNodesForFiveMinutes) {
  const double loss = GetParam();
  for (auto seed : test_seeds()) {
    MESH_SEED_TRACE(seed);
    Cluster c(options_for(seed));
    ASSERT_TRUE(form_cluster(c, 20, 30s));
    c.set_loss(loss);
    c.run_for(300s);
    const auto false_deaths = c.false_deaths();
    const auto suspects = c.count_events(EventKind::Suspect);
    std::cout << "[ seed " << seed << " ] loss " << loss << ": false deaths " << false_deaths
              << ", suspect events " << suspects << ", refutations "
              << c.total_node_stats().refutations << "\n";
    RecordProperty("false_deaths_seed_" + std::to_string(seed), std::to_string(false_deaths));
    if (loss <= kNoFalseDeathLoss) {
      EXPECT_EQ(false_deaths, 0u) << "at " << loss * 100 << " % loss";
    }
    EXPECT_EQ(c.total_node_stats().decode_errors_total(), 0u);
    // The loss stops: whoever was declared dead refutes or is re-learnt
    // through push/pull, and everyone sees everyone alive again.
    c.set_loss(0);
    EXPECT_TRUE(c.wait_until([&] { return c.all_see_alive(); }, 120s))
        << "the cluster did not recover after " << loss * 100 << " % loss";
  }
}

INSTANTIATE_TEST_SUITE_P(Levels, SimLoss, ::testing::Values(0.05, 0.10, 0.20, 0.50),
                         [](const ::testing::TestParamInfo<double>& p) {
                           return "loss" + std::to_string(static_cast<int>(p.param * 100 + 0.5));
                         });

}  // namespace
}  // namespace mesh::sim::test
