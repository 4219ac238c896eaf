// memberlist's TransmitLimitedQueue (queue.go): messages waiting to be
// piggybacked on outgoing packets, each sent a limited number of times,
// fewest-sent first, larger first within a tier (to fill packets well).
// A message about a node replaces an older queued one about the same node.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
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
  // The sort key lives in the tree node itself, so that a search compares
  // without following a pointer per step (a cache miss each while the join
  // of 1000 nodes keeps hundreds of messages queued per node).
  struct Key {
    int transmits = 0;
    std::size_t len = 0;
    std::uint64_t id = 0;
  };
  // (transmits asc, len desc, id desc): queue.go's btree order.
  struct Order {
    bool operator()(const Key& a, const Key& b) const {
      if (a.transmits != b.transmits) return a.transmits < b.transmits;
      if (a.len != b.len) return a.len > b.len;
      return a.id > b.id;
    }
  };
  struct Item {
    std::string name;
    SharedBytes msg;
    std::uint64_t notify = 0;
  };
  // One allocation per message for the tree node; a transmission moves the
  // node to its next tier with extract/insert, which allocates nothing and
  // keeps pointers to the element valid (by_name_ relies on that).
  using Items = std::map<Key, Item, Order>;

  void finish(const Item& item);
  void erase(const Items::value_type* entry);

  Items items_;
  std::unordered_map<std::string, const Items::value_type*> by_name_;
  std::uint64_t next_id_ = 0;
  std::vector<std::uint64_t> finished_;
};

}  // namespace mesh::swim
