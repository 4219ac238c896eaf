// Membership::Impl: construction, the pump, the timer, UDP, Serf's
// intents, join with backoff, graceful leave. Streams are in streams.cpp.
#include "driver.hpp"

#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/post.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "endpoint.hpp"
#include "mesh/log_fields.hpp"

namespace mesh::swim {

namespace ip = asio::ip;
using boost::system::error_code;

namespace {

// Name under which our Serf intent is queued: a newer intent replaces an
// older one that has not gone out yet.
constexpr const char* kIntentName = "serf-intent";
constexpr int kBindAttempts = 10;
constexpr int kUdpRecvBuf = 2 * 1024 * 1024;  // memberlist udpRecvBufSize
constexpr auto kJoinBackoffMax = std::chrono::seconds(30);
constexpr auto kIntentWaitMax = std::chrono::seconds(1);

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
      rx_(kUdpReceiveMax) {
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
  node_->on_timer(now());
  pump();
}

void Membership::Impl::deliver(const MemberEvent& e) {
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
  try {
    handler(e);
  } catch (const std::exception& ex) {
    spdlog::error("swim {}: event handler threw: {}", name_, ex.what());
  } catch (...) {
    spdlog::error("swim {}: event handler threw", name_);
  }
}

// --- packets ---------------------------------------------------------------------------

void Membership::Impl::receive() {
  udp_.async_receive_from(asio::buffer(rx_), rx_from_,
                          [self = shared_from_this()](const error_code& ec, std::size_t n) {
                            self->on_receive(ec, n);
                          });
}

void Membership::Impl::on_receive(const error_code& ec, std::size_t n) {
  if (stopped_) return;
  if (ec) {
    if (ec == asio::error::operation_aborted) return;
    spdlog::debug("swim {}: UDP receive error: {}", name_, ec.message());
    receive();
    return;
  }
  if (n >= rx_.size() || n > limits_.max_packet) {
    ++dstats_.packets_dropped_oversize;
  } else if (n > 0) {
    const Address from = detail::to_address(rx_from_.address(), rx_from_.port());
    const ByteView data(rx_.data(), n);
    if (net_.keyring.enabled()) {
      // GossipVerifyIncoming: with a keyring, plaintext is refused too.
      if (auto plain = net_.keyring.decrypt(data, {})) {
        node_->on_packet(now(), from, *plain);
        pump();
      } else {
        ++dstats_.packets_dropped_decrypt;
        spdlog::debug("swim {}: undecryptable packet from {}", name_, from.to_string());
      }
    } else {
      node_->on_packet(now(), from, data);
      pump();
    }
  }
  if (!stopped_) receive();
}

bool Membership::Impl::reachable(const Address& a) const {
  if (a.ip_len == 4) return !udp_v6_ || dual_stack_;
  if (a.ip_len == 16) return udp_v6_;
  return false;
}

ip::address Membership::Impl::socket_ip(const Address& a) const {
  const ip::address addr = detail::to_ip(a);
  if (udp_v6_ && addr.is_v4()) return ip::make_address_v6(ip::v4_mapped, addr.to_v4());
  return addr;
}

void Membership::Impl::send_packet(const OutPacket& p) {
  if (!reachable(p.to) || p.to.port == 0) {
    ++dstats_.send_errors;
    return;
  }
  ByteView data = p.bytes;
  Bytes sealed;
  if (net_.keyring.enabled()) {
    sealed = net_.keyring.encrypt(p.bytes, {}, enc_vsn_);
    if (sealed.empty()) {
      ++dstats_.send_errors;
      return;
    }
    data = sealed;
  }
  error_code ec;
  udp_.send_to(asio::buffer(data.data(), data.size()), ip::udp::endpoint(socket_ip(p.to), p.to.port),
               0, ec);
  if (ec) {
    ++dstats_.send_errors;
    spdlog::debug("swim {}: UDP send to {} failed: {}", name_, p.to.to_string(), ec.message());
  }
}

// --- Serf -----------------------------------------------------------------------------------

void Membership::Impl::broadcast_join_intent() {
  // serf.go broadcastJoin(clock.Time()): the intent carries the current
  // time, and witnessing it moves the clock past it.
  const std::uint64_t lt = lamport_.time();
  lamport_.witness(lt);
  self_status_ltime_ = lt;
  node_->queue_user_broadcast(serf::encode_join_intent(lt, name_), kIntentName);
}

void Membership::Impl::on_user_data(const UserData& u) {
  if (u.payload.empty()) return;
  const bool alive = leave_phase_ == LeavePhase::None;
  if (u.kind == UserData::Kind::Message) {
    // Only the Lamport times of join and leave intents matter to us; user
    // events, queries and the rest are Serf's business.
    auto in = serf::decode_intent(u.payload);
    if (!in) return;
    lamport_.witness(in->ltime);
    if (in->node != name_) return;
    if (in->type == serf::MessageType::Leave) {
      // handleNodeLeaveIntent: an alive member refutes an older leave
      // intent about itself with a newer join intent.
      if (alive && in->ltime > self_status_ltime_) {
        spdlog::debug("swim {}: refuting a leave intent at Lamport time {}", name_, in->ltime);
        broadcast_join_intent();
      }
    } else if (in->ltime > self_status_ltime_) {
      self_status_ltime_ = in->ltime;
    }
    return;
  }
  // A Serf push/pull state (delegate.go MergeRemoteState).
  auto pp = serf::decode_push_pull_clocks(u.payload);
  if (!pp) return;
  if (pp->ltime > 0) lamport_.witness(pp->ltime - 1);
  std::optional<std::uint64_t> mine;
  for (const auto& [node, lt] : pp->status_ltimes)
    if (node == name_) mine = lt;
  if (!mine) return;
  lamport_.witness(*mine);
  // Serf lists us as left (a previous life under this name): what it does
  // with LeftMembers is a leave intent at our status time + 1; refute it.
  const bool listed_left = std::find(pp->left_members.begin(), pp->left_members.end(), name_) !=
                           pp->left_members.end();
  if (alive && listed_left && *mine + 1 > self_status_ltime_) broadcast_join_intent();
}

// --- join ---------------------------------------------------------------------------------

void Membership::Impl::join(std::vector<std::string> seeds, std::function<void()> on_first_join) {
  if (stopped_) return;
  ++join_gen_;
  join_seeds_ = std::move(seeds);
  join_cb_ = std::move(on_first_join);
  join_pending_.clear();
  join_backoff_ = std::chrono::seconds(1);
  join_timer_.cancel();
  join_active_ = true;
  if (!node_->started()) {
    join_waiting_for_start_ = true;
    return;
  }
  join_attempt();
}

void Membership::Impl::join_attempt() {
  if (stopped_ || !join_active_) return;
  ++dstats_.join_attempts;
  const std::uint64_t gen = join_gen_;
  struct Pending {
    std::size_t remaining = 0;
    std::vector<Address> addrs;
  };
  auto pending = std::make_shared<Pending>();
  pending->remaining = join_seeds_.size();
  auto one_done = [this, gen, pending]() {
    if (--pending->remaining == 0) join_resolved(gen, std::move(pending->addrs));
  };
  if (join_seeds_.empty()) {
    join_resolved(gen, {});
    return;
  }
  for (const auto& text : join_seeds_) {
    auto spec = detail::parse_seed(text, bound_port_);
    if (!spec) {
      spdlog::warn("swim {}: bad seed address '{}'", name_, text);
      one_done();
      continue;
    }
    error_code ec;
    const ip::address literal = ip::make_address(spec->host, ec);
    if (!ec) {
      pending->addrs.push_back(detail::to_address(literal, spec->port));
      one_done();
      continue;
    }
    auto resolver = std::make_shared<ip::tcp::resolver>(strand_);
    resolver->async_resolve(
        spec->host, std::to_string(spec->port),
        [self = shared_from_this(), resolver, pending, one_done, host = spec->host](
            const error_code& rec, const ip::tcp::resolver::results_type& results) {
          if (self->stopped_) return;
          if (rec) {
            spdlog::warn("swim {}: cannot resolve '{}': {}", self->name_, host, rec.message());
          } else {
            for (const auto& r : results)
              pending->addrs.push_back(detail::to_address(r.endpoint().address(), r.endpoint().port()));
          }
          one_done();
        });
  }
}

void Membership::Impl::join_resolved(std::uint64_t gen, std::vector<Address> addrs) {
  if (stopped_ || gen != join_gen_ || !join_active_) return;
  std::vector<Address> usable;
  for (const auto& a : addrs)
    if (reachable(a) && std::find(usable.begin(), usable.end(), a) == usable.end()) usable.push_back(a);
  if (usable.empty()) {
    join_attempt_failed("no usable seed address");
    return;
  }
  join_pending_ = usable;
  node_->join(now(), usable);
  pump();
}

void Membership::Impl::on_join_result(const JoinResult& r) {
  if (!join_active_) return;
  auto it = std::find(join_pending_.begin(), join_pending_.end(), r.seed);
  if (it == join_pending_.end()) return;  // from an earlier join() call
  join_pending_.erase(it);
  if (r.ok) {
    join_succeeded();
    return;
  }
  spdlog::debug("swim {}: join through {} failed: {}", name_, r.seed.to_string(), r.error);
  if (join_pending_.empty()) join_attempt_failed(r.seed.to_string() + ": " + r.error);
}

void Membership::Impl::join_attempt_failed(const std::string& why) {
  const Duration delay = join_backoff_;
  join_backoff_ = std::min<Duration>(join_backoff_ * 2, kJoinBackoffMax);
  spdlog::warn("swim {}: join failed ({}); retrying in {} ms", name_, why,
               std::chrono::duration_cast<std::chrono::milliseconds>(delay).count());
  const std::uint64_t gen = join_gen_;
  join_timer_.expires_after(delay);
  join_timer_.async_wait([self = shared_from_this(), gen](const error_code& ec) {
    if (ec || self->stopped_ || gen != self->join_gen_) return;
    self->join_attempt();
  });
}

void Membership::Impl::join_succeeded() {
  join_active_ = false;
  join_pending_.clear();
  spdlog::info("swim {}: joined the cluster ({} members known)", name_, node_->num_members());
  // Serf broadcasts its join intent once memberlist has joined; by now we
  // have merged the seed's state and witnessed its clocks.
  broadcast_join_intent();
  auto cb = std::move(join_cb_);
  join_cb_ = nullptr;
  if (!cb) return;
  try {
    cb();
  } catch (const std::exception& ex) {
    spdlog::error("swim {}: on_first_join threw: {}", name_, ex.what());
  } catch (...) {
    spdlog::error("swim {}: on_first_join threw", name_);
  }
}

// --- leave ---------------------------------------------------------------------------------

bool Membership::Impl::any_alive_peer() const {
  for (const auto& m : node_->members())
    if (m.name != name_ && (m.state == MemberState::Alive || m.state == MemberState::Suspect))
      return true;
  return false;
}

Duration Membership::Impl::intent_wait() const {
  // Enough gossip rounds for the intent to be sent its RetransmitMult x
  // log(N) times to GossipNodes peers per round, at least three rounds.
  const Config& c = node_->config();
  const int limit = retransmit_limit(c.retransmit_mult, node_->num_members());
  const int per_round = std::max(1, c.gossip_nodes);
  const int rounds = std::max(3, (limit + per_round - 1) / per_round + 1);
  return std::min<Duration>(c.gossip_interval * rounds, kIntentWaitMax);
}

void Membership::Impl::begin_leave(std::chrono::milliseconds timeout,
                                   std::shared_ptr<std::promise<bool>> done) {
  if (stopped_) {
    done->set_value(leave_phase_ == LeavePhase::Done);
    return;
  }
  leave_promises_.push_back(std::move(done));
  if (leave_phase_ != LeavePhase::None) return;
  if (!node_->started()) {
    finish_leave(true);
    return;
  }
  leave_phase_ = LeavePhase::Intent;
  const Time t0 = now();
  leave_deadline_ = t0 + std::chrono::duration_cast<Duration>(timeout);
  join_active_ = false;
  join_timer_.cancel();

  // serf.go Leave: the intent carries clock.Time(), then the clock moves
  // on. Our clock is past every Lamport time we witnessed for us, so Serf
  // takes the intent as newer than our status.
  const std::uint64_t lt = lamport_.time();
  lamport_.increment();
  node_->queue_user_broadcast(serf::encode_leave_intent(lt, name_, false), kIntentName);
  spdlog::info("swim {}: leaving (Serf leave intent at Lamport time {})", name_, lt);
  if (!any_alive_peer()) {
    leave_broadcast_dead();
    return;
  }
  const Duration wait = std::min<Duration>(intent_wait(), std::chrono::duration_cast<Duration>(timeout) / 2);
  leave_timer_.expires_at(to_steady(t0 + wait));
  leave_timer_.async_wait([self = shared_from_this()](const error_code& ec) {
    if (ec || self->stopped_ || self->leave_phase_ != LeavePhase::Intent) return;
    self->leave_broadcast_dead();
  });
  pump();
}

void Membership::Impl::leave_broadcast_dead() {
  leave_phase_ = LeavePhase::Leaving;
  node_->leave(now());
  leave_timer_.expires_at(to_steady(leave_deadline_));
  leave_timer_.async_wait([self = shared_from_this()](const error_code& ec) {
    if (ec || self->stopped_ || self->leave_phase_ != LeavePhase::Leaving) return;
    self->finish_leave(self->node_->leave_done());
  });
  pump();
}

void Membership::Impl::finish_leave(bool ok) {
  leave_phase_ = LeavePhase::Done;
  auto promises = std::move(leave_promises_);
  leave_promises_.clear();
  spdlog::info("swim {}: left the cluster{}", name_, ok ? "" : " (timed out before the broadcast went out)");
  close_all();
  for (auto& p : promises) p->set_value(ok);
}

}  // namespace mesh::swim
