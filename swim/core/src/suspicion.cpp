#include "suspicion.hpp"

#include <cmath>

namespace mesh::swim {

Suspicion::Suspicion(const std::string& from, int k, Duration min, Duration max, Time start)
    : k_(k), min_(min), max_(max), start_(start) {
  confirmations_.insert(from);
  deadline_ = start + (k < 1 ? min : max);
}

Duration Suspicion::timeout_for(int n, int k, Duration min, Duration max) {
  if (k < 1) return min;
  const double frac = std::log(static_cast<double>(n) + 1.0) / std::log(static_cast<double>(k) + 1.0);
  const double max_s = std::chrono::duration<double>(max).count();
  const double min_s = std::chrono::duration<double>(min).count();
  const double raw = max_s - frac * (max_s - min_s);
  // memberlist rounds down to whole milliseconds.
  const Duration timeout = std::chrono::milliseconds(static_cast<std::int64_t>(std::floor(1000.0 * raw)));
  return timeout < min ? min : timeout;
}

bool Suspicion::confirm(const std::string& from, Time now) {
  if (n_ >= k_) return false;
  if (!confirmations_.insert(from).second) return false;
  ++n_;
  const Time deadline = start_ + timeout_for(n_, k_, min_, max_);
  // A deadline already past fires at once (on the caller's next timer run).
  deadline_ = deadline < now ? now : deadline;
  return true;
}

}  // namespace mesh::swim
