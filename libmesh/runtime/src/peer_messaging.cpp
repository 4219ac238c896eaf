// PeerClient's messages: notify, request, respond, broadcast, receive,
// ask_async and check_inbox (the rest: peer_client.cpp).
#include <algorithm>
#include <unordered_set>
#include <utility>

#include "mesh/peer_client.hpp"
#include "mesh_core.hpp"

namespace mesh {

using detail::address_of;
using detail::resolve_target;
using transport::Address;
using transport::OutMessage;

namespace {

struct Prepared {
  ErrorCode error = ErrorCode::None;
  std::optional<PeerRef> target;  // resolved: what the send needs of it
  std::optional<PeerInfo> peer;   // its card too, for a request's outcome (with_card)
  OutMessage message;
  detail::SentRequest sent;
  std::chrono::milliseconds timeout{0};  // a request's
};

// A caller's context as a send keeps it: an empty object (every call
// without one, by default) as null, which means the same all the way to
// the receiver (an empty object) but takes no allocation to copy.
Json context_or_none(const Json& ctx) { return ctx.is_object() && ctx.empty() ? Json() : ctx; }

std::int64_t unix_now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// A request's timeout: the caller's (or the node's default), never past
// the deadline of the message being handled, if any: nobody waits for
// an answer after that. Zero once that deadline has passed.
std::chrono::milliseconds request_timeout(const detail::MeshCore& core, const SendOptions& o) {
  auto timeout = o.timeout.value_or(std::chrono::milliseconds(core.request_timeout_ms.load()));
  if (const auto* h = detail::current_handling(core); h && h->deadline_ms > 0) {
    const std::chrono::milliseconds left(h->deadline_ms - unix_now_ms());
    timeout = std::max(std::chrono::milliseconds(0), std::min(timeout, left));
  }
  return timeout;
}

}  // namespace

// Resolves the target, encodes the message and stamps its thread:
// everything a send needs. A policy that does not let this agent do
// `action` to the target fails it here, PermissionDenied, and a thread
// over its limits (for a target on this node) with the limit's error,
// before anything is sent. `with_card`: the caller hands the target's
// PeerInfo back (a request's outcome); otherwise only a PeerRef is taken.
static Prepared prepare(detail::MeshCore& core, PeerClient& client, std::string_view target,
                        const Json& message, const SendOptions& o, Strategy strategy, PolicyAction action,
                        bool with_card) {
  Prepared p;
  std::vector<std::uint8_t> context = core.encode_context(o.context);  // throws on a non-object
  if (with_card) {
    p.peer = resolve_target(core, target, strategy, client.my_id(), client.my_role(), action);
    if (p.peer) p.target = ref_of(*p.peer);
  } else {
    p.target = detail::resolve_target_ref(core, target, strategy, client.my_id(), client.my_role(), action);
  }
  if (!p.target) {
    p.error = ErrorCode::TargetUnknown;
    return p;
  }
  const PeerRef& to = *p.target;
  if (!core.may_send(client.my_id(), client.my_role(), to, action)) {
    p.error = ErrorCode::PermissionDenied;
    return p;
  }
  p.message.to = address_of(to);
  if (to.local) {
    // Its receiver is on this node: it takes the JSON as it is here. No
    // context (or an empty one) stays null: the receiver's message has an
    // empty object already, and copying one here cost an allocation.
    p.message.local = std::make_shared<detail::DecodedBody>(message, context_or_none(o.context));
  }
  p.message.sender_agent = client.my_id();
  p.message.payload = detail::encode_json(message);
  p.message.context = std::move(context);
  if (p.message.payload.size() + p.message.context.size() > core.limits.max_bytes) {
    p.error = ErrorCode::Oversized;
    return p;
  }
  const bool request = action == PolicyAction::Request;
  if (request) {
    p.timeout = request_timeout(core, o);
    if (p.timeout.count() == 0) {
      p.error = ErrorCode::Timeout;  // the handler's own deadline has passed
      return p;
    }
  }
  // Last: a message stamped counts as a turn of its thread.
  p.error = core.stamp_thread(client.my_id(), client.my_role(), to, o, request, p.message, &p.sent);
  return p;
}

bool PeerClient::notify(std::string_view target, const Json& message, const Json& ctx) {
  return notify_detailed(target, message, ctx) == ErrorCode::None;
}

ErrorCode PeerClient::notify_detailed(std::string_view target, const Json& message, const Json& ctx) {
  return notify_detailed(target, message, SendOptions{.context = context_or_none(ctx)});
}

bool PeerClient::notify(std::string_view target, const Json& message, const SendOptions& options) {
  return notify_detailed(target, message, options) == ErrorCode::None;
}

ErrorCode PeerClient::notify_detailed(std::string_view target, const Json& message, const SendOptions& options) {
  Prepared p = prepare(core_, *this, target, message, options, default_strategy(), PolicyAction::Notify, false);
  auto t = core_.get_transport();
  if (p.error == ErrorCode::None && !t) p.error = ErrorCode::Shutdown;
  if (p.error != ErrorCode::None) {
    count_notify(false);
    return p.error;
  }
  if (const ErrorCode sent = t->notify(std::move(p.message)); sent != ErrorCode::None) {
    count_notify(false);
    return sent;
  }
  count_notify(true);
  record_peer_usage(p.target->agent_id);
  return ErrorCode::None;
}

std::optional<Response> PeerClient::request_blocking(std::string_view target, const Json& message,
                                                     std::optional<std::chrono::milliseconds> timeout,
                                                     const Json& ctx) {
  return request_detailed_blocking(target, message, timeout, ctx).response;
}

RequestOutcome PeerClient::request_detailed_blocking(std::string_view target, const Json& message,
                                                     std::optional<std::chrono::milliseconds> timeout,
                                                     const Json& ctx) {
  return request_detailed_blocking(target, message, SendOptions{.timeout = timeout, .context = ctx});
}

std::optional<Response> PeerClient::request_blocking(std::string_view target, const Json& message,
                                                     const SendOptions& options) {
  return request_detailed_blocking(target, message, options).response;
}

RequestOutcome PeerClient::request_detailed_blocking(std::string_view target, const Json& message,
                                                     const SendOptions& options) {
  detail::forbid_blocking("request_blocking");
  Prepared p = prepare(core_, *this, target, message, options, default_strategy(), PolicyAction::Request, true);
  RequestOutcome out;
  out.peer = p.peer;
  if (p.error != ErrorCode::None) {
    out.error = p.error;
    return out;
  }
  auto t = core_.get_transport();
  if (!t) {
    out.error = ErrorCode::Shutdown;
    return out;
  }
  record_peer_usage(p.target->agent_id);
  RequestOutcome got = core_.to_outcome(t->request(std::move(p.message), p.timeout), &p.sent);
  got.peer = std::move(out.peer);
  return got;
}

namespace {

template <class T>
Task<T> ready_task(T value) {
  co_return value;
}

Task<std::optional<Response>> response_of(Task<RequestOutcome> outcome) {
  co_return (co_await outcome).response;
}

Task<std::optional<Response>> response_of(Task<AskCheck> check) {
  co_return (co_await check).response;
}

// The request is sent when the task is first awaited; the coroutine
// resumes on the caller's scope (its agent's strand) with the outcome, or
// with Shutdown at once when the agent stops meanwhile.
Task<RequestOutcome> await_request(detail::MeshCore& core, detail::AwaitScope& scope,
                                   std::shared_ptr<transport::Transport> t, OutMessage m,
                                   std::chrono::milliseconds timeout, std::optional<PeerInfo> peer,
                                   detail::SentRequest sent) {
  RequestOutcome stopped;
  stopped.error = ErrorCode::Shutdown;
  // A named awaiter: GCC 12 mishandles a non-trivial temporary awaiter
  // (it frees what the lambda captured by move twice).
  auto op = detail::await_op<RequestOutcome>(
      scope,
      [&core, t = std::move(t), m = std::move(m), timeout, sent = std::move(sent)](auto c) mutable {
        auto transport = std::move(t);  // not kept past the send
        transport->request_async(std::move(m), timeout, [&core, c, sent = std::move(sent)](transport::Reply reply) {
          c->complete(core.to_outcome(std::move(reply), &sent));
        });
      },
      std::move(stopped));
  RequestOutcome out = co_await op;
  out.peer = std::move(peer);
  co_return out;
}

}  // namespace

Task<std::optional<Response>> PeerClient::request(std::string_view target, const Json& message,
                                                  std::optional<std::chrono::milliseconds> timeout,
                                                  const Json& ctx) {
  return response_of(request_detailed(target, message, SendOptions{.timeout = timeout, .context = ctx}));
}

Task<RequestOutcome> PeerClient::request_detailed(std::string_view target, const Json& message,
                                                  std::optional<std::chrono::milliseconds> timeout,
                                                  const Json& ctx) {
  return request_detailed(target, message, SendOptions{.timeout = timeout, .context = ctx});
}

Task<std::optional<Response>> PeerClient::request(std::string_view target, const Json& message,
                                                  const SendOptions& options) {
  return response_of(request_detailed(target, message, options));
}

Task<RequestOutcome> PeerClient::request_detailed(std::string_view target, const Json& message,
                                                  const SendOptions& options) {
  // Resolved, encoded and stamped now: the task owns everything it needs.
  Prepared p = prepare(core_, *this, target, message, options, default_strategy(), PolicyAction::Request, true);
  auto t = core_.get_transport();
  if (p.error == ErrorCode::None && !t) p.error = ErrorCode::Shutdown;
  if (p.error != ErrorCode::None) {
    RequestOutcome out;
    out.error = p.error;
    out.peer = std::move(p.peer);
    return ready_task(std::move(out));
  }
  record_peer_usage(p.target->agent_id);
  return await_request(core_, await_scope(), std::move(t), std::move(p.message), p.timeout, std::move(p.peer),
                       std::move(p.sent));
}

std::future<RequestOutcome> PeerClient::request_async(std::string_view target, const Json& message,
                                                      std::optional<std::chrono::milliseconds> timeout,
                                                      const Json& ctx) {
  auto promise = std::make_shared<std::promise<RequestOutcome>>();
  auto future = promise->get_future();
  request_then(target, message, timeout, ctx,
               [promise](RequestOutcome out) { promise->set_value(std::move(out)); });
  return future;
}

void PeerClient::request_then(std::string_view target, const Json& message,
                              std::optional<std::chrono::milliseconds> timeout, const Json& ctx,
                              std::function<void(RequestOutcome)> done) {
  request_then(target, message, SendOptions{.timeout = timeout, .context = ctx}, std::move(done));
}

void PeerClient::request_then(std::string_view target, const Json& message, const SendOptions& options,
                              std::function<void(RequestOutcome)> done) {
  Prepared p = prepare(core_, *this, target, message, options, default_strategy(), PolicyAction::Request, true);
  auto t = core_.get_transport();
  if (p.error != ErrorCode::None || !t) {
    RequestOutcome out;
    out.error = p.error != ErrorCode::None ? p.error : ErrorCode::Shutdown;
    out.peer = std::move(p.peer);
    done(std::move(out));
    return;
  }
  record_peer_usage(p.target->agent_id);
  detail::MeshCore* core = &core_;
  t->request_async(std::move(p.message), p.timeout,
                   [core, done = std::move(done), peer = std::move(p.peer),
                    sent = std::move(p.sent)](transport::Reply reply) mutable {
                     RequestOutcome out = core->to_outcome(std::move(reply), &sent);
                     out.peer = std::move(peer);
                     done(std::move(out));
                   });
}

bool PeerClient::respond(const IncomingMessage& incoming, const Json& message, const std::optional<Json>& ctx) {
  if (!incoming.handle || !incoming.is_request()) return false;
  auto context = core_.encode_context(ctx ? *ctx : incoming.context);
  auto payload = detail::encode_json(message);
  if (payload.size() + context.size() > core_.limits.max_bytes) return false;
  auto t = core_.get_transport();
  if (!t) return false;
  auto thread = core_.response_thread(incoming, payload);
  return t->respond(*incoming.handle, std::move(payload), std::move(context), incoming.priority,
                    std::move(thread)) == ErrorCode::None;
}

bool PeerClient::respond_error(const IncomingMessage& incoming, ErrorCode code) {
  if (!incoming.handle || !incoming.is_request() || code == ErrorCode::None) return false;
  auto t = core_.get_transport();
  if (!t) return false;
  if (t->respond_error(*incoming.handle, code) != ErrorCode::None) return false;
  core_.audit_handled(incoming, "answered", code);
  return true;
}

namespace {

// A broadcast's copies go to the peers the policy lets this agent
// broadcast to (the transport marks them kFlagBroadcast, so that the
// receiver's policy can tell them from notifies).
// Each copy is a message of the thread on its own (a turn each, checked
// as any notify).
std::size_t send_to_each(detail::MeshCore& core, const PeerClient& client, std::vector<PeerInfo> peers,
                         const Json& message, const Json& ctx) {
  const std::string& self = client.my_id();
  auto context = core.encode_context(ctx);
  auto payload = detail::encode_json(message);
  if (payload.size() + context.size() > core.limits.max_bytes) return 0;
  auto t = core.get_transport();
  if (!t) return 0;
  std::unordered_set<std::string> seen;
  const SendOptions options;
  std::size_t accepted = 0;
  for (const auto& p : peers) {
    if (!core.may_send(self, client.my_role(), p, PolicyAction::Broadcast)) continue;
    if (!seen.insert(p.card.agent_id).second) continue;
    OutMessage m;
    m.to = address_of(p);
    m.sender_agent = self;
    m.payload = payload;
    m.context = context;
    m.flags = transport::kFlagBroadcast;
    if (core.stamp_thread(self, client.my_role(), p, options, false, m, nullptr) != ErrorCode::None) continue;
    accepted += t->notify(std::move(m)) == ErrorCode::None ? 1 : 0;
  }
  return accepted;
}

}  // namespace

std::size_t PeerClient::broadcast(const Json& message, const Json& ctx) {
  const auto peers = list_peers();
  const std::size_t accepted = send_to_each(core_, *this, peers, message, ctx);
  count_notify(true, accepted);
  count_notify(false, peers.size() - std::min(accepted, peers.size()));
  return accepted;
}

std::size_t PeerClient::broadcast_to(const PeerQuery& query, const Json& message, const Json& ctx) {
  const auto peers = discover(query, Strategy::First);
  const std::size_t accepted = send_to_each(core_, *this, peers, message, ctx);
  count_notify(true, accepted);
  count_notify(false, peers.size() - std::min(accepted, peers.size()));
  return accepted;
}

namespace {

Task<std::optional<IncomingMessage>> await_receive(std::shared_ptr<detail::AgentSlot> slot,
                                                   std::optional<std::chrono::milliseconds> timeout) {
  auto wait = std::make_shared<detail::ReceiveWait>();
  wait->timeout = timeout;
  // A named awaiter: GCC 12 mishandles a non-trivial temporary awaiter
  // (it frees what the lambda captured by move twice).
  auto op = detail::await_op<std::optional<IncomingMessage>>(
      slot->scope,
      [slot, wait](auto c) {
        wait->completion = std::move(c);
        boost::asio::post(slot->strand, [slot, wait] { slot->start_receive(wait); });
      },
      std::nullopt);
  co_return co_await op;
}

}  // namespace

Task<std::optional<IncomingMessage>> PeerClient::receive(std::optional<std::chrono::milliseconds> timeout) {
  if (!slot_) return ready_task<std::optional<IncomingMessage>>(std::nullopt);
  if (slot_->kind == detail::AgentSlot::Kind::Custom) {
    throw std::logic_error("receive: " + agent_id_ + " is a CustomAgent: its messages go to its handlers");
  }
  return await_receive(slot_->shared_from_this(), timeout);
}

std::optional<IncomingMessage> PeerClient::receive_blocking(std::optional<std::chrono::milliseconds> timeout) {
  detail::forbid_blocking("receive_blocking");
  auto inbox = core_.inbox_of(agent_id_);
  if (!inbox) return std::nullopt;
  // A plain time point (not an optional one: GCC 12 warns of the latter
  // as maybe uninitialised at -O1).
  const bool bounded = timeout.has_value();
  const auto until = std::chrono::steady_clock::now() + timeout.value_or(std::chrono::milliseconds(0));
  while (true) {
    std::optional<std::chrono::milliseconds> left;
    if (bounded) {
      left = std::max(std::chrono::milliseconds(0),
                      std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now()));
    }
    auto raw = inbox->pop(left);
    if (!raw) return std::nullopt;
    if (auto msg = core_.to_incoming(std::move(*raw))) {
      detail::set_current_handling(msg->handling);  // what this thread sends next belongs to its thread
      return msg;
    }
    if (bounded && std::chrono::steady_clock::now() >= until) return std::nullopt;
  }
}

std::string PeerClient::ask_async(std::string_view target, const Json& message,
                                  std::chrono::milliseconds timeout, const Json& ctx) {
  Prepared p = prepare(core_, *this, target, message, SendOptions{.timeout = timeout, .context = ctx},
                       default_strategy(), PolicyAction::Request, false);
  if (p.error == ErrorCode::TargetUnknown) {
    throw MeshError("ask_async: no agent \"" + std::string(target) + "\" to ask", p.error);
  }
  if (p.error != ErrorCode::None) {
    throw MeshError("ask_async: " + std::string(transport::to_string(p.error)), p.error);
  }
  auto t = core_.get_transport();
  if (!t) throw MeshError("ask_async: the mesh is not running", ErrorCode::Shutdown);
  const std::string id = p.target->agent_id;
  auto ticket = t->ask_async(std::move(p.message), p.timeout);
  if (ticket.error != ErrorCode::None) {
    throw MeshError("ask_async to " + id + ": " + std::string(transport::to_string(ticket.error)),
                    ticket.error);
  }
  record_peer_usage(id);
  return ticket.id.to_string();
}

namespace {

AskCheck to_check(detail::MeshCore& core, transport::AskResult res) {
  AskCheck out;
  switch (res.state) {
    case transport::AskState::Pending: out.status = AskStatus::Pending; break;
    case transport::AskState::Expired: out.status = AskStatus::Expired; break;
    case transport::AskState::Unknown: out.status = AskStatus::Unknown; break;
    case transport::AskState::Ready: {
      out.status = AskStatus::Ready;
      RequestOutcome o = core.to_outcome(std::move(res.reply));
      out.error = o.error;
      out.response = std::move(o.response);
      break;
    }
  }
  return out;
}

// Waits (without a thread) until the ask is answered, fails or expires,
// or `timeout` passes, or the caller stops; then looks.
Task<AskCheck> await_ask(detail::MeshCore& core, detail::AwaitScope& scope, std::shared_ptr<transport::Transport> t,
                         transport::MessageId id, std::chrono::milliseconds timeout, bool remove) {
  if (timeout.count() > 0 && t->check_inbox(id, std::chrono::milliseconds(0), false).state ==
                                 transport::AskState::Pending) {
    // A named awaiter: GCC 12 mishandles a non-trivial temporary awaiter
    // (it frees what the lambda captured by move twice).
    auto op = detail::await_op<bool>(
        scope,
        [&core, t, id, timeout](auto c) {
          detail::complete_after(core.pool->get_executor(), timeout, c, true);
          if (!t->watch_ask(id, [c] { c->complete(true); })) c->complete(true);  // not pending any more
        },
        false);
    co_await op;
  }
  co_return to_check(core, t->check_inbox(id, std::chrono::milliseconds(0), remove));
}

}  // namespace

Task<AskCheck> PeerClient::check_inbox_status(std::string_view request_id, std::chrono::milliseconds timeout,
                                              bool remove) {
  const auto id = transport::MessageId::parse(request_id);
  auto t = core_.get_transport();
  if (!id || !t) return ready_task(AskCheck{});
  return await_ask(core_, await_scope(), std::move(t), *id, timeout, remove);
}

Task<std::optional<Response>> PeerClient::check_inbox(std::string_view request_id,
                                                      std::chrono::milliseconds timeout, bool remove) {
  return response_of(check_inbox_status(request_id, timeout, remove));
}

AskCheck PeerClient::check_inbox_status_blocking(std::string_view request_id, std::chrono::milliseconds timeout,
                                                 bool remove) {
  if (timeout.count() > 0) detail::forbid_blocking("check_inbox_blocking");
  const auto id = transport::MessageId::parse(request_id);
  auto t = core_.get_transport();
  if (!id || !t) return AskCheck{};
  return to_check(core_, t->check_inbox(*id, timeout, remove));
}

std::optional<Response> PeerClient::check_inbox_blocking(std::string_view request_id,
                                                         std::chrono::milliseconds timeout, bool remove) {
  return check_inbox_status_blocking(request_id, timeout, remove).response;
}

Task<void> PeerClient::sleep(std::chrono::milliseconds duration) {
  detail::AwaitScope& scope = await_scope();
  detail::MeshCore& core = core_;
  // A named awaiter: GCC 12 mishandles a non-trivial temporary awaiter
  // (it frees what the lambda captured by move twice).
  auto op = detail::await_op<bool>(
      scope, [&core, duration](auto c) { detail::complete_after(core.pool->get_executor(), duration, c, true); },
      false);
  co_await op;
}

}  // namespace mesh
