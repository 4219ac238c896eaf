// The simulator's one event heap: small trivially-copyable events ordered by
// (time, sequence number), so that events at the same virtual time run in
// the order they were scheduled and a run is reproducible. Packet and stream
// bytes live in a side pool (Payload) and events refer to them by index, so
// sifting the heap never touches a byte buffer.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

#include "network.hpp"

namespace mesh::sim {

enum class EvKind : std::uint8_t {
  Wake,           // aux: wake-up token
  Packet,         // payload: bytes, peer = sender
  StreamRequest,  // payload: request bytes, peer = initiator
  StreamReply,    // payload: reply bytes (or failed), node = initiator
  StreamTimeout,  // aux: stream id, node = initiator
  Join,           // node joins through its seeds
  LeaveTimeout,   // shut a leaving node down
};

inline constexpr std::uint32_t kNoPayload = std::numeric_limits<std::uint32_t>::max();

struct Event {
  Time at{};
  std::uint64_t seq = 0;
  std::uint64_t aux = 0;
  std::uint32_t node = 0;
  std::uint32_t gen = 0;  // the target Node's generation, for events bound to one Node
  std::uint32_t payload = kNoPayload;
  EvKind kind = EvKind::Wake;
};

struct Payload {
  swim::Bytes bytes;
  std::uint64_t stream_id = 0;
  Time deadline{};
  NodeId peer = 0;
  std::uint32_t peer_gen = 0;
  bool expects_reply = false;
  bool failed = false;  // StreamReply: the server closed without answering
};

class EventQueue {
 public:
  void push(const Event& e) {
    heap_.push_back(e);
    std::push_heap(heap_.begin(), heap_.end(), Later{});
  }
  bool empty() const { return heap_.empty(); }
  const Event& top() const { return heap_.front(); }
  Event pop() {
    std::pop_heap(heap_.begin(), heap_.end(), Later{});
    Event e = heap_.back();
    heap_.pop_back();
    return e;
  }
  std::size_t size() const { return heap_.size(); }

 private:
  struct Later {
    bool operator()(const Event& a, const Event& b) const {
      if (a.at != b.at) return a.at > b.at;
      return a.seq > b.seq;
    }
  };
  std::vector<Event> heap_;
};

}  // namespace mesh::sim
