// Seeds for simulated tests. Every scenario runs for a small fixed list of
// seeds; MESH_SIM_SEED=<n> replaces the list with that one seed, to replay a
// failure. A failing check prints the seed through sim_seed_trace().
#pragma once

#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

namespace mesh::sim {

inline std::vector<std::uint64_t> test_seeds(std::vector<std::uint64_t> defaults = {1, 2, 3}) {
  if (const char* env = std::getenv("MESH_SIM_SEED"); env != nullptr && *env != '\0') {
    char* end = nullptr;
    const unsigned long long v = std::strtoull(env, &end, 0);
    if (end != env && *end == '\0') return {static_cast<std::uint64_t>(v)};
  }
  return defaults;
}

inline std::string replay_hint(std::uint64_t seed) {
  return "seed " + std::to_string(seed) + " (replay with MESH_SIM_SEED=" + std::to_string(seed) +
         ")";
}

}  // namespace mesh::sim

// In a test body: every failure below this line names the seed.
#define MESH_SIM_SEED_TRACE(seed) SCOPED_TRACE(::mesh::sim::replay_hint(seed))
