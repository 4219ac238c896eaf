// Remembers recently seen message ids so that a retransmitted or duplicated
// frame is delivered once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <unordered_set>

#include "mesh/transport/envelope.hpp"

namespace mesh::transport {

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

  // True if `id` was not seen within the window (it is now remembered),
  // false for a duplicate. A duplicate does not extend its id's lifetime:
  // the window counts from the first sighting. `now_ms` should not go
  // backwards; if it does, ids simply live longer.
  bool insert(const MessageId& id, std::int64_t now_ms);

  // Ids held, including any that expired since the last insert (expiry
  // happens in insert).
  std::size_t size() const { return seen_.size(); }

 private:
  struct Entry {
    MessageId id;
    std::int64_t seen_ms;
  };

  void expire(std::int64_t now_ms);

  std::size_t capacity_;
  std::int64_t window_ms_;
  std::unordered_set<MessageId, MessageIdHash> seen_;
  std::deque<Entry> order_;  // first-seen order, oldest at the front
};

}  // namespace mesh::transport
