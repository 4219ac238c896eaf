// memberlist's TransmitLimitedQueue (queue.go): messages waiting to be
// piggybacked on outgoing packets, each sent a limited number of times,
// fewest-sent first, larger first within a tier (to fill packets well).
// A message about a node replaces an older queued one about the same node.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "mesh/swim/types.hpp"

namespace mesh::swim {

using SharedBytes = std::shared_ptr<const Bytes>;

class BroadcastQueue {
 public:
  // Queue `msg`. A non-empty `name` replaces the queued message with the
  // same name (memberlist's NamedBroadcast); an empty name never replaces.
  // `notify` (non-zero) is reported by drain_finished() once the message
  // has been sent its last time or was replaced.
  void queue(std::string name, Bytes msg, std::uint64_t notify = 0);

  // Messages that fit in `limit` bytes, each costing `overhead` more, in
  // memberlist's order; each is counted as one more transmission and
  // dropped once sent `transmit_limit` times.
  std::vector<SharedBytes> get(std::size_t overhead, std::size_t limit, int transmit_limit);

  std::size_t size() const { return items_.size(); }
  std::vector<std::uint64_t> drain_finished();

 private:
  struct Item {
    int transmits = 0;
    std::size_t len = 0;
    std::uint64_t id = 0;
    std::string name;
    SharedBytes msg;
    std::uint64_t notify = 0;
  };
  // (transmits asc, len desc, id desc): queue.go's btree order.
  struct Order {
    bool operator()(const Item* a, const Item* b) const {
      if (a->transmits != b->transmits) return a->transmits < b->transmits;
      if (a->len != b->len) return a->len > b->len;
      return a->id > b->id;
    }
  };
  void finish(Item* item);
  void erase(Item* item);

  std::set<Item*, Order> items_;
  std::unordered_map<std::uint64_t, std::unique_ptr<Item>> owned_;  // by id
  std::unordered_map<std::string, Item*> by_name_;
  std::uint64_t next_id_ = 0;
  std::vector<std::uint64_t> finished_;
};

}  // namespace mesh::swim
