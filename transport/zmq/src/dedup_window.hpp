// Remembers recently seen message ids, per sender, so that a retransmitted
// or duplicated frame is delivered once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <unordered_set>

#include "mesh/transport/envelope.hpp"

namespace mesh::transport {

// Ids are remembered per source: the name of the node the frame came from,
// as the receiving transport knows it from the connection (not what the
// envelope claims). A third party reusing another node's id under its own
// name is a different key: it can neither make the other node's next
// message look like a duplicate nor be answered from the other node's
// cached replies. docs/transport.md, "Who is the sender".
struct DedupKey {
  std::string source;
  MessageId id;
  friend bool operator==(const DedupKey&, const DedupKey&) = default;
};

struct DedupKeyHash {
  std::size_t operator()(const DedupKey& k) const noexcept {
    return MessageIdHash{}(k.id) ^ (std::hash<std::string>{}(k.source) * 0x9e3779b97f4a7c15ull);
  }
};

// An id is remembered for `window_ms` after it was first seen and while it
// is among the `capacity` most recently first-seen ids; whichever runs out
// first forgets it. Forgotten ids are accepted again, so the window must
// cover the longest time a duplicate can still arrive (sender retries) and
// the capacity the traffic within that time.
//
// Not thread-safe: owned by the transport thread. insert is O(1) amortised.
class DedupWindow {
 public:
  // capacity 0 remembers nothing (every insert returns true).
  DedupWindow(std::size_t capacity, std::int64_t window_ms);

  // True if `id` from `source` was not seen within the window (it is now
  // remembered), false for a duplicate. A duplicate does not extend its
  // id's lifetime: the window counts from the first sighting. `now_ms`
  // should not go backwards; if it does, ids simply live longer.
  bool insert(std::string_view source, const MessageId& id, std::int64_t now_ms);
  // The same for ids of one source only (our own requests).
  bool insert(const MessageId& id, std::int64_t now_ms) { return insert({}, id, now_ms); }

  // Ids held, including any that expired since the last insert (expiry
  // happens in insert).
  std::size_t size() const { return seen_.size(); }

 private:
  struct Entry {
    DedupKey key;
    std::int64_t seen_ms;
  };

  void expire(std::int64_t now_ms);

  std::size_t capacity_;
  std::int64_t window_ms_;
  std::unordered_set<DedupKey, DedupKeyHash> seen_;
  std::deque<Entry> order_;  // first-seen order, oldest at the front
};

}  // namespace mesh::transport
