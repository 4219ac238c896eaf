// keyring: memberlist's AES-GCM packet and stream encryption as the driver
// opens it, plus the base64 keys of Serf's -encrypt.
//
//   [mode][rest]
//   mode 0: rest is a packet; decrypt it with a ring of three keys
//           (128, 192 and 256 bits). It does not authenticate unless the
//           fuzzer forges a tag, so this covers the length and version
//           checks in front of the cipher.
//   mode 1: rest is a plaintext; seal it (vsn 0 with padding or 1, by the
//           next byte) with a fixed nonce, flip one byte chosen by the
//           input, and open it again: unflipped it must give the plaintext
//           back, flipped it must be refused.
//   mode 2: rest is base64 text for decode_base64_key.
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz_input.hpp"
#include "mesh/swim/membership.hpp"
#include "stream_frame.hpp"

using namespace mesh::swim;
using mesh::fuzz::FuzzInput;
using mesh::fuzz::invariant_failed;

namespace {

Bytes key(std::size_t n, std::uint8_t seed) {
  Bytes k(n);
  for (std::size_t i = 0; i < n; ++i) k[i] = static_cast<std::uint8_t>(seed + 7 * i);
  return k;
}

const Keyring& ring() {
  static const Keyring r({key(16, 1), key(24, 2), key(32, 3)});
  return r;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzInput in(data, size);
  const std::uint8_t mode = in.byte();
  switch (mode % 3) {
    case 0: {
      const auto aad = in.sized(8);
      (void)ring().decrypt(in.rest(), aad);
      break;
    }
    case 1: {
      const std::uint8_t vsn = in.byte() & 1;
      const std::uint16_t flip = in.u16();
      const auto plain = in.rest();
      const std::array<std::uint8_t, 12> nonce{9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 1, 2};
      const std::array<std::uint8_t, 5> aad{10, 0, 0, 0, 1};
      // The last key of the ring, so that decrypt tries them all.
      Bytes sealed = detail::encrypt_with_nonce(key(32, 3), nonce.data(), plain, aad, vsn);
      if (sealed.size() != detail::encrypted_length(vsn, plain.size()))
        invariant_failed("sealed length differs from encrypted_length");
      auto opened = ring().decrypt(sealed, aad);
      if (!opened || *opened != Bytes(plain.begin(), plain.end()))
        invariant_failed("a sealed message does not open to its plaintext");
      // Byte 0 is the version, which may legitimately turn into the other
      // supported one; every other byte is under the tag.
      const std::size_t at = 1 + flip % (sealed.size() - 1);
      sealed[at] ^= 0x01;
      if (ring().decrypt(sealed, aad)) invariant_failed("a tampered message was accepted");
      break;
    }
    default: {
      auto k = Keyring::decode_base64_key(mesh::fuzz::as_text(in.rest()));
      if (k && k->size() != 16 && k->size() != 24 && k->size() != 32)
        invariant_failed("decode_base64_key returned a key of a bad size");
      break;
    }
  }
  return 0;
}
