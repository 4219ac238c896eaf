#include "network.hpp"

#include <algorithm>
#include <cmath>

namespace mesh::sim {

namespace {

std::uint64_t mix64(std::uint64_t x) {
  // splitmix64's finaliser: a cheap, well-spread hash of one word.
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Retransmissions are capped so that a link with 100 % loss terminates; the
// cap is far past any deadline a node sets.
constexpr Duration kRetransmitCap = std::chrono::hours(1);

}  // namespace

NetworkOptions NetworkOptions::for_profile(swim::Profile p) {
  using namespace std::chrono_literals;
  NetworkOptions o;
  switch (p) {
    case swim::Profile::Local:
      o.base_latency = 30us;
      o.jitter_mean = 10us;
      break;
    case swim::Profile::Lan:
      o.base_latency = 200us;
      o.jitter_mean = 100us;
      break;
    case swim::Profile::Wan:
      // Regions apart: tens of milliseconds with a heavy tail.
      o.base_latency = 30ms;
      o.link_spread = 0.8;
      o.jitter = JitterKind::LogNormal;
      o.jitter_mean = 2ms;
      o.lognormal_sigma = 1.0;
      o.bandwidth_bytes_per_s = 12.5e6;
      break;
  }
  return o;
}

Network::Network(NetworkOptions opts, std::uint64_t seed) : opts_(opts), seed_(seed), rng_(seed) {}

void Network::resize(std::size_t n) {
  group_.resize(n, 0);
  send_loss_.resize(n, 0.0);
  recv_loss_.resize(n, 0.0);
}

void Network::set_node_loss(NodeId n, double send, double recv) {
  send_loss_[n] = send;
  recv_loss_[n] = recv;
}

void Network::partition(const std::vector<std::vector<NodeId>>& groups) {
  std::fill(group_.begin(), group_.end(), 0u);
  for (std::size_t g = 0; g < groups.size(); ++g) {
    for (NodeId n : groups[g]) group_[n] = static_cast<std::uint32_t>(g + 1);
  }
}

void Network::heal() {
  std::fill(group_.begin(), group_.end(), 0u);
  blocked_.clear();
}

Duration Network::link_base(NodeId a, NodeId b) const {
  if (a > b) std::swap(a, b);
  const std::uint64_t h = mix64(seed_ ^ mix64(key(a, b)));
  // Top 53 bits as a double in [0, 1).
  const double u = static_cast<double>(h >> 11) * 0x1.0p-53;
  const double factor = 1.0 + opts_.link_spread * (2.0 * u - 1.0);
  return Duration(static_cast<Duration::rep>(
      std::max(1.0, static_cast<double>(opts_.base_latency.count()) * factor)));
}

Duration Network::jitter() {
  const double mean = static_cast<double>(opts_.jitter_mean.count());
  if (mean <= 0) return Duration::zero();
  double us = 0;
  if (opts_.jitter == JitterKind::Exponential) {
    us = -std::log(1.0 - rng_.unit()) * mean;
  } else {
    // Box-Muller; lognormal with median `mean`.
    const double u1 = 1.0 - rng_.unit();
    const double u2 = rng_.unit();
    const double z = std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
    us = mean * std::exp(opts_.lognormal_sigma * z);
  }
  // A jitter of more than a minute is the tail of the distribution talking.
  return Duration(static_cast<Duration::rep>(std::min(us, 60e6)));
}

Duration Network::transfer_time(std::size_t size) const {
  if (opts_.bandwidth_bytes_per_s <= 0) return Duration::zero();
  return Duration(
      static_cast<Duration::rep>(static_cast<double>(size) * 1e6 / opts_.bandwidth_bytes_per_s));
}

bool Network::drop_packet(NodeId from, NodeId to) {
  if (!reachable(from, to)) {
    ++counters_.unreachable;
    return true;
  }
  const double p = loss(from, to);
  if (p > 0 && rng_.chance(p)) {
    ++counters_.lost;
    return true;
  }
  return false;
}

Duration Network::packet_latency(NodeId from, NodeId to, std::size_t size) {
  Duration d = link_base(from, to) + jitter() + transfer_time(size);
  if (opts_.reorder > 0 && rng_.chance(opts_.reorder)) {
    ++counters_.reordered;
    d += Duration(static_cast<Duration::rep>(rng_.below(
        static_cast<std::uint64_t>(std::max<Duration::rep>(1, opts_.reorder_delay.count())))));
  }
  return d;
}

bool Network::duplicate_packet() {
  if (opts_.duplicate > 0 && rng_.chance(opts_.duplicate)) {
    ++counters_.duplicated;
    return true;
  }
  return false;
}

bool Network::apply_mtu(swim::Bytes& bytes) {
  if (bytes.size() <= opts_.mtu) return true;
  if (opts_.mtu_policy == MtuPolicy::Drop) {
    ++counters_.dropped_mtu;
    return false;
  }
  ++counters_.truncated;
  bytes.resize(opts_.mtu);
  return true;
}

Duration Network::retransmit_delay(double p, Duration rto) {
  Duration extra = Duration::zero();
  if (p <= 0) return extra;
  while (extra < kRetransmitCap && rng_.chance(p)) {
    ++counters_.tcp_retransmits;
    extra += rto;
    rto *= 2;
  }
  return extra;
}

StreamTiming Network::stream_timing(Time now, NodeId from, NodeId to, std::size_t size,
                                    Time connect_by, Time deadline) {
  StreamTiming t;
  t.fail_at = std::min(connect_by, deadline);
  // TCP needs both directions: a SYN that arrives is useless if the SYN-ACK
  // cannot come back.
  if (!reachable(from, to) || !reachable(to, from)) {
    ++counters_.unreachable;
    return t;
  }
  // SYN or SYN-ACK lost: the client retransmits the SYN.
  const double p_rt = 1.0 - (1.0 - loss(from, to)) * (1.0 - loss(to, from));
  const Time connected = now + link_base(from, to) + jitter() + link_base(to, from) + jitter() +
                         retransmit_delay(p_rt, opts_.syn_rto);
  if (connected >= t.fail_at) return t;
  const Time arrives = connected + link_base(from, to) + jitter() + transfer_time(size) +
                       retransmit_delay(loss(from, to), opts_.data_rto);
  if (arrives >= deadline) {
    t.fail_at = deadline;
    return t;
  }
  t.connected = true;
  t.request_arrives = arrives;
  return t;
}

std::optional<Time> Network::reply_arrival(Time now, NodeId from, NodeId to, std::size_t size,
                                           Time deadline) {
  if (!reachable(from, to)) {
    ++counters_.unreachable;
    return std::nullopt;
  }
  const Time arrives = now + link_base(from, to) + jitter() + transfer_time(size) +
                       retransmit_delay(loss(from, to), opts_.data_rto);
  if (arrives >= deadline) return std::nullopt;
  return arrives;
}

}  // namespace mesh::sim
