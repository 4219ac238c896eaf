// swim_node: a SWIM node fed arbitrary packets, streams, stream replies and
// time, the way the driver feeds it, with a fixed seed.
//
// The input is a little program. Each step starts with an opcode byte:
//   0 packet   [from][u16 len][bytes]        on_packet
//   1 stream   [from][u16 len][bytes]        on_stream (and again with the
//                                            whole input when it needs more)
//   2 time     [u16 ms]                      run the timers up to now + ms
//   3 reply    [u16 len][bytes]              on_stream_reply to the oldest
//                                            outgoing stream that expects one
//   4 fail                                   on_stream_failed, likewise
//   5 local    [op]                          join / leave / set_meta /
//                                            send_user / user broadcast
// Outputs are drained after every step, as the driver does. The node must
// never crash, and what it holds must stay bounded by what it was fed.
#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "fuzz_input.hpp"
#include "mesh/swim/node.hpp"

using namespace mesh::swim;
using mesh::fuzz::FuzzInput;
using mesh::fuzz::invariant_failed;

namespace {

constexpr std::size_t kMaxSteps = 256;
constexpr int kMaxTimerRuns = 512;  // per time step: one on_timer per deadline

Address peer(std::uint8_t n) { return Address::v4(10, 0, 0, static_cast<std::uint8_t>(2 + n % 4), 7946); }

Config config() {
  Config c = Config::lan();
  c.name = "a";
  c.advertise = Address::v4(10, 0, 0, 1, 7946);
  // Small limits keep each run short; the decoders' own limits are
  // fuzzed with their defaults by swim_packet and stream_frame.
  c.limits.max_decompressed = 256 * 1024;
  c.limits.max_push_nodes = 256;
  c.limits.max_stream = 256 * 1024;
  return c;
}

struct Harness {
  Node node{config(), 42};
  Time now{std::chrono::seconds(1000)};
  std::deque<OutStream> pending;  // outgoing streams awaiting a reply

  void drain() {
    (void)node.drain_packets();
    for (auto& s : node.drain_streams())
      if (s.expects_reply) pending.push_back(std::move(s));
    // A node that is never answered has at most one stream per member
    // and schedule; keep the harness itself bounded too.
    while (pending.size() > 64) pending.pop_front();
    (void)node.drain_events();
    (void)node.drain_user_data();
    (void)node.drain_join_results();
  }

  void advance(std::uint16_t ms) {
    const Time target = now + std::chrono::milliseconds(ms);
    for (int i = 0; i < kMaxTimerRuns; ++i) {
      const Time next = node.next_deadline();
      if (next > target) break;
      now = std::max(now, next);
      node.on_timer(now);
      drain();
    }
    now = target;
  }

  void local(FuzzInput& in) {
    const std::uint8_t op = in.byte();
    switch (op % 5) {
      case 0: node.join(now, {peer(in.byte())}); break;
      case 1: node.leave(now); break;
      case 2: {
        auto meta = in.sized(600);
        node.set_meta(now, Bytes(meta.begin(), meta.end()));
        break;
      }
      case 3: {
        const std::uint8_t to = in.byte();
        auto payload = in.sized(2048);
        node.send_user(now, peer(to), Bytes(payload.begin(), payload.end()), (op & 0x80) != 0);
        break;
      }
      default: {
        auto payload = in.sized(512);
        node.queue_user_broadcast(Bytes(payload.begin(), payload.end()), (op & 0x80) ? "n" : "");
        break;
      }
    }
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzInput in(data, size);
  Harness h;
  h.node.start(h.now);
  h.drain();
  for (std::size_t step = 0; step < kMaxSteps && !in.empty(); ++step) {
    const std::uint8_t op = in.byte();
    switch (op % 6) {
      case 0: {
        const auto from = peer(in.byte());
        h.node.on_packet(h.now, from, in.sized(4096));
        break;
      }
      case 1: {
        const auto from = peer(in.byte());
        const auto bytes = in.sized(8192);
        // The driver calls again with everything received so far; here a
        // prefix first, then the whole piece, when the node asks for more.
        const std::size_t cut = bytes.size() / 2;
        auto answer = h.node.on_stream(h.now, from, bytes.first(cut));
        if (answer.status == StreamAnswer::Status::NeedMore)
          answer = h.node.on_stream(h.now, from, bytes);
        break;
      }
      case 2: h.advance(in.u16()); break;
      case 3:
      case 4:
        if (!h.pending.empty()) {
          const auto id = h.pending.front().id;
          h.pending.pop_front();
          if (op % 6 == 3) h.node.on_stream_reply(h.now, id, in.sized(8192));
          else h.node.on_stream_failed(h.now, id);
        }
        break;
      default: h.local(in); break;
    }
    h.drain();
  }
  // Each message or stream may add a handful of members; the bound is loose
  // on purpose: it is there to catch unbounded growth, not to count.
  if (h.node.num_members() > 1 + size) invariant_failed("more members than input bytes");
  return 0;
}
