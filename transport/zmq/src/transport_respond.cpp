// Answering a request from the caller's side: to a same-node requester
// directly, to a remote one through the transport thread's ROUTER.
#include "transport_impl.hpp"

#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "command_queue.hpp"
#include "core.hpp"
#include "mesh/transport/envelope.hpp"
#include "pending_call.hpp"
#include "replies.hpp"

namespace mesh::transport {

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
