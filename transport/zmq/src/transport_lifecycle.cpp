// A Transport::Impl from start to shutdown: the ZeroMQ context and the
// transport thread it starts, and everything closed in order at the end.
// Under local_only there is no transport thread: the chores it would do
// (tick) run on public calls, and a deadline watcher thread starts on
// first need.
#include "transport_impl.hpp"

#include <zmq.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <thread>
#include <utility>

#include "clock.hpp"
#include "command_queue.hpp"
#include "core.hpp"
#include "loop.hpp"
#include "options_validation.hpp"
#include "request_channel.hpp"

namespace mesh::transport {

using detail::Core;

Transport::Impl::Impl(TransportOptions options) {
  detail::validate(options);
  core = std::make_shared<Core>(std::move(options));
  if (core->options.local_only) return;  // no context, no socket, no thread
  // One I/O thread is libzmq's default; say so, it is part of the design
  // (docs/transport.md, threads).
  try {
    zmq_context.emplace(1);
  } catch (const zmq::error_t&) {
    throw TransportError("zmq_ctx_new failed");
  }
  core->zmq_context = &*zmq_context;
  try {
    loop = std::make_unique<detail::Loop>(core);
  } catch (...) {
    core->zmq_context = nullptr;
    zmq_context.reset();
    throw;
  }
  thread = std::thread([l = loop.get()] { l->run(); });
}

Transport::Impl::~Impl() {
  core->stopping.store(true);
  if (core->options.local_only) {
    {
      std::lock_guard lock(timer_mu);
      timer_stop = true;
    }
    timer_cv.notify_all();
    if (timer.joinable()) timer.join();
    core->local_deadlines.fail_all(ErrorCode::Shutdown, core->counters.requests_failed_fast);
    std::unique_lock lock(core->inbox_mu);
    for (auto& [name, inbox] : core->inboxes) inbox->close();
    core->inboxes.clear();
    return;
  }
  // Threads waiting on request channels wake, see `stopping` and give
  // their channels back; a peer removed before was woken by remove_peer.
  {
    std::shared_lock lock(core->peers_mu);
    for (auto& [name, peer] : core->peers) peer->wake_watchers();
  }
  core->commands.push(detail::CmdStop{});
  if (thread.joinable()) thread.join();
  loop->drain_late_commands();
  loop.reset();
  // The channels' sockets are closed before the context (zmq_ctx_term
  // waits for every socket of the context).
  for (auto& pool : core->live_pools()) {
    pool->close();
    pool->wait_idle();
  }
  {
    std::unique_lock lock(core->inbox_mu);
    for (auto& [name, inbox] : core->inboxes) inbox->close();
    core->inboxes.clear();
  }
  // Every socket was closed with LINGER 0, so this returns at once
  // (zmq_ctx_term, called again on EINTR).
  core->zmq_context = nullptr;
  zmq_context.reset();
}

void Transport::Impl::wake_deadline_watcher() {
  if (core->options.local_only) {
    watch_local_deadlines();
  } else {
    core->commands.push(detail::CmdWake{});
  }
}

void Transport::Impl::tick() {
  if (!core->options.local_only) return;  // the transport thread does this
  // Nothing held, nothing due: most calls (every same-node notify) find
  // that out without a clock reading or a lock.
  if (core->local_deadlines.empty() && core->asks.next_free_ms() == INT64_MAX) return;
  const auto now = detail::steady_now_ms();
  core->local_deadlines.expire(now, core->counters.requests_timed_out);
  core->asks.sweep(now);
}

void Transport::Impl::watch_local_deadlines() {
  {
    std::lock_guard lock(timer_mu);
    if (timer_stop) return;
    if (!timer.joinable()) timer = std::thread([this] { local_timer_loop(); });
  }
  timer_cv.notify_all();  // a new earliest deadline, maybe
}

void Transport::Impl::local_timer_loop() {
  std::unique_lock lock(timer_mu);
  while (!timer_stop) {
    // The first thing due: a request's deadline, or the end of an ask
    // entry's retention. Whoever makes a sooner one takes timer_mu, then
    // notifies us: never between this look and the wait.
    const std::int64_t next = std::min(core->local_deadlines.next_ms(), core->asks.next_free_ms());
    const std::int64_t now = detail::steady_now_ms();
    if (next <= now) {
      lock.unlock();
      tick();  // completes calls: their callbacks run without our lock
      lock.lock();
      continue;
    }
    if (next == INT64_MAX) {
      timer_cv.wait(lock);  // nothing due: until a notify (new deadline, or the stop)
    } else {
      timer_cv.wait_for(lock, std::chrono::milliseconds(next - now));
    }
  }
}

}  // namespace mesh::transport
