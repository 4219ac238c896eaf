#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <queue>
#include <unordered_map>
#include <vector>

#include "mesh/transport/envelope.hpp"
#include "mesh/transport/transport.hpp"

namespace mesh::transport::detail {

// ask_async results, keyed by request id. Bounded in entries and in the
// bytes of the answers held (TransportOptions::ask_limit, ask_bytes).
class AskTable {
 public:
  AskTable(std::size_t limit, std::size_t byte_limit);
  // False when the table is full (the ask is refused with MailboxFull).
  // `sooner` is set when the entry's retention is now the first to run
  // out: whoever sweeps the table must be woken to wait less.
  bool add(const MessageId& id, std::int64_t deadline_ms, std::int64_t free_at_ms, bool& sooner);
  void erase(const MessageId& id);
  void complete(const MessageId& id, Reply&& reply);
  AskResult check(const MessageId& id, std::chrono::milliseconds wait, bool remove);
  // Calls `fn` once when the pending entry `id` is answered or fails, on
  // the completing thread. False (fn dropped) when no such entry is pending.
  bool watch(const MessageId& id, std::function<void()> fn);
  // Frees entries whose retention ran out.
  void sweep(std::int64_t now_ms);
  // When the next entry's retention runs out (INT64_MAX: no entry), read
  // without the lock: the transport thread sleeps until then.
  std::int64_t next_free_ms() const { return next_free_ms_.load(std::memory_order_acquire); }
  std::size_t size() const;
  std::size_t bytes() const;

 private:
  struct Entry {
    AskState state = AskState::Pending;
    Reply reply;
    std::int64_t deadline_ms = 0;
    std::int64_t free_at_ms = 0;
    std::size_t bytes = 0;  // of the answer, counted in bytes_
    std::vector<std::function<void()>> watchers;  // told once it leaves Pending
  };
  void erase_locked(const MessageId& id);
  struct FreeAt {
    std::int64_t at_ms;
    MessageId id;
    bool operator>(const FreeAt& o) const { return at_ms > o.at_ms; }
  };
  void sweep_locked(std::int64_t now_ms);
  // Drops the FreeAt at the top left by entries taken out early (check,
  // erase) and publishes the next one.
  void publish_next_free_locked();

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::unordered_map<MessageId, Entry, MessageIdHash> entries_;
  std::priority_queue<FreeAt, std::vector<FreeAt>, std::greater<>> frees_;
  const std::size_t limit_;
  const std::size_t byte_limit_;
  std::size_t bytes_ = 0;
  std::atomic<std::int64_t> next_free_ms_{INT64_MAX};
};

}  // namespace mesh::transport::detail
