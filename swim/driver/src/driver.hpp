// Membership::Impl: the SWIM core (Node) on real sockets.
//
// Everything below runs on one strand of the caller's io_context: socket
// completions, the timer, and every call into the Node. Public calls from
// other threads post to the strand (membership.cpp). Handlers capture a
// shared_ptr to the Impl, so it outlives whatever is still queued when the
// Membership object goes away; after close_all() every handler sees
// `stopped_` and returns without touching the Node.
//
// After every input to the Node, pump() drains what it produced: packets
// (sent at once on the non-blocking UDP socket; a full send buffer drops
// the datagram, as UDP may), streams (one short TCP connection each, see
// streams.cpp), user data (Serf's intents, for their Lamport times), join
// results and events; then the one timer is re-armed at next_deadline().
//
// One concept per source file:
//   driver.cpp        construction (binding), start, meta, shutdown, the
//                     clock, the pump, the timer, event delivery
//   udp.cpp           packets: receive, send, encryption, address families
//   streams.cpp       TCP streams, inbound and outbound
//   serf_intents.cpp  Serf's join and leave intents and their Lamport times
//   join.cpp          join: seed resolution, backoff, on_first_join
//   leave.cpp         graceful leave: intent, dead broadcast, close
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "mesh/swim/membership.hpp"
#include "serf.hpp"

namespace mesh::swim {

namespace asio = boost::asio;
using Strand = asio::strand<asio::io_context::executor_type>;
using SteadyTime = std::chrono::steady_clock::time_point;

// Name under which our Serf intent is queued: a newer intent replaces an
// older one that has not gone out yet.
inline constexpr const char* kIntentName = "serf-intent";

// How often a caller waiting on the strand looks whether the io_context was
// stopped under it (Impl::await). Asio tells nobody about stop(): the
// handlers already queued stay queued, to run at the next run(). Only a
// destroyed io_context destroys them, which wakes the caller at once.
inline constexpr auto kStoppedCheck = std::chrono::seconds(1);

// One TCP exchange: an accepted connection, or one of the core's
// OutStreams. The buffer grows as bytes arrive; `used` is its filled part.
struct StreamConn {
  StreamConn(asio::ip::tcp::socket s, const Strand& strand)
      : sock(std::move(s)), timer(strand) {}

  std::uint64_t key = 0;  // in Impl::conns_
  bool inbound = true;
  asio::ip::tcp::socket sock;
  asio::steady_timer timer;
  Address peer;
  Bytes buf;
  std::size_t used = 0;
  std::size_t scanned = 0;  // `used` at the last completeness check
  std::size_t budgeted = 0;  // bytes of buf counted against the stream budget
  SteadyTime opened{};       // inbound: when it was accepted
  bool answering = false;    // inbound: a whole request arrived; being answered
  Bytes out;
  std::uint64_t stream_id = 0;  // outbound
  bool expects_reply = true;    // outbound
  bool done = false;
};

struct Membership::Impl : std::enable_shared_from_this<Membership::Impl> {
  Impl(asio::io_context& io, Config config, NetOptions net, std::uint64_t seed);

  // Run `f` on the strand and wait for its result: inline when already on
  // the strand, or when the io_context is stopped (nothing else can run).
  template <class F>
  auto sync(F f) -> decltype(f());
  // Runs an owner's callback on the strand; what it throws is logged as
  // `what` and goes no further (it would unwind through asio).
  template <class F>
  void call_guarded(const char* what, F&& f) const;
  // Waits for the result of a handler posted to the strand, which holds
  // the only reference to its promise. True once it is ready, or broken:
  // an io_context destroyed with the handler still queued destroys the
  // handler, and get() throws std::future_error (broken_promise). False
  // when `give_up` passed first or the io_context was stopped under us,
  // which is looked at once per kStoppedCheck: a strand that answers
  // sooner is waited for in one wait, without any wake-up of its own.
  template <class T>
  bool await(const std::future<T>& done, SteadyTime give_up = SteadyTime::max()) const;

  // --- lifecycle (strand) ---------------------------------------------------
  void start(Bytes meta);
  void join(std::vector<std::string> seeds, std::function<void()> on_first_join, JoinRetry retry);
  void begin_leave(std::chrono::milliseconds timeout, std::shared_ptr<std::promise<bool>> done);
  bool set_meta(Bytes meta);
  void close_all();

  // --- time -----------------------------------------------------------------
  Time now() const;
  SteadyTime to_steady(Time t) const;
  Duration unix_offset() const;

  // --- the pump and the timer -----------------------------------------------
  void pump();
  void arm_timer();
  void on_timer(std::uint64_t gen);
  void deliver(const MemberEvent& e);

  // --- packets (udp.cpp) -----------------------------------------------------
  void receive();
  void on_receive(const boost::system::error_code& ec, std::size_t n);
  void send_packet(const OutPacket& p);
  bool reachable(const Address& a) const;
  asio::ip::address socket_ip(const Address& a) const;

  // --- streams (streams.cpp) -------------------------------------------------
  void accept();
  void on_accept(const boost::system::error_code& ec, asio::ip::tcp::socket sock);
  void open_stream(OutStream s);
  void write_then(const std::shared_ptr<StreamConn>& c, bool read_after);
  void read_more(const std::shared_ptr<StreamConn>& c);
  void on_read(const std::shared_ptr<StreamConn>& c, const boost::system::error_code& ec,
               std::size_t n);
  enum class FrameState { NeedMore, Refused, Ready };
  FrameState open_frame(ByteView got, Bytes& plain);
  void outbound_bytes(const std::shared_ptr<StreamConn>& c, bool eof);
  void inbound_bytes(const std::shared_ptr<StreamConn>& c, bool eof);
  void answer_inbound(const std::shared_ptr<StreamConn>& c, ByteView request);
  // `why`: what went wrong, in words, for a join's failure line.
  void fail_outbound(const std::shared_ptr<StreamConn>& c, std::string_view why = {});
  void close_conn(const std::shared_ptr<StreamConn>& c);
  // Closes the inbound stream that has been reading longest without
  // delivering a whole request; false if every inbound stream is being
  // answered.
  bool evict_slowest_inbound();
  // Grows c->buf by up to `want` bytes within the stream byte budget;
  // false (nothing grown) when the budget has no room.
  bool grow_buffer(const std::shared_ptr<StreamConn>& c, std::size_t new_size);
  std::shared_ptr<StreamConn> track(asio::ip::tcp::socket sock, bool inbound, SteadyTime deadline);
  std::size_t stream_limit() const;
  bool ready_to_scan(const std::shared_ptr<StreamConn>& c);

  // --- Serf (Lamport times of intents; serf_intents.cpp) ---------------------
  void on_user_data(const UserData& u);
  void broadcast_join_intent();
  Membership::ForceLeave force_leave(const std::string& name);
  // A leave intent about another member (ours or a peer's): remembered,
  // relayed once, and applied when the member is dead.
  void note_forced_leave(const std::string& name, std::uint64_t ltime, bool relay);
  void apply_forced_leave(const MemberEvent& e);

  // --- join (join.cpp) -------------------------------------------------------
  void join_attempt();
  void join_resolved(std::uint64_t gen, std::vector<Address> addrs);
  void on_join_result(const JoinResult& r);
  void join_attempt_failed(const std::string& why);
  void join_succeeded();

  // --- leave (leave.cpp) -----------------------------------------------------
  void leave_broadcast_dead();
  void finish_leave(bool ok);
  bool any_alive_peer() const;
  Duration intent_wait() const;

  // Set at construction, read-only afterwards: safe from any thread.
  asio::io_context& io_;
  Strand strand_;
  NetOptions net_;
  std::string name_;
  Address advertise_;
  std::uint16_t bound_port_ = 0;
  std::uint8_t enc_vsn_ = 1;
  bool dual_stack_ = false;
  bool udp_v6_ = false;
  SteadyTime epoch_;
  DecodeLimits limits_;

  // Strand only from here on.
  std::optional<Node> node_;
  asio::ip::udp::socket udp_;
  asio::ip::tcp::acceptor acceptor_;
  asio::steady_timer timer_;
  asio::steady_timer join_timer_;
  asio::steady_timer leave_timer_;
  asio::steady_timer accept_timer_;
  Time armed_ = Time::max();
  std::uint64_t timer_gen_ = 0;
  // kUdpReceiveMax bytes, left uninitialised: a packet writes only its own
  // length, so the pages past the largest packet seen stay untouched and
  // cost no memory (a zero-filled vector made all 64 KB resident).
  std::unique_ptr<std::uint8_t[]> rx_;
  asio::ip::udp::endpoint rx_from_;
  bool stopped_ = false;
  EventHandler handler_;
  DriverStats dstats_;

  std::unordered_map<std::uint64_t, std::weak_ptr<StreamConn>> conns_;
  std::uint64_t next_conn_key_ = 0;
  std::size_t inbound_active_ = 0;
  std::size_t outbound_active_ = 0;
  std::size_t stream_bytes_ = 0;  // sum of StreamConn::budgeted

  serf::LamportClock lamport_;
  std::uint64_t self_status_ltime_ = 0;
  // Members forced to leave (our force_leave, or a leave intent about a
  // member we did not hold dead yet) -> the intent's Lamport time and
  // until when to remember it; one that dies meanwhile turns left.
  struct ForcedLeave {
    std::uint64_t ltime = 0;
    Time until{};
  };
  std::map<std::string, ForcedLeave, std::less<>> forced_leaves_;

  std::uint64_t join_gen_ = 0;
  std::vector<std::string> join_seeds_;
  std::function<void()> join_cb_;
  std::vector<Address> join_pending_;
  // Why a stream to a seed failed ("connect: Connection refused"), while a
  // join waits on it: the core only knows that it failed.
  std::map<std::string, std::string, std::less<>> join_failures_;
  bool join_active_ = false;
  bool join_waiting_for_start_ = false;
  Duration join_backoff_{};
  JoinRetry join_retry_;
  std::uint32_t join_attempts_ = 0;  // of the join in progress

  enum class LeavePhase : std::uint8_t { None, Intent, Leaving, Done };
  LeavePhase leave_phase_ = LeavePhase::None;
  Time leave_deadline_{};
  std::vector<std::shared_ptr<std::promise<bool>>> leave_promises_;
};

template <class F>
void Membership::Impl::call_guarded(const char* what, F&& f) const {
  try {
    std::forward<F>(f)();
  } catch (const std::exception& ex) {
    spdlog::error("swim {}: {} threw: {}", name_, what, ex.what());
  } catch (...) {
    spdlog::error("swim {}: {} threw", name_, what);
  }
}

template <class F>
auto Membership::Impl::sync(F f) -> decltype(f()) {
  using R = decltype(f());
  if (strand_.running_in_this_thread() || io_.stopped()) return f();
  auto p = std::make_shared<std::promise<R>>();
  auto fut = p->get_future();
  // `f` runs once, wherever it is claimed: on the strand, or here when the
  // io_context stopped with the handler still queued (a later run() would
  // otherwise run it a second time).
  auto claimed = std::make_shared<std::atomic<bool>>(false);
  asio::post(strand_, [p = std::move(p), f, claimed]() mutable {
    if (claimed->exchange(true)) return;
    try {
      if constexpr (std::is_void_v<R>) {
        f();
        p->set_value();
      } else {
        p->set_value(f());
      }
    } catch (...) {
      p->set_exception(std::current_exception());
    }
  });
  // Stopped under us, and nothing ran the call: nothing else can run now.
  if (!await(fut) && !claimed->exchange(true)) return f();
  return fut.get();  // (stopped while the strand ran it: it finishes)
}

template <class T>
bool Membership::Impl::await(const std::future<T>& done, SteadyTime give_up) const {
  for (;;) {
    const SteadyTime now = std::chrono::steady_clock::now();
    const SteadyTime until = give_up - now > kStoppedCheck ? now + kStoppedCheck : give_up;
    if (done.wait_until(until) == std::future_status::ready) return true;
    if (io_.stopped() || std::chrono::steady_clock::now() >= give_up) return false;
  }
}

}  // namespace mesh::swim
