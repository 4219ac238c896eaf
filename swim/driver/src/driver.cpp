// Membership::Impl: construction (binding UDP and TCP), start, meta,
// shutdown, the clock, the pump, the timer and event delivery. The rest of
// the Impl is spread by concept; driver.hpp lists the files.
#include "driver.hpp"

#include <boost/asio/ip/v6_only.hpp>
#include <spdlog/spdlog.h>

#include <chrono>
#include <exception>
#include <stdexcept>
#include <string>

#include "endpoint.hpp"
#include "mesh/log_fields.hpp"

namespace mesh::swim {

namespace ip = asio::ip;
using boost::system::error_code;

namespace {

constexpr int kBindAttempts = 10;
constexpr int kUdpRecvBuf = 2 * 1024 * 1024;  // memberlist udpRecvBufSize

[[noreturn]] void fail(const std::string& what) { throw std::runtime_error(what); }

}  // namespace

Membership::Impl::Impl(asio::io_context& io, Config config, NetOptions net, std::uint64_t seed)
    : io_(io),
      strand_(asio::make_strand(io)),
      net_(std::move(net)),
      epoch_(std::chrono::steady_clock::now()),
      udp_(strand_),
      acceptor_(strand_),
      timer_(strand_),
      join_timer_(strand_),
      leave_timer_(strand_),
      accept_timer_(strand_),
      rx_(std::make_unique_for_overwrite<std::uint8_t[]>(kUdpReceiveMax)) {
  // Create spdlog's registry (a function-local static inside libspdlog.so)
  // here, on the caller's thread, before anything runs on the strand: the
  // posts to the strand then order it before every io thread's use. When
  // two io threads raced to create it, ThreadSanitizer (which does not see
  // into the uninstrumented library) reported a race.
  (void)spdlog::default_logger_raw();
  error_code ec;
  const ip::address bind_ip = ip::make_address(net_.bind_host, ec);
  if (ec) fail("bind host '" + net_.bind_host + "' is not an IPv4 or IPv6 address");
  udp_v6_ = bind_ip.is_v6();
  dual_stack_ = udp_v6_ && bind_ip.is_unspecified();

  // UDP first (port 0: the OS picks), then TCP on the same number.
  for (int attempt = 0;; ++attempt) {
    udp_.open(udp_v6_ ? ip::udp::v6() : ip::udp::v4(), ec);
    if (ec) fail("cannot open a UDP socket: " + ec.message());
    if (dual_stack_) udp_.set_option(ip::v6_only(false), ec);
    udp_.bind(ip::udp::endpoint(bind_ip, net_.bind_port), ec);
    if (ec)
      fail("cannot bind UDP " + net_.bind_host + ":" + std::to_string(net_.bind_port) + ": " +
           ec.message());
    bound_port_ = udp_.local_endpoint().port();

    acceptor_.open(udp_v6_ ? ip::tcp::v6() : ip::tcp::v4(), ec);
    if (ec) fail("cannot open a TCP socket: " + ec.message());
    acceptor_.set_option(ip::tcp::acceptor::reuse_address(true), ec);
    if (dual_stack_) acceptor_.set_option(ip::v6_only(false), ec);
    acceptor_.bind(ip::tcp::endpoint(bind_ip, bound_port_), ec);
    if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (!ec) break;
    const std::string why = ec.message();
    acceptor_.close(ec);
    if (net_.bind_port != 0 || attempt + 1 >= kBindAttempts)
      fail("cannot listen on TCP " + net_.bind_host + ":" + std::to_string(bound_port_) + ": " +
           why);
    udp_.close(ec);
  }
  for (int size = kUdpRecvBuf; size > 0; size /= 2) {
    udp_.set_option(asio::socket_base::receive_buffer_size(size), ec);
    if (!ec) break;
  }
  udp_.non_blocking(true, ec);
  if (ec) fail("cannot make the UDP socket non-blocking: " + ec.message());

  const std::string adv_host = net_.advertise_host.empty() ? net_.bind_host : net_.advertise_host;
  const ip::address adv_ip = ip::make_address(adv_host, ec);
  if (ec) fail("advertise address '" + adv_host + "' is not an IPv4 or IPv6 address");
  if (adv_ip.is_unspecified())
    fail("cannot advertise '" + adv_host +
         "': set NetOptions::advertise_host to an address peers can reach");
  advertise_ = detail::to_address(adv_ip, net_.advertise_port != 0 ? net_.advertise_port : bound_port_);
  if (!reachable(advertise_))
    fail("advertise address " + advertise_.to_string() + " is of another family than the bind host " +
         net_.bind_host);

  config.advertise = advertise_;
  // memberlist encryptionVersion: padding (0) only for protocol 1.
  enc_vsn_ = config.vsn[2] <= 1 ? 0 : 1;
  if (net_.keyring.enabled()) {
    // A full packet plus encryption must still fit UDPBufferSize
    // (memberlist sendMsg subtracts encryptOverhead the same way).
    const std::size_t overhead = Keyring::overhead(enc_vsn_);
    if (config.udp_buffer_size > overhead) config.udp_buffer_size -= overhead;
  }
  if (auto why = config.validate()) fail("invalid SWIM configuration: " + *why);
  limits_ = config.limits;
  name_ = config.name;
  config.shared_clock_offset = unix_offset();
  node_.emplace(std::move(config), seed);
}

// --- lifecycle ---------------------------------------------------------------

void Membership::Impl::start(Bytes meta) {
  if (stopped_ || node_->started()) return;
  node_->start(now(), std::move(meta));
  spdlog::info("swim {}: running on {} (bound to {}:{}{})", name_, advertise_.to_string(),
               net_.bind_host, bound_port_, net_.keyring.enabled() ? ", encrypted" : "");
  receive();
  accept();
  // Serf broadcasts a join intent carrying the Lamport time of our status;
  // it goes out with the first gossip after we reach somebody.
  broadcast_join_intent();
  if (join_waiting_for_start_) {
    join_waiting_for_start_ = false;
    join_attempt();
  }
  pump();
}

bool Membership::Impl::set_meta(Bytes meta) {
  if (stopped_ || !node_->started()) return false;
  const bool ok = node_->set_meta(now(), std::move(meta));
  pump();
  return ok;
}

void Membership::Impl::close_all() {
  if (stopped_) return;
  stopped_ = true;
  error_code ec;
  timer_.cancel();
  join_timer_.cancel();
  leave_timer_.cancel();
  accept_timer_.cancel();
  udp_.close(ec);
  acceptor_.close(ec);
  for (auto& [key, weak] : conns_) {
    if (auto c = weak.lock()) {
      c->done = true;
      c->timer.cancel();
      c->sock.close(ec);
    }
  }
  conns_.clear();
  inbound_active_ = outbound_active_ = 0;
  stream_bytes_ = 0;
  auto promises = std::move(leave_promises_);
  for (auto& p : promises) p->set_value(false);
  // Break cycles through user callbacks that may hold the Membership.
  handler_ = nullptr;
  join_cb_ = nullptr;
}

// --- time ----------------------------------------------------------------------

Time Membership::Impl::now() const {
  return Time(std::chrono::duration_cast<Duration>(std::chrono::steady_clock::now() - epoch_));
}

// The aligned probe order needs a clock shared with the other members:
// Unix time at our Time 0 (now() counts from epoch_).
Duration Membership::Impl::unix_offset() const {
  return std::chrono::duration_cast<Duration>(std::chrono::system_clock::now().time_since_epoch() -
                                              (std::chrono::steady_clock::now() - epoch_));
}

SteadyTime Membership::Impl::to_steady(Time t) const {
  return epoch_ + std::chrono::duration_cast<std::chrono::steady_clock::duration>(t.time_since_epoch());
}

// --- pump and timer ---------------------------------------------------------------

void Membership::Impl::pump() {
  // Handling one output can produce more (a stream refused at once fails
  // back into the core), so drain until the core has nothing left.
  for (int round = 0; round < 64 && !stopped_; ++round) {
    auto packets = node_->drain_packets();
    auto streams = node_->drain_streams();
    auto user = node_->drain_user_data();
    auto joins = node_->drain_join_results();
    auto events = node_->drain_events();
    if (packets.empty() && streams.empty() && user.empty() && joins.empty() && events.empty())
      break;
    for (const auto& p : packets) send_packet(p);
    for (auto& s : streams) {
      if (stopped_) return;
      open_stream(std::move(s));
    }
    for (const auto& u : user) on_user_data(u);
    for (const auto& j : joins) {
      if (stopped_) return;
      on_join_result(j);
    }
    for (const auto& e : events) {
      if (stopped_) return;
      deliver(e);
    }
  }
  if (stopped_) return;
  if (leave_phase_ == LeavePhase::Leaving && node_->leave_done()) {
    finish_leave(true);
    return;
  }
  if (leave_phase_ == LeavePhase::Intent && node_->leave_intent_sent()) {
    leave_broadcast_dead();  // pumps again
    return;
  }
  arm_timer();
}

void Membership::Impl::arm_timer() {
  if (stopped_) return;
  const Time next = node_->next_deadline();
  if (next == armed_) return;
  armed_ = next;
  const std::uint64_t gen = ++timer_gen_;
  if (next == Time::max()) {
    timer_.cancel();
    return;
  }
  timer_.expires_at(to_steady(next));
  timer_.async_wait([self = shared_from_this(), gen](const error_code& ec) {
    if (!ec) self->on_timer(gen);
  });
}

void Membership::Impl::on_timer(std::uint64_t gen) {
  // A wait replaced by a newer one may still complete without an error.
  if (stopped_ || gen != timer_gen_) return;
  armed_ = Time::max();
  // Follows a step of the system clock (a read of the vDSO clock per timer).
  node_->set_shared_clock_offset(unix_offset());
  node_->on_timer(now());
  pump();
}

void Membership::Impl::deliver(const MemberEvent& e) {
  apply_forced_leave(e);
  {
    const std::string addr = e.member.addr.to_string();
    const LogFields fields{{"event", "member"},
                           {"member", e.member.name},
                           {"change", to_string(e.kind)},
                           {"addr", addr}};
    switch (e.kind) {
      case EventKind::Joined:
      case EventKind::Dead:
      case EventKind::Left:
      case EventKind::Conflict:
        spdlog::info("swim {}: member {} {} ({})", name_, e.member.name, to_string(e.kind), addr);
        break;
      default:
        spdlog::debug("swim {}: member {} {}", name_, e.member.name, to_string(e.kind));
    }
  }
  if (!handler_) return;
  // Call a copy: the handler may replace itself (on_event) or shut us down
  // (which drops handler_) while it runs.
  const EventHandler handler = handler_;
  call_guarded("event handler", [&] { handler(e); });
}

}  // namespace mesh::swim
