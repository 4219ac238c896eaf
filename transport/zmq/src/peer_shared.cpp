#include "peer_shared.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cstdint>

#include "request_channel.hpp"

namespace mesh::transport::detail {

std::shared_ptr<OneShotSignal> OneShotSignal::make() {
  const int fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (fd < 0) return nullptr;
  return std::make_shared<OneShotSignal>(fd);
}

OneShotSignal::~OneShotSignal() { ::close(fd_); }

void OneShotSignal::fire() {
  const std::uint64_t one = 1;
  // Cannot fail short of a counter overflow, and it is never read.
  [[maybe_unused]] auto n = ::write(fd_, &one, sizeof one);
}

PeerShared::PeerShared(std::string peer_name)
    : name(std::move(peer_name)), channels(std::make_shared<ChannelPool>()) {}
PeerShared::~PeerShared() = default;

PeerShared::FailureWatch PeerShared::watch_failures() {
  std::lock_guard lock(watch_mu_);
  if (!watch_signal_) watch_signal_ = OneShotSignal::make();
  return FailureWatch{failures.load(std::memory_order_acquire), watch_signal_};
}

void PeerShared::note_failure() {
  std::shared_ptr<OneShotSignal> signal;
  {
    std::lock_guard lock(watch_mu_);
    failures.fetch_add(1, std::memory_order_acq_rel);
    signal = std::move(watch_signal_);  // the next watcher gets a fresh one
  }
  if (signal) signal->fire();
}

void PeerShared::wake_watchers() {
  std::shared_ptr<OneShotSignal> signal;
  {
    std::lock_guard lock(watch_mu_);
    signal = std::move(watch_signal_);
  }
  if (signal) signal->fire();
}

}  // namespace mesh::transport::detail
