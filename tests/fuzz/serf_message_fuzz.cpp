// serf_message: what Serf puts inside memberlist's user messages, user
// state and node meta, as the driver reads it: join/leave intents, the
// clocks of a push/pull state, tag-encoded meta, and the msgpack reader
// underneath them all.
//
// The same bytes go to every decoder (each checks its own type byte or
// magic). An intent that decodes must encode and decode to the same value.
#include <cstddef>
#include <cstdint>

#include "fuzz_input.hpp"
#include "mesh/swim/membership.hpp"
#include "mesh/msgpack_lite.hpp"
#include "serf.hpp"

using namespace mesh::swim;
using mesh::fuzz::invariant_failed;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const ByteView bytes(data, size);

  if (auto intent = serf::decode_intent(bytes)) {
    const Bytes again = intent->type == serf::MessageType::Join
                            ? serf::encode_join_intent(intent->ltime, intent->node)
                            : serf::encode_leave_intent(intent->ltime, intent->node, intent->prune);
    auto back = serf::decode_intent(again);
    if (!back) invariant_failed("a decoded intent, encoded again, does not decode");
    if (back->type != intent->type || back->ltime != intent->ltime || back->node != intent->node ||
        (intent->type == serf::MessageType::Leave && back->prune != intent->prune))
      invariant_failed("a decoded intent, encoded again, decodes differently");
  }

  (void)serf::decode_push_pull_clocks(bytes);

  if (auto tags = decode_serf_tags(bytes)) {
    auto back = decode_serf_tags(encode_serf_tags(*tags));
    if (!back || *back != *tags) invariant_failed("serf tags do not survive a round trip");
  }

  // The reader on its own: skip values until the input ends or is bad.
  mesh::mp::Reader r(bytes);
  while (r.remaining() > 0 && r.skip()) {
  }
  return 0;
}
