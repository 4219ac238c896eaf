#include "command_queue.hpp"

#include <sys/eventfd.h>
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

}  // namespace mesh::transport::detail
