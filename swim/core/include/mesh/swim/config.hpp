// Configuration of a SWIM node. Defaults are memberlist's named profiles
// (DefaultLANConfig, DefaultWANConfig, DefaultLocalConfig in config.go).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "mesh/swim/codec.hpp"
#include "mesh/swim/messages.hpp"
#include "mesh/swim/types.hpp"

namespace mesh::swim {

enum class Profile { Lan, Wan, Local };

std::optional<Profile> parse_profile(std::string_view name);  // "lan", "wan", "local"
std::string_view to_string(Profile p);

struct Config {
  // Identity. `name` must be unique in the cluster; `advertise` is the
  // address and port other members use to reach this node.
  std::string name;
  Address advertise;

  // Failure detection (SWIM §4, Lifeguard).
  Duration probe_interval = std::chrono::seconds(1);
  Duration probe_timeout = std::chrono::milliseconds(500);
  int indirect_checks = 3;
  bool disable_tcp_pings = false;
  int awareness_max_multiplier = 8;
  int suspicion_mult = 4;
  int suspicion_max_timeout_mult = 6;
  // Probe order. memberlist has each node walk its own shuffled list, so
  // the probes a member gets from all the others come at random (on
  // average one per interval) and the first one after it dies comes after
  // an exponential wait: 1 interval on average, more than 2 one time in
  // seven. Aligned (ours by default; swim/DESIGN.md): the verified live
  // members and this node are ordered by name, the same order everywhere,
  // and in round r (the shared clock over probe_interval) the node at
  // position p probes the member at p + 1 + (r mod (n - 1)). That is a
  // rotation: while views agree every member gets exactly one probe per
  // round, and each node still probes every member once in n - 1 rounds.
  bool aligned_probes = true;
  // Added to the caller's Time to get a clock every member shares (the
  // driver sets Unix time at its Time 0), for aligned_probes' round.
  // Clocks that disagree by a good part of the interval make the rounds
  // disagree, and the probes fall as if at random again.
  Duration shared_clock_offset = Duration::zero();

  // Dissemination.
  int retransmit_mult = 4;
  Duration gossip_interval = std::chrono::milliseconds(200);
  int gossip_nodes = 3;
  Duration gossip_to_the_dead_time = std::chrono::seconds(30);
  std::size_t udp_buffer_size = kUdpPacketMax;
  // Bound on the broadcast queue (memberlist has none; Serf prunes its own
  // queues). Past it the most-sent messages are dropped; a node's news
  // about itself is never dropped. 0: the default bound, see
  // broadcast_queue_bound().
  std::size_t max_broadcast_queue = 0;

  // Anti-entropy.
  Duration push_pull_interval = std::chrono::seconds(30);
  Duration tcp_timeout = std::chrono::seconds(10);

  // Serf's reconnect: members that failed (not those that left) are
  // remembered for `reconnect_timeout` after they are reaped, and every
  // `reconnect_interval` one of them may be tried with a push/pull (with
  // probability failed/alive, as Serf does). This is what re-merges the two
  // sides of a partition that outlasted GossipToTheDeadTime. 0 disables.
  Duration reconnect_interval = std::chrono::seconds(30);
  Duration reconnect_timeout = std::chrono::hours(24);

  // A dead node's name may be taken by a new address after this long
  // (0: never, memberlist's default). Left nodes can always be reclaimed.
  Duration dead_node_reclaim_time = Duration::zero();

  // Gossip under abuse (swim/DESIGN.md, "Hostile gossip"). Without a gossip
  // key anyone can announce members, so previously unknown members are let
  // in through token buckets: one for all unsolicited sources (gossip
  // packets, push/pulls others open to us) together, one per source IP.
  // Beyond them a new member is dropped and counted; a real one comes again
  // with later gossip or push/pull. Members from a push/pull that we opened
  // (join, anti-entropy) take no tokens. The bursts let a 1000-node cluster
  // form; 0 rate means no refill.
  double new_member_rate = 128;             // per second
  double new_member_burst = 1024;
  double new_member_rate_per_source = 32;   // per second
  double new_member_burst_per_source = 256;
  // Members that have never answered us ("unverified") beyond which no
  // unknown member is added from any source.
  std::size_t max_unverified_members = 4096;
  // A member that left may reappear under another address only after this
  // long (memberlist: at once). A forged leave then cannot hand a live
  // node's name to another address: the owner refutes first.
  Duration left_node_reclaim_time = std::chrono::seconds(10);

  // Compression of outgoing streams (memberlist compresses by default; Go
  // peers decode either form). Packets are never compressed by us: at 1400
  // bytes the gain is small and the CPU is not.
  bool compress_streams = true;

  // Protocol and delegate versions we speak: [pmin, pmax, pcur, dmin, dmax,
  // dcur]. These values interoperate with Serf 0.9.x.
  Vsn vsn = {1, 5, 2, 2, 5, 5};

  DecodeLimits limits{};

  static Config lan();
  static Config wan();
  static Config local();
  static Config for_profile(Profile p);

  // One line saying what is wrong, or nullopt when usable.
  std::optional<std::string> validate() const;
};

// memberlist's formulas (util.go), exposed for tests and documentation.
// SuspicionMult x max(1, log10(max(1, n))) x interval.
Duration suspicion_timeout(int suspicion_mult, std::size_t n, Duration interval);
// RetransmitMult x ceil(log10(n + 1)).
int retransmit_limit(int retransmit_mult, std::size_t n);
// The broadcast queue's default bound for n members (Config::max_broadcast_queue).
std::size_t broadcast_queue_bound(std::size_t n);
// Push/pull interval scaled past 32 nodes: x (ceil(log2 n - log2 32) + 1).
Duration push_pull_scale(Duration interval, std::size_t n);

}  // namespace mesh::swim
