// The member table's pieces that stand on their own: one member's record
// and the name index over the records. The table itself (the probe-ordered
// vector that owns the records) lives in Node::Impl (node_impl.hpp).
// Private to mesh_swim_core.
#pragma once

#include <algorithm>
#include <cstddef>
#include <functional>
#include <string_view>
#include <utility>
#include <vector>

#include "mesh/swim/node.hpp"

namespace mesh::swim {

// Aligned to a cache line: with Member's hot fields first, the lookup's
// name compare and the incarnation/state/address checks after it cost one
// miss (the simulator runs 1000 nodes of 1000 members: ~130 MB of these).
struct alignas(64) NodeState {
  Member m;
};

// Name -> member index, the hottest lookup of the core: every alive,
// suspect and dead message and every push/pull entry starts with it.
// Open addressing with linear probing over a flat array of (hash, state)
// slots, at most half full: a lookup costs one cache miss for the slot
// and one for the NodeState (whose name we compare, and which the caller
// reads next anyway). std::unordered_map cost three to four misses per
// lookup (bucket, predecessor node, node) and was 27% of the join of 1000
// nodes. Looked up by string_view, so no std::string is built to search.
// Entries are only added one at a time; removal (reaping) rebuilds the
// table, which happens at most once per probe round.
class NameIndex {
 public:
  NodeState* find(std::string_view name) const {
    if (slots_.empty()) return nullptr;
    const std::size_t h = hash(name);
    for (std::size_t i = h & mask_;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.state == nullptr) return nullptr;
      if (s.hash == h && s.state->m.name == name) return s.state;
    }
  }
  // `state`'s name must not be present yet.
  void insert(NodeState* state) {
    if (2 * (size_ + 1) > slots_.size()) grow();
    place(state, hash(state->m.name));
    ++size_;
  }
  template <class Range>
  void rebuild(const Range& states) {
    slots_.assign(slots_.size(), Slot{});
    size_ = 0;
    for (const auto& s : states) insert(s.get());
  }

 private:
  struct Slot {
    std::size_t hash = 0;
    NodeState* state = nullptr;
  };
  static std::size_t hash(std::string_view name) { return std::hash<std::string_view>{}(name); }
  void place(NodeState* state, std::size_t h) {
    std::size_t i = h & mask_;
    while (slots_[i].state != nullptr) i = (i + 1) & mask_;
    slots_[i] = Slot{h, state};
  }
  void grow() {
    std::vector<Slot> old = std::exchange(slots_, std::vector<Slot>(std::max<std::size_t>(16, 2 * slots_.size())));
    mask_ = slots_.size() - 1;
    for (const Slot& s : old)
      if (s.state != nullptr) place(s.state, s.hash);
  }
  std::vector<Slot> slots_;  // size is a power of two
  std::size_t mask_ = 0;
  std::size_t size_ = 0;
};

}  // namespace mesh::swim
