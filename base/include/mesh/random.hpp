// Deterministic randomness for the SWIM core, the simulator and the agent
// directory. The caller seeds it; the same seed gives the same sequence on
// every standard library (std::uniform_* distributions differ between
// implementations, so we sample ourselves).
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

namespace mesh {

// xoshiro256** (Blackman & Vigna), seeded through splitmix64.
class Rng {
 public:
  explicit Rng(std::uint64_t seed = 0) { reseed(seed); }
  void reseed(std::uint64_t seed);

  std::uint64_t next();
  // Uniform in [0, n); 0 when n == 0. Unbiased (Lemire's method).
  std::uint64_t below(std::uint64_t n);
  // Uniform in [0, 1).
  double unit();
  // True with probability p.
  bool chance(double p) { return p > 0.0 && unit() < p; }

  template <class T>
  void shuffle(std::vector<T>& v) {
    for (std::size_t i = v.size(); i > 1; --i) {
      std::size_t j = static_cast<std::size_t>(below(i));
      using std::swap;
      swap(v[i - 1], v[j]);
    }
  }

 private:
  std::uint64_t s_[4]{};
};

}  // namespace mesh
