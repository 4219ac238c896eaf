#include "ask_table.hpp"

#include <algorithm>

#include "clock.hpp"

namespace mesh::transport::detail {

AskTable::AskTable(std::size_t limit, std::size_t byte_limit) : limit_(limit), byte_limit_(byte_limit) {}

namespace {
std::size_t reply_cost(const Reply& r) { return r.envelope.payload.size() + r.envelope.context.size(); }
}  // namespace

bool AskTable::add(const MessageId& id, std::int64_t deadline_ms, std::int64_t free_at_ms, bool& sooner) {
  std::lock_guard lock(mu_);
  sooner = false;
  sweep_locked(steady_now_ms());
  if (entries_.size() >= limit_ && !entries_.contains(id)) return false;
  Entry e;
  e.deadline_ms = deadline_ms;
  e.free_at_ms = free_at_ms;
  erase_locked(id);
  entries_[id] = std::move(e);
  frees_.push(FreeAt{free_at_ms, id});
  // Entries taken out by check() leave their FreeAt behind; rebuild the
  // heap before those outnumber the live entries.
  if (frees_.size() > 2 * entries_.size() + 1024) {
    std::vector<FreeAt> live;
    live.reserve(entries_.size());
    for (const auto& [key, entry] : entries_) live.push_back(FreeAt{entry.free_at_ms, key});
    frees_ = decltype(frees_)(std::greater<>(), std::move(live));
  }
  const std::int64_t before = next_free_ms_.load(std::memory_order_relaxed);
  publish_next_free_locked();
  sooner = next_free_ms_.load(std::memory_order_relaxed) < before;
  return true;
}

void AskTable::publish_next_free_locked() {
  while (!frees_.empty()) {
    auto it = entries_.find(frees_.top().id);
    if (it != entries_.end() && it->second.free_at_ms == frees_.top().at_ms) break;
    frees_.pop();
  }
  next_free_ms_.store(frees_.empty() ? INT64_MAX : frees_.top().at_ms, std::memory_order_release);
}

void AskTable::erase_locked(const MessageId& id) {
  auto it = entries_.find(id);
  if (it == entries_.end()) return;
  bytes_ -= it->second.bytes;
  entries_.erase(it);
}

void AskTable::erase(const MessageId& id) {
  std::lock_guard lock(mu_);
  erase_locked(id);
  publish_next_free_locked();
}

bool AskTable::watch(const MessageId& id, std::function<void()> fn) {
  std::lock_guard lock(mu_);
  auto it = entries_.find(id);
  if (it == entries_.end() || it->second.state != AskState::Pending) return false;
  it->second.watchers.push_back(std::move(fn));
  return true;
}

void AskTable::complete(const MessageId& id, Reply&& reply) {
  std::vector<std::function<void()>> watchers;
  {
    std::lock_guard lock(mu_);
    auto it = entries_.find(id);
    if (it == entries_.end() || it->second.state != AskState::Pending) return;
    it->second.state = reply.error == ErrorCode::Timeout ? AskState::Expired : AskState::Ready;
    std::size_t cost = reply_cost(reply);
    if (cost > 0 && bytes_ + cost > byte_limit_) {
      // No room for the answer: the caller learns that, instead of the
      // table growing past its budget.
      reply = Reply{ErrorCode::MailboxFull, {}};
      cost = 0;
    }
    it->second.reply = std::move(reply);
    it->second.bytes = cost;
    bytes_ += cost;
    watchers.swap(it->second.watchers);
  }
  cv_.notify_all();
  for (auto& w : watchers) w();
}

std::size_t AskTable::bytes() const {
  std::lock_guard lock(mu_);
  return bytes_;
}

AskResult AskTable::check(const MessageId& id, std::chrono::milliseconds wait, bool remove) {
  std::unique_lock lock(mu_);
  sweep_locked(steady_now_ms());
  auto it = entries_.find(id);
  if (it == entries_.end()) return {};
  if (it->second.state == AskState::Pending && wait.count() > 0) {
    // Wait no longer than the request's own deadline: past it the entry
    // is Expired whether or not the timeout has fired yet.
    const auto now = steady_now_ms();
    const auto until_ms = std::min(now + wait.count(), it->second.deadline_ms);
    const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(std::max<std::int64_t>(0, until_ms - now));
    cv_.wait_until(lock, until, [&] {
      auto j = entries_.find(id);
      return j == entries_.end() || j->second.state != AskState::Pending;
    });
    it = entries_.find(id);
    if (it == entries_.end()) return {};
  }
  AskResult result;
  Entry& e = it->second;
  if (e.state == AskState::Pending && steady_now_ms() >= e.deadline_ms) {
    result.state = AskState::Expired;
    return result;
  }
  result.state = e.state;
  if (e.state == AskState::Ready) {
    if (remove) {
      result.reply = std::move(e.reply);
      bytes_ -= e.bytes;
      entries_.erase(it);
      publish_next_free_locked();
    } else {
      result.reply = e.reply;
    }
  }
  return result;
}

void AskTable::sweep(std::int64_t now_ms) {
  std::lock_guard lock(mu_);
  sweep_locked(now_ms);
}

void AskTable::sweep_locked(std::int64_t now_ms) {
  while (!frees_.empty() && frees_.top().at_ms <= now_ms) {
    auto it = entries_.find(frees_.top().id);
    if (it != entries_.end() && it->second.free_at_ms <= now_ms) {
      bytes_ -= it->second.bytes;
      entries_.erase(it);
    }
    frees_.pop();
  }
  publish_next_free_locked();
}

std::size_t AskTable::size() const {
  std::lock_guard lock(mu_);
  return entries_.size();
}

}  // namespace mesh::transport::detail
