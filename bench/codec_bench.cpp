// Codec micro-benchmark: our pull parser against msgpack-c's object API on
// the same packets, plus encode, compound and LZW throughput. Prints each
// time and its ratio to the msgpack::unpack baseline run beside it.
//
// Built as build/bench/codec_bench.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <msgpack.hpp>
#include <string>
#include <string_view>

#include "mesh/swim/codec.hpp"

namespace {

using namespace mesh::swim;
using Clock = std::chrono::steady_clock;

// Best of several runs: the machine is shared, and the minimum is the
// least disturbed estimate.
template <class F>
double ns_per_op(int iterations, F&& f) {
  double best = 1e300;
  for (int run = 0; run < 5; ++run) {
    const auto start = Clock::now();
    for (int i = 0; i < iterations; ++i) f();
    const auto end = Clock::now();
    best =
        std::min(best, std::chrono::duration<double, std::nano>(end - start).count() / iterations);
  }
  return best;
}

// The baseline: what decoding an alive message costs through
// msgpack::unpack (object tree in a zone, then field lookup).
bool unpack_alive(ByteView body, Alive& out) {
  try {
    auto handle = msgpack::unpack(reinterpret_cast<const char*>(body.data()), body.size());
    const msgpack::object& o = handle.get();
    if (o.type != msgpack::type::MAP) return false;
    for (std::uint32_t i = 0; i < o.via.map.size; ++i) {
      const auto& kv = o.via.map.ptr[i];
      if (kv.key.type != msgpack::type::STR) return false;
      const std::string_view k(kv.key.via.str.ptr, kv.key.via.str.size);
      const auto bytes_of = [](const msgpack::object& v, Bytes& b) {
        if (v.type == msgpack::type::NIL) return b.clear();
        const auto* p = reinterpret_cast<const std::uint8_t*>(v.via.str.ptr);
        b.assign(p, p + v.via.str.size);
      };
      if (k == "Incarnation") {
        out.incarnation = kv.val.as<std::uint32_t>();
      } else if (k == "Node") {
        out.node = kv.val.as<std::string>();
      } else if (k == "Addr") {
        bytes_of(kv.val, out.addr);
      } else if (k == "Port") {
        out.port = kv.val.as<std::uint16_t>();
      } else if (k == "Meta") {
        bytes_of(kv.val, out.meta);
      } else if (k == "Vsn") {
        bytes_of(kv.val, out.vsn);
      }
    }
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

}  // namespace

int main() {
  Alive a;
  a.incarnation = 12345;
  a.node = "node-0042.example";
  a.addr = {10, 0, 0, 42};
  a.port = 7946;
  a.meta = Bytes(40, 'm');
  a.vsn = {1, 5, 2, 2, 5, 5};
  const Bytes packet = encode(a);
  const ByteView body = ByteView(packet).subspan(1);
  Bytes corrupt = packet;
  corrupt[2] = 0xc1;  // the first key's tag: invalid msgpack

  constexpr int kN = 100000;
  std::size_t sink = 0;
  const double ours = ns_per_op(kN, [&] {
    auto r = decode_message(packet);
    sink += r.ok();
  });
  const double theirs = ns_per_op(kN, [&] {
    Alive out;
    sink += unpack_alive(body, out);
  });
  const double ours_bad = ns_per_op(kN, [&] {
    auto r = decode_message(corrupt);
    sink += r.ok();
  });
  const double theirs_bad = ns_per_op(kN, [&] {
    Alive out;
    sink += unpack_alive(ByteView(corrupt).subspan(1), out);
  });
  const double enc = ns_per_op(kN, [&] {
    Bytes out;
    encode(a, out);
    sink += out.size();
  });
  Bytes parts[8];
  for (auto& p : parts) p = packet;
  const Bytes compound = wrap_crc(make_compound(parts));
  const double packet_ns = ns_per_op(kN / 8, [&] {
    auto r = decode_packet(compound);
    sink += r->messages.size();
  });
  Bytes big(1 << 20);
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<std::uint8_t>((i * 7) % 23);
  const Bytes packed = lzw_compress(big);
  const double lzw_c = ns_per_op(10, [&] { sink += lzw_compress(big).size(); });
  const double lzw_d = ns_per_op(10, [&] { sink += lzw_decompress(packed, big.size())->size(); });

  std::printf("decode alive, ours            %8.1f ns  (%.2fx of unpack)\n", ours, ours / theirs);
  std::printf("decode alive, msgpack::unpack %8.1f ns  (baseline)\n", theirs);
  std::printf("corrupt alive, ours           %8.1f ns  (%.2fx of unpack)\n", ours_bad,
              ours_bad / theirs_bad);
  std::printf("corrupt alive, msgpack::unpack%8.1f ns  (baseline, throws)\n", theirs_bad);
  std::printf("encode alive                  %8.1f ns\n", enc);
  std::printf("crc+compound of 8 alive       %8.1f ns\n", packet_ns);
  std::printf("lzw compress 1 MiB            %8.2f ms\n", lzw_c / 1e6);
  std::printf("lzw decompress 1 MiB          %8.2f ms\n", lzw_d / 1e6);
  return sink == 0 ? 1 : 0;
}
