// lzw: Go's compress/lzw (LSB, literal width 8) as the SWIM core speaks it.
//
// The first byte picks the output limit; the rest is decompressed under it
// (the output must respect the limit) and is also compressed and
// decompressed again, which must give the input back.
#include <cstddef>
#include <cstdint>

#include "fuzz_input.hpp"
#include "mesh/swim/codec.hpp"

using namespace mesh::swim;
using mesh::fuzz::FuzzInput;
using mesh::fuzz::invariant_failed;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzInput in(data, size);
  // 0..255 bytes, or 1 MiB: both a tight and a roomy limit get exercised.
  const std::uint8_t l = in.byte();
  const std::size_t max_out = l == 255 ? std::size_t{1} << 20 : l;
  const ByteView rest = in.rest();

  auto out = lzw_decompress(rest, max_out);
  if (out && out->size() > max_out) invariant_failed("lzw output over its limit");

  const Bytes packed = lzw_compress(rest);
  auto back = lzw_decompress(packed, rest.size());
  if (!back) invariant_failed("lzw cannot decompress what it compressed");
  if (*back != Bytes(rest.begin(), rest.end())) invariant_failed("lzw round trip changed the data");
  return 0;
}
