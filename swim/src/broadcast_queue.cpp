#include "broadcast_queue.hpp"

#include <limits>
#include <utility>

namespace mesh::swim {

void BroadcastQueue::queue(std::string name, Bytes msg, std::uint64_t notify) {
  if (!name.empty()) {
    if (auto it = by_name_.find(name); it != by_name_.end()) {
      Item* old = it->second;
      finish(old);
      erase(old);
    }
  }
  auto item = std::make_unique<Item>();
  item->id = ++next_id_;
  item->len = msg.size();
  item->name = std::move(name);
  item->msg = std::make_shared<const Bytes>(std::move(msg));
  item->notify = notify;
  Item* raw = item.get();
  owned_.emplace(raw->id, std::move(item));
  items_.insert(raw);
  if (!raw->name.empty()) by_name_[raw->name] = raw;
}

std::vector<SharedBytes> BroadcastQueue::get(std::size_t overhead, std::size_t limit,
                                             int transmit_limit) {
  std::vector<SharedBytes> out;
  if (items_.empty()) return out;
  std::vector<Item*> reinsert;
  std::size_t used = 0;
  int tier = (*items_.begin())->transmits;
  const int last_tier = (*items_.rbegin())->transmits;
  // Walk the transmit tiers from the least sent; in each, take the largest
  // message that still fits, until nothing fits (queue.go GetBroadcasts).
  while (tier <= last_tier) {
    if (used + overhead >= limit) break;
    const std::size_t free = limit - used - overhead;
    Item probe;
    probe.transmits = tier;
    probe.len = free;
    probe.id = std::numeric_limits<std::uint64_t>::max();
    auto it = items_.lower_bound(&probe);
    if (it == items_.end() || (*it)->transmits != tier) {
      ++tier;
      continue;
    }
    Item* keep = *it;
    items_.erase(it);
    used += overhead + keep->len;
    out.push_back(keep->msg);
    if (keep->transmits + 1 >= transmit_limit) {
      finish(keep);
      if (!keep->name.empty()) by_name_.erase(keep->name);
      owned_.erase(keep->id);
    } else {
      ++keep->transmits;
      reinsert.push_back(keep);
    }
  }
  for (Item* item : reinsert) items_.insert(item);
  return out;
}

std::vector<std::uint64_t> BroadcastQueue::drain_finished() { return std::exchange(finished_, {}); }

void BroadcastQueue::finish(Item* item) {
  if (item->notify != 0) finished_.push_back(item->notify);
}

void BroadcastQueue::erase(Item* item) {
  items_.erase(item);
  if (!item->name.empty()) by_name_.erase(item->name);
  owned_.erase(item->id);
}

}  // namespace mesh::swim
