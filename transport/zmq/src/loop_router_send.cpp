// What leaves through the ROUTER: replies and refusals, sent without ever
// blocking; a reply that finds the requester's pipe full waits in order.
#include "loop.hpp"

#include <cerrno>
#include <string>
#include <vector>

namespace mesh::transport::detail {

void Loop::on_reply(CmdReply& c) { router_send(Origin{c.identity, c.node}, c.bytes, c.type, &c.request); }

bool Loop::router_send(const Origin& to, std::span<const std::uint8_t> bytes, MessageType type,
                       const MessageId* answers) {
  const std::string_view identity = to.identity;
  std::lock_guard lock(core_->router.mu);  // callers answer on the ROUTER too (RouterShare)
  const bool result = router_send_locked(identity, bytes, type, to.node, answers);
  core_->router.deferred = !deferred_.empty();
  return result;
}

bool Loop::router_send_locked(std::string_view identity, std::span<const std::uint8_t> bytes, MessageType type,
                              std::string_view node, const MessageId* answers) {
  if (answers) {
    replies_.put(DedupKey{std::string(node), *answers}, bytes, type);
    core_->counters.reply_cache_bytes.store(replies_.bytes(), std::memory_order_relaxed);
  }
  // Replies to one requester leave in order: behind any already waiting.
  if (!deferred_.empty() && deferred_.contains(std::string(identity))) return defer(identity, bytes, type);
  switch (try_router_send(identity, bytes, type)) {
    case SendResult::Sent: return true;
    case SendResult::WouldBlock: return defer(identity, bytes, type);
    case SendResult::Unroutable: break;
  }
  bump(core_->counters.replies_unroutable);
  return false;
}

Loop::SendResult Loop::try_router_send(std::string_view identity, std::span<const std::uint8_t> bytes,
                                       MessageType type) {
  // MANDATORY + DONTWAIT: a vanished identity is EHOSTUNREACH and a full
  // pipe EAGAIN, both at once; neither blocks the transport thread.
  auto& sent = core_->counters.sent[type_index(type)];
  bump(sent);  // before the send, as in flush()
  router_check_ = true;  // a send may consume the fd's signal
  // The C call stays here: cppzmq's send() throws on EHOSTUNREACH, which
  // MANDATORY makes an ordinary outcome (a requester that went away, a
  // flood of refusals to one). Measured on this 2-vCPU machine, -O2, an
  // unroutable send took 0.07-0.12 us through zmq_send and 4.3-4.6 us
  // through cppzmq's throw and catch.
  if (zmq_send(router_.handle(), identity.data(), identity.size(), ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
    drop(sent);
    return zmq_errno() == EAGAIN ? SendResult::WouldBlock : SendResult::Unroutable;
  }
  // The identity frame was accepted, so the pipe had room: the body follows.
  if (zmq_send(router_.handle(), bytes.data(), bytes.size(), ZMQ_DONTWAIT) < 0) {
    drop(sent);
    return SendResult::Unroutable;
  }
  return SendResult::Sent;
}

// A requester that does not read its replies as fast as we answer (its
// transport thread is busy sending, say) fills its pipe: EAGAIN is not
// "gone", so the reply waits here, in order, and is retried whenever the
// loop turns. Only a hard bound drops replies (counted unroutable).
// We tried to push back instead (stop reading the ROUTER while many
// replies wait): a ROUTER not read long enough stops its I/O thread from
// reading the connection, the requester's heartbeat answers (PONG) stay
// stuck behind its data, and after heartbeat_timeout the connection is
// dropped with every reply in it. The requester's own queue limit is the
// back-pressure; a requester that stops reading altogether is a frozen
// peer, which the heartbeat removes.
bool Loop::defer(std::string_view identity, std::span<const std::uint8_t> bytes, MessageType type) {
  // One requester that stops reading must not use up the room the others'
  // replies need: it gets a share of the byte budget.
  const std::size_t budget = options_.reply_deferral_bytes;
  const auto share = static_cast<std::size_t>(static_cast<double>(budget) * options_.reply_deferral_share);
  auto it = deferred_.find(std::string(identity));
  const std::size_t mine = it == deferred_.end() ? 0 : it->second.bytes;
  if (deferred_count_ >= kMaxDeferred || deferred_bytes_ + bytes.size() > budget ||
      (mine > 0 && mine + bytes.size() > share)) {
    bump(core_->counters.replies_dropped);
    return false;
  }
  if (it == deferred_.end()) it = deferred_.emplace(std::string(identity), DeferredQueue{}).first;
  it->second.items.push_back(Deferred{std::vector<std::uint8_t>(bytes.begin(), bytes.end()), type});
  it->second.bytes += bytes.size();
  ++deferred_count_;
  deferred_bytes_ += bytes.size();
  bump(core_->counters.replies_deferred);
  bump(core_->counters.replies_waiting);
  bump(core_->counters.replies_waiting_bytes, bytes.size());
  return true;
}

void Loop::retry_deferred() {
  std::lock_guard lock(core_->router.mu);
  for (auto it = deferred_.begin(); it != deferred_.end();) {
    auto& queue = it->second.items;
    bool gone = false;
    while (!queue.empty()) {
      const SendResult r = try_router_send(it->first, queue.front().bytes, queue.front().type);
      if (r == SendResult::WouldBlock) break;
      if (r == SendResult::Unroutable) {
        gone = true;
        break;
      }
      forget_deferred(it->second, queue.front().bytes.size());
      queue.pop_front();
    }
    if (gone) {  // the requester went away: all of its replies are unroutable
      bump(core_->counters.replies_unroutable, queue.size());
      for (const auto& d : queue) forget_deferred(it->second, d.bytes.size());
      queue.clear();
    }
    it = queue.empty() ? deferred_.erase(it) : std::next(it);
  }
  core_->router.deferred = !deferred_.empty();
}

void Loop::forget_deferred(DeferredQueue& queue, std::size_t bytes) {
  --deferred_count_;
  deferred_bytes_ -= bytes;
  queue.bytes -= bytes;
  drop(core_->counters.replies_waiting);
  drop(core_->counters.replies_waiting_bytes, bytes);
}

void Loop::send_error(const Origin& to, const MessageId& correlation, std::string_view sender_agent,
                      std::string_view target, ErrorCode code, bool answers_request) {
  Envelope e;
  e.id = core_->ids.next();
  e.type = MessageType::Error;
  e.correlation = correlation;
  e.sender_agent = std::string(sender_agent);
  e.sender_node = options_.node_name;
  e.target = std::string(target);
  e.created_ms = unix_now_ms();
  e.error = code;
  encode(e, scratch_);
  router_send(to, scratch_, MessageType::Error, answers_request ? &correlation : nullptr);
}

}  // namespace mesh::transport::detail
