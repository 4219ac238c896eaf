// Answering a request from the caller's side: to a same-node requester
// directly, to a remote one on the ROUTER, sent by the answering thread
// itself when it can have the ROUTER at once, else by the transport thread.
#include "transport_impl.hpp"

#include <zmq.hpp>

#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "command_queue.hpp"
#include "core.hpp"
#include "mesh/transport/envelope.hpp"
#include "pending_call.hpp"
#include "replies.hpp"
#include "reply_cache.hpp"
#include "zmq_io.hpp"

namespace mesh::transport {

namespace detail {
namespace {

// Sends an answer on the ROUTER from the answering thread, as the
// transport thread would (Loop::router_send), when the ROUTER is free and
// no earlier answer waits for room. false: nothing was sent or counted;
// the transport thread gets the answer.
bool answer_on_router(Core& core, const std::string& identity, std::string_view node,
                      std::span<const std::uint8_t> bytes, MessageType type, const MessageId& request) {
  RouterShare& router = core.router;
  std::unique_lock lock(router.mu, std::try_to_lock);
  if (!lock.owns_lock() || !router.socket || router.deferred) return false;
  void* socket = router.socket->handle();
  auto& sent = core.counters.sent[type_index(type)];
  bump(sent);  // before the send, as on the thread
  // The identity frame is refused at once when the pipe is full (EAGAIN)
  // or the requester gone (EHOSTUNREACH, under ROUTER_MANDATORY): the
  // thread then defers or counts it as it always does.
  if (zmq_send(socket, identity.data(), identity.size(), ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
    drop(sent);
    return false;
  }
  router.replies->put(DedupKey{std::string(node), request}, bytes, type);
  core.counters.reply_cache_bytes.store(router.replies->bytes(), std::memory_order_relaxed);
  if (zmq_send(socket, bytes.data(), bytes.size(), ZMQ_DONTWAIT) < 0) {
    drop(sent);
    bump(core.counters.replies_unroutable);
  } else {
    bump(core.counters.replies_direct);
  }
  // The sends may have taken the signal the ROUTER's fd owed the thread
  // (they process the socket's pending commands). Asking for its events
  // settles it: input waiting means the thread must look, and none means
  // the socket's pipes are armed to signal the next arrival on the fd.
  if (socket_events(zmq::socket_ref(zmq::from_handle, socket)) & ZMQ_POLLIN) {
    router.recheck.store(true, std::memory_order_release);
    lock.unlock();
    core.commands.push(CmdWake{});
  }
  return true;
}

}  // namespace
}  // namespace detail

ErrorCode Transport::Impl::answer(const Incoming& in, ErrorCode code, std::vector<std::uint8_t> payload,
                                  std::vector<std::uint8_t> context, Priority priority,
                                  std::vector<std::uint8_t> thread_block) {
  if (!in.is_request() || !in.route) return ErrorCode::Rejected;
  ReplyRoute& route = *in.route;
  if (route.answered.load(std::memory_order_acquire)) return ErrorCode::Rejected;
  Envelope reply = detail::make_reply(*core, detail::view_of(in.envelope), code, std::move(payload),
                                      std::move(context), priority, std::move(thread_block));
  if (route.local) {
    if (route.answered.exchange(true)) return ErrorCode::Rejected;
    route.local->complete(Reply{code, std::move(reply)});
    return ErrorCode::None;
  }
  std::vector<std::uint8_t> bytes = encode(reply);
  // Too big to send: refused before it counts as the answer, so that the
  // responder can still answer with an error.
  if (bytes.size() > core->options.max_frame_bytes) return ErrorCode::Oversized;
  if (route.answered.exchange(true)) return ErrorCode::Rejected;
  auto owner = route.core.lock();
  if (!owner || owner->stopping.load()) return ErrorCode::None;  // the requester cannot hear it now
  if (owner->options.direct_replies &&
      detail::answer_on_router(*owner, route.identity, in.source, bytes, reply.type, in.envelope.id)) {
    return ErrorCode::None;
  }
  owner->commands.push(detail::CmdReply{route.identity, in.source, std::move(bytes), reply.type, in.envelope.id});
  return ErrorCode::None;
}

ErrorCode Transport::respond(const Incoming& incoming, std::vector<std::uint8_t> payload,
                             std::vector<std::uint8_t> context, Priority priority,
                             std::vector<std::uint8_t> thread) {
  impl_->tick();
  return impl_->answer(incoming, ErrorCode::None, std::move(payload), std::move(context), priority,
                       std::move(thread));
}

ErrorCode Transport::respond_error(const Incoming& incoming, ErrorCode reason) {
  if (reason == ErrorCode::None) reason = ErrorCode::Rejected;
  return impl_->answer(incoming, reason, {}, {}, Priority::Normal);
}

}  // namespace mesh::transport
