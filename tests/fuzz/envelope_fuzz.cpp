// envelope: one ZeroMQ frame as the transport decodes it.
//
// The whole input is the frame, decoded with the default size limit and
// with a small one. A frame that decodes must encode and decode to the
// same envelope; a refused frame's salvaged type and id must match what
// the frame really says when it does decode under the larger limit.
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "fuzz_input.hpp"
#include "mesh/transport/envelope.hpp"

using namespace mesh::transport;
using mesh::fuzz::invariant_failed;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::uint8_t> frame(data, size);

  const DecodeResult small = decode(frame, 64);
  const DecodeResult r = decode(frame);
  if (small.ok() && !r.ok()) invariant_failed("a frame decodes under a small limit only");
  if (!r.ok()) return 0;
  if (!small.ok() && small.error != DecodeError::Oversized)
    invariant_failed("the size limit refused a good frame for another reason");
  if (small.salvaged_type && *small.salvaged_type != r.view.type)
    invariant_failed("salvaged type differs from the decoded one");
  if (small.salvaged_id && !(*small.salvaged_id == r.view.id))
    invariant_failed("salvaged id differs from the decoded one");

  const Envelope owned = r.view.to_owned();
  const std::vector<std::uint8_t> bytes = encode(owned);
  const DecodeResult again = decode(bytes);
  if (!again.ok()) invariant_failed("a decoded envelope, encoded again, does not decode");
  if (encode(again.view.to_owned()) != bytes)
    invariant_failed("a decoded envelope, encoded again, decodes differently");
  return 0;
}
