// A caller's claim on a peer's outbound queue: a place in it (reserve),
// its byte budget (charge), and the direct sends that let a notify or a
// request skip the queue and the transport thread when nothing can be
// overtaken.
#include "transport_impl.hpp"

#include <zmq.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <vector>

#include "command_queue.hpp"
#include "core.hpp"
#include "counters.hpp"
#include "peer_shared.hpp"
#include "zmq_io.hpp"

namespace mesh::transport {

using detail::bump;
using detail::PeerShared;
using detail::PeerState;

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
//    transport thread. The thread looks at the DEALER again at the latest
//    kDealerRecheckMs later (dealer_used, and the timer the first such send
//    sets), which delays only what arrives meanwhile: refusals of
//    notifies, never a reply somebody waits for. The timer is set once per
//    look of the thread, not once per send, so a stream of direct sends
//    costs neither a syscall each nor a wake-up of the thread each;
//  * try_lock: never wait behind the transport thread; queue instead.
namespace {

// The send both direct paths share: with the peer Connected, nothing of
// ours queued for it (only the caller's own reservation) and the DEALER's
// lock free, sends `bytes` and returns the lock still held; otherwise
// sends nothing and returns it unheld.
std::unique_lock<std::mutex> send_on_dealer(detail::Core& core, PeerShared& peer, MessageType type,
                                            const std::vector<std::uint8_t>& bytes) {
  if (peer.state.load(std::memory_order_acquire) != PeerState::Connected ||
      peer.queued.load(std::memory_order_acquire) != 1) {
    return {};
  }
  std::unique_lock lock(peer.dealer_mu, std::try_to_lock);
  if (!lock.owns_lock() || !peer.dealer) return {};
  auto& sent = core.counters.sent[detail::type_index(type)];
  bump(sent);
  if (!detail::send_now(peer.dealer, zmq::buffer(bytes))) {
    detail::drop(sent);
    return {};
  }
  return lock;
}

}  // namespace

bool Transport::Impl::send_direct(PeerShared& peer, const std::vector<std::uint8_t>& bytes) {
  if (!core->options.direct_notifies || peer.pending_main.load(std::memory_order_acquire) != 0) return false;
  const std::unique_lock lock = send_on_dealer(*core, peer, MessageType::Notify, bytes);
  if (!lock) return false;
  if (!peer.dealer_used.exchange(true, std::memory_order_acq_rel)) core->dealer_recheck.arm();
  return true;
}

// The conditions of send_direct, but for a request, whose reply the
// transport thread reads on the same DEALER: a send may take the signal
// the DEALER's fd owed the thread, so the caller asks for ZMQ_EVENTS
// after it, and input waiting (some earlier reply) wakes the thread. The
// call is handed over before the lock is let go: the thread needs the
// lock to read, so it cannot see the reply before it can find the call.
bool Transport::Impl::send_request_direct(PeerShared& peer, const std::shared_ptr<detail::PendingCall>& call,
                                          const std::vector<std::uint8_t>& bytes) {
  if (!core->options.direct_async_requests) return false;
  std::unique_lock lock = send_on_dealer(*core, peer, MessageType::Request, bytes);
  if (!lock) return false;
  bump(core->counters.async_requests_direct);
  if (!peer.used.load(std::memory_order_relaxed)) peer.used.store(true, std::memory_order_relaxed);
  if (!core->direct_watches.add(call)) {
    // The transport thread has shut down: nobody reads the reply.
    lock.unlock();
    call->complete(Reply{ErrorCode::Shutdown, {}}, &core->counters.requests_failed_fast);
    return true;
  }
  if (detail::socket_events(peer.dealer) & ZMQ_POLLIN) {
    peer.dealer_used.store(true, std::memory_order_release);
    lock.unlock();
    core->commands.push(detail::CmdWake{});
  }
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

}  // namespace mesh::transport
