#include "transport_internal.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>

#include "request_channel.hpp"

namespace mesh::transport::detail {

std::int64_t unix_now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::int64_t steady_now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void record_request_latency(Counters& counters, std::chrono::steady_clock::time_point started,
                            bool answered) {
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                      std::chrono::steady_clock::now() - started)
                      .count();
  const double seconds = static_cast<double>(ns) / 1e9;
  const auto bound = std::lower_bound(kRequestLatencyBounds.begin(), kRequestLatencyBounds.end(), seconds);
  const auto bucket = static_cast<std::size_t>(bound - kRequestLatencyBounds.begin());
  const std::size_t outcome = answered ? 0 : 1;
  bump(counters.latency_sum_ns[outcome], static_cast<std::uint64_t>(std::max<std::int64_t>(ns, 0)));
  bump(counters.latency_buckets[outcome][bucket]);
}

// --- PendingCall ---

PendingCall::PendingCall(MessageId call_id, const void* call_peer, std::int64_t deadline,
                         std::function<void(Reply)> done, std::atomic<std::uint64_t>* gauge)
    : id(call_id), peer(call_peer), deadline_ms(deadline), callback_(std::move(done)), gauge_(gauge) {
  if (gauge_) bump(*gauge_);
}

void PendingCall::track(std::shared_ptr<PeerShared> target) {
  target->pending_main.fetch_add(1, std::memory_order_acq_rel);
  tracked_ = std::move(target);
}

bool PendingCall::complete(Reply&& reply, std::atomic<std::uint64_t>* outcome) {
  if (done_.exchange(true, std::memory_order_acq_rel)) return false;
  if (gauge_) drop(*gauge_);
  if (tracked_) tracked_->pending_main.fetch_sub(1, std::memory_order_acq_rel);
  if (outcome) bump(*outcome);
  // Only the winner of the exchange touches the callback.
  auto callback = std::move(callback_);
  callback_ = nullptr;
  if (callback) {
    try {
      callback(std::move(reply));
    } catch (...) {
      // A user callback must not take the transport thread down.
    }
  }
  return true;
}

void PendingCall::cancel() {
  if (done_.exchange(true, std::memory_order_acq_rel)) return;
  if (gauge_) drop(*gauge_);
  if (tracked_) tracked_->pending_main.fetch_sub(1, std::memory_order_acq_rel);
  callback_ = nullptr;
}

PeerShared::PeerShared(std::string peer_name)
    : name(std::move(peer_name)), channels(std::make_shared<ChannelPool>()) {}
PeerShared::~PeerShared() = default;

// --- CommandQueue ---

CommandQueue::CommandQueue() {
  fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (fd_ < 0) throw TransportError(std::string("eventfd: ") + std::strerror(errno));
}

CommandQueue::~CommandQueue() {
  if (fd_ >= 0) ::close(fd_);
}

void CommandQueue::push(Command&& command, bool urgent) {
  bool wake = false;
  {
    std::lock_guard lock(mu_);
    items_.push_back(std::move(command));
    if (urgent && !signaled_) {
      signaled_ = true;
      wake = true;
    }
  }
  if (wake) {
    const std::uint64_t one = 1;
    // Cannot fail short of a counter overflow; EAGAIN would mean the
    // thread is woken anyway.
    [[maybe_unused]] auto n = ::write(fd_, &one, sizeof one);
  }
}

void CommandQueue::take(std::vector<Command>& out, bool readable) {
  // Clear the eventfd before swapping: a push after the swap then writes
  // again (signaled_ is reset below), so no wake-up is lost.
  if (readable) {
    std::uint64_t count = 0;
    [[maybe_unused]] auto n = ::read(fd_, &count, sizeof count);
  }
  out.clear();
  std::lock_guard lock(mu_);
  out.swap(items_);
  signaled_ = false;
}

// --- LocalDeadlines ---

bool LocalDeadlines::add(std::shared_ptr<PendingCall> call) {
  std::lock_guard lock(mu_);
  // Calls completed by their responder stay in the heap until their
  // deadline; drop them whenever the heap has doubled, so that it holds
  // at most about twice the calls still open.
  if (heap_.size() >= compact_at_) {
    std::erase_if(heap_, [](const auto& c) { return c->done(); });
    std::make_heap(heap_.begin(), heap_.end(), later);
    compact_at_ = std::max<std::size_t>(1024, 2 * heap_.size());
  }
  const std::int64_t deadline = call->deadline_ms;
  heap_.push_back(std::move(call));
  std::push_heap(heap_.begin(), heap_.end(), later);
  return heap_.front()->deadline_ms == deadline;
}

void LocalDeadlines::expire(std::int64_t now_ms, std::atomic<std::uint64_t>& timed_out) {
  std::vector<std::shared_ptr<PendingCall>> due;
  {
    std::lock_guard lock(mu_);
    while (!heap_.empty() && heap_.front()->deadline_ms <= now_ms) {
      std::pop_heap(heap_.begin(), heap_.end(), later);
      due.push_back(std::move(heap_.back()));
      heap_.pop_back();
    }
  }
  // Callbacks run outside the lock: they may start new requests.
  for (auto& call : due) call->complete(Reply{ErrorCode::Timeout, {}}, &timed_out);
}

void LocalDeadlines::fail_all(ErrorCode reason, std::atomic<std::uint64_t>& failed) {
  std::vector<std::shared_ptr<PendingCall>> all;
  {
    std::lock_guard lock(mu_);
    all.swap(heap_);
  }
  for (auto& call : all) call->complete(Reply{reason, {}}, &failed);
}

std::int64_t LocalDeadlines::next_ms() const {
  std::lock_guard lock(mu_);
  return heap_.empty() ? INT64_MAX : heap_.front()->deadline_ms;
}

// --- AskTable ---

AskTable::AskTable(std::size_t limit, std::size_t byte_limit) : limit_(limit), byte_limit_(byte_limit) {}

namespace {
std::size_t reply_cost(const Reply& r) { return r.envelope.payload.size() + r.envelope.context.size(); }
}  // namespace

bool AskTable::add(const MessageId& id, std::int64_t deadline_ms, std::int64_t free_at_ms) {
  std::lock_guard lock(mu_);
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
  return true;
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
}

void AskTable::complete(const MessageId& id, Reply&& reply) {
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
  }
  cv_.notify_all();
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
}

std::size_t AskTable::size() const {
  std::lock_guard lock(mu_);
  return entries_.size();
}

// --- Core ---

Core::Core(TransportOptions opts)
    : options(std::move(opts)), asks(options.ask_limit, options.ask_bytes) {}

std::shared_ptr<Inbox> Core::find_inbox(std::string_view name) const {
  std::shared_lock lock(inbox_mu);
  auto it = inboxes.find(name);
  if (it == inboxes.end() || it->second->closed()) return nullptr;
  return it->second;
}

void Core::register_pool(const std::shared_ptr<ChannelPool>& pool) {
  std::lock_guard lock(pools_mu_);
  if (pools_.size() >= pools_prune_at_) {
    std::erase_if(pools_, [](const auto& w) { return w.expired(); });
    pools_prune_at_ = std::max<std::size_t>(64, 2 * pools_.size());
  }
  pools_.push_back(pool);
}

std::vector<std::shared_ptr<ChannelPool>> Core::live_pools() {
  std::lock_guard lock(pools_mu_);
  std::vector<std::shared_ptr<ChannelPool>> out;
  for (const auto& w : pools_) {
    if (auto p = w.lock()) out.push_back(std::move(p));
  }
  return out;
}

std::shared_ptr<PeerShared> Core::find_peer(std::string_view name) const {
  std::shared_lock lock(peers_mu);
  auto it = peers.find(name);
  return it == peers.end() ? nullptr : it->second;
}

// --- envelope helpers ---

EnvelopeView view_of(const Envelope& e) {
  EnvelopeView v;
  v.id = e.id;
  v.type = e.type;
  v.priority = e.priority;
  v.correlation = e.correlation;
  v.sender_agent = e.sender_agent;
  v.sender_node = e.sender_node;
  v.target = e.target;
  v.created_ms = e.created_ms;
  v.deadline_ms = e.deadline_ms;
  v.error = e.error;
  v.context = e.context;
  v.payload = e.payload;
  return v;
}

Envelope make_reply(Core& core, const EnvelopeView& request, ErrorCode error,
                    std::vector<std::uint8_t> payload, std::vector<std::uint8_t> context,
                    Priority priority) {
  Envelope e;
  e.id = core.ids.next();
  e.type = error == ErrorCode::None ? MessageType::Response : MessageType::Error;
  e.priority = priority;
  e.correlation = request.id;
  e.sender_agent = std::string(request.target);
  e.sender_node = core.options.node_name;
  e.target = std::string(request.sender_agent);
  e.created_ms = unix_now_ms();
  e.error = error;
  if (context.empty()) {
    e.context.assign(request.context.begin(), request.context.end());
  } else {
    e.context = std::move(context);
  }
  e.payload = std::move(payload);
  return e;
}

ErrorCode run_quick(const QuickHandler& handler, const EnvelopeView& request,
                    std::vector<std::uint8_t>& payload) {
  try {
    return handler(request, payload);
  } catch (...) {
    return ErrorCode::Rejected;
  }
}

}  // namespace mesh::transport::detail
