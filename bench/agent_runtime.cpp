// agent_runtime: our agent runtime measured beside CAF 0.17 (the C++ Actor
// Framework) doing the same work on the same machine in the same run.
//
//   1. spawn + idle: N agents (ours: mesh::CustomAgents in a Mesh with P2P
//      off; CAF: event-based actors) are started, and timed until every one
//      has run its start-up code. Then, with all N sitting idle: RSS growth
//      per agent, the process's thread count, its CPU time over --idle-s
//      seconds as % of one core, and its wake-ups in that window (the sum of
//      voluntary_ctxt_switches over /proc/self/task/*/status);
//   2. ping-pong: two agents bounce a counter back and forth (ours: each
//      CustomAgent's on_peer_notify notifies the other; CAF: each actor
//      sends to the other), msgs/s;
//   3. ring: a counter passed around a ring of --ring-size agents, msgs/s;
//   4. remote request/response, two processes on 127.0.0.1: a Mesh with P2P
//      on (SWIM + ZeroMQ) in each, the server hosting an echo CustomAgent,
//      ~256-byte JSON documents sent one at a time by the client's
//      node_client() (blocking, "ours") and by an agent of the client node
//      with co_await peers().request_detailed(...) ("agent", timed by the
//      agent itself); beside them a raw DEALER->ROUTER echo (cppzmq) and
//      the pyzmq + json floor (bench/pyzmq_echo.py), as in transport_vs_zmq.
//
// Rows 1-3 run each side in a child process of its own (this binary
// re-executed with --child MODE, printing one JSON line), so that one
// side's memory, threads and wake-ups never count against the other. CAF's
// scheduler gets --workers threads (default: the hardware threads), and so
// does our Mesh's executor (NodeConfig::worker_threads).
// Within a round the order of ours and CAF alternates from round to round.
// Row 4's servers are this binary with --serve MODE; raw and ours are
// measured in alternating slices (echo_bench.hpp), the pyzmq floor after.
//
// Figures are medians over rounds; each ratio is the median over rounds of
// that round's ours / CAF (or ours / raw, ours / pyzmq). Targets are
// reported (targets, targets_met), never asserted.
//
//   agent_runtime [--rounds 3] [--agents 10000] [--idle-s 10] [--workers N]
//                 [--pingpong 1000000] [--ring-size 1000] [--ring-hops 1000000]
//                 [--count 20000] [--max-seconds 3] [--json] [--quick]
//
// Exit codes: 0 after the run; 1 when a measurement fails (a child exits
// non-zero or times out, a request fails, a token is lost); 2 on bad flags.
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <caf/all.hpp>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>
#include <zmq.hpp>

#include "echo_bench.hpp"
#include "mesh/cli.hpp"
#include "mesh/mesh.hpp"
#include "process.hpp"

#if CAF_VERSION < 1700 || CAF_VERSION >= 1800
#error "bench/agent_runtime is written against CAF 0.17"
#endif

#ifndef MESH_PYZMQ_ECHO_SCRIPT
#define MESH_PYZMQ_ECHO_SCRIPT "pyzmq_echo.py"
#endif

namespace {

using namespace mesh::bench;
using json = nlohmann::json;

struct Options {
  int rounds = 3;
  std::size_t agents = 10000;
  double idle_s = 10;
  std::size_t workers = 0;  // 0: std::thread::hardware_concurrency()
  std::int64_t pingpong = 1000000;  // hops per ping-pong run
  std::size_t ring_size = 1000;
  std::int64_t ring_hops = 1000000;
  std::size_t count = 20000;  // remote round trips per system
  double max_seconds = 3;     // per throughput run; per system in the remote row
  std::size_t slices = 50;
  std::size_t warmup = 2000;
  bool json_out = false;
  bool quick = false;
  std::string python = "/usr/bin/python3";
  std::string pyzmq_script = MESH_PYZMQ_ECHO_SCRIPT;
  std::string self_exe;

  LatencyPlan plan() const { return {count, warmup, max_seconds, slices}; }
};

// ================================================================ process figures
// A number field of /proc/self/status ("VmRSS" in kB, "Threads"), or -1.
long proc_status(const std::string& key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key + ":", 0) == 0) return std::stol(line.substr(key.size() + 1));
  }
  return -1;
}

double process_cpu_s() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

// How often this process's threads have gone to sleep of their own accord,
// summed over the threads alive now.
std::uint64_t voluntary_switches() {
  std::uint64_t sum = 0;
  std::error_code ec;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task", ec)) {
    std::ifstream in(task.path() / "status");
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind("voluntary_ctxt_switches:", 0) == 0) {
        sum += std::stoull(line.substr(24));
        break;
      }
    }
  }
  return sum;
}

// What the spawn + idle row measures on one side.
struct Population {
  double spawn_ms = 0;
  long rss_before_kb = 0;
  long rss_after_kb = 0;
  long threads = 0;
  double idle_cpu_pct = 0;
  std::uint64_t wakeups = 0;
};

json to_json(const Population& p, std::size_t n) {
  return {{"spawn_ms", p.spawn_ms},
          {"rss_before_kb", p.rss_before_kb},
          {"rss_after_kb", p.rss_after_kb},
          {"bytes_per_agent",
           static_cast<double>(p.rss_after_kb - p.rss_before_kb) * 1024.0 / static_cast<double>(n)},
          {"threads", p.threads},
          {"idle_cpu_pct", p.idle_cpu_pct},
          {"wakeups", p.wakeups}};
}

// Starts n agents with `spawn_all`, which returns once it has asked for all
// of them; `up` counts those whose start-up code ran. Then the idle window.
template <class SpawnAll>
Population measure_population(std::size_t n, double idle_s, std::atomic<std::size_t>& up,
                              SpawnAll&& spawn_all) {
  Population p;
  std::this_thread::sleep_for(200ms);  // the runtime's own threads settle
  p.rss_before_kb = proc_status("VmRSS");
  const auto t0 = Clock::now();
  spawn_all();
  const auto deadline = t0 + 300s;
  while (up.load() < n) {
    if (Clock::now() > deadline)
      throw std::runtime_error(std::to_string(up.load()) + " of " + std::to_string(n) +
                               " agents came up in 300 s");
    std::this_thread::sleep_for(100us);
  }
  p.spawn_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  std::this_thread::sleep_for(500ms);
  p.rss_after_kb = proc_status("VmRSS");
  p.threads = proc_status("Threads");
  // The window: this thread sleeps throughout; the wake-up sums are read
  // outside the CPU figures.
  const auto w0 = voluntary_switches();
  const double cpu0 = process_cpu_s();
  const auto wall0 = Clock::now();
  std::this_thread::sleep_for(std::chrono::duration<double>(idle_s));
  const double cpu1 = process_cpu_s();
  const double wall = std::chrono::duration<double>(Clock::now() - wall0).count();
  const auto w1 = voluntary_switches();
  p.idle_cpu_pct = 100.0 * (cpu1 - cpu0) / wall;
  p.wakeups = w1 - w0;
  return p;
}

// ================================================================ token runs
// A counter passed from agent to agent: each hop's receiver passes n + 1 to
// the next one, until n reaches `target` or the run is told to stop. The
// rate is timed from hop `warmup` to the last hop. Shared by both sides.
class TokenRun {
 public:
  TokenRun(std::int64_t target, std::int64_t warmup) : target_(target), warmup_(warmup) {}

  // Called by the receiver of hop n; false: do not pass it on.
  bool on_hop(std::int64_t n) {
    if (n == warmup_) warm_ns_.store(now_ns());
    if (n >= target_ || stop_.load(std::memory_order_relaxed)) {
      finish(n, {});
      return false;
    }
    return true;
  }

  void finish(std::int64_t n, std::string error) {
    const auto t = now_ns();
    std::lock_guard lock(mu_);
    if (done_) return;
    done_ = true;
    end_hops_ = n;
    end_ns_ = t;
    error_ = std::move(error);
    cv_.notify_all();
  }

  // After the first hop was sent: waits up to max_seconds, then stops the
  // run; {hops, msgs/s} of the measured part.
  json wait(double max_seconds) {
    std::unique_lock lock(mu_);
    if (!cv_.wait_for(lock, std::chrono::duration<double>(max_seconds), [&] { return done_; })) {
      stop_.store(true);
      if (!cv_.wait_for(lock, 10s, [&] { return done_; }))
        throw std::runtime_error("the token was lost (no hop for 10 s after the stop)");
    }
    if (!error_.empty()) throw std::runtime_error(error_);
    const auto warm = warm_ns_.load();
    if (warm == 0 || end_hops_ <= warmup_)
      throw std::runtime_error("the run stopped before its warm-up ended");
    const double seconds = static_cast<double>(end_ns_ - warm) / 1e9;
    const auto hops = end_hops_ - warmup_;
    return {{"hops", hops}, {"seconds", seconds}, {"msgs_per_s", static_cast<double>(hops) / seconds}};
  }

 private:
  const std::int64_t target_;
  const std::int64_t warmup_;
  std::atomic<bool> stop_{false};
  std::atomic<std::int64_t> warm_ns_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::int64_t end_hops_ = 0;
  std::int64_t end_ns_ = 0;
  std::string error_;
};

std::int64_t warmup_hops(std::int64_t target) { return std::clamp<std::int64_t>(target / 10, 1, 1000); }

void wait_up(const std::atomic<std::size_t>& up, std::size_t n) {
  const auto deadline = Clock::now() + 300s;
  while (up.load() < n) {
    if (Clock::now() > deadline) throw std::runtime_error("agents did not come up in 300 s");
    std::this_thread::sleep_for(1ms);
  }
}

// ================================================================ ours
// Where the "ours" rows build their node: one Mesh, P2P off (agents of this
// process talk in memory).
// --workers, for our executor as for CAF's scheduler (set in main).
std::size_t g_workers = 0;

mesh::NodeConfig local_config() {
  mesh::NodeConfig c;
  c.node_name = "bench";
  c.p2p_enabled = false;
  c.worker_threads = g_workers;
  c.log_level = mesh::LogLevel::Error;
  // The token is one conversation a million turns long: its thread gets no
  // turn limit or time-to-live (threads are still stamped and checked).
  c.thread_max_turns = 0;
  c.thread_ttl = std::chrono::milliseconds(0);
  return c;
}

// An agent that does nothing but count itself up.
class IdleAgent : public mesh::CustomAgent {
 public:
  IdleAgent(std::string id, std::atomic<std::size_t>& up)
      : CustomAgent({.role = "idle", .agent_id = std::move(id)}), up_(up) {}

 protected:
  void setup() override { up_.fetch_add(1); }

 private:
  std::atomic<std::size_t>& up_;
};

// Passes each notify's counter on to `next`.
class RelayAgent : public mesh::CustomAgent {
 public:
  RelayAgent(std::string id, std::string next, TokenRun& run, std::atomic<std::size_t>& up)
      : CustomAgent({.role = "relay", .agent_id = std::move(id)}),
        next_(std::move(next)),
        run_(run),
        up_(up) {}

 protected:
  void setup() override { up_.fetch_add(1); }
  void on_peer_notify(const mesh::IncomingMessage& m) override {
    const auto n = m.data.get<std::int64_t>();
    if (!run_.on_hop(n)) return;
    if (!peers().notify(next_, mesh::Json(n + 1))) run_.finish(n, "notify to " + next_ + " refused");
  }

 private:
  const std::string next_;
  TokenRun& run_;
  std::atomic<std::size_t>& up_;
};

std::string agent_name(const char* prefix, std::size_t i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%s-%05zu", prefix, i);
  return buf;
}

// What the agents refer to is declared before the Mesh: on an early exit
// the Mesh's destructor stops them before it goes.
json population_ours(const Options& opt) {
  std::atomic<std::size_t> up{0};
  mesh::Mesh mesh(local_config());
  mesh.start();
  const auto p = measure_population(opt.agents, opt.idle_s, up, [&] {
    for (std::size_t i = 0; i < opt.agents; ++i) mesh.add<IdleAgent>(agent_name("idle", i), up);
  });
  auto out = to_json(p, opt.agents);
  out["scheduler"] = "the Mesh's executor, " + std::to_string(g_workers) + " workers, a strand per agent";
  const auto t0 = std::chrono::steady_clock::now();
  mesh.stop();  // every agent at once
  out["stop_ms"] = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  std::cout << out.dump() << std::endl;
  return out;
}

json token_ring_ours(std::size_t size, std::int64_t hops, double max_seconds) {
  TokenRun run(hops, warmup_hops(hops));
  std::atomic<std::size_t> up{0};
  mesh::Mesh mesh(local_config());
  mesh.start();
  for (std::size_t i = 0; i < size; ++i)
    mesh.add<RelayAgent>(agent_name("relay", i), agent_name("relay", (i + 1) % size), run, up);
  wait_up(up, size);
  if (!mesh.node_client().notify(agent_name("relay", 0), mesh::Json(std::int64_t{0})))
    throw std::runtime_error("the first notify was refused");
  auto out = run.wait(max_seconds);
  mesh.stop();
  return out;
}

json pingpong_ours(const Options& opt) { return token_ring_ours(2, opt.pingpong, opt.max_seconds); }
json ring_ours(const Options& opt) {
  return token_ring_ours(opt.ring_size, opt.ring_hops, opt.max_seconds);
}

// ================================================================ CAF 0.17
std::unique_ptr<caf::actor_system_config> caf_config(const Options& opt) {
  auto cfg = std::make_unique<caf::actor_system_config>();
  cfg->set("scheduler.max-threads", opt.workers);
  return cfg;
}

caf::behavior caf_idle(caf::event_based_actor*, std::atomic<std::size_t>* up) {
  up->fetch_add(1);
  return {[](std::int64_t) {}};
}

struct CafRing {
  std::vector<caf::actor>* actors = nullptr;  // filled before the first hop is sent
  TokenRun* run = nullptr;
};

caf::behavior caf_relay(caf::event_based_actor* self, CafRing* ring, std::size_t index,
                        std::atomic<std::size_t>* up) {
  up->fetch_add(1);
  return {[=](std::int64_t n) {
    if (!ring->run->on_hop(n)) return;
    const auto& actors = *ring->actors;
    self->send(actors[(index + 1) % actors.size()], n + 1);
  }};
}

// Declared after the actor_system: on every exit it tells each actor to
// quit and drops the handles, so that the system's destructor, which waits
// for every actor, returns.
struct CafActors {
  std::vector<caf::actor> v;
  CafActors() = default;
  CafActors(const CafActors&) = delete;
  CafActors& operator=(const CafActors&) = delete;
  ~CafActors() {
    for (const auto& a : v) caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
    v.clear();
  }
};

// What the actors refer to is declared before the actor_system, which
// outlives none of its actors.
json population_caf(const Options& opt) {
  std::atomic<std::size_t> up{0};
  auto cfg = caf_config(opt);
  caf::actor_system sys{*cfg};
  CafActors actors;
  actors.v.reserve(opt.agents);
  const auto p = measure_population(opt.agents, opt.idle_s, up, [&] {
    for (std::size_t i = 0; i < opt.agents; ++i) actors.v.push_back(sys.spawn(caf_idle, &up));
  });
  auto out = to_json(p, opt.agents);
  out["scheduler"] = "work stealing, " + std::to_string(sys.scheduler().num_workers()) + " workers";
  std::cout << out.dump() << std::endl;
  return out;
}

json token_ring_caf(const Options& opt, std::size_t size, std::int64_t hops) {
  TokenRun run(hops, warmup_hops(hops));
  std::atomic<std::size_t> up{0};
  CafRing ring;
  auto cfg = caf_config(opt);
  caf::actor_system sys{*cfg};
  CafActors actors;
  ring.actors = &actors.v;
  ring.run = &run;
  for (std::size_t i = 0; i < size; ++i) actors.v.push_back(sys.spawn(caf_relay, &ring, i, &up));
  wait_up(up, size);
  caf::anon_send(actors.v[0], std::int64_t{0});
  return run.wait(opt.max_seconds);
}

json pingpong_caf(const Options& opt) { return token_ring_caf(opt, 2, opt.pingpong); }
json ring_caf(const Options& opt) { return token_ring_caf(opt, opt.ring_size, opt.ring_hops); }

// A child process: one measurement of one side, one JSON line on stdout
// (the population rows print theirs before shutting down).
int run_child(const std::string& mode, const Options& opt) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() == 1) return 1;
  json out;
  if (mode == "population-ours") population_ours(opt);
  if (mode == "population-caf") population_caf(opt);
  if (mode.starts_with("population")) return 0;
  if (mode == "pingpong-ours") out = pingpong_ours(opt);
  if (mode == "pingpong-caf") out = pingpong_caf(opt);
  if (mode == "ring-ours") out = ring_ours(opt);
  if (mode == "ring-caf") out = ring_caf(opt);
  std::cout << out.dump() << std::endl;
  return 0;
}

// ================================================================ remote
// A request document shaped like a framework's envelope: ~256 bytes as
// JSON text (the same shape bench/pyzmq_echo.py sends).
mesh::Json make_document() {
  mesh::Json doc = {{"id", "0f1e2d3c4b5a69788796a5b4c3d2e1f0"},
                    {"type", "request"},
                    {"sender", {{"node", "cli"}, {"agent", "bench"}}},
                    {"target", "echo"},
                    {"created_ms", 1700000000000},
                    {"deadline_ms", 1700000005000},
                    {"context", mesh::Json::object()},
                    {"payload", ""}};
  const auto fill = 256 - static_cast<long>(doc.dump().size());
  doc["payload"] = std::string(static_cast<std::size_t>(std::max(0L, fill)), 'x');
  return doc;
}

mesh::NodeConfig remote_config(const std::string& name, std::vector<std::string> seeds) {
  mesh::NodeConfig c;
  c.worker_threads = g_workers;
  c.node_name = name;
  c.p2p_enabled = true;
  c.swim_host = "127.0.0.1";
  c.swim_port = 0;
  c.zmq_port = 0;
  c.profile = mesh::swim::Profile::Local;
  c.leave_timeout = 500ms;
  c.seeds = std::move(seeds);
  c.log_level = mesh::LogLevel::Error;
  return c;
}

class EchoAgent : public mesh::CustomAgent {
 public:
  EchoAgent() : CustomAgent({.role = "echo", .agent_id = "echo"}) {}

 protected:
  std::optional<mesh::Json> on_peer_request(const mesh::IncomingMessage& m) override {
    return m.data;
  }
};

// The server process of our remote row: announces its SWIM port.
int serve_mesh_echo(const sigset_t& stop) {
  mesh::Mesh mesh(remote_config("srv", {}));
  mesh.add<EchoAgent>();
  mesh.start();
  announce(mesh.swim_port());
  wait_stop(stop);
  mesh.stop();
  return 0;
}

int serve(const std::string& mode) {
  const sigset_t stop = block_stop_signals();
  if (mode == "raw-echo") return serve_raw_echo(stop);
  if (mode == "mesh-echo") return serve_mesh_echo(stop);
  throw std::runtime_error("unknown --serve mode " + mode);
}

// The agent-to-agent form of the remote row: an agent on the client node
// asks the server's echo agent with co_await peers().request(...) (the
// coroutine API) and times that itself; each round trip is started by a
// notify from the measuring thread, which the timing leaves out.
class AskAgent : public mesh::CustomAgent {
 public:
  explicit AskAgent(mesh::Json doc) : CustomAgent({.role = "asker", .agent_id = "asker"}), doc_(std::move(doc)) {}

  // Waits for the round trip a notify started; its time in ns, or throws.
  std::int64_t wait_result() {
    std::unique_lock lock(mu_);
    if (!cv_.wait_for(lock, 10s, [this] { return done_; })) throw std::runtime_error("the asking agent did not answer in 10 s");
    done_ = false;
    if (!error_.empty()) throw std::runtime_error(error_);
    return ns_;
  }

 protected:
  mesh::Task<void> on_notify(const mesh::IncomingMessage&) override {
    const auto t0 = Clock::now();
    const auto r = co_await peers().request_detailed("echo", doc_, 5000ms);
    const auto t1 = Clock::now();
    std::string error;
    if (!r.ok()) {
      error = "remote agent request failed: " + std::string(mesh::transport::to_string(r.error));
    } else if (r.response->data["id"] != doc_["id"]) {
      error = "remote agent request: wrong reply";
    }
    {
      std::lock_guard lock(mu_);
      ns_ = std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count();
      error_ = std::move(error);
      done_ = true;
    }
    cv_.notify_one();
  }

 private:
  const mesh::Json doc_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::int64_t ns_ = 0;
  std::string error_;
};

// The client side of our remote row: a Mesh joined to the server's.
class MeshEchoClient {
 public:
  explicit MeshEchoClient(std::uint16_t server_swim_port)
      : mesh_(remote_config("cli", {"127.0.0.1:" + std::to_string(server_swim_port)})),
        doc_(make_document()),
        asker_(mesh_.add<AskAgent>(doc_)) {
    mesh_.start();
    const auto deadline = Clock::now() + 30s;
    while (!mesh_.node_client().registry().contains("echo")) {
      check_interrupt();
      if (Clock::now() > deadline)
        throw std::runtime_error("the server's echo agent was not seen in 30 s");
      std::this_thread::sleep_for(10ms);
    }
  }
  ~MeshEchoClient() { mesh_.stop(); }
  MeshEchoClient(const MeshEchoClient&) = delete;
  MeshEchoClient& operator=(const MeshEchoClient&) = delete;

  void one() {
    const auto r = mesh_.node_client().request_detailed_blocking("echo", doc_, 5000ms);
    if (!r.ok())
      throw std::runtime_error("remote request failed: " + std::string(mesh::transport::to_string(r.error)));
    if (r.response->data["id"] != doc_["id"]) throw std::runtime_error("remote request: wrong reply");
  }

  // One round trip by the asking agent, as it timed it.
  std::int64_t agent_one() {
    if (!mesh_.node_client().notify("asker", mesh::Json::object())) throw std::runtime_error("cannot reach the asking agent");
    return asker_.wait_result();
  }

 private:
  mesh::Mesh mesh_;
  const mesh::Json doc_;
  AskAgent& asker_;
};

// Raw and ours measured in alternating slices, fresh server processes.
std::map<std::string, Rtt> remote_round(const Options& opt, const std::string& log_dir, int round) {
  const std::string text = make_document().dump();
  const std::vector<std::uint8_t> payload(text.begin(), text.end());
  auto raw_server = start_server({opt.self_exe, "--serve", "raw-echo"}, {}, log_dir, "raw-echo");
  auto mesh_server = start_server({opt.self_exe, "--serve", "mesh-echo"}, {}, log_dir, "mesh-echo");
  zmq::context_t ctx(1);
  RawEchoClient raw(ctx, tcp(raw_server->port), payload);
  MeshEchoClient ours(mesh_server->port);
  std::vector<LatencySystem> systems;
  systems.push_back({"raw", [&] { raw.one(); }});
  systems.push_back({"ours", [&] { ours.one(); }});
  systems.push_back({"agent", {}, {}, 0, [&] { return ours.agent_one(); }});
  return run_latency(opt.plan(), {&systems[0], &systems[1], &systems[2]}, round);
}

// ================================================================ parent
// A child of rows 1-3, bounded in time; its JSON line.
json child(const Options& opt, const std::string& mode, const std::string& log_dir) {
  static int started = 0;
  const std::vector<std::string> argv = {opt.self_exe,
                                         "--child", mode,
                                         "--agents", std::to_string(opt.agents),
                                         "--idle-s", std::to_string(opt.idle_s),
                                         "--workers", std::to_string(opt.workers),
                                         "--pingpong", std::to_string(opt.pingpong),
                                         "--ring-size", std::to_string(opt.ring_size),
                                         "--ring-hops", std::to_string(opt.ring_hops),
                                         "--max-seconds", std::to_string(opt.max_seconds)};
  mesh::test::Process p(argv, {}, log_dir, mode + "-" + std::to_string(++started));
  const auto deadline = Clock::now() + 600s;
  std::optional<int> code;
  while (!(code = p.wait_exit(100ms))) {
    check_interrupt();
    if (Clock::now() > deadline) throw std::runtime_error(mode + ": no result in 600 s");
  }
  const auto out = p.stdout_text();
  const auto j = json::parse(out.substr(0, out.find('\n')), nullptr, false);
  if (*code != 0 || j.is_discarded() || !j.is_object())
    throw std::runtime_error(mode + " exited " + std::to_string(*code) + ":\n" + p.log_tail());
  return j;
}

// Per-round figures, by key.
struct Series {
  std::map<std::string, std::vector<double>> v;
  void add(const std::string& key, double x) { v[key].push_back(x); }
  std::optional<double> med(const std::string& key) const {
    const auto it = v.find(key);
    return it == v.end() ? std::nullopt : median(it->second);
  }
};

void one_round(const Options& opt, const std::string& log_dir, int round, Series& s,
               std::vector<std::string>& notes) {
  const std::string tag = "[round " + std::to_string(round + 1) + "] ";
  // The side that goes first alternates from round to round.
  const bool ours_first = round % 2 == 0;
  auto pair = [&](const std::string& what) {
    json ours, caf;
    if (ours_first) ours = child(opt, what + "-ours", log_dir);
    caf = child(opt, what + "-caf", log_dir);
    if (!ours_first) ours = child(opt, what + "-ours", log_dir);
    std::cerr << tag << what << " ours " << ours.dump() << "\n"
              << tag << what << " caf  " << caf.dump() << "\n";
    return std::pair{ours, caf};
  };
  {
    const auto [ours, caf] = pair("population");
    for (const char* k : {"spawn_ms", "bytes_per_agent", "idle_cpu_pct", "threads", "wakeups"}) {
      s.add(k, ours[k].get<double>());
      s.add(std::string("caf_") + k, caf[k].get<double>());
    }
    s.add("spawn_ratio_vs_caf", ours["spawn_ms"].get<double>() / caf["spawn_ms"].get<double>());
    if (ours.contains("stop_ms")) s.add("stop_ms", ours["stop_ms"].get<double>());
  }
  for (const char* row : {"pingpong", "ring"}) {
    const std::string what = row;
    const auto [ours, caf] = pair(what);
    const double o = ours["msgs_per_s"].get<double>(), c = caf["msgs_per_s"].get<double>();
    s.add(what + "_msgs_per_s", o);
    s.add("caf_" + what + "_msgs_per_s", c);
    s.add(what + "_ratio_vs_caf", o / c);
  }
  check_interrupt();
  const auto rtt = remote_round(opt, log_dir, round);
  const Rtt& raw = rtt.at("raw");
  const Rtt& ours = rtt.at("ours");
  const Rtt& agent = rtt.at("agent");
  std::cerr << tag << "remote raw:  " << rtt_line(raw) << "\n"
            << tag << "remote ours: " << rtt_line(ours) << "\n"
            << tag << "remote agent: " << rtt_line(agent) << "\n";
  s.add("raw_p50_us", raw.p50_us);
  s.add("raw_p99_us", raw.p99_us);
  s.add("remote_request_p50_us", ours.p50_us);
  s.add("remote_request_p99_us", ours.p99_us);
  s.add("remote_request_p50_ratio_vs_raw", ours.p50_us / raw.p50_us);
  s.add("remote_request_p99_ratio_vs_raw", ours.p99_us / raw.p99_us);
  s.add("agent_request_p50_us", agent.p50_us);
  s.add("agent_request_p99_us", agent.p99_us);
  s.add("agent_request_p50_ratio_vs_raw", agent.p50_us / raw.p50_us);
  s.add("agent_request_p99_ratio_vs_raw", agent.p99_us / raw.p99_us);
  check_interrupt();
  std::string note;
  if (const auto py = python_floor(opt.python, opt.pyzmq_script, opt.plan(), note)) {
    std::cerr << tag << "remote pyzmq: " << rtt_line(*py) << "\n";
    s.add("pyzmq_p50_us", py->p50_us);
    s.add("pyzmq_p99_us", py->p99_us);
    s.add("remote_request_p50_ratio_vs_pyzmq", ours.p50_us / py->p50_us);
    s.add("agent_request_p50_ratio_vs_pyzmq", agent.p50_us / py->p50_us);
  } else if (std::find(notes.begin(), notes.end(), note) == notes.end()) {
    std::cerr << note << "\n";
    notes.push_back(note);
  }
}

json report(const Options& opt, const Series& s, std::vector<std::string> notes) {
  json out;
  const std::vector<std::string> keys = {
      "spawn_ratio_vs_caf", "spawn_ms", "caf_spawn_ms", "stop_ms", "bytes_per_agent", "caf_bytes_per_agent",
      "idle_cpu_pct", "caf_idle_cpu_pct", "threads", "caf_threads", "wakeups", "caf_wakeups",
      "pingpong_ratio_vs_caf", "pingpong_msgs_per_s", "caf_pingpong_msgs_per_s",
      "ring_ratio_vs_caf", "ring_msgs_per_s", "caf_ring_msgs_per_s",
      "remote_request_p50_ratio_vs_raw", "remote_request_p99_ratio_vs_raw",
      "agent_request_p50_ratio_vs_raw", "agent_request_p99_ratio_vs_raw", "agent_request_p50_ratio_vs_pyzmq",
      "agent_request_p50_us", "agent_request_p99_us",
      "remote_request_p50_ratio_vs_pyzmq", "remote_request_p50_us", "remote_request_p99_us",
      "raw_p50_us", "raw_p99_us", "pyzmq_p50_us", "pyzmq_p99_us"};
  for (const auto& k : keys) out[k] = opt_json(s.med(k));
  // Counts stay whole numbers (a median of an even number of rounds may not be).
  for (const char* k : {"threads", "caf_threads", "wakeups", "caf_wakeups"}) {
    if (const auto x = s.med(k); x && *x == std::floor(*x)) out[k] = static_cast<std::int64_t>(*x);
  }
  // The CAF figure per actor, under the name the report gives it.
  out["caf_bytes_per_actor"] = out["caf_bytes_per_agent"];
  out.erase("caf_bytes_per_agent");

  const auto workers = static_cast<double>(opt.workers);
  auto le = [&](const std::string& k, std::optional<double> bound) -> json {
    const auto x = s.med(k);
    if (!x || !bound) return nullptr;
    return *x <= *bound;
  };
  auto ge = [&](const std::string& k, double bound) -> json {
    const auto x = s.med(k);
    if (!x) return nullptr;
    return *x >= bound;
  };
  out["targets"] = {{"bytes_per_agent", "<= caf_bytes_per_actor"},
                    {"idle_cpu_pct", "<= 0.5 (10000 idle agents)"},
                    {"threads", "<= workers + 6 = " + std::to_string(opt.workers + 6)},
                    {"pingpong_ratio_vs_caf", ">= 0.5"},
                    {"ring_ratio_vs_caf", ">= 0.5"},
                    {"remote_request_p50_ratio_vs_raw", "<= 1.3"},
                    {"remote_request_p50_ratio_vs_pyzmq", "<= 0.5"}};
  out["targets_met"] = {{"bytes_per_agent", le("bytes_per_agent", s.med("caf_bytes_per_agent"))},
                        {"idle_cpu_pct", le("idle_cpu_pct", 0.5)},
                        {"threads", le("threads", workers + 6)},
                        {"pingpong_ratio_vs_caf", ge("pingpong_ratio_vs_caf", 0.5)},
                        {"ring_ratio_vs_caf", ge("ring_ratio_vs_caf", 0.5)},
                        {"remote_request_p50_ratio_vs_raw", le("remote_request_p50_ratio_vs_raw", 1.3)},
                        {"remote_request_p50_ratio_vs_pyzmq", le("remote_request_p50_ratio_vs_pyzmq", 0.5)}};
  if (opt.agents != 10000) {
    notes.push_back("--agents " + std::to_string(opt.agents) +
                    ": the idle CPU target is stated for 10000 agents");
  }
  out["notes"] = notes;
  out["method"] = {
      {"rounds", opt.rounds},
      {"agents", opt.agents},
      {"idle_s", opt.idle_s},
      {"workers", opt.workers},
      {"caf", "CAF " + std::to_string(CAF_MAJOR_VERSION) + "." + std::to_string(CAF_MINOR_VERSION) +
                  "." + std::to_string(CAF_PATCH_VERSION) + ", scheduler.max-threads = " +
                  std::to_string(opt.workers) + " (= workers)"},
      {"ours", "mesh::CustomAgent in a Mesh with P2P off; strands on the Mesh's executor (worker_threads = workers)"},
      {"pingpong_hops", opt.pingpong},
      {"ring_size", opt.ring_size},
      {"ring_hops", opt.ring_hops},
      {"max_seconds", opt.max_seconds},
      {"remote_count", opt.count},
      {"remote_warmup", opt.warmup},
      {"remote_slices", opt.slices},
      {"remote_doc_bytes", make_document().dump().size()},
      {"figures",
       "medians over rounds; each ratio the median of the per-round ratios; each side of "
       "rows spawn/idle, pingpong, ring in a child process of its own"}};
  json rounds;
  for (const auto& [k, v] : s.v) rounds[k] = v;
  out["rounds"] = rounds;
  return out;
}

void print_table(std::ostream& os, const Options& opt, const Series& s) {
  os << "\n" << opt.rounds << " round(s), " << opt.agents << " agents, " << opt.workers
     << " workers (CAF scheduler.max-threads; ours: worker_threads); medians, ratio = median "
        "of per-round ratios\n\n"
     << "| figure | ours | CAF / raw / pyzmq | ratio |\n|---|---|---|---|\n";
  auto row = [&](const std::string& name, const std::string& a, const std::string& b,
                 const std::string& r, int prec) {
    os << "| " << name << " | " << fmt(s.med(a), prec) << " | " << fmt(s.med(b), prec) << " | "
       << (r.empty() ? "" : fmt(s.med(r), 2)) << " |\n";
  };
  row("spawn (ms)", "spawn_ms", "caf_spawn_ms", "spawn_ratio_vs_caf", 1);
  row("bytes per agent", "bytes_per_agent", "caf_bytes_per_agent", "", 0);
  row("idle CPU (% of a core)", "idle_cpu_pct", "caf_idle_cpu_pct", "", 2);
  row("threads", "threads", "caf_threads", "", 0);
  row("wake-ups in the idle window", "wakeups", "caf_wakeups", "", 0);
  row("ping-pong (msgs/s)", "pingpong_msgs_per_s", "caf_pingpong_msgs_per_s", "pingpong_ratio_vs_caf", 0);
  row("ring (msgs/s)", "ring_msgs_per_s", "caf_ring_msgs_per_s", "ring_ratio_vs_caf", 0);
  row("remote p50 (us) vs raw", "remote_request_p50_us", "raw_p50_us", "remote_request_p50_ratio_vs_raw", 1);
  row("remote p99 (us) vs raw", "remote_request_p99_us", "raw_p99_us", "remote_request_p99_ratio_vs_raw", 1);
  row("remote p50 (us) vs pyzmq", "remote_request_p50_us", "pyzmq_p50_us",
      "remote_request_p50_ratio_vs_pyzmq", 1);
  row("agent remote p50 (us) vs raw", "agent_request_p50_us", "raw_p50_us", "agent_request_p50_ratio_vs_raw", 1);
  row("agent remote p99 (us) vs raw", "agent_request_p99_us", "raw_p99_us", "agent_request_p99_ratio_vs_raw", 1);
  row("agent remote p50 (us) vs pyzmq", "agent_request_p50_us", "pyzmq_p50_us",
      "agent_request_p50_ratio_vs_pyzmq", 1);
}

int run(int argc, char** argv) {
  Options opt;
  CLI::App app(
      "Our agent runtime beside CAF 0.17 on the same machine in the same run: spawn time,\n"
      "memory, threads, idle CPU and wake-ups of N idle agents, ping-pong and ring\n"
      "throughput; and a remote request between two processes against raw ZeroMQ and\n"
      "pyzmq + json (docs/benchmarks.md). Exit 0 after the run, 1 when a measurement\n"
      "fails, 2 on bad flags.");
  mesh::cli::setup(app, "agent_runtime");
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  std::string child_mode, serve_mode;
  app.add_option("--child", child_mode, "run one side of one measurement (used by the bench itself)")
      ->type_name("MODE")
      ->check(CLI::IsMember({"population-ours", "population-caf", "pingpong-ours", "pingpong-caf",
                             "ring-ours", "ring-caf"}));
  app.add_option("--serve", serve_mode, "run as a server of the remote row (used by the bench itself)")
      ->type_name("MODE")
      ->check(CLI::IsMember({"raw-echo", "mesh-echo"}));
  auto* rounds = app.add_option("--rounds", opt.rounds, "rounds, 1..100 (default 3; --quick: 1)")
                     ->type_name("N")
                     ->transform(mesh::cli::whole_number(1, 100));
  auto* agents = app.add_option("--agents", opt.agents, "idle agents, 1..20000 (default 10000; --quick: 200)")
                     ->type_name("N")
                     ->transform(mesh::cli::whole_number(1, 20000));
  auto* idle = app.add_option("--idle-s", opt.idle_s, "idle window in seconds, 0.1..600 (default 10; --quick: 1)")
                   ->type_name("S")
                   ->transform(mesh::cli::number(0.1, 600, "seconds"));
  app.add_option("--workers", opt.workers,
                 "CAF's scheduler threads, 1..256 (default: the hardware threads)")
      ->type_name("N")
      ->transform(mesh::cli::whole_number(1, 256));
  auto* pingpong = app.add_option("--pingpong", opt.pingpong,
                                  "ping-pong hops, 10..1e9 (default 1000000; --quick: 2000)")
                       ->type_name("N")
                       ->transform(mesh::cli::whole_number(10, 1000000000));
  auto* ring_size = app.add_option("--ring-size", opt.ring_size, "agents in the ring, 2..10000 (default 1000; --quick: 100)")
                        ->type_name("N")
                        ->transform(mesh::cli::whole_number(2, 10000));
  auto* ring_hops = app.add_option("--ring-hops", opt.ring_hops, "ring hops, 10..1e9 (default 1000000; --quick: 2000)")
                        ->type_name("N")
                        ->transform(mesh::cli::whole_number(10, 1000000000));
  auto* count = app.add_option("--count", opt.count,
                               "remote round trips per system and round, 1..1e7 (default 20000; --quick: 500)")
                    ->type_name("N")
                    ->transform(mesh::cli::whole_number(1, 10000000));
  auto* max_seconds =
      app.add_option("--max-seconds", opt.max_seconds,
                     "bound of each throughput run and of each remote system's measured time, "
                     "0.1..600 (default 3; --quick: 1)")
          ->type_name("S")
          ->transform(mesh::cli::number(0.1, 600, "seconds"));
  app.add_flag("--json", opt.json_out, "one JSON object on stdout (the rest goes to stderr)");
  app.add_flag("--quick", opt.quick, "a smoke run: small counts, one round");
  app.add_option("--python", opt.python, "the Python of the pyzmq floor (default /usr/bin/python3)")
      ->type_name("PATH");
  app.add_option("--pyzmq-script", opt.pyzmq_script, "the pyzmq floor's script (default bench/pyzmq_echo.py)")
      ->type_name("PATH");
  if (auto done = mesh::cli::parse(app, argc, argv)) return *done;
  if (opt.workers == 0) opt.workers = std::max(1u, std::thread::hardware_concurrency());
  g_workers = opt.workers;
  if (!serve_mode.empty()) return serve(serve_mode);
  if (!child_mode.empty()) return run_child(child_mode, opt);
  if (opt.quick) {
    if (rounds->count() == 0) opt.rounds = 1;
    if (agents->count() == 0) opt.agents = 200;
    if (idle->count() == 0) opt.idle_s = 1;
    if (pingpong->count() == 0) opt.pingpong = 2000;
    if (ring_size->count() == 0) opt.ring_size = 100;
    if (ring_hops->count() == 0) opt.ring_hops = 2000;
    if (count->count() == 0) opt.count = 500;
    if (max_seconds->count() == 0) opt.max_seconds = 1;
    opt.slices = 2;
  }
  opt.warmup = std::min<std::size_t>(opt.warmup, std::max<std::size_t>(opt.count / 10, 10));
  opt.self_exe = self_exe();

  mesh::test::TempDir logs;
  Series s;
  std::vector<std::string> notes;
  for (int round = 0; round < opt.rounds; ++round) {
    check_interrupt();
    one_round(opt, logs.path(), round, s, notes);
  }
  const json out = report(opt, s, notes);
  std::ostream& table = opt.json_out ? std::cerr : std::cout;
  print_table(table, opt, s);
  for (const auto& n : out["notes"]) table << "note: " << n.get<std::string>() << "\n";
  if (opt.json_out) std::cout << out.dump(2) << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  install_interrupt_handlers();
  try {
    return run(argc, argv);
  } catch (const mesh::UsageError& e) {
    std::cerr << "agent_runtime: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "agent_runtime: " << e.what() << "\n";
    return 1;
  }
}
