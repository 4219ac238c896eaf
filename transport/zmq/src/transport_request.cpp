// Requests from the caller's side: same-node ones (into the target inbox,
// the deadline watched by the caller or LocalDeadlines), remote ones (on
// a request channel, or through the transport thread), and ask_async with
// its results kept in the ask table.
#include "transport_impl.hpp"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "clock.hpp"
#include "command_queue.hpp"
#include "core.hpp"
#include "counters.hpp"
#include "mesh/transport/envelope.hpp"
#include "out_envelope.hpp"
#include "peer_shared.hpp"
#include "pending_call.hpp"
#include "replies.hpp"
#include "request_channel.hpp"

namespace mesh::transport {

using detail::bump;
using detail::Core;
using detail::make_envelope;
using detail::PeerShared;
using detail::PeerState;
using detail::PendingCall;

namespace {

bool fails_fast(ErrorCode e) {
  return e == ErrorCode::PeerDead || e == ErrorCode::PeerUnreachable || e == ErrorCode::Shutdown;
}

}  // namespace

ErrorCode Transport::Impl::start_local_request(OutMessage&& m, std::chrono::milliseconds timeout,
                                               std::function<void(Reply)>& done,
                                               std::shared_ptr<PendingCall>* waiter) {
  auto inbox = core->find_inbox(m.to.target);
  if (!inbox) return ErrorCode::TargetUnknown;
  Envelope env = make_envelope(*core, m, MessageType::Request, detail::unix_now_ms() + timeout.count());
  if (const auto& quick = inbox->quick_handler()) {
    // Runs on the caller's thread: the caller is the receiving side too.
    const EnvelopeView view = detail::view_of(env);
    std::vector<std::uint8_t> payload;
    const ErrorCode code = detail::run_quick(quick, view, payload);
    Reply reply{code, detail::make_reply(*core, view, code, std::move(payload), {}, env.priority)};
    PendingCall call(env.id, nullptr, 0, std::move(done), nullptr);
    call.complete(std::move(reply));
    return ErrorCode::None;
  }
  auto call = std::make_shared<PendingCall>(env.id, nullptr, detail::steady_now_ms() + timeout.count(),
                                            std::move(done), &core->counters.pending_requests);
  auto route = std::make_shared<ReplyRoute>();
  route->local = call;
  route->core = core;
  const ErrorCode code = inbox->push(Incoming{std::move(env), std::move(route), {}, std::move(m.local)});
  if (code != ErrorCode::None) {
    call->cancel();
    return code;
  }
  if (waiter) {
    *waiter = std::move(call);
    return ErrorCode::None;
  }
  // Whoever watches the deadlines sleeps until the earliest: it is woken
  // only when this one comes sooner. Requests that come later than the
  // earliest (the usual case, with one timeout for all) cost no hop.
  if (core->local_deadlines.add(std::move(call))) wake_deadline_watcher();
  return ErrorCode::None;
}

ErrorCode Transport::Impl::start_request(OutMessage&& m, std::chrono::milliseconds timeout,
                                         std::function<void(Reply)> done) {
  if (core->stopping.load()) return ErrorCode::Shutdown;
  if (timeout.count() < 0) timeout = std::chrono::milliseconds(0);
  if (core->is_local(m.to.node)) return start_local_request(std::move(m), timeout, done, nullptr);
  std::shared_ptr<PeerShared> peer;
  if (const ErrorCode e = reserve(m.to.node, peer); e != ErrorCode::None) return e;
  const Envelope env = make_envelope(*core, m, MessageType::Request, detail::unix_now_ms() + timeout.count());
  std::vector<std::uint8_t> bytes = encode(env);
  if (bytes.size() > core->options.max_frame_bytes) {
    unreserve(*peer);
    return ErrorCode::Oversized;
  }
  return send_remote(std::move(peer), env, std::move(bytes), timeout, std::move(done));
}

ErrorCode Transport::Impl::send_remote(std::shared_ptr<PeerShared> peer, const Envelope& env,
                                       std::vector<std::uint8_t>&& bytes, std::chrono::milliseconds timeout,
                                       std::function<void(Reply)> done) {
  if (const ErrorCode e = charge(*peer, bytes.size()); e != ErrorCode::None) return e;
  detail::OutFrame frame;
  frame.bytes = std::move(bytes);
  frame.type = MessageType::Request;
  frame.priority = env.priority;
  frame.id = env.id;
  frame.target = env.target;
  frame.call = std::make_shared<PendingCall>(env.id, peer.get(), detail::steady_now_ms() + timeout.count(),
                                             std::move(done), &core->counters.pending_requests);
  frame.call->track(peer);
  if (send_request_direct(*peer, frame.call, frame.bytes)) {
    uncharge(*peer, frame.bytes.size());
    unreserve(*peer);
    return ErrorCode::None;
  }
  core->commands.push(detail::CmdSend{std::move(peer), std::move(frame)});
  return ErrorCode::None;
}

Reply Transport::request(OutMessage message, std::optional<std::chrono::milliseconds> timeout) {
  const auto started = std::chrono::steady_clock::now();
  Reply reply = request_unmeasured(std::move(message), timeout);
  detail::record_request_latency(impl_->core->counters, started, reply.ok());
  return reply;
}

Reply Transport::request_unmeasured(OutMessage message, std::optional<std::chrono::milliseconds> timeout) {
  Core& core = *impl_->core;
  impl_->tick();
  const auto t = std::max(std::chrono::milliseconds(0), timeout.value_or(core.options.default_request_timeout));
  if (core.is_local(message.to.node)) {
    // Same node: the waiting caller watches its own deadline, so nothing
    // at all goes through the transport thread.
    if (core.stopping.load()) return Reply{ErrorCode::Shutdown, {}};
    auto promise = std::make_shared<std::promise<Reply>>();
    auto future = promise->get_future();
    std::function<void(Reply)> done = [promise](Reply r) { promise->set_value(std::move(r)); };
    std::shared_ptr<PendingCall> waiter;
    if (const ErrorCode e = impl_->start_local_request(std::move(message), t, done, &waiter); e != ErrorCode::None) {
      return Reply{e, {}};
    }
    if (waiter && future.wait_for(t) != std::future_status::ready) {
      waiter->complete(Reply{ErrorCode::Timeout, {}}, &core.counters.requests_timed_out);
    }
    return future.get();
  }
  if (core.options.direct_requests && !core.stopping.load() && !core.is_local(message.to.node)) {
    auto peer = core.find_peer(message.to.node);
    if (peer && peer->state.load(std::memory_order_acquire) == PeerState::Connected) {
      // Requests on the channels keep the peer's connection from being
      // closed as idle, although they do not use it.
      if (!peer->used.load(std::memory_order_relaxed)) peer->used.store(true, std::memory_order_relaxed);
      const std::string node = message.to.node;
      const Envelope env = make_envelope(core, message, MessageType::Request, detail::unix_now_ms() + t.count());
      std::vector<std::uint8_t> bytes = encode(env);
      if (bytes.size() > core.options.max_frame_bytes) return Reply{ErrorCode::Oversized, {}};
      if (auto direct = detail::direct_request(core, *peer, env.id, bytes, t)) return std::move(*direct);
      // No channel could take it: the transport thread sends the same frame.
      std::shared_ptr<PeerShared> reserved;
      if (const ErrorCode e = impl_->reserve(node, reserved); e != ErrorCode::None) {
        if (fails_fast(e)) bump(core.counters.requests_failed_fast);
        return Reply{e, {}};
      }
      auto promise = std::make_shared<std::promise<Reply>>();
      auto future = promise->get_future();
      const ErrorCode e = impl_->send_remote(std::move(reserved), env, std::move(bytes), t,
                                             [promise](Reply r) { promise->set_value(std::move(r)); });
      if (e != ErrorCode::None) return Reply{e, {}};
      return future.get();
    }
  }
  auto promise = std::make_shared<std::promise<Reply>>();
  auto future = promise->get_future();
  impl_->request_async(std::move(message), t, [promise](Reply r) { promise->set_value(std::move(r)); });
  return future.get();
}

void Transport::Impl::request_async(OutMessage&& m, std::chrono::milliseconds timeout,
                                    std::function<void(Reply)> done) {
  tick();
  auto shared_done = std::make_shared<std::function<void(Reply)>>(std::move(done));
  const ErrorCode e = start_request(std::move(m), timeout, [shared_done](Reply r) {
    if (*shared_done) (*shared_done)(std::move(r));
  });
  if (e != ErrorCode::None) {
    if (fails_fast(e)) bump(core->counters.requests_failed_fast);
    if (*shared_done) (*shared_done)(Reply{e, {}});
  }
}

void Transport::request_async(OutMessage message, std::chrono::milliseconds timeout,
                              std::function<void(Reply)> done) {
  // Counted before `done` runs, so that a caller it wakes sees the count.
  const auto started = std::chrono::steady_clock::now();
  std::weak_ptr<Core> weak = impl_->core;
  impl_->request_async(std::move(message), timeout,
                       [weak, started, done = std::move(done)](Reply r) {
                         if (auto c = weak.lock()) detail::record_request_latency(c->counters, started, r.ok());
                         if (done) done(std::move(r));
                       });
}

std::future<Reply> Transport::request_future(OutMessage message, std::chrono::milliseconds timeout) {
  auto promise = std::make_shared<std::promise<Reply>>();
  auto future = promise->get_future();
  request_async(std::move(message), timeout, [promise](Reply r) { promise->set_value(std::move(r)); });
  return future;
}

Transport::AskTicket Transport::ask_async(OutMessage message, std::chrono::milliseconds timeout) {
  Core& core = *impl_->core;
  impl_->tick();
  if (timeout.count() < 0) timeout = std::chrono::milliseconds(0);
  AskTicket ticket;
  ticket.id = message.id.empty() ? core.ids.next() : message.id;
  message.id = ticket.id;
  const auto now = detail::steady_now_ms();
  // The entry exists before the request can complete.
  bool sooner = false;
  if (!core.asks.add(ticket.id, now + timeout.count(), now + timeout.count() + core.options.ask_retention.count(),
                     sooner)) {
    ticket.error = ErrorCode::MailboxFull;  // ask_limit entries held: check_inbox some first
    return ticket;
  }
  // Its retention runs out before any other's: the sweeper sleeps until
  // the first, so it must wait less.
  if (sooner) impl_->wake_deadline_watcher();
  std::weak_ptr<Core> weak = impl_->core;
  const MessageId id = ticket.id;
  const auto started = std::chrono::steady_clock::now();
  ticket.error = impl_->start_request(std::move(message), timeout, [weak, id, started](Reply r) {
    if (auto c = weak.lock()) {
      detail::record_request_latency(c->counters, started, r.ok());
      c->asks.complete(id, std::move(r));
    }
  });
  if (ticket.error != ErrorCode::None) {
    detail::record_request_latency(core.counters, started, false);
    if (fails_fast(ticket.error)) bump(core.counters.requests_failed_fast);
    core.asks.erase(ticket.id);
  }
  return ticket;
}

AskResult Transport::check_inbox(const MessageId& id, std::chrono::milliseconds wait, bool remove) {
  impl_->tick();
  return impl_->core->asks.check(id, wait, remove);
}

bool Transport::watch_ask(const MessageId& id, std::function<void()> ready) {
  return impl_->core->asks.watch(id, std::move(ready));
}

}  // namespace mesh::transport
