// memberlist's TransmitLimitedQueue (queue.go): messages waiting to be
// piggybacked on outgoing packets, each sent a limited number of times,
// fewest-sent first, larger first within a tier (to fill packets well).
// A message about a node replaces an older queued one about the same node.
//
// Two additions: a message may be queued with precedence (a node's news
// about itself: its refutations, its alive after a meta change, its leave),
// which goes before every ordinary message for all of its transmissions;
// and prune() bounds the queue by dropping the most-sent ordinary messages,
// as memberlist's Prune does.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "mesh/swim/types.hpp"

namespace mesh::swim {

class BroadcastQueue {
 public:
  // Queue `msg`. A non-empty `name` replaces the queued message with the
  // same name (memberlist's NamedBroadcast); an empty name never replaces.
  // `notify` (non-zero) is reported by drain_finished() once the message
  // has been sent its last time, was replaced or pruned. A `priority`
  // message is handed out before any ordinary one, whatever their
  // transmission counts.
  void queue(std::string name, Bytes msg, std::uint64_t notify = 0, bool priority = false);

  // Appends to `out` the messages that fit in `limit` bytes, each costing
  // `overhead` more, in memberlist's order (priority messages first); each
  // is counted as one more transmission and dropped once sent
  // `transmit_limit` times. The pointers stay valid until the next call of
  // queue(), get() or prune() on this queue: the caller builds its packet
  // from them without copying the messages.
  void get(std::size_t overhead, std::size_t limit, int transmit_limit,
           std::vector<const Bytes*>& out);
  std::vector<const Bytes*> get(std::size_t overhead, std::size_t limit, int transmit_limit) {
    std::vector<const Bytes*> out;
    get(overhead, limit, transmit_limit, out);
    return out;
  }

  // Drops the most-sent ordinary messages (the end of the order) until at
  // most `max_retain` messages remain; priority messages are kept.
  // Returns how many were dropped.
  std::size_t prune(std::size_t max_retain);

  std::size_t size() const { return items_.size(); }
  std::vector<std::uint64_t> drain_finished();

 private:
  // Ordinary messages rank kOrdinary + transmits, priority ones rank
  // transmits: one ordered walk serves both bands.
  static constexpr int kOrdinary = 1 << 20;
  // The sort key lives in the tree node itself, so that a search compares
  // without following a pointer per step (a cache miss each while the join
  // of 1000 nodes keeps hundreds of messages queued per node).
  struct Key {
    int rank = 0;
    std::size_t len = 0;
    std::uint64_t id = 0;
  };
  // (rank asc, len desc, id desc): queue.go's btree order, priority first.
  struct Order {
    bool operator()(const Key& a, const Key& b) const {
      if (a.rank != b.rank) return a.rank < b.rank;
      if (a.len != b.len) return a.len > b.len;
      return a.id > b.id;
    }
  };
  struct Item {
    std::string name;
    Bytes msg;
    std::uint64_t notify = 0;
  };
  // One allocation per message for the tree node; a transmission moves the
  // node to its next tier with extract/insert, which allocates nothing and
  // keeps pointers to the element valid (by_name_ relies on that).
  using Items = std::map<Key, Item, Order>;

  static int transmits(const Key& k) { return k.rank >= kOrdinary ? k.rank - kOrdinary : k.rank; }
  void finish(const Item& item);
  void erase(const Items::value_type* entry);

  Items items_;
  std::unordered_map<std::string, const Items::value_type*> by_name_;
  // Messages sent their last time by get(): kept (as extracted nodes) until
  // the next call, so that the pointers get() handed out stay valid.
  std::vector<Items::node_type> retired_;
  std::vector<Items::node_type> reinsert_;
  std::uint64_t next_id_ = 0;
  std::vector<std::uint64_t> finished_;
};

}  // namespace mesh::swim
