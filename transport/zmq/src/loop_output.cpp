// A peer's outbound queue: frames wait in it (high priority first) until
// the DEALER takes them, and are failed back to their senders when the
// peer fails.
#include "loop.hpp"

#include "zmq_io.hpp"

namespace mesh::transport::detail {

void Loop::on_send(CmdSend& c) {
  auto it = peers_.find(c.peer->name);
  Peer* p = (it != peers_.end() && it->second->shared == c.peer) ? it->second.get() : nullptr;
  if (!p || p->state == PeerState::Unreachable) {
    release_queued(*c.peer, c.frame.bytes.size());
    ErrorCode reason = ErrorCode::PeerUnreachable;
    if (!p) {
      reason = c.peer->removed.load();
      if (reason == ErrorCode::None) reason = ErrorCode::PeerDead;
    }
    reject_frame(c.frame, c.peer->name, reason);
    return;
  }
  if (c.frame.call) watch(c.frame.call);
  auto& queue = p->queues[static_cast<std::size_t>(c.frame.priority)];
  queue.push_back(std::move(c.frame));
  connect_on_demand(*p);
  flush(*p);
}

void Loop::flush(Peer& p) {
  if (!p.dealer || !p.has_output()) return;
  p.dealer_check = true;  // a send may consume the fd's signal
  std::lock_guard lock(p.shared->dealer_mu);
  while (p.has_output()) {
    auto& queue = p.next_queue();
    OutFrame& f = queue.front();
    const std::size_t size = f.bytes.size();
    if (f.call && f.call->done()) {  // timed out while it waited here
      queue.pop_front();
      release_queued(*p.shared, size);
      continue;
    }
    // Counted before the send, so that whoever sees the frame arrive also
    // sees it counted; taken back if it was not sent.
    auto* sent = f.raw ? nullptr : &core_->counters.sent[type_index(f.type)];
    if (sent) bump(*sent);
    if (!send_now(p.dealer, zmq::buffer(f.bytes))) {  // EAGAIN: wait for POLLOUT
      if (sent) drop(*sent);
      return;
    }
    queue.pop_front();
    release_queued(*p.shared, size);
    p.used = true;
  }
}

void Loop::release_queued(PeerShared& peer, std::size_t bytes) {
  peer.queued.fetch_sub(1, std::memory_order_acq_rel);
  peer.queued_bytes.fetch_sub(bytes, std::memory_order_acq_rel);
  drop(core_->counters.outbound_queued);
  drop(core_->counters.outbound_queued_bytes, bytes);
}

void Loop::reject_frame(OutFrame& frame, const std::string& node, ErrorCode reason) {
  if (frame.call) {
    frame.call->complete(Reply{reason, {}}, &core_->counters.requests_failed_fast);
  } else if (frame.type == MessageType::Notify && !frame.raw) {
    report_undeliverable(frame.id, node, frame.target, frame.sender_agent, reason);
  }
}

void Loop::report_undeliverable(const MessageId& id, std::string_view node, std::string_view target,
                                std::string_view sender_agent, ErrorCode reason) {
  bump(core_->counters.notifies_undeliverable);
  // User callbacks must not take the transport thread down.
  if (options_.on_undeliverable) {
    try {
      options_.on_undeliverable(id, node, target, reason);
    } catch (...) {
    }
  }
  if (options_.on_notify_undeliverable) {
    try {
      options_.on_notify_undeliverable(UndeliverableNotify{id, node, target, sender_agent, reason});
    } catch (...) {
    }
  }
}

}  // namespace mesh::transport::detail
