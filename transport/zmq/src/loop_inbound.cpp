// Frames that arrive: read from the ROUTER and the DEALERs, decoded,
// checked against the duplicate window, and delivered to an inbox (or
// answered by its quick handler), or matched to a request of ours.
#include "loop.hpp"

#include <limits>
#include <string>
#include <vector>

#include "zmq_io.hpp"

namespace mesh::transport::detail {

namespace {

ErrorCode code_for(DecodeError e) {
  switch (e) {
    case DecodeError::Oversized: return ErrorCode::Oversized;
    case DecodeError::BadVersion: return ErrorCode::BadVersion;
    default: return ErrorCode::Malformed;
  }
}

}  // namespace

bool Loop::read_router() {
  for (int i = 0; i < kRecvBatch; ++i) {
    zmq::message_t identity;
    zmq::message_t body;
    {
      // Callers answer on the ROUTER too (RouterShare); not held while
      // the frame is handled, which may run callbacks that answer.
      std::lock_guard lock(core_->router.mu);
      if (!recv_now(router_, identity)) return true;
      if (!identity.more()) {  // cannot come from a ZMTP peer; be safe
        bump(core_->counters.frames_malformed);
        continue;
      }
      if (!recv_now(router_, body)) return true;
      if (body.more()) {  // our peers send exactly one frame per message
        drain_multipart(router_);
        bump(core_->counters.frames_malformed);
        continue;
      }
    }
    const Origin origin{identity.to_string_view(), node_of(identity.to_string_view(), body)};
    if (origin.node.empty()) {
      // Its key was revoked (the member died, left or was re-keyed) or it
      // arrived without one: nothing it says is believed, and under CURVE
      // node_of closed its connection (a reconnect must pass ZAP again).
      bump(core_->counters.frames_forged);
      continue;
    }
    handle_frame(bytes_of(body), &origin, nullptr);
  }
  return false;
}

bool Loop::read_dealer(Peer& p) {
  for (int i = 0; i < kRecvBatch && p.dealer; ++i) {
    zmq::message_t body;
    {
      std::lock_guard lock(p.shared->dealer_mu);
      if (!recv_now(p.dealer, body)) return true;
      if (body.more()) {
        drain_multipart(p.dealer);
        bump(core_->counters.frames_malformed);
        continue;
      }
    }
    p.used = true;
    handle_frame(bytes_of(body), nullptr, &p);  // unlocked: it may run callbacks that notify
  }
  return !p.dealer;
}

void Loop::handle_frame(std::span<const std::uint8_t> frame, const Origin* origin, const Peer* from,
                        const Held* held) {
  auto& counters = core_->counters;
  DecodeResult r = decode(frame, options_.max_frame_bytes);
  if (!r.ok()) {
    switch (r.error) {
      case DecodeError::Oversized: bump(counters.frames_oversized); break;
      case DecodeError::BadVersion: bump(counters.frames_bad_version); break;
      default: bump(counters.frames_malformed); break;
    }
    // A broken request whose id could still be read gets an answer, so
    // that its sender fails now instead of at its deadline.
    if (origin && r.salvaged_type == MessageType::Request && r.salvaged_id) {
      bump(counters.refused[type_index(MessageType::Request)]);
      send_error(*origin, *r.salvaged_id, {}, {}, code_for(r.error));
    }
    return;
  }
  const EnvelopeView& v = r.view;
  const auto type = type_index(v.type);
  if (!held) bump(counters.received[type]);
  if (!sender_matches(v, origin, from)) return;
  // The owner's say comes before the duplicate window, so that a message
  // it refused may be sent again once it would admit it.
  if (origin && (v.type == MessageType::Notify || v.type == MessageType::Request) &&
      !admitted(v, frame, *origin, held)) {
    return;
  }
  // Who sent it, as far as this transport knows: the node whose connection
  // it came in on, which sender_matches() made the envelope's claim agree
  // with.
  const std::string_view source = origin ? origin->node : std::string_view(from->shared->name);
  if (!dedup_.insert(source, v.id, steady_now_ms())) {
    bump(counters.deduplicated[type]);
    // A request resent under its id after its answer went out (the answer
    // was lost, say): answer again from the cache, to the same node only.
    if (v.type == MessageType::Request && origin) {
      std::vector<std::uint8_t> cached;
      {
        std::lock_guard lock(core_->router.mu);  // callers add to the cache (RouterShare)
        if (const ReplyCache::Entry* entry = replies_.find(DedupKey{std::string(source), v.id})) cached = entry->bytes;
      }
      if (!cached.empty()) {
        // Under a fresh id: the requester's dedup window has seen the first.
        DecodeResult old = decode(cached, std::numeric_limits<std::size_t>::max());
        if (old.ok()) {
          Envelope again = old.view.to_owned();
          again.id = core_->ids.next();
          encode(again, scratch_);
          bump(counters.requests_answered_again);
          router_send(*origin, scratch_, again.type);
        }
      }
    }
    return;
  }
  switch (v.type) {
    case MessageType::Notify:
      if (origin) deliver_notify(v, *origin);
      break;
    case MessageType::Request:
      if (!origin) break;  // a ROUTER never sends us requests on a DEALER
      if (v.deadline_ms != 0 && v.deadline_ms < unix_now_ms()) {
        bump(counters.expired_on_arrival);
        break;
      }
      deliver_request(v, *origin);
      break;
    case MessageType::Response:
    case MessageType::Error:
      // Replies come back over our DEALER to the node we asked. One that
      // arrives at the ROUTER answers nothing of ours.
      if (from) {
        complete_pending(v, *from);
      } else {
        bump(counters.replies_unmatched);
      }
      break;
    case MessageType::Control:
      break;  // reserved
  }
}

// A message names its sender node; it must be the node its connection is
// from (Origin::node at the ROUTER, the peer a DEALER belongs to), or a
// node could speak for another. Under CURVE that node is authenticated;
// without, this only keeps the claims consistent. A refused request or
// notify is answered Unauthenticated, so a misconfigured sender learns why.
bool Loop::sender_matches(const EnvelopeView& v, const Origin* origin, const Peer* from) {
  const std::string_view node = origin ? origin->node : std::string_view(from->shared->name);
  if (v.sender_node == node) return true;
  bump(core_->counters.frames_forged);
  if (origin && (v.type == MessageType::Request || v.type == MessageType::Notify)) {
    bump(core_->counters.refused[type_index(v.type)]);
    send_error(*origin, v.id, v.target, v.sender_agent, ErrorCode::Unauthenticated);
  }
  return false;
}

std::shared_ptr<Inbox> Loop::find_inbox(std::string_view name) {
  // The inbox of the batch being gathered, without the table's lock.
  if (batch_inbox_ && batch_inbox_->name() == name) return batch_inbox_;
  return core_->find_inbox(name);
}

void Loop::deliver(const std::shared_ptr<Inbox>& inbox, Incoming&& message, std::string_view identity) {
  if (batch_inbox_ && batch_inbox_ != inbox) flush_deliveries();
  batch_inbox_ = inbox;
  batch_.push_back(std::move(message));
  batch_identities_.emplace_back(identity);
}

// Consecutive messages for one inbox go in with one lock and one wake-up
// of its consumer: under a flood that halves the context switches.
bool Loop::flush_deliveries() {
  bool sent = false;
  if (!batch_.empty()) {
    batch_outcome_.resize(batch_.size());
    const std::size_t taken = batch_inbox_->push_batch(batch_, batch_outcome_);
    for (std::size_t i = 0; taken < batch_.size() && i < batch_.size(); ++i) {
      const ErrorCode why = batch_outcome_[i];
      if (why == ErrorCode::None) continue;
      // The refusal goes back as an Error correlated with the message; its
      // sender_agent names the target, so the sender can report both.
      const Envelope& e = batch_[i].envelope;
      bump(core_->counters.refused[type_index(e.type)]);
      send_error(Origin{batch_identities_[i], batch_[i].source}, e.id, e.target, e.sender_agent, why,
                 e.type == MessageType::Request);
      sent = true;
    }
  }
  batch_.clear();
  batch_identities_.clear();
  batch_inbox_.reset();
  return sent;
}

void Loop::deliver_notify(const EnvelopeView& v, const Origin& origin) {
  auto inbox = find_inbox(v.target);
  if (!inbox) {
    bump(core_->counters.refused[type_index(MessageType::Notify)]);
    send_error(origin, v.id, v.target, v.sender_agent, ErrorCode::TargetUnknown);
    return;
  }
  deliver(inbox, Incoming{v.to_owned(), nullptr, std::string(origin.node), {}}, origin.identity);
}

void Loop::deliver_request(const EnvelopeView& v, const Origin& origin) {
  auto inbox = find_inbox(v.target);
  if (!inbox) {
    bump(core_->counters.refused[type_index(MessageType::Request)]);
    send_error(origin, v.id, v.target, v.sender_agent, ErrorCode::TargetUnknown, true);
    return;
  }
  if (const auto& quick = inbox->quick_handler()) {
    // Answered right here: no hop to another thread and back.
    std::vector<std::uint8_t> payload;
    const ErrorCode code = run_quick(quick, v, payload);
    Envelope reply = make_reply(*core_, v, code, std::move(payload), {}, v.priority);
    encode(reply, scratch_);
    router_send(origin, scratch_, reply.type, &v.id);
    return;
  }
  auto route = std::make_shared<ReplyRoute>();
  route->identity = std::string(origin.identity);
  route->core = core_;
  deliver(inbox, Incoming{v.to_owned(), std::move(route), std::string(origin.node), {}}, origin.identity);
}

void Loop::complete_pending(const EnvelopeView& v, const Peer& from) {
  if (!v.correlation) {
    bump(core_->counters.replies_unmatched);
    return;
  }
  const MessageId corr = *v.correlation;
  // A caller that sent its request itself handed the call over before the
  // reply could be read; it may not have been taken yet.
  if (!pending_.contains(corr)) take_direct_watches();
  auto [first, last] = pending_.equal_range(corr);
  // Only the peer a request went to can answer it.
  std::vector<std::shared_ptr<PendingCall>> calls;
  for (auto it = first; it != last;) {
    if (it->second->peer == from.shared.get()) {
      calls.push_back(std::move(it->second));
      it = pending_.erase(it);
    } else {
      ++it;
    }
  }
  if (calls.empty()) {
    if (v.type == MessageType::Error && finished_.insert(corr, steady_now_ms())) {
      // Not one of our requests: the receiver refused a notify of ours.
      // Its target is our sending agent, its sender_agent the inbox that
      // refused; the node is the peer it came from.
      bump(core_->counters.refused[type_index(MessageType::Notify)]);
      report_undeliverable(corr, from.shared->name, v.sender_agent, v.target, v.error);
    } else {
      bump(core_->counters.replies_unmatched);  // late reply to a finished request
    }
    return;
  }
  for (auto& call : calls) {
    Reply reply;
    if (v.type == MessageType::Error) {
      reply.error = v.error == ErrorCode::None ? ErrorCode::Rejected : v.error;
    }
    reply.envelope = v.to_owned();
    call->complete(std::move(reply));
  }
}

}  // namespace mesh::transport::detail
