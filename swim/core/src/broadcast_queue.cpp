#include "broadcast_queue.hpp"

#include <limits>
#include <utility>

namespace mesh::swim {

void BroadcastQueue::queue(std::string name, Bytes msg, std::uint64_t notify) {
  if (!name.empty()) {
    if (auto it = by_name_.find(name); it != by_name_.end()) {
      const Items::value_type* old = it->second;
      finish(old->second);
      erase(old);
    }
  }
  const Key key{0, msg.size(), ++next_id_};
  auto [it, inserted] =
      items_.emplace(key, Item{std::move(name), std::make_shared<const Bytes>(std::move(msg)), notify});
  (void)inserted;
  if (!it->second.name.empty()) by_name_[it->second.name] = &*it;
}

std::vector<SharedBytes> BroadcastQueue::get(std::size_t overhead, std::size_t limit,
                                             int transmit_limit) {
  std::vector<SharedBytes> out;
  if (items_.empty()) return out;
  std::vector<Items::node_type> reinsert;
  std::size_t used = 0;
  int tier = items_.begin()->first.transmits;
  const int last_tier = items_.rbegin()->first.transmits;
  // Walk the transmit tiers from the least sent; in each, take the largest
  // message that still fits, until nothing fits (queue.go GetBroadcasts).
  while (tier <= last_tier) {
    if (used + overhead >= limit) break;
    const std::size_t free = limit - used - overhead;
    auto it = items_.lower_bound(Key{tier, free, std::numeric_limits<std::uint64_t>::max()});
    if (it == items_.end()) break;  // no later tier holds anything either
    if (it->first.transmits != tier) {
      // Nothing in this tier fits (or it is empty): it->first.transmits is
      // the next non-empty tier, so skip straight to it.
      tier = it->first.transmits;
      continue;
    }
    used += overhead + it->first.len;
    out.push_back(it->second.msg);
    if (it->first.transmits + 1 >= transmit_limit) {
      finish(it->second);
      if (!it->second.name.empty()) by_name_.erase(it->second.name);
      items_.erase(it);
    } else {
      auto node = items_.extract(it);
      ++node.key().transmits;
      reinsert.push_back(std::move(node));
    }
  }
  for (auto& node : reinsert) items_.insert(std::move(node));
  return out;
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
