// The simulated network: who can reach whom, what is lost, and how long a
// packet or a TCP exchange takes. Pure policy with its own random engine; the
// Cluster owns the clock, the event heap and the nodes.
//
// Model (docs/simulator.md has the long form):
//  - one-way latency of a packet = the link's base + per-packet jitter
//    (+ an explicit reordering delay with some probability). A link's base is
//    fixed for the run: base_latency x (1 +- link_spread), drawn from a hash of
//    the seed and the (unordered) pair, so it costs no memory at 1000 nodes.
//  - loss: a global per-packet probability plus per-node send and receive
//    probabilities; a packet survives with the product of the three.
//  - reachability: partitions put nodes in groups (different groups cannot
//    talk); one-way blocks stop from -> to only.
//  - TCP: see stream_timing() below.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <unordered_set>
#include <vector>

#include "mesh/swim/config.hpp"
#include "mesh/random.hpp"
#include "mesh/swim/types.hpp"

namespace mesh::sim {

using swim::Duration;
using swim::Time;
using NodeId = std::size_t;  // index of a node in its Cluster

enum class JitterKind : std::uint8_t { Exponential, LogNormal };

// What happens to a datagram larger than the MTU.
//  Truncate: the receiver gets the first `mtu` bytes (a middlebox trimming,
//            or a receive buffer too small); exercises memberlist's tolerance
//            of a cut compound tail.
//  Drop:     the datagram vanishes (DF set and no fragmentation).
enum class MtuPolicy : std::uint8_t { Truncate, Drop };

struct NetworkOptions {
  Duration base_latency = std::chrono::microseconds(200);  // one way
  double link_spread = 0.5;                                // link base in base x [0.5, 1.5)
  JitterKind jitter = JitterKind::Exponential;
  Duration jitter_mean = std::chrono::microseconds(100);  // exponential mean / lognormal median
  double lognormal_sigma = 1.0;

  double loss = 0.0;       // every packet, every link
  double duplicate = 0.0;  // a second copy with its own latency
  double reorder = 0.0;    // extra delay uniform in [0, reorder_delay)
  Duration reorder_delay = std::chrono::milliseconds(5);

  // UDP payload bytes that fit an Ethernet frame (1500 - 20 IP - 8 UDP).
  // memberlist sends at most 1400, so this only bites when lowered.
  std::size_t mtu = 1472;
  MtuPolicy mtu_policy = MtuPolicy::Truncate;

  // Datagrams that wait for a paused node (SIGSTOP) sit in its socket's
  // receive buffer; past this many bytes the kernel drops them
  // (net.core.rmem_default on Linux).
  std::size_t pause_buffer_bytes = 212992;

  // TCP. A connect to an unreachable or crashed host fails at
  // min(stream deadline, now + connect_timeout) (memberlist dials with
  // TCPTimeout, so by default the deadline decides).
  Duration connect_timeout = std::chrono::seconds(10);
  Duration syn_rto = std::chrono::seconds(1);          // Linux initial SYN RTO, doubles
  Duration data_rto = std::chrono::milliseconds(200);  // Linux TCP_RTO_MIN, doubles
  double bandwidth_bytes_per_s = 125e6;                // 1 Gbit/s per link

  // Defaults per memberlist profile: local = one host, lan = a data centre,
  // wan = across regions.
  static NetworkOptions for_profile(swim::Profile p);
};

// When the parts of one TCP exchange happen, decided when it is opened.
struct StreamTiming {
  bool connected = false;  // false: fails at `fail_at`
  Time fail_at{};
  Time request_arrives{};  // when connected
};

struct NetworkCounters {
  std::uint64_t lost = 0;
  std::uint64_t unreachable = 0;  // partition or block
  std::uint64_t duplicated = 0;
  std::uint64_t reordered = 0;
  std::uint64_t truncated = 0;
  std::uint64_t dropped_mtu = 0;
  std::uint64_t tcp_retransmits = 0;
};

class Network {
 public:
  Network(NetworkOptions opts, std::uint64_t seed);

  const NetworkOptions& options() const { return opts_; }
  void set_loss(double p) { opts_.loss = p; }
  void set_duplicate(double p) { opts_.duplicate = p; }
  void set_reorder(double p, Duration delay) {
    opts_.reorder = p;
    opts_.reorder_delay = delay;
  }
  void set_mtu(std::size_t mtu, MtuPolicy policy) {
    opts_.mtu = mtu;
    opts_.mtu_policy = policy;
  }

  // Grows the per-node tables; new nodes are in group 0 with no extra loss.
  void resize(std::size_t n);
  void set_node_loss(NodeId n, double send, double recv);

  // Partitions: every node in `groups[k]` goes to group k + 1; nodes not
  // named stay together in group 0.
  void partition(const std::vector<std::vector<NodeId>>& groups);
  void block(NodeId from, NodeId to) { blocked_.insert(key(from, to)); }
  void unblock(NodeId from, NodeId to) { blocked_.erase(key(from, to)); }
  // Removes partitions and blocks (not loss).
  void heal();

  bool reachable(NodeId from, NodeId to) const {
    if (group_[from] != group_[to]) return false;
    return blocked_.empty() || !blocked_.contains(key(from, to));
  }
  // Probability that one packet from -> to is lost (not counting reachability).
  double loss(NodeId from, NodeId to) const {
    return 1.0 - (1.0 - opts_.loss) * (1.0 - send_loss_[from]) * (1.0 - recv_loss_[to]);
  }

  // --- per-packet decisions (each consumes randomness) --------------------
  // Whether this datagram is dropped (unreachable or lost). Counted.
  bool drop_packet(NodeId from, NodeId to);
  // One-way delay of one datagram of `size` bytes.
  Duration packet_latency(NodeId from, NodeId to, std::size_t size);
  bool duplicate_packet();
  // Applies the MTU: returns false when the packet must be dropped; may
  // shrink it.
  bool apply_mtu(swim::Bytes& bytes);

  // A TCP exchange opened at `now` from -> to carrying `size` bytes.
  // SYN + SYN-ACK: one round trip; each is lost with the link's loss and
  // costs a retransmission after syn_rto (doubling). Then the request,
  // whose segments are lost with the link's loss and cost data_rto
  // (doubling). Past `connect_by` the connect fails; past `deadline` the
  // exchange fails.
  StreamTiming stream_timing(Time now, NodeId from, NodeId to, std::size_t size, Time connect_by,
                             Time deadline);
  // The reply leg, from the server back: nullopt when it cannot arrive
  // before `deadline`.
  std::optional<Time> reply_arrival(Time now, NodeId from, NodeId to, std::size_t size,
                                    Time deadline);

  const NetworkCounters& counters() const { return counters_; }

 private:
  static std::uint64_t key(NodeId from, NodeId to) {
    return (static_cast<std::uint64_t>(from) << 32) | static_cast<std::uint64_t>(to);
  }
  Duration link_base(NodeId a, NodeId b) const;
  Duration jitter();
  Duration transfer_time(std::size_t size) const;
  // Data delivered despite loss: retransmissions with backoff from `rto`.
  Duration retransmit_delay(double p, Duration rto);

  NetworkOptions opts_;
  std::uint64_t seed_;
  mesh::Rng rng_;
  std::vector<std::uint32_t> group_;
  std::vector<double> send_loss_;
  std::vector<double> recv_loss_;
  std::unordered_set<std::uint64_t> blocked_;
  NetworkCounters counters_;
};

}  // namespace mesh::sim
