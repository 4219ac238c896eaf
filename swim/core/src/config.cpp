#include "mesh/swim/config.hpp"

#include <algorithm>
#include <cmath>

namespace mesh::swim {

using std::chrono::milliseconds;
using std::chrono::seconds;

std::optional<Profile> parse_profile(std::string_view name) {
  if (name == "lan") return Profile::Lan;
  if (name == "wan") return Profile::Wan;
  if (name == "local") return Profile::Local;
  return std::nullopt;
}

std::string_view to_string(Profile p) {
  switch (p) {
    case Profile::Lan: return "lan";
    case Profile::Wan: return "wan";
    case Profile::Local: return "local";
  }
  return "?";
}

// The struct's member initialisers are memberlist's DefaultLANConfig.
Config Config::lan() { return Config{}; }

// DefaultWANConfig: slower probes, more patience, a fourth gossip target.
Config Config::wan() {
  Config c;
  c.tcp_timeout = seconds(30);
  c.suspicion_mult = 6;
  c.push_pull_interval = seconds(60);
  c.probe_timeout = seconds(3);
  c.probe_interval = seconds(5);
  c.gossip_nodes = 4;
  c.gossip_interval = milliseconds(500);
  c.gossip_to_the_dead_time = seconds(60);
  return c;
}

// DefaultLocalConfig: loopback, everything faster and less redundant.
Config Config::local() {
  Config c;
  c.tcp_timeout = seconds(1);
  c.indirect_checks = 1;
  c.retransmit_mult = 2;
  c.suspicion_mult = 3;
  c.push_pull_interval = seconds(15);
  c.probe_timeout = milliseconds(200);
  c.probe_interval = seconds(1);
  c.gossip_interval = milliseconds(100);
  c.gossip_to_the_dead_time = seconds(15);
  return c;
}

Config Config::for_profile(Profile p) {
  switch (p) {
    case Profile::Lan: return lan();
    case Profile::Wan: return wan();
    case Profile::Local: return local();
  }
  return lan();
}

std::optional<std::string> Config::validate() const {
  if (auto bad = validate_member_name(name)) return "node name: " + *bad;
  if (!advertise.valid()) return "advertise address must be an IPv4 or IPv6 address";
  if (advertise.port == 0) return "advertise port must not be 0";
  if (probe_interval <= Duration::zero()) return "probe_interval must be positive";
  if (probe_timeout <= Duration::zero() || probe_timeout > probe_interval)
    return "probe_timeout must be positive and at most probe_interval";
  if (indirect_checks < 0) return "indirect_checks must not be negative";
  if (awareness_max_multiplier < 1) return "awareness_max_multiplier must be at least 1";
  if (suspicion_mult < 1) return "suspicion_mult must be at least 1";
  if (suspicion_max_timeout_mult < 1) return "suspicion_max_timeout_mult must be at least 1";
  if (retransmit_mult < 1) return "retransmit_mult must be at least 1";
  if (gossip_interval <= Duration::zero()) return "gossip_interval must be positive";
  if (gossip_nodes < 0) return "gossip_nodes must not be negative";
  if (push_pull_interval < Duration::zero()) return "push_pull_interval must not be negative";
  if (tcp_timeout <= Duration::zero()) return "tcp_timeout must be positive";
  if (udp_buffer_size < 128 || udp_buffer_size > 65507)
    return "udp_buffer_size must be between 128 and 65507";
  if (!(new_member_rate >= 0) || !(new_member_rate_per_source >= 0))
    return "new member rates must not be negative";
  if (!(new_member_burst >= 1) || !(new_member_burst_per_source >= 1))
    return "new member bursts must be at least 1";
  if (max_unverified_members < 1) return "max_unverified_members must be at least 1";
  if (left_node_reclaim_time < Duration::zero()) return "left_node_reclaim_time must not be negative";
  if (vsn[0] == 0 || vsn[0] > vsn[1] || vsn[2] < vsn[0] || vsn[2] > vsn[1])
    return "protocol versions must satisfy 0 < min <= current <= max";
  if (vsn[3] > vsn[4] || vsn[5] < vsn[3] || vsn[5] > vsn[4])
    return "delegate versions must satisfy min <= current <= max";
  return std::nullopt;
}

Duration suspicion_timeout(int suspicion_mult, std::size_t n, Duration interval) {
  const double node_scale =
      std::max(1.0, std::log10(std::max(1.0, static_cast<double>(n))));
  // memberlist keeps three decimals of the scale (util.go).
  const auto scaled = static_cast<std::int64_t>(node_scale * 1000.0);
  return Duration(suspicion_mult * scaled * interval.count() / 1000);
}

int retransmit_limit(int retransmit_mult, std::size_t n) {
  const double node_scale = std::ceil(std::log10(static_cast<double>(n) + 1.0));
  return retransmit_mult * static_cast<int>(node_scale);
}

// Serf's rule for its own queues (checkQueueDepth): twice the members, at
// least 1024. Messages about members are named, one per member, so this
// never drops news a normal cluster needs (a 1000-node join keeps ~1000
// queued per node, and a smaller bound slowed its convergence fivefold in
// the simulator); it bounds what unnamed messages and floods can do.
std::size_t broadcast_queue_bound(std::size_t n) { return std::max<std::size_t>(1024, 2 * n); }

Duration push_pull_scale(Duration interval, std::size_t n) {
  constexpr std::size_t kThreshold = 32;
  if (n <= kThreshold) return interval;
  const double mult =
      std::ceil(std::log2(static_cast<double>(n)) - std::log2(static_cast<double>(kThreshold))) +
      1.0;
  return interval * static_cast<std::int64_t>(mult);
}

}  // namespace mesh::swim
