#include "replies.hpp"

#include "clock.hpp"
#include "core.hpp"

namespace mesh::transport::detail {

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
  v.flags = e.flags;
  v.thread = e.thread;
  return v;
}

Envelope make_reply(Core& core, const EnvelopeView& request, ErrorCode error,
                    std::vector<std::uint8_t> payload, std::vector<std::uint8_t> context,
                    Priority priority, std::vector<std::uint8_t> thread) {
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
  e.thread = std::move(thread);
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
