// Helpers shared by the simulator's scenario tests.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "cluster.hpp"
#include "test_seeds.hpp"

namespace mesh::sim::test {

using namespace std::chrono_literals;
using ::mesh::test::replay_hint;
using ::mesh::test::test_seeds;

inline double secs(Duration d) { return static_cast<double>(d.count()) / 1e6; }

inline ClusterOptions options_for(std::uint64_t seed) {
  ClusterOptions o;
  o.seed = seed;
  return o;
}

// n nodes joined through node 0, waited on until everyone sees everyone
// alive, with no false suspicion on the way.
inline ::testing::AssertionResult form_cluster(Cluster& c, std::size_t n,
                                               Duration timeout = std::chrono::seconds(60)) {
  c.add_nodes(n);
  c.join_all_through({0});
  if (!c.wait_until([&] { return c.all_see_alive(); }, timeout)) {
    return ::testing::AssertionFailure()
           << n << " nodes did not converge within " << secs(timeout) << " s";
  }
  return ::testing::AssertionSuccess();
}

// Every observer in `observers` (running ones) sees every subject in state s
// (for Dead and Left, a forgotten member counts).
inline bool sees(const Cluster& c, const std::vector<NodeId>& observers,
                 const std::vector<NodeId>& subjects, MemberState s) {
  for (NodeId o : observers) {
    if (!c.is_live(o)) continue;
    for (NodeId x : subjects) {
      if (x == o) continue;
      const auto st = c.state_of(x, o);
      if (!st) {
        if (s == MemberState::Dead || s == MemberState::Left) continue;
        return false;
      }
      if (*st != s) return false;
    }
  }
  return true;
}

}  // namespace mesh::sim::test
