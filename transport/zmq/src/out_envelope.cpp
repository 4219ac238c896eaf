// The envelope of a message a caller sends: a notify or a request.
#include "out_envelope.hpp"

#include <utility>

#include "clock.hpp"
#include "core.hpp"

namespace mesh::transport::detail {

Envelope make_envelope(Core& core, OutMessage& m, MessageType type, std::int64_t deadline_ms) {
  Envelope e;
  e.id = m.id.empty() ? core.ids.next() : m.id;
  e.type = type;
  e.priority = m.priority;
  e.sender_agent = std::move(m.sender_agent);
  e.sender_node = core.options.node_name;
  e.target = m.to.target;
  e.created_ms = m.created_ms != 0 ? m.created_ms : unix_now_ms();
  e.deadline_ms = deadline_ms;
  e.context = std::move(m.context);
  e.payload = std::move(m.payload);
  e.flags = m.flags;
  e.thread = std::move(m.thread);
  return e;
}

}  // namespace mesh::transport::detail
