// The transport thread's loop: one poll() over the sockets' ZMQ_FDs and
// the command queue's eventfd, the sockets serviced when they may have
// work, and the commands callers queued.
#include "loop.hpp"

#include <poll.h>
#include <pthread.h>

#include <algorithm>
#include <limits>
#include <type_traits>
#include <utility>
#include <variant>

#include "zmq_io.hpp"

namespace mesh::transport::detail {

// The fds polled before the peers': the command queue's eventfd, the
// ROUTER, the ZAP handler, the dealer recheck timer and the alarm of
// requests callers sent themselves.
constexpr std::size_t kFixedFds = 5;

// The loop polls the sockets' ZMQ_FDs itself instead of calling
// zmq_poll. zmq_poll asks every socket for ZMQ_EVENTS before and after
// each wait (a syscall or two per socket, and a node has two sockets per
// peer); here only the sockets that may have something to do are asked.
// cppzmq's zmq::poll is zmq_poll underneath (and its poller_t needs
// libzmq's draft API), so the poll stays ours.
// The rule that makes ZMQ_FD (edge-like: it signals command arrival, not
// message arrival) safe: a socket is "flagged" when its fd polls readable
// or when we used it (any send or receive may consume the signal), and a
// flagged socket is only unflagged by a check that finds nothing to do: a
// receive answering EAGAIN, or ZMQ_EVENTS without the wanted events. Both
// process the socket's pending commands and leave its pipes armed to
// signal their next change.
void Loop::run() {
  ::pthread_setname_np(::pthread_self(), "mesh-transport");  // for top, perf, gdb
  bool eventfd_readable = false;
  std::vector<pollfd> fds;
  std::vector<std::pair<Peer*, bool>> fd_owner;  // per fd after the fixed ones: peer, is-monitor
  {
    // From here callers may answer requests on the ROUTER themselves.
    std::lock_guard lock(core_->router.mu);
    core_->router.socket = &router_;
    core_->router.replies = &replies_;
  }
  while (!stop_) {
    take_direct_watches();  // before any reply to them is read
    if (!deferred_.empty()) retry_deferred();
    if (router_check_) service_router();
    if (zap_check_) service_zap();
    for (auto& [name, p] : peers_) {
      // A caller's direct send may have taken the fd's signal: look again
      // (the caller set dealer_recheck, which woke us if nothing else did).
      if (p->shared->dealer_used.load(std::memory_order_relaxed) &&
          p->shared->dealer_used.exchange(false, std::memory_order_acq_rel)) {
        p->dealer_check = true;
        p->used = true;
      }
      if (p->monitor_check) service_monitor(*p);
      if (p->dealer_check) service_dealer(*p);
    }
    process_commands(eventfd_readable);
    eventfd_readable = false;
    if (stop_) break;

    std::int64_t now = steady_now_ms();
    expire_deadlines(now);
    core_->local_deadlines.expire(now, core_->counters.requests_timed_out);
    for (auto& [name, p] : peers_) {
      if (p->rebuild_at_ms != 0 && p->rebuild_at_ms <= now) {
        p->rebuild_at_ms = 0;
        close_dealer(*p);
        open_dealer(*p);
      }
    }
    close_idle(now);
    trim_if_due(now);
    if (now >= core_->asks.next_free_ms()) core_->asks.sweep(now);
    if (now >= next_held_ms_) expire_held_all(now);

    // Wait until the next thing due, and no longer: a request's deadline
    // (ours, or a same-node one's), a DEALER's rebuild, the end of an ask
    // entry's retention, a held frame's hold_timeout, the retry of
    // deferred replies. With none of those, for good (-1): a socket, a
    // command or the dealer recheck timer wakes us. A command that brings
    // an earlier deadline wakes us through the eventfd, and the wait is
    // computed anew after every batch of commands.
    now = steady_now_ms();  // what ran since may have taken a while
    fds.clear();
    fd_owner.clear();
    fds.push_back(pollfd{core_->commands.fd(), POLLIN, 0});
    fds.push_back(pollfd{router_fd_, POLLIN, 0});
    fds.push_back(pollfd{zap_fd_, POLLIN, 0});  // -1 without CURVE: poll ignores it
    fds.push_back(pollfd{core_->dealer_recheck.fd(), POLLIN, 0});
    fds.push_back(pollfd{core_->direct_watches.fd(), POLLIN, 0});
    // After the commands: a caller sets recheck before its wake-up, so a
    // wake-up taken above comes with its recheck seen here.
    if (core_->router.recheck.load(std::memory_order_acquire) &&
        core_->router.recheck.exchange(false, std::memory_order_acq_rel)) {
      router_check_ = true;
    }
    bool busy = router_check_ || zap_check_;
    std::int64_t wake = std::min({next_deadline_ms(), core_->local_deadlines.next_ms(),
                                  core_->asks.next_free_ms(), next_held_ms_, next_idle_ms(), trim_at_ms_});
    // Room for deferred replies shows on the ROUTER's fd (an activate_write
    // command); the timer is the fallback, while replies wait.
    if (!deferred_.empty()) wake = std::min(wake, now + kDeferredRetryMs);
    for (auto& [name, p] : peers_) {
      if (p->rebuild_at_ms != 0) wake = std::min(wake, p->rebuild_at_ms);
      if (!p->dealer) continue;
      // A caller's request sent since the top of the loop found input
      // waiting (send_request_direct); its wake-up may have been taken
      // with the commands above.
      if (p->shared->dealer_used.load(std::memory_order_relaxed) &&
          p->shared->dealer_used.exchange(false, std::memory_order_acq_rel)) {
        p->dealer_check = true;
        p->used = true;
      }
      busy = busy || p->dealer_check || p->monitor_check;
      fds.push_back(pollfd{p->dealer_fd, POLLIN, 0});
      fd_owner.emplace_back(p.get(), false);
      fds.push_back(pollfd{p->monitor_fd, POLLIN, 0});
      fd_owner.emplace_back(p.get(), true);
    }
    int timeout = -1;
    if (busy) {
      timeout = 0;
    } else if (wake != INT64_MAX) {
      timeout = static_cast<int>(std::clamp<std::int64_t>(wake - now, 0, std::numeric_limits<int>::max()));
    }
    const int rc = ::poll(fds.data(), static_cast<nfds_t>(fds.size()), timeout);
    if (rc <= 0) continue;  // timeout, or EINTR
    eventfd_readable = (fds[0].revents & POLLIN) != 0;
    if (fds[1].revents) router_check_ = true;
    if (fds[2].revents) zap_check_ = true;
    // Cleared before the next turn looks at dealer_used (see DelayedWake).
    if (fds[3].revents) core_->dealer_recheck.clear();
    // The requests it covers are taken at the top of the next turn, and
    // their deadlines then count in the wait.
    if (fds[4].revents) core_->direct_watches.clear_alarm();
    // Peers cannot have been removed since fd_owner was filled.
    for (std::size_t i = 0; i < fd_owner.size(); ++i) {
      if (!fds[kFixedFds + i].revents) continue;
      auto [peer, is_monitor] = fd_owner[i];
      (is_monitor ? peer->monitor_check : peer->dealer_check) = true;
    }
  }
  shutdown_all();
}

// A receive that returns EAGAIN has processed the socket's pending
// commands first (socket_base_t::recv, the DONTWAIT path), so a socket
// read until EAGAIN is as clean as one whose ZMQ_EVENTS showed no input:
// reading is how these are checked, which saves the extra ZMQ_EVENTS call
// per wake-up. A send gives no such guarantee, which is why every send
// flags its socket again.
void Loop::service_router() {
  for (;;) {
    const bool drained = read_router();
    const bool sent = flush_deliveries();
    if (!drained) return;  // stopped at the batch limit: stays flagged
    if (!sent) {
      router_check_ = false;
      return;
    }
    // Refusals went out after the last receive: receive again to be sure.
  }
}

void Loop::service_zap() {
  if (!zap_ || handle_zap()) zap_check_ = false;
}

void Loop::service_monitor(Peer& p) {
  if (!p.monitor || read_monitor(p)) p.monitor_check = false;
}

void Loop::service_dealer(Peer& p) {
  while (p.dealer) {
    if (!read_dealer(p)) return;  // batch limit: stays flagged
    if (!p.dealer || !p.has_output()) break;
    int ev = 0;
    {
      std::lock_guard lock(p.shared->dealer_mu);
      ev = socket_events(p.dealer);
    }
    if (ev & ZMQ_POLLOUT) {
      flush(p);  // then read again: the sends may have taken the fd's signal
      continue;
    }
    if (!(ev & ZMQ_POLLIN)) break;
  }
  p.dealer_check = false;
}

void Loop::process_commands(bool eventfd_readable) {
  core_->commands.take(commands_, eventfd_readable);
  for (auto& command : commands_) {
    std::visit(
        [this](auto& c) {
          using T = std::decay_t<decltype(c)>;
          if constexpr (std::is_same_v<T, CmdAddPeer>) {
            on_add_peer(c);
          } else if constexpr (std::is_same_v<T, CmdRemovePeer>) {
            on_remove_peer(c);
          } else if constexpr (std::is_same_v<T, CmdSend>) {
            on_send(c);
          } else if constexpr (std::is_same_v<T, CmdReply>) {
            on_reply(c);
          } else if constexpr (std::is_same_v<T, CmdWake>) {
            // only here to end the poll early
          } else if constexpr (std::is_same_v<T, CmdReadmit>) {
            on_readmit(c);
          } else {
            stop_ = true;
          }
        },
        command);
  }
  commands_.clear();
}

}  // namespace mesh::transport::detail
