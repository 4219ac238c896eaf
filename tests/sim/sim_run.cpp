#include "sim_run.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <set>
#include <sstream>
#include <vector>

#include "cluster.hpp"
#include "mesh/random.hpp"

namespace mesh::sim {

namespace {

double secs(Duration d) { return static_cast<double>(d.count()) / 1e6; }
Duration from_secs(double s) { return Duration(static_cast<Duration::rep>(s * 1e6)); }

}  // namespace

RunReport run_simulation(const RunOptions& o) {
  // The wall clock measures the run for the speedup figure only; nothing in
  // the simulation reads it.
  const auto wall_start = std::chrono::steady_clock::now();
  const std::clock_t cpu_start = std::clock();
  RunReport r;
  r.opts = o;

  ClusterOptions co;
  co.seed = o.seed;
  co.profile = o.profile;
  co.compress_streams = o.compress;
  co.join_stagger = from_secs(o.stagger_ms / 1000.0);
  co.configure = [bound = o.queue_bound, aligned = o.aligned_probes](NodeId, swim::Config& cfg) {
    if (bound != 0) cfg.max_broadcast_queue = bound;
    cfg.aligned_probes = aligned;
  };
  co.record_events = false;  // an hour of 1000 nodes would not fit
  co.hash_payloads = false;
  Cluster c(co);
  c.add_nodes(o.nodes);

  std::vector<NodeId> seeds;
  for (NodeId i = 0; i < std::min<std::size_t>(3, o.nodes); ++i) seeds.push_back(i);
  c.join_all_through(seeds);
  r.converged = c.wait_until([&] { return c.all_see_alive(); }, from_secs(o.converge_timeout_s));
  r.converge_s = r.converged ? secs(c.elapsed()) : -1;

  // Steady state: from convergence (or its timeout) on, at the given loss.
  c.set_loss(o.loss);
  const Time t0 = c.now();
  const auto sent0 = c.counters().packets_sent;
  const auto bytes0 = c.counters().bytes_sent;
  const auto streams0 = c.counters().streams_opened;
  const auto sbytes0 = c.counters().stream_bytes;

  const Time t_end = t0 + from_secs(o.duration_s);
  const Time t_kill = t0 + from_secs(o.duration_s / 2);
  c.run_until(t_kill);

  std::vector<NodeId> candidates;
  for (NodeId i = seeds.size(); i < o.nodes; ++i) candidates.push_back(i);
  mesh::Rng pick(Cluster::derive_seed(o.seed, 0x6b696c6c, 0));
  pick.shuffle(candidates);
  const std::size_t k = std::min(o.kill, candidates.size());
  for (std::size_t j = 0; j < k; ++j) c.crash(candidates[j]);
  r.killed = k;

  c.run_until(t_end);

  const double node_seconds = static_cast<double>(o.nodes) * secs(t_kill - t0) +
                              static_cast<double>(o.nodes - k) * secs(t_end - t_kill);
  if (node_seconds > 0) {
    r.packets_per_node_per_s =
        static_cast<double>(c.counters().packets_sent - sent0) / node_seconds;
    r.bytes_per_node_per_s = static_cast<double>(c.counters().bytes_sent - bytes0) / node_seconds;
    r.streams_per_node_per_s =
        static_cast<double>(c.counters().streams_opened - streams0) / node_seconds;
    r.stream_bytes_per_node_per_s =
        static_cast<double>(c.counters().stream_bytes - sbytes0) / node_seconds;
  }

  std::vector<double> detect;
  for (const auto& kr : c.kills()) {
    if (kr.dead_everywhere) detect.push_back(secs(*kr.dead_everywhere - kr.at));
  }
  std::sort(detect.begin(), detect.end());
  r.detected = detect.size();
  if (!detect.empty()) {
    r.detect_s_p50 = detect[(detect.size() - 1) / 2];
    r.detect_s_max = detect.back();
  }

  r.false_deaths = c.false_deaths();
  std::set<NodeId> falsely_dead;
  for (const auto& e : c.false_death_events()) falsely_dead.insert(e.subject);
  r.false_dead_nodes = falsely_dead.size();

  const auto& cc = c.counters();
  const swim::NodeStats st = c.total_node_stats();
  r.suspect_events = cc.member_events[static_cast<std::size_t>(EventKind::Suspect)];
  r.dead_events = cc.member_events[static_cast<std::size_t>(EventKind::Dead)];
  r.suspicions_raised = st.suspicions_raised;
  r.refutations = st.refutations;
  r.push_pulls = st.push_pulls;
  r.broadcasts_pruned = st.broadcasts_pruned;
  r.last_calls = st.last_calls;
  r.members_rate_limited = st.members_rate_limited;
  r.last_calls_answered = st.last_calls_answered;
  r.broadcast_queue_peak = st.broadcast_queue_peak;
  r.decode_errors = st.decode_errors_total();
  r.stream_need_more = cc.stream_need_more;
  r.deadline_not_advanced = cc.deadline_not_advanced;
  r.oversize_packets = cc.packets_oversize;
  r.join_failures = cc.join_failures;
  r.sim_events = cc.sim_events;
  r.virtual_s = secs(c.elapsed());

  const swim::Config cfg = swim::Config::for_profile(o.profile);
  const Duration smin = swim::suspicion_timeout(cfg.suspicion_mult, o.nodes, cfg.probe_interval);
  r.suspicion_min_s = secs(smin);
  r.suspicion_max_s = secs(smin * cfg.suspicion_max_timeout_mult);
  r.retransmit_limit = swim::retransmit_limit(cfg.retransmit_mult, o.nodes);
  r.push_pull_interval_s = secs(swim::push_pull_scale(cfg.push_pull_interval, o.nodes));

  r.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();
  r.cpu_s = static_cast<double>(std::clock() - cpu_start) / CLOCKS_PER_SEC;
  r.speedup = r.wall_s > 0 ? r.virtual_s / r.wall_s : 0;
  return r;
}

namespace {

std::string num(double v, int prec = 3) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", prec, v);
  return buf;
}

// The (name, JSON value) pairs of a report, in one order for both outputs.
std::vector<std::pair<std::string, std::string>> fields(const RunReport& r) {
  auto opt = [](double v, int prec = 3) { return v < 0 ? std::string("null") : num(v, prec); };
  return {
      {"nodes", std::to_string(r.opts.nodes)},
      {"loss", num(r.opts.loss, 4)},
      {"seed", std::to_string(r.opts.seed)},
      {"profile", "\"" + std::string(swim::to_string(r.opts.profile)) + "\""},
      {"duration_s", num(r.opts.duration_s, 1)},
      {"kill", std::to_string(r.opts.kill)},
      {"compress", r.opts.compress ? "true" : "false"},
      {"probe_order", r.opts.aligned_probes ? "\"aligned\"" : "\"shuffled\""},
      {"converged", r.converged ? "true" : "false"},
      {"converge_s", opt(r.converge_s)},
      {"false_deaths", std::to_string(r.false_deaths)},
      {"false_dead_nodes", std::to_string(r.false_dead_nodes)},
      {"killed", std::to_string(r.killed)},
      {"detected", std::to_string(r.detected)},
      {"detect_s_p50", opt(r.detect_s_p50)},
      {"detect_s_max", opt(r.detect_s_max)},
      {"packets_per_node_per_s", num(r.packets_per_node_per_s)},
      {"bytes_per_node_per_s", num(r.bytes_per_node_per_s, 1)},
      {"streams_per_node_per_s", num(r.streams_per_node_per_s, 4)},
      {"stream_bytes_per_node_per_s", num(r.stream_bytes_per_node_per_s, 1)},
      {"suspect_events", std::to_string(r.suspect_events)},
      {"suspicions_raised", std::to_string(r.suspicions_raised)},
      {"refutations", std::to_string(r.refutations)},
      {"dead_events", std::to_string(r.dead_events)},
      {"push_pulls", std::to_string(r.push_pulls)},
      {"broadcasts_pruned", std::to_string(r.broadcasts_pruned)},
      {"last_calls", std::to_string(r.last_calls)},
      {"members_rate_limited", std::to_string(r.members_rate_limited)},
      {"last_calls_answered", std::to_string(r.last_calls_answered)},
      {"broadcast_queue_peak", std::to_string(r.broadcast_queue_peak)},
      {"decode_errors", std::to_string(r.decode_errors)},
      {"stream_need_more", std::to_string(r.stream_need_more)},
      {"deadline_not_advanced", std::to_string(r.deadline_not_advanced)},
      {"oversize_packets", std::to_string(r.oversize_packets)},
      {"join_failures", std::to_string(r.join_failures)},
      {"suspicion_min_s", num(r.suspicion_min_s, 2)},
      {"suspicion_max_s", num(r.suspicion_max_s, 2)},
      {"retransmit_limit", std::to_string(r.retransmit_limit)},
      {"push_pull_interval_s", num(r.push_pull_interval_s, 1)},
      {"sim_events", std::to_string(r.sim_events)},
      {"virtual_s", num(r.virtual_s, 1)},
      {"wall_s", num(r.wall_s, 2)},
      {"cpu_s", num(r.cpu_s, 2)},
      {"speedup", num(r.speedup, 1)},
  };
}

}  // namespace

std::string to_json(const RunReport& r) {
  std::ostringstream out;
  out << "{";
  bool first = true;
  for (const auto& [k, v] : fields(r)) {
    out << (first ? "" : ", ") << "\"" << k << "\": " << v;
    first = false;
  }
  out << "}";
  return out.str();
}

std::string to_table(const RunReport& r) {
  std::ostringstream out;
  std::size_t w = 0;
  const auto fs = fields(r);
  for (const auto& f : fs) w = std::max(w, f.first.size());
  for (const auto& [k, v] : fs) {
    std::string val = v;
    if (val.size() >= 2 && val.front() == '"') val = val.substr(1, val.size() - 2);
    out << k << std::string(w - k.size() + 2, ' ') << val << "\n";
  }
  return out.str();
}

}  // namespace mesh::sim
