// The envelope of a message a caller sends: a notify or a request.
#pragma once

#include <cstdint>

#include "mesh/transport/envelope.hpp"
#include "mesh/transport/transport.hpp"

namespace mesh::transport::detail {

struct Core;

// Moves the sender agent, context and payload out of `m`; a fresh id
// unless `m` carries one.
Envelope make_envelope(Core& core, OutMessage& m, MessageType type, std::int64_t deadline_ms);

}  // namespace mesh::transport::detail
