// directory_convergence: how fast agent cards reach every node, measured
// beside SWIM membership itself (the baseline) in the same run.
//
// N Meshes (P2P on, 127.0.0.1, ports chosen by the kernel) run in this one
// process, each with its own transport, SWIM and control threads, and M
// agents each. Node 0 starts alone (not measured), the others are built
// with it as their seed. Each round is a fresh cluster and measures, per
// observing node:
//
//   converge  from the first start() of nodes 1..N-1 until the node's SWIM
//             lists all N members alive (baseline) / its directory holds
//             all N x M cards;
//   tag       a plain SWIM tag update on node C (Membership::set_tags with
//             one extra tag, no directory work): until every other node's
//             SWIM shows it (the floor of any tag-borne change);
//   add       node C adds an agent: until every other node's SWIM shows C's
//             new "rv" tag (baseline) / its directory holds the new card;
//   remove    node C removes that agent: the same, card gone;
//   fail      node K's membership dies crash-like (kill_membership_for_test):
//             until every other node's SWIM lists K dead (baseline) / its
//             directory holds none of K's M cards.
//
// Method: one thread polls every --poll-ms. A round checks each node not
// yet done: Membership::members() for the SWIM condition, and for the
// directory either find() or a count kept by a directory listener (cheap,
// exact: the listener runs with each change). A node's figure is the time
// of the check that first saw its condition hold, so both columns are upper
// bounds by up to one poll round (mean round length is printed). The
// listener also stamps each change; those "exact" directory times are
// printed beside the polled ones but kept out of the ratios. Each
// phase is bounded by --deadline-s; a phase that times out is reported
// (null figures, a note) and the round's later phases are skipped.
//
// Thread cost: per node the transport thread, libzmq's I/O and reaper
// threads, SWIM's io thread and the control thread (5), plus one thread per
// agent. A CustomAgent's loop waits on its mailbox 200 ms at a time, so an
// idle one wakes 5 times a second; --plain-agents uses mesh::Agent's
// default run() instead (one thread blocked until stop, no wake-ups). The
// idle CPU of the whole process is measured after convergence.
//
//   directory_convergence [--nodes 50] [--agents 20] [--rounds 1]
//                         [--profile local|lan|wan] [--seed S] [--json]
//                         [--deadline-s 60] [--poll-ms 20] [--idle-s 2]
//                         [--plain-agents]
//
// Output: per-round lines on stderr; the table on stdout, or with --json one
// JSON object on stdout (medians over rounds at the top, each round under
// "rounds"). Exit 0 when every phase of every round completed, 1 when one
// timed out, 2 on bad flags.
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "mesh/cli.hpp"
#include "mesh/mesh.hpp"
#include "mesh/swim/membership.hpp"
#include "mesh/transport/transport.hpp"

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using json = nlohmann::json;

struct Options {
  int nodes = 50;
  int agents = 20;
  int rounds = 1;
  mesh::swim::Profile profile = mesh::swim::Profile::Local;
  std::uint64_t seed = 0;
  bool seed_given = false;
  bool json_out = false;
  double deadline_s = 60;
  int poll_ms = 20;
  double idle_s = 2;
  bool plain_agents = false;
};

const CLI::Validator kProfile(
    [](std::string& text) -> std::string {
      return mesh::swim::parse_profile(text) ? ""
                                             : "unknown profile \"" + text + "\" (lan, wan, local)";
    },
    "");

// nullopt: go on with `o`; a number: exit with it (after --help).
// Throws mesh::UsageError.
std::optional<int> parse_options(int argc, char** argv, Options& o) {
  CLI::App app(
      "How fast agent cards reach every node (AgentDirectory), measured beside SWIM\n"
      "membership itself in the same run: N Meshes with M agents each in this process\n"
      "on 127.0.0.1; phases converge, tag, add, remove, fail (docs/benchmarks.md).\n"
      "Exit 0 when every phase of every round completed, 1 when one timed out, 2 on\n"
      "bad flags.");
  mesh::cli::setup(app, "directory_convergence");
  // A flag given twice: the last one counts.
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  std::string profile(mesh::swim::to_string(o.profile));
  app.add_option("--nodes", o.nodes, "nodes N, 2..200 (default 50)")
      ->type_name("N")
      ->transform(mesh::cli::whole_number(2, 200));
  app.add_option("--agents", o.agents, "agents M per node, 1..1000 (default 20)")
      ->type_name("M")
      ->transform(mesh::cli::whole_number(1, 1000));
  app.add_option("--rounds", o.rounds, "rounds, each a fresh cluster, 1..50 (default 1)")
      ->type_name("N")
      ->transform(mesh::cli::whole_number(1, 50));
  app.add_option("--profile", profile, "SWIM timing profile (default local)")
      ->type_name("local|lan|wan")
      ->check(kProfile);
  auto* seed = app.add_option("--seed", o.seed, "seed of the run, 1.. (default: random; printed)")
                   ->type_name("S")
                   ->transform(mesh::cli::whole_number(1, UINT64_MAX));
  app.add_flag("--json", o.json_out, "one JSON object on stdout (the table goes to stderr)");
  app.add_option("--deadline-s", o.deadline_s,
                 "bound of each phase in seconds, 1..3600 (default 60)")
      ->type_name("S")
      ->transform(mesh::cli::number(1, 3600, "seconds"));
  app.add_option("--poll-ms", o.poll_ms, "poll period in ms, 1..1000 (default 20)")
      ->type_name("MS")
      ->transform(mesh::cli::whole_number(1, 1000));
  app.add_option("--idle-s", o.idle_s, "idle CPU measured over S seconds, 0..60 (default 2)")
      ->type_name("S")
      ->transform(mesh::cli::number(0, 60, "seconds"));
  app.add_flag("--plain-agents", o.plain_agents,
               "mesh::Agent's default run() (no wake-ups) instead of a CustomAgent");
  if (auto done = mesh::cli::parse(app, argc, argv)) return done;
  o.profile = *mesh::swim::parse_profile(profile);
  o.seed_given = seed->count() > 0;
  if (!o.seed_given) {
    std::random_device rd;
    o.seed = ((static_cast<std::uint64_t>(rd()) << 32) ^ rd()) | 1;
  }
  return std::nullopt;
}

// ---------------------------------------------------------------- helpers

double ms_since(Clock::time_point t0, Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(t - t0).count();
}

std::uint64_t splitmix(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

double process_cpu_s() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

// A field of /proc/self/status ("Threads", "VmRSS"), or -1.
long proc_status(const std::string& key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key + ":", 0) == 0) {
      try {
        return std::stol(line.substr(key.size() + 1));
      } catch (const std::exception&) {
        return -1;
      }
    }
  }
  return -1;
}

void raise_fd_limit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

std::optional<std::uint64_t> parse_u64(const std::string& text) {
  std::uint64_t v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc{} || end != text.data() + text.size()) return std::nullopt;
  return v;
}

// Nearest-rank percentile of the values present; nullopt when any is
// missing (the phase did not complete for that node).
std::optional<double> percentile(const std::vector<std::optional<double>>& xs, double p) {
  std::vector<double> v;
  for (const auto& x : xs) {
    if (!x) return std::nullopt;
    v.push_back(*x);
  }
  if (v.empty()) return std::nullopt;
  std::sort(v.begin(), v.end());
  const double rank = std::ceil(p / 100.0 * static_cast<double>(v.size()));
  const auto idx = static_cast<std::size_t>(std::max(1.0, rank)) - 1;
  return v[std::min(idx, v.size() - 1)];
}

std::optional<double> ratio(std::optional<double> a, std::optional<double> b) {
  if (!a || !b || *b <= 0) return std::nullopt;
  return *a / *b;
}

json opt(std::optional<double> v) { return v ? json(*v) : json(nullptr); }
std::optional<double> num(const json& v) { return v.is_number() ? std::optional<double>(v.get<double>()) : std::nullopt; }

// ---------------------------------------------------------------- agents

mesh::AgentSpec spec_for(const std::string& id, int j) {
  return mesh::AgentSpec{.role = "worker-" + std::to_string(j % 5),
                         .capabilities = {"cap-" + std::to_string(j)},
                         .description = "directory_convergence bench agent",
                         .agent_id = id};
}

class CardAgent : public mesh::CustomAgent {
 public:
  CardAgent(const std::string& id, int j) : CustomAgent(spec_for(id, j)) {}
  std::optional<mesh::Json> on_peer_request(const mesh::IncomingMessage&) override {
    return mesh::Json{{"ok", true}};
  }
};

class PlainAgent : public mesh::Agent {
 public:
  PlainAgent(const std::string& id, int j) : Agent(spec_for(id, j)) {}
};

std::unique_ptr<mesh::Agent> make_agent(const Options& o, const std::string& id, int j) {
  if (o.plain_agents) return std::make_unique<PlainAgent>(id, j);
  return std::make_unique<CardAgent>(id, j);
}

// ---------------------------------------------------------------- cluster

std::string node_name(int i) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "n%03d", i);
  return buf;
}

int node_index(const std::string& name) {
  int v = -1;
  if (name.size() < 2 || name[0] != 'n') return -1;
  const auto [end, ec] = std::from_chars(name.data() + 1, name.data() + name.size(), v);
  return (ec == std::errc{} && end == name.data() + name.size()) ? v : -1;
}

// What one node's directory holds, kept by a listener: cards in total and
// by the node they live on (index into the cluster), and when (steady
// clock, ns; 0: not yet) the total first reached `full`, the probe card
// arrived and left, and each node's count last fell to zero. These exact
// times are printed beside the polled ones.
struct Observer {
  Observer(int n, int full_cards, std::string probe)
      : full(full_cards), probe_id(std::move(probe)), by_node(static_cast<std::size_t>(n)),
        zero_at(static_cast<std::size_t>(n)) {}
  const int full;
  const std::string probe_id;
  std::atomic<int> total{0};
  std::vector<std::atomic<int>> by_node;
  std::vector<std::atomic<std::int64_t>> zero_at;
  std::atomic<std::int64_t> full_at{0}, probe_added_at{0}, probe_removed_at{0};

  static std::int64_t now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count();
  }

  void on_event(const mesh::DirectoryEvent& e) {
    int delta = 0;
    if (e.kind == mesh::DirectoryEventKind::AgentAdded) delta = 1;
    if (e.kind == mesh::DirectoryEventKind::AgentRemoved) delta = -1;
    if (delta == 0) return;
    const auto t = now_ns();
    if (total.fetch_add(delta) + delta == full && full_at.load() == 0) full_at.store(t);
    if (e.card.agent_id == probe_id) (delta > 0 ? probe_added_at : probe_removed_at).store(t);
    const int idx = node_index(e.node);
    if (idx >= 0 && static_cast<std::size_t>(idx) < by_node.size()) {
      const auto i = static_cast<std::size_t>(idx);
      if (by_node[i].fetch_add(delta) + delta == 0) zero_at[i].store(t);
    }
  }
};

// Milliseconds from t0 to an Observer time, for each observing node.
std::vector<std::optional<double>> exact_ms(const std::vector<std::unique_ptr<Observer>>& obs,
                                            const std::vector<int>& observers, Clock::time_point t0,
                                            const std::function<std::int64_t(const Observer&)>& at) {
  const auto base = std::chrono::duration_cast<std::chrono::nanoseconds>(t0.time_since_epoch()).count();
  std::vector<std::optional<double>> out;
  for (int i : observers) {
    const auto t = at(*obs[static_cast<std::size_t>(i)]);
    if (t == 0) {
      out.push_back(std::nullopt);
    } else {
      out.push_back(static_cast<double>(t - base) / 1e6);
    }
  }
  return out;
}

std::vector<mesh::swim::MemberInfo> members_of(mesh::Mesh& m) {
  auto* s = m.membership_for_test();
  return s ? s->members() : std::vector<mesh::swim::MemberInfo>{};
}

const mesh::swim::MemberInfo* find_member(const std::vector<mesh::swim::MemberInfo>& ms, const std::string& name) {
  for (const auto& m : ms) {
    if (m.member.name == name) return &m;
  }
  return nullptr;
}

// Sums over the nodes in `alive` (the killed node's SWIM is not asked).
struct Counters {
  double fetches = 0, applied = 0, failures = 0, tag_updates = 0;
  double registry_requests = 0, registry_bytes = 0;  // bytes: requests served x the server's registry size
  double swim_bytes = 0, swim_packets = 0;

  Counters operator-(const Counters& b) const {
    return {fetches - b.fetches,         applied - b.applied,
            failures - b.failures,       tag_updates - b.tag_updates,
            registry_requests - b.registry_requests, registry_bytes - b.registry_bytes,
            swim_bytes - b.swim_bytes,   swim_packets - b.swim_packets};
  }
  json to_json() const {
    return {{"registry_fetches", fetches},         {"registry_applied", applied},
            {"registry_failures", failures},       {"tag_updates", tag_updates},
            {"registry_requests_served", registry_requests}, {"registry_bytes_approx", registry_bytes},
            {"swim_bytes_sent", swim_bytes},       {"swim_packets_sent", swim_packets}};
  }
};

Counters snapshot(std::vector<std::unique_ptr<mesh::Mesh>>& meshes, const std::vector<bool>& alive) {
  Counters c;
  for (std::size_t i = 0; i < meshes.size(); ++i) {
    auto& m = *meshes[i];
    const auto s = m.stats();
    c.fetches += static_cast<double>(s.registry_fetches);
    c.applied += static_cast<double>(s.registry_applied);
    c.failures += static_cast<double>(s.registry_failures);
    c.tag_updates += static_cast<double>(s.tag_updates);
    if (auto* t = m.transport_for_test()) {
      // Nothing but registry fetches sends requests in this bench.
      const auto served = static_cast<double>(t->stats().received[static_cast<int>(mesh::transport::MessageType::Request)]);
      const auto size = static_cast<double>(mesh::encode_registry(m.directory().local_registry()).size());
      c.registry_requests += served;
      c.registry_bytes += served * size;
    }
    if (alive[i]) {
      if (auto* sw = m.membership_for_test()) {
        const auto ns = sw->node_stats();
        c.swim_bytes += static_cast<double>(ns.bytes_sent);
        c.swim_packets += static_cast<double>(ns.packets_sent);
      }
    }
  }
  return c;
}

// One measured phase: per observing node, the time of the first check that
// saw each condition hold.
struct Phase {
  std::vector<std::optional<double>> swim_ms;
  std::vector<std::optional<double>> dir_ms;
  bool complete = false;
  double rounds = 0;
  double round_ms_sum = 0;
};

using SwimPred = std::function<bool(int observer, const std::vector<mesh::swim::MemberInfo>&)>;
using DirPred = std::function<bool(int observer)>;

Phase poll_phase(const Options& o, std::vector<std::unique_ptr<mesh::Mesh>>& meshes,
                 const std::vector<int>& observers, Clock::time_point t0, const SwimPred& swim_done,
                 const DirPred& dir_done) {
  Phase ph;
  const auto n = observers.size();
  ph.swim_ms.assign(n, std::nullopt);
  ph.dir_ms.assign(n, std::nullopt);
  const auto deadline = t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.deadline_s));
  while (true) {
    const auto round_start = Clock::now();
    bool all = true;
    for (std::size_t k = 0; k < n; ++k) {
      const int i = observers[k];
      if (swim_done && !ph.swim_ms[k]) {
        if (swim_done(i, members_of(*meshes[static_cast<std::size_t>(i)]))) {
          ph.swim_ms[k] = ms_since(t0, Clock::now());
        } else {
          all = false;
        }
      }
      if (dir_done && !ph.dir_ms[k]) {
        if (dir_done(i)) {
          ph.dir_ms[k] = ms_since(t0, Clock::now());
        } else {
          all = false;
        }
      }
    }
    const auto round_end = Clock::now();
    ph.rounds += 1;
    ph.round_ms_sum += ms_since(round_start, round_end);
    if (all) {
      ph.complete = true;
      return ph;
    }
    if (round_end > deadline) return ph;
    std::this_thread::sleep_until(round_start + std::chrono::milliseconds(o.poll_ms));
  }
}

struct RoundOut {
  json figures = json::object();  // flat: key -> number or null
  json detail = json::object();
  std::vector<std::string> notes;
  bool failed = false;
};

json per_node(const std::vector<std::optional<double>>& ms) {
  json a = json::array();
  for (const auto& x : ms) a.push_back(x ? json(std::round(*x * 10) / 10) : json(nullptr));
  return a;
}

// p50, p90 and max over the observing nodes; each node's figure in detail.
void put_phase(RoundOut& out, const std::string& swim_key, const std::string& dir_key, const Phase& ph) {
  out.figures[swim_key + "_p50_ms"] = opt(percentile(ph.swim_ms, 50));
  out.figures[swim_key + "_p90_ms"] = opt(percentile(ph.swim_ms, 90));
  out.figures[swim_key + "_max_ms"] = opt(percentile(ph.swim_ms, 100));
  out.detail["per_node_ms"][swim_key] = per_node(ph.swim_ms);
  if (!dir_key.empty()) {
    out.figures[dir_key + "_p50_ms"] = opt(percentile(ph.dir_ms, 50));
    out.figures[dir_key + "_p90_ms"] = opt(percentile(ph.dir_ms, 90));
    out.figures[dir_key + "_max_ms"] = opt(percentile(ph.dir_ms, 100));
    out.detail["per_node_ms"][dir_key] = per_node(ph.dir_ms);
  }
}

void put_exact(RoundOut& out, const std::string& key, const std::vector<std::optional<double>>& ms) {
  out.figures[key + "_exact_p50_ms"] = opt(percentile(ms, 50));
  out.figures[key + "_exact_max_ms"] = opt(percentile(ms, 100));
}

std::string fmt(const json& v, int prec = 0) {
  if (!v.is_number()) return "-";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", prec, v.get<double>());
  return buf;
}

std::unique_ptr<mesh::Mesh> make_node(const Options& o, int i, std::uint64_t round_seed,
                                      std::vector<std::string> seeds, Observer* obs) {
  mesh::NodeConfig cfg;
  cfg.node_name = node_name(i);
  cfg.p2p_enabled = true;
  cfg.swim_host = "127.0.0.1";
  cfg.swim_port = 0;
  cfg.zmq_port = 0;
  cfg.seeds = std::move(seeds);
  cfg.profile = o.profile;
  cfg.log_level = mesh::LogLevel::Warn;  // N nodes' joins at info would bury the figures
  mesh::MeshOptions mo;
  mo.seed = splitmix(round_seed ^ static_cast<std::uint64_t>(i + 1)) | 1;
  auto mp = std::make_unique<mesh::Mesh>(std::move(cfg), mo);
  // Subscribed before the agents are added: the count includes local cards.
  mp->directory().subscribe([obs](const mesh::DirectoryEvent& e) { obs->on_event(e); });
  for (int j = 0; j < o.agents; ++j) {
    mp->add(make_agent(o, node_name(i) + "-a" + std::to_string(j), j));
  }
  return mp;
}

// One round: a fresh cluster, every phase, a clean shutdown.
RoundOut run_round(const Options& o, int round) {
  RoundOut out;
  const int n = o.nodes;
  const int m = o.agents;
  const std::uint64_t round_seed = splitmix(o.seed + static_cast<std::uint64_t>(round));
  std::mt19937_64 rng(round_seed);
  // C changes its agents; K is killed. Neither is node 0 (everyone's seed).
  const int c = 1 + static_cast<int>(rng() % static_cast<std::uint64_t>(n - 1));
  int k = 1 + static_cast<int>(rng() % static_cast<std::uint64_t>(n - 1));
  if (n > 2 && k == c) k = 1 + (k % (n - 1));
  const auto cs = static_cast<std::size_t>(c), ks = static_cast<std::size_t>(k);
  const std::string probe_id = node_name(c) + "-extra";
  out.detail["changed_node"] = node_name(c);
  out.detail["killed_node"] = node_name(k);
  out.detail["round_seed"] = round_seed;
  const double cpu_round0 = process_cpu_s();
  auto& f = out.figures;

  // Observers outlive the Meshes (declared first, destroyed last): the
  // listeners point at them.
  std::vector<std::unique_ptr<Observer>> observers;
  std::vector<std::unique_ptr<mesh::Mesh>> meshes;
  std::vector<bool> alive(static_cast<std::size_t>(n), true);
  std::vector<int> others_c, others_k, everyone;
  for (int i = 0; i < n; ++i) {
    everyone.push_back(i);
    if (i != c) others_c.push_back(i);
    if (i != k) others_k.push_back(i);
  }
  double poll_rounds = 0, poll_ms_sum = 0;
  auto account = [&](const Phase& ph) {
    poll_rounds += ph.rounds;
    poll_ms_sum += ph.round_ms_sum;
  };
  auto timed_out = [&](const std::string& phase) {
    out.failed = true;
    out.notes.push_back(phase + ": not complete within " + fmt(json(o.deadline_s)) + " s; later phases skipped");
  };

  try {
    for (int i = 0; i < n; ++i) observers.push_back(std::make_unique<Observer>(n, n * m, probe_id));
    // Node 0 starts alone first (not measured); the others are built with
    // its address as their seed.
    meshes.push_back(make_node(o, 0, round_seed, {}, observers[0].get()));
    meshes[0]->start();
    const std::string seed_addr = "127.0.0.1:" + std::to_string(meshes[0]->swim_port());
    for (int i = 1; i < n; ++i) {
      meshes.push_back(make_node(o, i, round_seed, {seed_addr}, observers[static_cast<std::size_t>(i)].get()));
    }

    // ---- converge: nodes 1.. start; until all N alive / all N x M cards
    const auto t0 = Clock::now();
    for (int i = 1; i < n; ++i) meshes[static_cast<std::size_t>(i)]->start();
    f["start_span_ms"] = ms_since(t0, Clock::now());
    const int want_cards = n * m;
    auto conv = poll_phase(
        o, meshes, everyone, t0,
        [&](int i, const std::vector<mesh::swim::MemberInfo>& ms) {
          int alive_others = 0;
          for (const auto& mi : ms) {
            if (mi.member.name != node_name(i) && mi.member.state == mesh::swim::MemberState::Alive) ++alive_others;
          }
          return alive_others == n - 1;
        },
        [&](int i) { return observers[static_cast<std::size_t>(i)]->total.load() == want_cards; });
    account(conv);
    put_phase(out, "member", "directory", conv);
    put_exact(out, "directory", exact_ms(observers, everyone, t0, [](const Observer& ob) { return ob.full_at.load(); }));
    f["converge_ratio_max"] = opt(ratio(percentile(conv.dir_ms, 100), percentile(conv.swim_ms, 100)));
    f["converge_ratio_p50"] = opt(ratio(percentile(conv.dir_ms, 50), percentile(conv.swim_ms, 50)));
    const Counters zero;
    const Counters after_conv = snapshot(meshes, alive);
    out.detail["converge_counters"] = (after_conv - zero).to_json();
    f["converge_registry_fetches"] = after_conv.fetches;
    f["converge_registry_bytes"] = after_conv.registry_bytes;
    f["converge_swim_bytes"] = after_conv.swim_bytes;
    if (!conv.complete) {
      timed_out("converge");
      throw std::runtime_error("converge timed out");
    }

    // ---- idle: the whole process, nobody polling
    if (o.idle_s > 0) {
      const double cpu0 = process_cpu_s();
      const auto w0 = Clock::now();
      std::this_thread::sleep_for(std::chrono::duration<double>(o.idle_s));
      const double wall = std::chrono::duration<double>(Clock::now() - w0).count();
      const double pct = 100.0 * (process_cpu_s() - cpu0) / wall;
      f["idle_cpu_pct"] = pct;
      f["idle_cpu_pct_per_node"] = pct / n;
    }
    f["threads"] = static_cast<double>(proc_status("Threads"));
    f["rss_mb"] = static_cast<double>(proc_status("VmRSS")) / 1024.0;

    // ---- tag: a plain SWIM tag update on C (no directory work)
    {
      auto* sw = meshes[cs]->membership_for_test();
      auto tags = sw->self().tags;
      const std::string value = "r" + std::to_string(round);
      tags["bench"] = value;
      const auto t = Clock::now();
      sw->set_tags(tags);
      auto ph = poll_phase(
          o, meshes, others_c, t,
          [&](int, const std::vector<mesh::swim::MemberInfo>& ms) {
            const auto* mi = find_member(ms, node_name(c));
            if (!mi) return false;
            const auto it = mi->tags.find("bench");
            return it != mi->tags.end() && it->second == value;
          },
          nullptr);
      account(ph);
      put_phase(out, "tag", "", ph);
      if (!ph.complete) {
        timed_out("tag");
        throw std::runtime_error("tag timed out");
      }
    }

    // ---- add / remove on C: the "rv" tag (SWIM) / the card (directory)
    auto change = [&](const std::string& name, bool add) {
      const Counters before = snapshot(meshes, alive);
      const auto t = Clock::now();
      if (add) {
        meshes[cs]->add(make_agent(o, probe_id, m));
      } else {
        meshes[cs]->remove(probe_id);
      }
      const std::uint64_t v = meshes[cs]->directory().local_version();
      auto ph = poll_phase(
          o, meshes, others_c, t,
          [&](int, const std::vector<mesh::swim::MemberInfo>& ms) {
            const auto* mi = find_member(ms, node_name(c));
            if (!mi) return false;
            const auto it = mi->tags.find("rv");
            if (it == mi->tags.end()) return false;
            const auto rv = parse_u64(it->second);
            return rv && *rv >= v;
          },
          [&](int i) { return meshes[static_cast<std::size_t>(i)]->directory().find(probe_id).has_value() == add; });
      account(ph);
      put_phase(out, name + "_rv", name + "_dir", ph);
      put_exact(out, name + "_dir", exact_ms(observers, others_c, t, [add](const Observer& ob) {
                  return add ? ob.probe_added_at.load() : ob.probe_removed_at.load();
                }));
      f[name + "_ratio_rv_p50"] = opt(ratio(percentile(ph.dir_ms, 50), percentile(ph.swim_ms, 50)));
      f[name + "_ratio_rv_max"] = opt(ratio(percentile(ph.dir_ms, 100), percentile(ph.swim_ms, 100)));
      f[name + "_ratio_tag_p50"] = opt(ratio(percentile(ph.dir_ms, 50), num(f["tag_p50_ms"])));
      f[name + "_ratio_tag_max"] = opt(ratio(percentile(ph.dir_ms, 100), num(f["tag_max_ms"])));
      const Counters d = snapshot(meshes, alive) - before;
      out.detail[name + "_counters"] = d.to_json();
      f[name + "_registry_fetches"] = d.fetches;
      f[name + "_registry_bytes"] = d.registry_bytes;
      if (!ph.complete) {
        timed_out(name);
        throw std::runtime_error(name + " timed out");
      }
    };
    change("add", true);
    change("remove", false);

    // ---- fail: K's SWIM dies crash-like; until dead (SWIM) / K's cards gone
    {
      const Counters before = snapshot(meshes, alive);
      const auto t = Clock::now();
      meshes[ks]->kill_membership_for_test();
      alive[ks] = false;
      auto ph = poll_phase(
          o, meshes, others_k, t,
          [&](int, const std::vector<mesh::swim::MemberInfo>& ms) {
            const auto* mi = find_member(ms, node_name(k));
            return !mi || mi->member.state == mesh::swim::MemberState::Dead ||
                   mi->member.state == mesh::swim::MemberState::Left;
          },
          [&](int i) { return observers[static_cast<std::size_t>(i)]->by_node[ks].load() == 0; });
      account(ph);
      put_phase(out, "fail_dead", "fail_dir", ph);
      put_exact(out, "fail_dir", exact_ms(observers, others_k, t, [ks](const Observer& ob) { return ob.zero_at[ks].load(); }));
      f["fail_ratio_p50"] = opt(ratio(percentile(ph.dir_ms, 50), percentile(ph.swim_ms, 50)));
      f["fail_ratio_max"] = opt(ratio(percentile(ph.dir_ms, 100), percentile(ph.swim_ms, 100)));
      const Counters d = snapshot(meshes, alive) - before;
      out.detail["fail_counters"] = d.to_json();
      f["fail_registry_fetches"] = d.fetches;
      if (!ph.complete) timed_out("fail");
    }
  } catch (const std::exception& e) {
    if (!out.failed) {
      out.failed = true;
      out.notes.push_back(std::string("round aborted: ") + e.what());
    }
  }

  // ---- shutdown: no graceful leaves (50 of them would take seconds and
  // are not measured); every stop() at once.
  {
    const auto t = Clock::now();
    for (auto& mp : meshes) mp->kill_membership_for_test();
    {
      std::vector<std::jthread> stoppers;
      for (auto& mp : meshes) stoppers.emplace_back([p = mp.get()] { p->stop(); });
    }
    meshes.clear();
    f["teardown_ms"] = ms_since(t, Clock::now());
  }
  f["mean_poll_round_ms"] = poll_rounds > 0 ? json(poll_ms_sum / poll_rounds) : json(nullptr);
  f["round_cpu_s"] = process_cpu_s() - cpu_round0;
  return out;
}

// The table: one line per phase, medians over rounds.
void print_table(std::FILE* to, const Options& o, const json& med, int rounds, int failed) {
  auto g = [&](const std::string& key) { return med.contains(key) ? med[key] : json(nullptr); };
  std::fprintf(to, "\ndirectory_convergence: %d nodes x %d agents (%d cards), profile %s, %s agents, seed %llu\n",
               o.nodes, o.agents, o.nodes * o.agents, std::string(mesh::swim::to_string(o.profile)).c_str(),
               o.plain_agents ? "plain" : "custom", static_cast<unsigned long long>(o.seed));
  std::fprintf(to,
               "%d round(s), %d failed; medians over rounds of each figure; times in ms, p50 and max over the "
               "observing nodes; baseline and directory polled every %d ms (upper bounds by one poll round), "
               "\"exact\": the directory listener's own time\n\n",
               rounds, failed, o.poll_ms);
  std::fprintf(to,
               "| phase | baseline (SWIM) p50 | p90 | max | directory p50 | p90 | max | dir/base p50 | max "
               "| directory exact p50 | max |\n");
  std::fprintf(to, "|---|---|---|---|---|---|---|---|---|---|---|\n");
  auto row = [&](const char* label, const std::string& b, const std::string& d, const std::string& r) {
    auto cell = [&](const std::string& key, int prec = 0) { return key.empty() ? std::string() : fmt(g(key), prec); };
    const std::string none;
    std::fprintf(to, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", label, cell(b + "_p50_ms").c_str(),
                 cell(b + "_p90_ms").c_str(), cell(b + "_max_ms").c_str(),
                 (d.empty() ? none : cell(d + "_p50_ms")).c_str(), (d.empty() ? none : cell(d + "_p90_ms")).c_str(),
                 (d.empty() ? none : cell(d + "_max_ms")).c_str(), (r.empty() ? none : cell(r + "_p50", 2)).c_str(),
                 (r.empty() ? none : cell(r + "_max", 2)).c_str(),
                 (d.empty() ? none : cell(d + "_exact_p50_ms")).c_str(),
                 (d.empty() ? none : cell(d + "_exact_max_ms")).c_str());
  };
  row("start -> all N alive / all N x M cards", "member", "directory", "converge_ratio");
  row("plain SWIM tag update (no directory)", "tag", "", "");
  row("agent added: \"rv\" tag / card", "add_rv", "add_dir", "add_ratio_rv");
  row("agent removed: \"rv\" tag / card gone", "remove_rv", "remove_dir", "remove_ratio_rv");
  row("node killed: dead / its cards gone", "fail_dead", "fail_dir", "fail_ratio");
  std::fprintf(to, "\nagent added, card vs plain tag update: p50 %s, max %s; removed: p50 %s, max %s\n",
               fmt(g("add_ratio_tag_p50"), 2).c_str(), fmt(g("add_ratio_tag_max"), 2).c_str(),
               fmt(g("remove_ratio_tag_p50"), 2).c_str(), fmt(g("remove_ratio_tag_max"), 2).c_str());
  std::fprintf(to, "registry fetches (all nodes): converge %s (%s bytes served, SWIM sent %s bytes), add %s, remove %s, fail %s\n",
               fmt(g("converge_registry_fetches")).c_str(), fmt(g("converge_registry_bytes")).c_str(),
               fmt(g("converge_swim_bytes")).c_str(), fmt(g("add_registry_fetches")).c_str(),
               fmt(g("remove_registry_fetches")).c_str(), fmt(g("fail_registry_fetches")).c_str());
  std::fprintf(to, "start span %s ms; idle process CPU %s %% of a core (%s per node); %s threads; RSS %s MB\n",
               fmt(g("start_span_ms")).c_str(), fmt(g("idle_cpu_pct"), 1).c_str(),
               fmt(g("idle_cpu_pct_per_node"), 2).c_str(), fmt(g("threads")).c_str(), fmt(g("rss_mb")).c_str());
  std::fprintf(to, "mean poll round %s ms; teardown %s ms; CPU per round %s s\n",
               fmt(g("mean_poll_round_ms"), 1).c_str(), fmt(g("teardown_ms")).c_str(),
               fmt(g("round_cpu_s"), 1).c_str());
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  try {
    if (auto done = parse_options(argc, argv, o)) return *done;
  } catch (const mesh::UsageError& e) {
    std::fprintf(stderr, "directory_convergence: %s\n", e.what());
    return 2;
  }
  raise_fd_limit();
  std::FILE* table = o.json_out ? stderr : stdout;
  std::fprintf(stderr, "directory_convergence: %d nodes x %d agents, profile %s, seed %llu (--seed %llu replays)\n",
               o.nodes, o.agents, std::string(mesh::swim::to_string(o.profile)).c_str(),
               static_cast<unsigned long long>(o.seed), static_cast<unsigned long long>(o.seed));

  std::vector<RoundOut> rounds;
  int failed = 0;
  for (int r = 0; r < o.rounds; ++r) {
    const auto t = Clock::now();
    RoundOut out;
    try {
      out = run_round(o, r);
    } catch (const std::exception& e) {
      out.failed = true;
      out.notes.push_back(std::string("round failed: ") + e.what());
    }
    if (out.failed) ++failed;
    const auto& f = out.figures;
    auto g = [&](const char* key) { return f.contains(key) ? f[key] : json(nullptr); };
    std::fprintf(stderr,
                 "[round %d] converge member %s/%s dir %s/%s ms; tag %s/%s; add rv %s/%s dir %s/%s; "
                 "remove rv %s/%s dir %s/%s; fail dead %s/%s dir %s/%s (p50/max); fetches %s; idle cpu %s %%; "
                 "%.1f s%s\n",
                 r + 1, fmt(g("member_p50_ms")).c_str(), fmt(g("member_max_ms")).c_str(),
                 fmt(g("directory_p50_ms")).c_str(), fmt(g("directory_max_ms")).c_str(), fmt(g("tag_p50_ms")).c_str(),
                 fmt(g("tag_max_ms")).c_str(), fmt(g("add_rv_p50_ms")).c_str(), fmt(g("add_rv_max_ms")).c_str(),
                 fmt(g("add_dir_p50_ms")).c_str(), fmt(g("add_dir_max_ms")).c_str(), fmt(g("remove_rv_p50_ms")).c_str(),
                 fmt(g("remove_rv_max_ms")).c_str(), fmt(g("remove_dir_p50_ms")).c_str(),
                 fmt(g("remove_dir_max_ms")).c_str(), fmt(g("fail_dead_p50_ms")).c_str(),
                 fmt(g("fail_dead_max_ms")).c_str(), fmt(g("fail_dir_p50_ms")).c_str(),
                 fmt(g("fail_dir_max_ms")).c_str(), fmt(g("converge_registry_fetches")).c_str(),
                 fmt(g("idle_cpu_pct"), 1).c_str(), std::chrono::duration<double>(Clock::now() - t).count(),
                 out.failed ? " FAILED" : "");
    for (const auto& note : out.notes) std::fprintf(stderr, "[round %d] %s\n", r + 1, note.c_str());
    rounds.push_back(std::move(out));
  }

  // Medians over rounds, per figure (rounds where it is missing left out).
  json med = json::object();
  std::vector<std::string> keys;
  for (const auto& r : rounds) {
    for (auto it = r.figures.begin(); it != r.figures.end(); ++it) {
      if (std::find(keys.begin(), keys.end(), it.key()) == keys.end()) keys.push_back(it.key());
    }
  }
  for (const auto& key : keys) {
    std::vector<double> v;
    for (const auto& r : rounds) {
      if (r.figures.contains(key) && r.figures[key].is_number()) v.push_back(r.figures[key].get<double>());
    }
    if (v.empty()) {
      med[key] = nullptr;
      continue;
    }
    std::sort(v.begin(), v.end());
    med[key] = v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
  }

  print_table(table, o, med, o.rounds, failed);
  if (o.json_out) {
    json doc = med;
    doc["nodes"] = o.nodes;
    doc["agents"] = o.agents;
    doc["profile"] = std::string(mesh::swim::to_string(o.profile));
    doc["agent_kind"] = o.plain_agents ? "plain" : "custom";
    doc["seed"] = o.seed;
    doc["failed_rounds"] = failed;
    doc["method"] = {
        {"process", "all nodes in this process, 127.0.0.1, kernel-chosen ports; node 0 starts first, the rest join through it"},
        {"poll", "every poll_ms, each observing node not done: Membership::members() and the directory (find() or a listener's card count)"},
        {"figure", "per observing node, time of the first check that saw the condition; p50 and max over observing nodes"},
        {"converge", "first start() of nodes 1..N-1 -> all N-1 others alive in SWIM / all N x M cards in the directory"},
        {"tag", "Membership::set_tags on node C with one extra tag -> every other node's SWIM shows it"},
        {"add", "Mesh::add on C -> every other node's SWIM shows C's new rv (baseline) / holds the card"},
        {"remove", "Mesh::remove on C -> the same, card gone"},
        {"fail", "kill_membership_for_test on K -> every other node's SWIM lists K dead / holds none of K's cards"},
        {"ratios", "directory / baseline, of the p50s and of the maxima; *_ratio_tag_*: card / plain tag update"},
        {"registry_bytes", "registry requests served x the server's encoded registry size at the end of the phase"},
        {"poll_ms", o.poll_ms},
        {"deadline_s", o.deadline_s},
        {"idle_s", o.idle_s}};
    json rs = json::array();
    for (const auto& r : rounds) {
      json x = r.figures;
      x["detail"] = r.detail;
      x["notes"] = r.notes;
      x["failed"] = r.failed;
      rs.push_back(std::move(x));
    }
    doc["rounds"] = std::move(rs);
    std::cout << doc.dump(2) << std::endl;
  }
  return failed ? 1 : 0;
}
