// The caller side of a Transport: every public call runs on the caller's
// thread. Checks that decide an outcome (unknown peer, dead, unreachable,
// queue full, oversized) are made there, synchronously, from the peer
// table; encoding happens there too, so that callers encode in parallel
// and the transport thread only moves bytes. Same-node messages never
// reach the transport thread: they go straight into the target inbox.
//
// Transport (the public facade) and Transport::Impl are defined one
// concept per file:
//   transport.cpp            construction, addresses, peers, inboxes
//   transport_lifecycle.cpp  Impl start and shutdown; the local_only
//                            deadline watcher and chores (tick)
//   transport_reserve.cpp    a place and bytes in a peer's outbound queue;
//                            the direct send of a notify
//   transport_notify.cpp     notify, broadcast, send_raw_for_test
//   transport_request.cpp    request, request_async/_future, ask_async and
//                            check_inbox; same-node requests
//   transport_respond.cpp    respond, respond_error
//   transport_stats.cpp      stats()
//   options_validation.cpp   TransportOptions checked before use
//   out_envelope.cpp         the envelope of a notify or request
#pragma once

#include <zmq.hpp>

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core.hpp"
#include "mesh/transport/envelope.hpp"
#include "mesh/transport/transport.hpp"
#include "peer_shared.hpp"
#include "pending_call.hpp"

namespace mesh::transport {

namespace detail {
class Loop;  // loop.hpp
}  // namespace detail

struct Transport::Impl {
  explicit Impl(TransportOptions options);
  ~Impl();

  // Looks the peer up and reserves a place in its queue.
  ErrorCode reserve(const std::string& node, std::shared_ptr<detail::PeerShared>& out);
  // Sends an encoded notify on the peer's DEALER from this thread, when
  // that keeps the order and the failure reporting of the queued path.
  bool send_direct(detail::PeerShared& peer, const std::vector<std::uint8_t>& bytes);
  // A request sent by the caller on the peer's DEALER, its call handed to
  // the transport thread's watch (Core::direct_watches); false: nothing
  // was sent, it takes the queue.
  bool send_request_direct(detail::PeerShared& peer, const std::shared_ptr<detail::PendingCall>& call,
                           const std::vector<std::uint8_t>& bytes);
  void unreserve(detail::PeerShared& peer);
  // Adds an encoded frame's bytes to a peer reserved above: MailboxFull
  // (and the reservation dropped) when the queue's byte budget would be
  // exceeded. An empty queue takes any frame, so that a budget smaller
  // than max_frame_bytes cannot block a peer for good.
  ErrorCode charge(detail::PeerShared& peer, std::size_t bytes);
  void uncharge(detail::PeerShared& peer, std::size_t bytes);
  ErrorCode start_request(OutMessage&& m, std::chrono::milliseconds timeout, std::function<void(Reply)> done);
  // request_async without the latency count (the caller counts).
  void request_async(OutMessage&& m, std::chrono::milliseconds timeout, std::function<void(Reply)> done);
  // Hands an encoded request to the transport thread; `peer` is reserved.
  ErrorCode send_remote(std::shared_ptr<detail::PeerShared> peer, const Envelope& env,
                        std::vector<std::uint8_t>&& bytes, std::chrono::milliseconds timeout,
                        std::function<void(Reply)> done);
  // A same-node request. With `waiter` set the caller waits for it and
  // watches the deadline itself (*waiter = the call, unless a quick
  // handler already answered); otherwise LocalDeadlines watches it.
  ErrorCode start_local_request(OutMessage&& m, std::chrono::milliseconds timeout,
                                std::function<void(Reply)>& done, std::shared_ptr<detail::PendingCall>* waiter);
  // A same-node request's deadline or an ask entry's retention is now the
  // first to run out: wakes whoever sleeps until the first (the transport
  // thread; under local_only, the watcher below, started on first need).
  void wake_deadline_watcher();
  // local_only has no transport thread: every public call does its chores,
  // and a same-node request nobody waits on (request_async, ask_async)
  // starts the deadline watcher below, so that its timeout fires even when
  // no further call comes.
  void tick();
  void watch_local_deadlines();
  void local_timer_loop();
  ErrorCode answer(const Incoming& in, ErrorCode code, std::vector<std::uint8_t> payload,
                   std::vector<std::uint8_t> context, Priority priority,
                   std::vector<std::uint8_t> thread_block = {});

  std::shared_ptr<detail::Core> core;
  std::optional<zmq::context_t> zmq_context;  // before loop: outlives its sockets
  std::unique_ptr<detail::Loop> loop;
  std::thread thread;
  // local_only: the deadline watcher, started on first need.
  std::mutex timer_mu;
  std::condition_variable timer_cv;
  std::thread timer;
  bool timer_stop = false;
};

}  // namespace mesh::transport
