// Recent answers to requests, by requester node and request id, so that a
// request resent under the same id (OutMessage::id) is answered again
// instead of being dropped as a duplicate, and only to the node that asked
// (the key's source is the node the connection belongs to, as in
// DedupWindow). Bounded by count and by bytes; large answers are not kept.
// Owned by the transport thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <span>
#include <unordered_map>
#include <vector>

#include "dedup_window.hpp"
#include "mesh/transport/envelope.hpp"

namespace mesh::transport::detail {

class ReplyCache {
 public:
  struct Entry {
    std::vector<std::uint8_t> bytes;  // the encoded Response or Error
    MessageType type = MessageType::Response;
  };

  void put(const DedupKey& request, std::span<const std::uint8_t> bytes, MessageType type) {
    if (bytes.size() > kMaxEntryBytes || entries_.contains(request)) return;
    while (!order_.empty() && (order_.size() >= kMaxEntries || bytes_ + bytes.size() > kMaxBytes)) {
      auto it = entries_.find(order_.front());
      if (it != entries_.end()) {
        bytes_ -= it->second.bytes.size();
        entries_.erase(it);
      }
      order_.pop_front();
    }
    entries_.emplace(request, Entry{std::vector<std::uint8_t>(bytes.begin(), bytes.end()), type});
    order_.push_back(request);
    bytes_ += bytes.size();
  }

  const Entry* find(const DedupKey& request) const {
    auto it = entries_.find(request);
    return it == entries_.end() ? nullptr : &it->second;
  }

  static constexpr std::size_t kMaxEntries = 4096;
  static constexpr std::size_t kMaxBytes = 8u << 20;
  static constexpr std::size_t kMaxEntryBytes = 256u << 10;

  std::size_t bytes() const { return bytes_; }

 private:
  std::unordered_map<DedupKey, Entry, DedupKeyHash> entries_;
  std::deque<DedupKey> order_;  // oldest first
  std::size_t bytes_ = 0;
};

}  // namespace mesh::transport::detail
