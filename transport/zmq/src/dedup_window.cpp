#include "dedup_window.hpp"

#include <algorithm>

namespace mesh::transport {

namespace {
// Buckets reserved up front, so that a window filling up does not rehash
// on the transport thread; larger windows grow as usual.
constexpr std::size_t kMaxReservedIds = 1u << 16;
}  // namespace

DedupWindow::DedupWindow(std::size_t capacity, std::int64_t window_ms)
    : capacity_(capacity), window_ms_(window_ms) {
  seen_.reserve(std::min(capacity_, kMaxReservedIds));
}

void DedupWindow::expire(std::int64_t now_ms) {
  // Entries are in first-seen order and now_ms does not go backwards, so
  // the expired ones are a prefix.
  while (!order_.empty() && now_ms - order_.front().seen_ms >= window_ms_) {
    seen_.erase(order_.front().key);
    order_.pop_front();
  }
}

bool DedupWindow::insert(std::string_view source, const MessageId& id, std::int64_t now_ms) {
  if (capacity_ == 0) return true;
  expire(now_ms);
  DedupKey key{std::string(source), id};
  if (seen_.contains(key)) return false;
  if (order_.size() == capacity_) {
    seen_.erase(order_.front().key);
    order_.pop_front();
  }
  seen_.insert(key);
  order_.push_back(Entry{std::move(key), now_ms});
  return true;
}

}  // namespace mesh::transport
