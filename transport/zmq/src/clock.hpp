// The two clocks of the transport.
#pragma once

#include <cstdint>

namespace mesh::transport::detail {

std::int64_t unix_now_ms();    // wall clock: what envelopes carry
std::int64_t steady_now_ms();  // monotonic: every local deadline

}  // namespace mesh::transport::detail
