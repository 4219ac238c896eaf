// The envelope codec's shared wire-format numbers (the layout itself: see
// envelope.hpp). The codec is split by direction:
//   envelope_encode.cpp  Envelope -> bytes
//   envelope_decode.cpp  bytes -> EnvelopeView, strict and salvaging passes
//
// Both directions are written by hand rather than through msgpack-c (each
// file says why for its direction). The tests cross-check the wire bytes
// against msgpack-c.
#pragma once

#include <cstddef>

namespace mesh::transport::detail {

inline constexpr std::size_t kFieldCount = 13;
inline constexpr std::size_t kIdBytes = 16;

}  // namespace mesh::transport::detail
