// thread_block: the conversation block a message carries (the envelope's
// thread element), as a receiving node decodes it before any check.
//
// The whole input is the block. A block that decodes must encode and
// decode to the same block, and a receiving node's table must take it
// (or refuse it with a reason) without breaking its own bounds.
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "fuzz_input.hpp"
#include "mesh/conversation.hpp"
#include "mesh/thread_table.hpp"

using mesh::fuzz::invariant_failed;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto block = mesh::decode_thread_block(std::span<const std::uint8_t>(data, size));
  if (!block) return 0;
  const std::vector<std::uint8_t> bytes = mesh::encode_thread_block(*block);
  const auto again = mesh::decode_thread_block(bytes);
  if (!again) invariant_failed("a decoded block, encoded again, does not decode");
  if (mesh::encode_thread_block(*again) != bytes) invariant_failed("a decoded block, encoded again, decodes differently");

  mesh::ThreadTable table(4);
  for (int i = 0; i < 3; ++i) {
    mesh::ThreadBlock b = *block;
    const auto r = table.admit(b, "agent@node", i % 2 == 0, 1'800'000'000'000);
    if (r == mesh::Refusal::None && b.max_turns && b.turn > *b.max_turns) invariant_failed("admitted past max_turns");
  }
  if (table.size() > 4) invariant_failed("the table grew past its capacity");
  return 0;
}
