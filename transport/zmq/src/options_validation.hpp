// Checking the options a Transport is built from.
#pragma once

#include "mesh/transport/transport.hpp"

namespace mesh::transport::detail {

// Throws TransportError saying which option is out of range, or that the
// CURVE key pair is malformed or mismatched.
void validate(const TransportOptions& o);

}  // namespace mesh::transport::detail
