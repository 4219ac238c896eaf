// Remembers recently seen message ids, per sender, so that a retransmitted
// or duplicated frame is delivered once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

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
// Every message that arrives passes through insert, so it is built for
// that path (docs/transport.md, "Dedup"):
// - the ids live in one flat open-addressing table (linear probing, at
//   most half full) and, in first-seen order, in a ring; a fresh id costs
//   one probe of the table, plus one to forget the oldest id once the
//   window is full, and no allocation once the window has grown;
// - a source is stored as a small number, not a string: a table of the
//   sources that have ids in the window maps names to numbers;
// - the table's hash is keyed with a random seed per window, so that a
//   peer choosing its ids cannot make them collide.
//
// Not thread-safe: owned by the transport thread.
class DedupWindow {
 public:
  // capacity 0 remembers nothing (every insert returns true). `seed` keys
  // the hash; 0 draws one from the operating system.
  DedupWindow(std::size_t capacity, std::int64_t window_ms, std::uint64_t seed = 0);

  // True if `id` from `source` was not seen within the window (it is now
  // remembered), false for a duplicate. A duplicate does not extend its
  // id's lifetime: the window counts from the first sighting. `now_ms`
  // should not go backwards; if it does, ids simply live longer.
  bool insert(std::string_view source, const MessageId& id, std::int64_t now_ms);
  // The same for ids of one source only (our own requests).
  bool insert(const MessageId& id, std::int64_t now_ms) { return insert({}, id, now_ms); }

  // Ids held, including any that expired since the last insert (expiry
  // happens in insert).
  std::size_t size() const { return count_; }
  // Sources with ids in the window (a source is forgotten with its last id).
  std::size_t sources() const { return source_numbers_.size(); }

 private:
  // A slot of the table: where its id is in the ring, plus one (0 marks an
  // empty slot), and the id's hash, so that moving, growing and most
  // mismatches never read the ring. Eight bytes: the table of a full
  // default window (100 000 ids) is 2 MiB.
  struct Slot {
    std::uint32_t at = 0;
    std::uint32_t hash = 0;
  };
  // An id in first-seen order.
  struct Seen {
    MessageId id;
    std::uint32_t source = 0;
    std::uint32_t hash = 0;
    std::int64_t seen_ms = 0;
  };
  struct Source {
    std::string name;
    std::size_t ids = 0;  // ids of this source in the window
  };
  struct NameHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };

  std::uint32_t hash(const MessageId& id, std::uint32_t source) const;
  // The slot holding (id, source), or the empty slot where it would go.
  std::size_t probe(const MessageId& id, std::uint32_t source, std::uint32_t hash) const;
  // The slot of the id at ring position `at`.
  std::size_t slot_of(std::size_t at) const;
  void place(std::size_t at);
  void erase_slot(std::size_t i);
  void forget_oldest();
  void grow_table();
  void grow_ring();
  std::uint32_t number_of(std::string_view source);
  void release(std::uint32_t source);

  std::size_t capacity_;
  std::int64_t window_ms_;
  std::uint64_t seed_[2];

  std::vector<Slot> table_;  // size a power of two, at most half full
  std::size_t mask_ = 0;
  std::vector<Seen> ring_;  // grows up to capacity_, then wraps
  std::size_t head_ = 0;    // the oldest id
  std::size_t count_ = 0;

  std::vector<Source> sources_{1};  // [0] is the empty slot's marker
  std::vector<std::uint32_t> free_numbers_;
  std::unordered_map<std::string, std::uint32_t, NameHash, std::equal_to<>> source_numbers_;
  std::uint32_t last_source_ = 0;  // most messages come in runs from one node
};

}  // namespace mesh::transport
