#include <utility>
#include <vector>

#include "mesh/transport/transport.hpp"

namespace mesh::transport {

// A ring over a vector that doubles when full. A std::deque<Incoming>
// allocates a block every two messages (an Incoming is over 200 bytes);
// this allocates only while it grows. It keeps what it grew to (at most
// the inbox's limit rounded up to a power of two): giving it back whenever
// the consumer caught up made a flood regrow it over and over.
struct Inbox::Ring {
  std::vector<Incoming> slots;
  std::size_t head = 0;
  std::size_t count = 0;

  static constexpr std::size_t kInitial = 16;

  void push(Incoming&& m) {
    if (count == slots.size()) grow();
    slots[(head + count) % slots.size()] = std::move(m);
    ++count;
  }
  Incoming pop() {
    Incoming m = std::move(slots[head]);
    head = (head + 1) % slots.size();
    --count;
    if (count == 0) head = 0;
    return m;
  }
  void grow() {
    std::vector<Incoming> bigger(slots.empty() ? kInitial : 2 * slots.size());
    for (std::size_t i = 0; i < count; ++i) bigger[i] = std::move(slots[(head + i) % slots.size()]);
    slots.swap(bigger);
    head = 0;
  }
};

Inbox::Inbox(std::string name, std::size_t limit, QuickHandler quick)
    : name_(std::move(name)),
      limit_(limit),
      quick_(std::move(quick)),
      high_(std::make_unique<Ring>()),
      normal_(std::make_unique<Ring>()) {}

Inbox::~Inbox() = default;

ErrorCode Inbox::push(Incoming&& message) {
  bool wake = false;
  {
    std::lock_guard lock(mu_);
    if (closed_) return ErrorCode::TargetUnknown;
    if (high_->count + normal_->count >= limit_) return ErrorCode::MailboxFull;
    (message.envelope.priority == Priority::High ? *high_ : *normal_).push(std::move(message));
    wake = waiting_ > 0;
  }
  if (wake) cv_.notify_one();
  return ErrorCode::None;
}

std::size_t Inbox::push_batch(std::span<Incoming> messages, ErrorCode* why) {
  std::size_t taken = 0;
  bool wake = false;
  {
    std::lock_guard lock(mu_);
    if (closed_) {
      *why = ErrorCode::TargetUnknown;
      return 0;
    }
    for (; taken < messages.size() && high_->count + normal_->count < limit_; ++taken) {
      Incoming& m = messages[taken];
      (m.envelope.priority == Priority::High ? *high_ : *normal_).push(std::move(m));
    }
    wake = taken > 0 && waiting_ > 0;
  }
  *why = taken < messages.size() ? ErrorCode::MailboxFull : ErrorCode::None;
  if (wake) {
    if (taken > 1) {
      cv_.notify_all();  // several messages: let every waiting consumer take one
    } else {
      cv_.notify_one();
    }
  }
  return taken;
}

std::optional<Incoming> Inbox::pop(std::optional<std::chrono::milliseconds> timeout) {
  std::unique_lock lock(mu_);
  const auto ready = [this] { return high_->count > 0 || normal_->count > 0 || closed_; };
  if (!ready()) {
    ++waiting_;
    if (timeout) {
      cv_.wait_for(lock, *timeout, ready);
    } else {
      cv_.wait(lock, ready);
    }
    --waiting_;
  }
  Ring& ring = high_->count > 0 ? *high_ : *normal_;
  if (ring.count == 0) return std::nullopt;
  return ring.pop();
}

std::size_t Inbox::size() const {
  std::lock_guard lock(mu_);
  return high_->count + normal_->count;
}

void Inbox::close() {
  {
    std::lock_guard lock(mu_);
    closed_ = true;
  }
  cv_.notify_all();
}

bool Inbox::closed() const {
  std::lock_guard lock(mu_);
  return closed_;
}

}  // namespace mesh::transport
