#include "broadcast_queue.hpp"

#include <iterator>
#include <limits>
#include <utility>

namespace mesh::swim {

void BroadcastQueue::queue(std::string name, Bytes msg, std::uint64_t notify, bool priority) {
  retired_.clear();
  if (!name.empty()) {
    if (auto it = by_name_.find(name); it != by_name_.end()) {
      const Items::value_type* old = it->second;
      finish(old->second);
      erase(old);
    }
  }
  const Key key{priority ? 0 : kOrdinary, msg.size(), ++next_id_};
  auto [it, inserted] = items_.emplace(key, Item{std::move(name), std::move(msg), notify});
  (void)inserted;
  if (!it->second.name.empty()) by_name_[it->second.name] = &*it;
}

void BroadcastQueue::get(std::size_t overhead, std::size_t limit, int transmit_limit,
                         std::vector<const Bytes*>& out) {
  retired_.clear();
  if (items_.empty()) return;
  std::size_t used = 0;
  int tier = items_.begin()->first.rank;
  const int last_tier = items_.rbegin()->first.rank;
  // Walk the tiers from the least sent (priority band first); in each, take
  // the largest message that still fits, until nothing fits (queue.go
  // GetBroadcasts).
  while (tier <= last_tier) {
    if (used + overhead >= limit) break;
    const std::size_t free = limit - used - overhead;
    auto it = items_.lower_bound(Key{tier, free, std::numeric_limits<std::uint64_t>::max()});
    if (it == items_.end()) break;  // no later tier holds anything either
    if (it->first.rank != tier) {
      // Nothing in this tier fits (or it is empty): it->first.rank is the
      // next non-empty tier, so skip straight to it.
      tier = it->first.rank;
      continue;
    }
    used += overhead + it->first.len;
    out.push_back(&it->second.msg);
    const bool last = transmits(it->first) + 1 >= transmit_limit;
    auto node = items_.extract(it);
    if (last) {
      finish(node.mapped());
      if (!node.mapped().name.empty()) by_name_.erase(node.mapped().name);
      retired_.push_back(std::move(node));
    } else {
      ++node.key().rank;
      reinsert_.push_back(std::move(node));
    }
  }
  for (auto& node : reinsert_) items_.insert(std::move(node));
  reinsert_.clear();
}

std::size_t BroadcastQueue::prune(std::size_t max_retain) {
  retired_.clear();
  std::size_t dropped = 0;
  while (items_.size() > max_retain) {
    auto last = std::prev(items_.end());
    if (last->first.rank < kOrdinary) break;  // only priority messages left
    finish(last->second);
    if (!last->second.name.empty()) by_name_.erase(last->second.name);
    items_.erase(last);
    ++dropped;
  }
  return dropped;
}

std::vector<std::uint64_t> BroadcastQueue::drain_finished() { return std::exchange(finished_, {}); }

void BroadcastQueue::finish(const Item& item) {
  if (item.notify != 0) finished_.push_back(item.notify);
}

void BroadcastQueue::erase(const Items::value_type* entry) {
  const Key key = entry->first;  // the entry dies with the erase
  if (!entry->second.name.empty()) by_name_.erase(entry->second.name);
  items_.erase(key);
}

}  // namespace mesh::swim
