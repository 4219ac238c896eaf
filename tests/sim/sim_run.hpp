// One swim-sim run: N nodes join through 3 seeds and converge, then run for
// a duration at a packet loss, with K random non-seed nodes crashed half
// way. Shared by the swim-sim executable and a test of it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "mesh/swim/config.hpp"

namespace mesh::sim {

struct RunOptions {
  std::size_t nodes = 10;
  double loss = 0.0;
  double duration_s = 60.0;  // after convergence
  std::uint64_t seed = 1;
  std::size_t kill = 0;
  swim::Profile profile = swim::Profile::Lan;
  bool compress = false;
  // Joiner k starts k x stagger after the seeds (see docs/simulator.md).
  double stagger_ms = 5.0;
  // Config::max_broadcast_queue (0: the core's default bound).
  std::size_t queue_bound = 0;
  // Config::aligned_probes (false: memberlist's shuffled walk).
  bool aligned_probes = true;
  double converge_timeout_s = 900.0;
};

struct RunReport {
  RunOptions opts;
  bool converged = false;
  double converge_s = -1;              // virtual, from the first start to all-see-alive
  std::uint64_t false_deaths = 0;      // (observer, Dead event) pairs about live nodes
  std::uint64_t false_dead_nodes = 0;  // distinct live nodes declared dead by someone
  std::size_t killed = 0;
  std::size_t detected = 0;  // kills known dead everywhere by the end
  double detect_s_p50 = -1;
  double detect_s_max = -1;
  double packets_per_node_per_s = 0;  // UDP, steady state (after convergence)
  double bytes_per_node_per_s = 0;
  double streams_per_node_per_s = 0;
  double stream_bytes_per_node_per_s = 0;
  std::uint64_t suspect_events = 0;     // observer-level Suspect events, whole run
  std::uint64_t suspicions_raised = 0;  // node stats, whole run
  std::uint64_t refutations = 0;
  std::uint64_t dead_events = 0;
  std::uint64_t push_pulls = 0;
  std::uint64_t broadcasts_pruned = 0;
  std::uint64_t last_calls = 0;
  std::uint64_t members_rate_limited = 0;
  std::uint64_t last_calls_answered = 0;
  std::uint64_t broadcast_queue_peak = 0;  // the largest at any node
  std::uint64_t decode_errors = 0;
  std::uint64_t stream_need_more = 0;
  std::uint64_t deadline_not_advanced = 0;
  std::uint64_t oversize_packets = 0;
  std::uint64_t join_failures = 0;
  std::uint64_t sim_events = 0;
  double virtual_s = 0;
  double wall_s = 0;
  double cpu_s = 0;  // process CPU time: on a shared machine, steadier than wall_s
  double speedup = 0;
  // memberlist's formulas for this N and profile.
  double suspicion_min_s = 0;
  double suspicion_max_s = 0;
  int retransmit_limit = 0;
  double push_pull_interval_s = 0;
};

RunReport run_simulation(const RunOptions& opts);

std::string to_json(const RunReport& r);
std::string to_table(const RunReport& r);

}  // namespace mesh::sim
