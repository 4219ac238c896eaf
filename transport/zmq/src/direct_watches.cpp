#include "direct_watches.hpp"

#include <sys/timerfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "mesh/transport/transport.hpp"

namespace mesh::transport::detail {

DirectWatches::DirectWatches() {
  fd_ = ::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  if (fd_ < 0) throw TransportError(std::string("timerfd_create: ") + std::strerror(errno));
}

DirectWatches::~DirectWatches() {
  if (fd_ >= 0) ::close(fd_);
}

bool DirectWatches::add(std::shared_ptr<PendingCall> call) {
  const std::int64_t at = call->deadline_ms;
  std::lock_guard lock(mu_);
  if (closed_) return false;
  calls_.push_back(std::move(call));
  any_.store(true, std::memory_order_release);
  if (at < armed_ms_) {
    armed_ms_ = at;
    // steady_now_ms() reads std::chrono::steady_clock, which is
    // CLOCK_MONOTONIC here: the same clock as the timer's.
    itimerspec when{};
    const std::int64_t ms = at > 0 ? at : 1;  // 0 would disarm it
    when.it_value.tv_sec = static_cast<time_t>(ms / 1000);
    when.it_value.tv_nsec = static_cast<long>((ms % 1000) * 1000000);
    // Cannot fail with a valid fd and a valid time.
    [[maybe_unused]] int rc = ::timerfd_settime(fd_, TFD_TIMER_ABSTIME, &when, nullptr);
  }
  return true;
}

void DirectWatches::take(std::vector<std::shared_ptr<PendingCall>>& out) {
  if (!any_.load(std::memory_order_acquire)) return;
  std::lock_guard lock(mu_);
  for (auto& call : calls_) out.push_back(std::move(call));
  calls_.clear();
  any_.store(false, std::memory_order_relaxed);
}

void DirectWatches::clear_alarm() {
  std::uint64_t expirations = 0;
  [[maybe_unused]] auto n = ::read(fd_, &expirations, sizeof expirations);
  std::lock_guard lock(mu_);
  // Whatever was added before this lock is taken by the thread right
  // after (it takes watches after clearing the alarm): nothing it covers
  // goes unwatched. A deadline the timer had not reached yet fires again
  // on its own; one it had passed is in the thread's table now.
  armed_ms_ = INT64_MAX;
}

void DirectWatches::close(std::vector<std::shared_ptr<PendingCall>>& out) {
  std::lock_guard lock(mu_);
  closed_ = true;
  for (auto& call : calls_) out.push_back(std::move(call));
  calls_.clear();
  any_.store(false, std::memory_order_relaxed);
}

}  // namespace mesh::transport::detail
