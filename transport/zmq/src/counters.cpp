#include "counters.hpp"

#include <algorithm>

namespace mesh::transport::detail {

void record_request_latency(Counters& counters, std::chrono::steady_clock::time_point started,
                            bool answered) {
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                      std::chrono::steady_clock::now() - started)
                      .count();
  const double seconds = static_cast<double>(ns) / 1e9;
  const auto bound = std::lower_bound(kRequestLatencyBounds.begin(), kRequestLatencyBounds.end(), seconds);
  const auto bucket = static_cast<std::size_t>(bound - kRequestLatencyBounds.begin());
  const std::size_t outcome = answered ? 0 : 1;
  bump(counters.latency_sum_ns[outcome], static_cast<std::uint64_t>(std::max<std::int64_t>(ns, 0)));
  bump(counters.latency_buckets[outcome][bucket]);
}

}  // namespace mesh::transport::detail
