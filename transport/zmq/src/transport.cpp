// The caller side of a Transport: every public call runs here, on the
// caller's thread. Checks that decide an outcome (unknown peer, dead,
// unreachable, queue full, oversized) are made here, synchronously, from
// the peer table; encoding happens here too, so that callers encode in
// parallel and the transport thread only moves bytes. Same-node messages
// never leave this file: they go straight into the target inbox.
#include "mesh/transport/transport.hpp"

#include <zmq.hpp>

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>

#include "clock.hpp"
#include "core.hpp"
#include "loop.hpp"
#include "replies.hpp"
#include "request_channel.hpp"
#include "zmq_io.hpp"

namespace mesh::transport {

using detail::bump;
using detail::Core;
using detail::PeerShared;
using detail::PeerState;
using detail::PendingCall;

namespace {

// Requests with a timeout shorter than this wake the transport thread to
// watch their deadline at once; longer ones wait for its next wake-up.
constexpr std::int64_t kUrgentWatchMs = 2 * detail::kMaxPollMs;

void validate(const TransportOptions& o) {
  if (o.node_name.empty() || o.node_name.size() > 255) {
    throw TransportError("node_name must be 1..255 bytes");
  }
  if (o.node_name.front() == '\0') throw TransportError("node_name must not start with a NUL byte");
  // '#' separates the node name from the channel's random suffix in the
  // routing ids of request channels ("<node>#<hex>"); a node named like
  // one of those would steal its connection (ROUTER_HANDOVER), and the
  // receiver keys its duplicate window by the part before the '#'.
  if (o.node_name.find('#') != std::string::npos) throw TransportError("node_name must not contain '#'");
  if (o.max_frame_bytes == 0) throw TransportError("max_frame_bytes must be positive");
  if (o.peer_queue_limit == 0) throw TransportError("peer_queue_limit must be positive");
  if (o.inbox_limit == 0) throw TransportError("inbox_limit must be positive");
  if (o.peer_queue_bytes == 0 || o.inbox_bytes == 0 || o.reply_deferral_bytes == 0 || o.ask_bytes == 0 ||
      o.ask_limit == 0) {
    throw TransportError("byte budgets and ask_limit must be positive");
  }
  if (!(o.inbox_peer_share > 0.0 && o.inbox_peer_share <= 1.0) ||
      !(o.reply_deferral_share > 0.0 && o.reply_deferral_share <= 1.0)) {
    throw TransportError("inbox_peer_share and reply_deferral_share must be in (0, 1]");
  }
  if (o.heartbeat_interval.count() < 0 || o.heartbeat_timeout.count() < 0 ||
      o.reconnect_interval.count() < 0 || o.reconnect_interval_max.count() < 0) {
    throw TransportError("negative interval in TransportOptions");
  }
  if (o.curve) {
    if (!is_valid_curve_key(o.curve->public_key) || !is_valid_curve_key(o.curve->secret_key)) {
      throw TransportError("malformed CURVE key pair");
    }
    if (curve_public_from_secret(o.curve->secret_key) != o.curve->public_key) {
      throw TransportError("CURVE public key does not belong to the secret key");
    }
  }
}

Envelope make_envelope(Core& core, OutMessage& m, MessageType type, std::int64_t deadline_ms) {
  Envelope e;
  e.id = m.id.empty() ? core.ids.next() : m.id;
  e.type = type;
  e.priority = m.priority;
  e.sender_agent = std::move(m.sender_agent);
  e.sender_node = core.options.node_name;
  e.target = m.to.target;
  e.created_ms = detail::unix_now_ms();
  e.deadline_ms = deadline_ms;
  e.context = std::move(m.context);
  e.payload = std::move(m.payload);
  return e;
}

bool fails_fast(ErrorCode e) {
  return e == ErrorCode::PeerDead || e == ErrorCode::PeerUnreachable || e == ErrorCode::Shutdown;
}

// A per-address id for a broadcast with a caller-chosen id: resending the
// broadcast under the same id then repeats the same ids per address (and
// is deduplicated), while two targets on one node do not collide.
MessageId derive_id(const MessageId& base, const Address& a) {
  std::uint64_t h = 1469598103934665603ull;  // FNV-1a
  auto mix = [&h](std::string_view s) {
    for (unsigned char ch : s) {
      h ^= ch;
      h *= 1099511628211ull;
    }
  };
  mix(a.node);
  mix(std::string_view("\0", 1));
  mix(a.target);
  return MessageId{base.hi ^ h, base.lo};
}

}  // namespace

struct Transport::Impl {
  explicit Impl(TransportOptions options);
  ~Impl();

  // Looks the peer up and reserves a place in its queue.
  ErrorCode reserve(const std::string& node, std::shared_ptr<PeerShared>& out);
  // Sends an encoded notify on the peer's DEALER from this thread, when
  // that keeps the order and the failure reporting of the queued path.
  bool send_direct(PeerShared& peer, const std::vector<std::uint8_t>& bytes);
  void unreserve(PeerShared& peer);
  // Adds an encoded frame's bytes to a peer reserved above: MailboxFull
  // (and the reservation dropped) when the queue's byte budget would be
  // exceeded. An empty queue takes any frame, so that a budget smaller
  // than max_frame_bytes cannot block a peer for good.
  ErrorCode charge(PeerShared& peer, std::size_t bytes);
  void uncharge(PeerShared& peer, std::size_t bytes);
  ErrorCode start_request(OutMessage&& m, std::chrono::milliseconds timeout, std::function<void(Reply)> done);
  // request_async without the latency count (the caller counts).
  void request_async(OutMessage&& m, std::chrono::milliseconds timeout, std::function<void(Reply)> done);
  // Hands an encoded request to the transport thread; `peer` is reserved.
  ErrorCode send_remote(std::shared_ptr<PeerShared> peer, const Envelope& env, std::vector<std::uint8_t>&& bytes,
                        std::chrono::milliseconds timeout, std::function<void(Reply)> done);
  // A same-node request. With `waiter` set the caller waits for it and
  // watches the deadline itself (*waiter = the call, unless a quick
  // handler already answered); otherwise LocalDeadlines watches it.
  ErrorCode start_local_request(OutMessage&& m, std::chrono::milliseconds timeout,
                                std::function<void(Reply)>& done, std::shared_ptr<PendingCall>* waiter);
  // local_only has no transport thread: every public call does its chores,
  // and a same-node request nobody waits on (request_async, ask_async)
  // starts the deadline watcher below, so that its timeout fires even when
  // no further call comes.
  void tick();
  void watch_local_deadlines();
  void local_timer_loop();
  ErrorCode answer(const Incoming& in, ErrorCode code, std::vector<std::uint8_t> payload,
                   std::vector<std::uint8_t> context, Priority priority);

  std::shared_ptr<Core> core;
  std::optional<zmq::context_t> zmq_context;  // before loop: outlives its sockets
  std::unique_ptr<detail::Loop> loop;
  std::thread thread;
  // local_only: the deadline watcher, started on first need.
  std::mutex timer_mu;
  std::condition_variable timer_cv;
  std::thread timer;
  bool timer_stop = false;
};

Transport::Impl::Impl(TransportOptions options) {
  validate(options);
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
  core->commands.push(detail::CmdStop{});
  if (thread.joinable()) thread.join();
  loop->drain_late_commands();
  loop.reset();
  // Threads waiting on request channels see `stopping` within a slice
  // (kMaxPollMs) and give them back; their sockets are closed before the
  // context (zmq_ctx_term waits for every socket of the context).
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

ErrorCode Transport::Impl::reserve(const std::string& node, std::shared_ptr<PeerShared>& out) {
  if (core->stopping.load()) return ErrorCode::Shutdown;
  std::shared_lock lock(core->peers_mu);
  auto it = core->peers.find(node);
  if (it == core->peers.end()) {
    return core->tombstones.contains(node) ? ErrorCode::PeerDead : ErrorCode::PeerUnknown;
  }
  PeerShared& peer = *it->second;
  if (peer.state.load(std::memory_order_acquire) == PeerState::Unreachable) return ErrorCode::PeerUnreachable;
  if (peer.queued.fetch_add(1, std::memory_order_acq_rel) >= core->options.peer_queue_limit) {
    peer.queued.fetch_sub(1, std::memory_order_acq_rel);
    return ErrorCode::MailboxFull;
  }
  bump(core->counters.outbound_queued);
  out = it->second;
  return ErrorCode::None;
}

// Conditions, and why each:
//  * Connected: a DEALER with IMMEDIATE would refuse anyway, and a peer that
//    is not connected needs the queue (and its failure reports);
//  * queued == 1 (our own reservation only): nothing of ours is waiting in
//    the queue or on the way to it, so this cannot overtake it;
//  * no request awaiting a reply on the main DEALER: a send may process the
//    socket's pending commands and so take the signal its fd would give the
//    transport thread. The thread looks at the DEALER again at its next
//    wake-up (dealer_used), which delays only what arrives meanwhile:
//    refusals of notifies, never a reply somebody waits for;
//  * try_lock: never wait behind the transport thread; queue instead.
bool Transport::Impl::send_direct(PeerShared& peer, const std::vector<std::uint8_t>& bytes) {
  if (!core->options.direct_notifies || peer.state.load(std::memory_order_acquire) != PeerState::Connected ||
      peer.queued.load(std::memory_order_acquire) != 1 || peer.pending_main.load(std::memory_order_acquire) != 0) {
    return false;
  }
  std::unique_lock lock(peer.dealer_mu, std::try_to_lock);
  if (!lock.owns_lock() || !peer.dealer) return false;
  auto& sent = core->counters.sent[detail::type_index(MessageType::Notify)];
  bump(sent);
  if (!detail::send_now(peer.dealer, zmq::buffer(bytes))) {
    detail::drop(sent);
    return false;
  }
  peer.dealer_used.store(true, std::memory_order_release);
  return true;
}

void Transport::Impl::unreserve(PeerShared& peer) {
  peer.queued.fetch_sub(1, std::memory_order_acq_rel);
  detail::drop(core->counters.outbound_queued);
}

ErrorCode Transport::Impl::charge(PeerShared& peer, std::size_t bytes) {
  const std::size_t before = peer.queued_bytes.fetch_add(bytes, std::memory_order_acq_rel);
  if (before != 0 && before + bytes > core->options.peer_queue_bytes) {
    peer.queued_bytes.fetch_sub(bytes, std::memory_order_acq_rel);
    unreserve(peer);
    return ErrorCode::MailboxFull;
  }
  bump(core->counters.outbound_queued_bytes, bytes);
  return ErrorCode::None;
}

void Transport::Impl::uncharge(PeerShared& peer, std::size_t bytes) {
  peer.queued_bytes.fetch_sub(bytes, std::memory_order_acq_rel);
  detail::drop(core->counters.outbound_queued_bytes, bytes);
}

void Transport::Impl::tick() {
  if (!core->options.local_only) return;  // the transport thread does this
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
    const std::int64_t next = core->local_deadlines.next_ms();
    const std::int64_t now = detail::steady_now_ms();
    if (next <= now) {
      lock.unlock();
      tick();  // completes calls: their callbacks run without our lock
      lock.lock();
      continue;
    }
    // Nothing pending: sleep until a new call arrives (notify) or, at the
    // latest, a second from now (ask retention sweeps).
    const std::int64_t wait_ms = std::min<std::int64_t>(next - now, 1000);
    timer_cv.wait_for(lock, std::chrono::milliseconds(wait_ms));
  }
}

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
  const ErrorCode code = inbox->push(Incoming{std::move(env), std::move(route), {}});
  if (code != ErrorCode::None) {
    call->cancel();
    return code;
  }
  if (waiter) {
    *waiter = std::move(call);
    return ErrorCode::None;
  }
  // The transport thread is woken only for a deadline that is both the
  // earliest and near; otherwise its next wake-up (kMaxPollMs) is soon
  // enough, and the request costs no hop at all.
  const bool earliest = core->local_deadlines.add(std::move(call));
  if (core->options.local_only) {
    if (earliest) watch_local_deadlines();
  } else if (earliest && timeout.count() < kUrgentWatchMs) {
    core->commands.push(detail::CmdWake{});
  }
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
  core->commands.push(detail::CmdSend{std::move(peer), std::move(frame)});
  return ErrorCode::None;
}

ErrorCode Transport::Impl::answer(const Incoming& in, ErrorCode code, std::vector<std::uint8_t> payload,
                                  std::vector<std::uint8_t> context, Priority priority) {
  if (!in.is_request() || !in.route) return ErrorCode::Rejected;
  ReplyRoute& route = *in.route;
  if (route.answered.load(std::memory_order_acquire)) return ErrorCode::Rejected;
  Envelope reply = detail::make_reply(*core, detail::view_of(in.envelope), code, std::move(payload),
                                      std::move(context), priority);
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
  owner->commands.push(detail::CmdReply{route.identity, std::move(bytes), reply.type, in.envelope.id});
  return ErrorCode::None;
}

// ---------------------------------------------------------------- Transport

Transport::Transport(TransportOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}

Transport::~Transport() = default;

const std::string& Transport::node_name() const { return impl_->core->options.node_name; }
std::uint16_t Transport::bound_port() const { return impl_->core->port; }
std::string Transport::endpoint() const { return impl_->core->endpoint; }

void Transport::add_peer(PeerAddress peer) {
  Core& core = *impl_->core;
  // local_only: no peers, so that a send to another node is PeerUnknown.
  if (core.options.local_only || core.stopping.load() || peer.name.empty() || peer.name.front() == '\0' ||
      core.is_local(peer.name)) {
    return;
  }
  std::shared_ptr<PeerShared> shared;
  {
    std::unique_lock lock(core.peers_mu);
    if (core.tombstones.erase(peer.name) > 0) {
      std::erase(core.tombstone_order, peer.name);
    }
    auto& slot = core.peers[peer.name];
    if (!slot) {
      slot = std::make_shared<PeerShared>(peer.name);
      core.register_pool(slot->channels);
      // Decided here, not on the thread, so that a send right after
      // add_peer already sees it.
      if (core.options.curve && !is_valid_curve_key(peer.curve_public_key)) {
        slot->state.store(PeerState::Unreachable);
      }
    }
    shared = slot;
  }
  core.commands.push(detail::CmdAddPeer{std::move(shared), std::move(peer)});
}

void Transport::remove_peer(const std::string& name, ErrorCode reason) {
  Core& core = *impl_->core;
  if (core.options.local_only) return;
  if (reason == ErrorCode::None) reason = ErrorCode::PeerDead;
  std::shared_ptr<PeerShared> shared;
  {
    std::unique_lock lock(core.peers_mu);
    auto it = core.peers.find(name);
    if (it != core.peers.end()) {
      shared = std::move(it->second);
      core.peers.erase(it);
      shared->removed.store(reason);
    }
    if (core.tombstones.insert(name).second) {
      core.tombstone_order.push_back(name);
      if (core.tombstone_order.size() > detail::kTombstones) {
        core.tombstones.erase(core.tombstone_order.front());
        core.tombstone_order.pop_front();
      }
    }
  }
  if (shared) core.commands.push(detail::CmdRemovePeer{std::move(shared), reason});
}

std::vector<std::string> Transport::peers() const {
  Core& core = *impl_->core;
  std::shared_lock lock(core.peers_mu);
  std::vector<std::string> out;
  out.reserve(core.peers.size());
  for (const auto& [name, p] : core.peers) out.push_back(name);
  return out;
}

bool Transport::peer_connected(const std::string& name) const {
  auto p = impl_->core->find_peer(name);
  return p && p->state.load(std::memory_order_acquire) == PeerState::Connected;
}

std::shared_ptr<Inbox> Transport::open_inbox(const std::string& name, std::size_t limit, QuickHandler quick) {
  Core& core = *impl_->core;
  std::unique_lock lock(core.inbox_mu);
  auto& slot = core.inboxes[name];
  if (slot && !slot->closed()) throw TransportError("inbox '" + name + "' is already open");
  slot = std::make_shared<Inbox>(name, limit == 0 ? core.options.inbox_limit : limit, std::move(quick),
                                 core.options.inbox_bytes, core.options.inbox_peer_share);
  if (core.stopping.load()) slot->close();
  return slot;
}

ErrorCode Transport::notify(OutMessage message) {
  Core& core = *impl_->core;
  impl_->tick();
  if (core.stopping.load()) return ErrorCode::Shutdown;
  if (core.is_local(message.to.node)) {
    auto inbox = core.find_inbox(message.to.target);
    if (!inbox) return ErrorCode::TargetUnknown;
    return inbox->push(Incoming{make_envelope(core, message, MessageType::Notify, 0), nullptr, {}});
  }
  std::shared_ptr<PeerShared> peer;
  if (const ErrorCode e = impl_->reserve(message.to.node, peer); e != ErrorCode::None) return e;
  Envelope env = make_envelope(core, message, MessageType::Notify, 0);
  detail::OutFrame frame;
  encode(env, frame.bytes);
  if (frame.bytes.size() > core.options.max_frame_bytes) {
    impl_->unreserve(*peer);
    return ErrorCode::Oversized;
  }
  if (const ErrorCode e = impl_->charge(*peer, frame.bytes.size()); e != ErrorCode::None) return e;
  if (impl_->send_direct(*peer, frame.bytes)) {
    impl_->uncharge(*peer, frame.bytes.size());
    impl_->unreserve(*peer);
    return ErrorCode::None;
  }
  frame.type = MessageType::Notify;
  frame.priority = env.priority;
  frame.id = env.id;
  frame.target = std::move(env.target);
  frame.sender_agent = std::move(env.sender_agent);
  core.commands.push(detail::CmdSend{std::move(peer), std::move(frame)});
  return ErrorCode::None;
}

std::vector<SendOutcome> Transport::broadcast(const std::vector<Address>& to, const OutMessage& message) {
  std::vector<SendOutcome> out;
  out.reserve(to.size());
  for (const auto& address : to) {
    OutMessage copy = message;
    copy.to = address;
    if (!message.id.empty()) copy.id = derive_id(message.id, address);
    out.push_back(SendOutcome{address, notify(std::move(copy))});
  }
  return out;
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

ErrorCode Transport::respond(const Incoming& incoming, std::vector<std::uint8_t> payload,
                             std::vector<std::uint8_t> context, Priority priority) {
  impl_->tick();
  return impl_->answer(incoming, ErrorCode::None, std::move(payload), std::move(context), priority);
}

ErrorCode Transport::respond_error(const Incoming& incoming, ErrorCode reason) {
  if (reason == ErrorCode::None) reason = ErrorCode::Rejected;
  return impl_->answer(incoming, reason, {}, {}, Priority::Normal);
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
  if (!core.asks.add(ticket.id, now + timeout.count(), now + timeout.count() + core.options.ask_retention.count())) {
    ticket.error = ErrorCode::MailboxFull;  // ask_limit entries held: check_inbox some first
    return ticket;
  }
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

TransportStats Transport::stats() const {
  impl_->tick();
  const Core& core = *impl_->core;
  const auto& c = core.counters;
  auto get = [](const std::atomic<std::uint64_t>& a) { return a.load(std::memory_order_relaxed); };
  TransportStats s;
  for (std::size_t i = 0; i < 5; ++i) {
    s.sent[i] = get(c.sent[i]);
    s.received[i] = get(c.received[i]);
    s.refused[i] = get(c.refused[i]);
    s.deduplicated[i] = get(c.deduplicated[i]);
  }
  s.frames_malformed = get(c.frames_malformed);
  s.frames_oversized = get(c.frames_oversized);
  s.frames_bad_version = get(c.frames_bad_version);
  s.frames_unauthenticated = get(c.frames_unauthenticated);
  s.replies_unroutable = get(c.replies_unroutable);
  s.replies_unmatched = get(c.replies_unmatched);
  s.replies_deferred = get(c.replies_deferred);
  s.replies_waiting = get(c.replies_waiting);
  s.requests_answered_again = get(c.requests_answered_again);
  s.requests_timed_out = get(c.requests_timed_out);
  s.expired_on_arrival = get(c.expired_on_arrival);
  s.requests_failed_fast = get(c.requests_failed_fast);
  s.requests_direct = get(c.requests_direct);
  {
    std::shared_lock lock(core.peers_mu);
    s.peers = core.peers.size();
  }
  s.peers_connected = get(c.peers_connected);
  s.outbound_queued = get(c.outbound_queued);
  s.outbound_queued_bytes = get(c.outbound_queued_bytes);
  {
    std::shared_lock lock(core.inbox_mu);
    for (const auto& [name, inbox] : core.inboxes) {
      s.inbox_queued += inbox->size();
      s.inbox_queued_bytes += inbox->bytes();
    }
  }
  s.replies_waiting_bytes = get(c.replies_waiting_bytes);
  s.replies_dropped = get(c.replies_dropped);
  s.reply_cache_bytes = get(c.reply_cache_bytes);
  s.ask_bytes = core.asks.bytes();
  s.pending_requests = get(c.pending_requests);
  s.notifies_undeliverable = get(c.notifies_undeliverable);
  s.ask_entries = core.asks.size();
  for (std::size_t o = 0; o < 2; ++o) {
    LatencyHistogram& h = s.request_latency[o];
    for (std::size_t b = 0; b < std::size(h.buckets); ++b) {
      h.buckets[b] = get(c.latency_buckets[o][b]);
      h.count += h.buckets[b];
    }
    h.sum_seconds = static_cast<double>(get(c.latency_sum_ns[o])) / 1e9;
  }
  return s;
}

ErrorCode Transport::send_raw_for_test(const std::string& peer_name, std::vector<std::uint8_t> frame) {
  Core& core = *impl_->core;
  if (core.stopping.load()) return ErrorCode::Shutdown;
  std::shared_ptr<PeerShared> peer;
  if (const ErrorCode e = impl_->reserve(peer_name, peer); e != ErrorCode::None) return e;
  if (const ErrorCode e = impl_->charge(*peer, frame.size()); e != ErrorCode::None) return e;
  detail::OutFrame out;
  out.bytes = std::move(frame);
  out.type = MessageType::Control;
  out.raw = true;
  core.commands.push(detail::CmdSend{std::move(peer), std::move(out)});
  return ErrorCode::None;
}

}  // namespace mesh::transport
