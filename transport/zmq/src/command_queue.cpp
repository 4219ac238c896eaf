#include "command_queue.hpp"

#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>

namespace mesh::transport::detail {

CommandQueue::CommandQueue() {
  fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (fd_ < 0) throw TransportError(std::string("eventfd: ") + std::strerror(errno));
}

CommandQueue::~CommandQueue() {
  if (fd_ >= 0) ::close(fd_);
}

void CommandQueue::push(Command&& command) {
  bool wake = false;
  {
    std::lock_guard lock(mu_);
    items_.push_back(std::move(command));
    if (!signaled_) {
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

DelayedWake::DelayedWake(std::int64_t delay_ms) : delay_ms_(delay_ms) {
  fd_ = ::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  if (fd_ < 0) throw TransportError(std::string("timerfd_create: ") + std::strerror(errno));
}

DelayedWake::~DelayedWake() {
  if (fd_ >= 0) ::close(fd_);
}

void DelayedWake::arm() {
  // An exchange, not a load: the thread's clear() then reads what we
  // wrote, and so sees whatever we flagged before calling this.
  if (armed_.exchange(true, std::memory_order_acq_rel)) return;
  itimerspec at{};
  at.it_value.tv_sec = static_cast<time_t>(delay_ms_ / 1000);
  at.it_value.tv_nsec = static_cast<long>((delay_ms_ % 1000) * 1000000);
  // Cannot fail with a valid fd and a positive delay.
  [[maybe_unused]] int rc = ::timerfd_settime(fd_, 0, &at, nullptr);
}

void DelayedWake::clear() {
  std::uint64_t expirations = 0;
  [[maybe_unused]] auto n = ::read(fd_, &expirations, sizeof expirations);
  armed_.exchange(false, std::memory_order_acq_rel);
}

}  // namespace mesh::transport::detail
