// Lifeguard's dynamic suspicion timeout (memberlist suspicion.go): a
// suspicion starts at `max` and shrinks toward `min` as independent peers
// confirm it, log-scaled in the number of confirmations:
//   timeout = max - log(n+1)/log(k+1) * (max - min),   never below min.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_set>

#include "mesh/swim/types.hpp"

namespace mesh::swim {

class Suspicion {
 public:
  // `from` is the first accuser; `k` the confirmations wanted for the
  // minimum timeout (0: start at the minimum).
  Suspicion(const std::string& from, int k, Duration min, Duration max, Time start);

  // A confirmation from `from`. Returns true when it was new and counted
  // (then the deadline may have moved earlier, and the suspect message is
  // worth re-broadcasting).
  bool confirm(const std::string& from, Time now);

  Time deadline() const { return deadline_; }
  int confirmations() const { return n_; }

  // Timeout after n confirmations out of k (exposed for tests).
  static Duration timeout_for(int n, int k, Duration min, Duration max);

 private:
  int n_ = 0;
  int k_;
  Duration min_;
  Duration max_;
  Time start_;
  Time deadline_;
  std::unordered_set<std::string> confirmations_;
};

}  // namespace mesh::swim
