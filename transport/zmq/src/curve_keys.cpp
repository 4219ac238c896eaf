// CURVE keys in Z85 text, as ZeroMQ's options take them. Through libzmq's
// C API: cppzmq wraps sockets and messages, not these key functions.
#include <zmq.h>

#include <array>

#include "mesh/transport/transport.hpp"

namespace mesh::transport {

namespace {
constexpr std::size_t kZ85KeyChars = 40;
constexpr std::size_t kKeyBytes = 32;
}  // namespace

CurveKeyPair generate_curve_keypair() {
  std::array<char, kZ85KeyChars + 1> pub{};
  std::array<char, kZ85KeyChars + 1> sec{};
  if (zmq_curve_keypair(pub.data(), sec.data()) != 0) {
    throw TransportError("zmq_curve_keypair failed (libzmq built without CURVE?)");
  }
  return CurveKeyPair{std::string(pub.data(), kZ85KeyChars), std::string(sec.data(), kZ85KeyChars)};
}

std::string curve_public_from_secret(const std::string& secret_z85) {
  if (!is_valid_curve_key(secret_z85)) throw TransportError("malformed CURVE secret key");
  std::array<char, kZ85KeyChars + 1> pub{};
  if (zmq_curve_public(pub.data(), secret_z85.c_str()) != 0) {
    throw TransportError("zmq_curve_public failed");
  }
  return std::string(pub.data(), kZ85KeyChars);
}

bool is_valid_curve_key(std::string_view z85) {
  if (z85.size() != kZ85KeyChars) return false;
  // zmq_z85_decode wants a NUL-terminated string and rejects characters
  // outside the Z85 alphabet.
  const std::string text(z85);
  std::array<std::uint8_t, kKeyBytes> out{};
  return zmq_z85_decode(out.data(), text.c_str()) != nullptr;
}

}  // namespace mesh::transport
