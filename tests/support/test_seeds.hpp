// Seeds of randomized tests (the simulator's scenarios, codec fuzzing,
// discovery strategies). Each test runs a fixed seed or list of seeds;
// MESH_SIM_SEED=<n> replaces it with that one seed, to replay a failure.
// A failing check names the seed through MESH_SEED_TRACE.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace mesh::test {

// MESH_SIM_SEED, when it is set to a number.
inline bool seed_from_env(std::uint64_t& out) {
  const char* env = std::getenv("MESH_SIM_SEED");
  if (env == nullptr || *env == '\0') return false;
  char* end = nullptr;
  const unsigned long long v = std::strtoull(env, &end, 0);
  if (end == env || *end != '\0') return false;
  out = static_cast<std::uint64_t>(v);
  return true;
}

// The seeds a multi-seed scenario runs.
inline std::vector<std::uint64_t> test_seeds(std::vector<std::uint64_t> defaults = {1, 2, 3}) {
  std::uint64_t seed = 0;
  if (seed_from_env(seed)) return {seed};
  return defaults;
}

// The seed a single-seed test runs.
inline std::uint64_t test_seed(std::uint64_t fallback) {
  std::uint64_t seed = 0;
  return seed_from_env(seed) ? seed : fallback;
}

inline std::string replay_hint(std::uint64_t seed) {
  return "seed " + std::to_string(seed) + " (replay with MESH_SIM_SEED=" + std::to_string(seed) +
         ")";
}

}  // namespace mesh::test

// In a test body: prints the seed and makes every failure below name it.
#define MESH_SEED_TRACE(seed)                                                  \
  std::printf("[ seed     ] %s\n", ::mesh::test::replay_hint(seed).c_str()); \
  SCOPED_TRACE(::mesh::test::replay_hint(seed))
