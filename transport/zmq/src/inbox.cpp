#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
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
    Incoming m;
    pop_into(m);
    return m;
  }
  void pop_into(Incoming& out) {
    out = std::move(slots[head]);
    head = (head + 1) % slots.size();
    --count;
    if (count == 0) head = 0;
  }
  void grow() {
    std::vector<Incoming> bigger(slots.empty() ? kInitial : 2 * slots.size());
    for (std::size_t i = 0; i < count; ++i) bigger[i] = std::move(slots[(head + i) % slots.size()]);
    slots.swap(bigger);
    head = 0;
  }
};

namespace {

// Waits on `cv` until `ready()` or the timeout (none: for good), counted
// in `waiting` meanwhile so that pushes know to wake it.
template <class Ready>
void wait_until_ready(std::condition_variable& cv, std::unique_lock<std::mutex>& lock, std::size_t& waiting,
                      std::optional<std::chrono::milliseconds> timeout, Ready ready) {
  if (ready()) return;
  ++waiting;
  if (timeout) {
    cv.wait_for(lock, *timeout, ready);
  } else {
    cv.wait(lock, ready);
  }
  --waiting;
}

std::size_t share_of(std::size_t limit, double share) {
  if (share >= 1.0) return limit;
  const double part = static_cast<double>(limit) * share;
  return std::max<std::size_t>(1, static_cast<std::size_t>(part));
}

}  // namespace

Inbox::Inbox(std::string name, std::size_t limit, QuickHandler quick, std::size_t byte_limit, double peer_share)
    : name_(std::move(name)),
      limit_(limit),
      quick_(quick ? std::make_unique<const QuickHandler>(std::move(quick)) : nullptr),
      byte_limit_(byte_limit),
      source_limit_(share_of(limit, peer_share)),
      source_byte_limit_(share_of(byte_limit, peer_share)),
      sharing_(source_limit_ < limit_ || source_byte_limit_ < byte_limit_) {}

Inbox::~Inbox() = default;

const QuickHandler& Inbox::quick_handler() const {
  static const QuickHandler none;
  return quick_ ? *quick_ : none;
}

std::condition_variable& Inbox::cv_locked() {
  if (!cv_) cv_ = std::make_unique<std::condition_variable>();
  return *cv_;
}

Inbox::Ring& Inbox::ring_of(Priority priority) {
  auto& r = rings_[static_cast<std::size_t>(priority)];
  if (!r) r = std::make_unique<Ring>();
  return *r;
}

Inbox::Ring* Inbox::next_ring_locked() {
  for (std::size_t i = rings_.size(); i-- > 0;) {
    if (rings_[i] && rings_[i]->count > 0) return rings_[i].get();
  }
  return nullptr;
}

std::size_t Inbox::queued_locked() const {
  std::size_t n = 0;
  for (const auto& r : rings_) n += r ? r->count : 0;
  return n;
}

std::size_t Inbox::cost(const Incoming& m) {
  const Envelope& e = m.envelope;
  return e.payload.size() + e.context.size() + e.sender_agent.size() + e.sender_node.size() + e.target.size() +
         e.thread.size();
}

// Both bounds, and the share of a remote source; a message that fits is
// counted at once (one hash lookup for the source). A queue that holds
// nothing (in all, or of this source) takes one message of any size, so a
// byte budget below the frame size refuses floods, not every message.
ErrorCode Inbox::admit_locked(const Incoming& m, std::size_t cost) {
  const std::size_t count = queued_locked();
  if (count + places_held_ >= limit_) return ErrorCode::MailboxFull;
  if (count > 0 && bytes_ + cost > byte_limit_) return ErrorCode::MailboxFull;
  if (sharing_ && !m.source.empty()) {
    if (!by_source_) by_source_ = std::make_unique<std::unordered_map<std::string, Held>>();
    auto [it, fresh] = by_source_->try_emplace(m.source);
    Held& held = it->second;
    if (!fresh && (held.count >= source_limit_ || held.bytes + cost > source_byte_limit_)) {
      return ErrorCode::MailboxFull;
    }
    ++held.count;
    held.bytes += cost;
  }
  bytes_ += cost;
  return ErrorCode::None;
}

void Inbox::release_locked(const Incoming& m, std::size_t cost) {
  bytes_ -= cost;
  if (!sharing_ || m.source.empty()) return;
  if (!by_source_) return;
  auto it = by_source_->find(m.source);
  if (it == by_source_->end()) return;
  --it->second.count;
  it->second.bytes -= cost;
  if (it->second.count == 0) by_source_->erase(it);
}

ErrorCode Inbox::push(Incoming&& message) {
  bool wake = false;
  bool ready = false;
  const std::size_t c = cost(message);
  {
    std::lock_guard lock(mu_);
    if (closed_) return ErrorCode::TargetUnknown;
    if (const ErrorCode e = admit_locked(message, c); e != ErrorCode::None) return e;
    ring_of(message.envelope.priority).push(std::move(message));
    wake = waiting_ > 0;
    ready = std::exchange(armed_, false);
  }
  // A waiter made cv_ before it waited, under the lock, and it stays.
  if (wake) cv_->notify_one();
  if (ready) ready_();
  return ErrorCode::None;
}

std::size_t Inbox::push_batch(std::span<Incoming> messages, std::span<ErrorCode> outcome) {
  std::size_t taken = 0;
  bool wake = false;
  bool ready = false;
  {
    std::lock_guard lock(mu_);
    if (closed_) {
      std::fill(outcome.begin(), outcome.end(), ErrorCode::TargetUnknown);
      return 0;
    }
    // Each message on its own merits, so that one source over its share
    // does not cost the others their place; but once a source is refused,
    // its later messages in the batch are too, so that what it sent is
    // delivered in order or refused, never reordered.
    std::vector<std::string_view> refused_sources;
    for (std::size_t i = 0; i < messages.size(); ++i) {
      Incoming& m = messages[i];
      const std::size_t c = cost(m);
      ErrorCode e = std::find(refused_sources.begin(), refused_sources.end(), m.source) != refused_sources.end()
                        ? ErrorCode::MailboxFull
                        : admit_locked(m, c);
      outcome[i] = e;
      if (e != ErrorCode::None) {
        refused_sources.push_back(m.source);
        continue;
      }
      ring_of(m.envelope.priority).push(std::move(m));
      ++taken;
    }
    wake = taken > 0 && waiting_ > 0;
    ready = taken > 0 && std::exchange(armed_, false);
  }
  if (ready) ready_();
  if (wake) {
    if (taken > 1) {
      cv_->notify_all();  // several messages: let every waiting consumer take one
    } else {
      cv_->notify_one();
    }
  }
  return taken;
}

std::optional<Incoming> Inbox::pop(std::optional<std::chrono::milliseconds> timeout) {
  std::unique_lock lock(mu_);
  wait_until_ready(cv_locked(), lock, waiting_, timeout, [this] { return queued_locked() > 0 || closed_; });
  Ring* ring = next_ring_locked();
  if (ring == nullptr) return std::nullopt;
  Incoming m = ring->pop();
  release_locked(m, cost(m));
  return m;
}

std::size_t Inbox::pop_batch(std::vector<Incoming>& out, std::size_t max,
                             std::optional<std::chrono::milliseconds> timeout) {
  std::unique_lock lock(mu_);
  wait_until_ready(cv_locked(), lock, waiting_, timeout, [this] { return queued_locked() > 0 || closed_; });
  std::size_t n = 0;
  for (Ring* ring = next_ring_locked(); ring != nullptr && n < max; ring = next_ring_locked()) {
    // A higher priority may not arrive meanwhile: the lock is held.
    for (; ring->count > 0 && n < max; ++n) {
      out.push_back(ring->pop());
      release_locked(out.back(), cost(out.back()));
    }
  }
  return n;
}

bool Inbox::try_pop_or_arm(Incoming& out, bool& armed) {
  std::lock_guard lock(mu_);
  Ring* ring = next_ring_locked();
  if (ring == nullptr) {
    armed_ = !closed_ && ready_ != nullptr;
    armed = armed_;
    return false;
  }
  ring->pop_into(out);
  release_locked(out, cost(out));
  if (ring->count == 0 && next_ring_locked() == nullptr) armed_ = !closed_ && ready_ != nullptr;
  armed = armed_;
  return true;
}

void Inbox::set_ready_callback(std::function<void()> ready) {
  std::lock_guard lock(mu_);
  ready_ = std::move(ready);
}

std::size_t Inbox::bytes() const {
  std::lock_guard lock(mu_);
  return bytes_;
}

void Inbox::hold_place() {
  std::lock_guard lock(mu_);
  ++places_held_;
}

void Inbox::release_place() {
  std::lock_guard lock(mu_);
  if (places_held_ > 0) --places_held_;
}

std::size_t Inbox::size() const {
  std::lock_guard lock(mu_);
  return queued_locked();
}

void Inbox::close() {
  bool ready = false;
  std::condition_variable* cv = nullptr;
  {
    std::lock_guard lock(mu_);
    closed_ = true;
    ready = std::exchange(armed_, false);
    cv = cv_.get();
  }
  if (cv) cv->notify_all();
  if (ready) ready_();
}

bool Inbox::closed() const { return closed_.load(std::memory_order_acquire); }

}  // namespace mesh::transport
