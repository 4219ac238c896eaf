// Pieces shared by the benchmarks that time a round trip against a second
// process (transport_vs_zmq, agent_runtime): the server side of a
// re-executed binary, the raw ZeroMQ echo baseline, the pyzmq + json floor
// (bench/pyzmq_echo.py), slice-interleaved latency measurement, and the
// small report helpers. Header-only: each benchmark is one program.
//
// A server process is the benchmark binary started again with a mode flag
// (self_exe()). It blocks SIGTERM/SIGINT before any thread starts, prints
// "port <p> ctl <c>" on stdout once bound, and runs until SIGTERM or its
// parent's death (PR_SET_PDEATHSIG). The parent owns it as a
// ServerProcess: SIGTERM, then SIGKILL and reap, on every path.
#pragma once

#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <iomanip>
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>
#include <zmq.hpp>

#include "process.hpp"

namespace mesh::bench {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// ---------------------------------------------------------------- interrupts
// SIGINT/SIGTERM/SIGHUP set a flag; long loops call check_interrupt(), which
// throws so that the stack unwinds and every child process is reaped.
inline std::atomic<bool> g_interrupted{false};
extern "C" inline void bench_on_signal(int) { g_interrupted.store(true); }

inline void install_interrupt_handlers() {
  struct sigaction sa {};
  sa.sa_handler = bench_on_signal;
  ::sigemptyset(&sa.sa_mask);
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
  ::sigaction(SIGHUP, &sa, nullptr);
}

inline void check_interrupt() {
  if (g_interrupted.load(std::memory_order_relaxed)) throw std::runtime_error("interrupted");
}

inline std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

// This program's path, to start it again as a server or child.
inline std::string self_exe() {
  char buf[4096];
  const auto n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) throw std::runtime_error("cannot read /proc/self/exe");
  return std::string(buf, static_cast<std::size_t>(n));
}

inline std::uint16_t port_of(const std::string& endpoint) {
  return static_cast<std::uint16_t>(std::stoi(endpoint.substr(endpoint.rfind(':') + 1)));
}

inline std::string tcp(std::uint16_t port) { return "tcp://127.0.0.1:" + std::to_string(port); }

// ---------------------------------------------------------------- server side
// Signals are blocked before any thread starts (ZeroMQ's and ours inherit
// the mask); the main thread waits for SIGTERM/SIGINT with sigwait, then
// shuts down in order. A server whose parent dies is killed by the kernel.
inline sigset_t block_stop_signals() {
  sigset_t set;
  ::sigemptyset(&set);
  ::sigaddset(&set, SIGTERM);
  ::sigaddset(&set, SIGINT);
  ::pthread_sigmask(SIG_BLOCK, &set, nullptr);
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() == 1) std::exit(1);
  return set;
}

inline void wait_stop(const sigset_t& set) {
  int sig = 0;
  ::sigwait(&set, &sig);
}

inline void announce(std::uint16_t port, std::uint16_t ctl = 0) {
  std::printf("port %u ctl %u\n", static_cast<unsigned>(port), static_cast<unsigned>(ctl));
  std::fflush(stdout);
}

// Applied to a socket before it binds or connects (CURVE options, ...).
using SocketSetup = std::function<void(zmq::socket_t&)>;

// The raw baseline's server: a ROUTER on 127.0.0.1 that sends every frame
// back to its sender, on its own thread, until SIGTERM.
inline int serve_raw_echo(const sigset_t& stop, const SocketSetup& setup = {}) {
  zmq::context_t ctx(1);
  zmq::socket_t router(ctx, zmq::socket_type::router);
  router.set(zmq::sockopt::linger, 0);
  if (setup) setup(router);
  router.bind("tcp://127.0.0.1:0");
  announce(port_of(router.get(zmq::sockopt::last_endpoint)));
  std::thread echo([&] {
    try {
      for (;;) {
        zmq::message_t id, body;
        if (!router.recv(id) || !router.recv(body)) continue;
        router.send(id, zmq::send_flags::sndmore);
        router.send(body, zmq::send_flags::none);
      }
    } catch (const zmq::error_t&) {
      // ETERM: shutting down.
    }
  });
  wait_stop(stop);
  ctx.shutdown();
  echo.join();
  return 0;
}

// ---------------------------------------------------------------- client side
// A server process this program started, stopped (SIGTERM, then SIGKILL)
// and reaped when it goes out of scope.
struct ServerProcess {
  std::unique_ptr<mesh::test::Process> proc;
  std::uint16_t port = 0;
  std::uint16_t ctl = 0;

  ServerProcess() = default;
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;
  ~ServerProcess() {
    if (!proc) return;
    proc->signal(SIGTERM);
    if (!proc->wait_exit(3s)) std::cerr << "  (server did not stop on SIGTERM; killed)\n";
  }
};

// Starts `argv` and waits (up to `timeout`) for its "port <p> ctl <c>" line.
inline std::unique_ptr<ServerProcess> start_server(
    const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
    const std::string& log_dir, const std::string& what,
    std::chrono::milliseconds timeout = 10s) {
  // A fresh label each time: Process appends to its log files, and an old
  // server's "port" line must not be read as this one's.
  static int started = 0;
  auto s = std::make_unique<ServerProcess>();
  s->proc = std::make_unique<mesh::test::Process>(argv, env, log_dir,
                                                  what + "-" + std::to_string(++started));
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    check_interrupt();
    const std::string out = s->proc->stdout_text();
    if (out.find('\n') != std::string::npos) {
      unsigned port = 0, ctl = 0;
      if (std::sscanf(out.c_str(), "port %u ctl %u", &port, &ctl) != 2 || port == 0)
        throw std::runtime_error("server " + what + " printed: " + out);
      s->port = static_cast<std::uint16_t>(port);
      s->ctl = static_cast<std::uint16_t>(ctl);
      return s;
    }
    if (!s->proc->running())
      throw std::runtime_error("server " + what + " exited:\n" + s->proc->log_tail());
    if (Clock::now() > deadline)
      throw std::runtime_error("server " + what + " did not print its port:\n" +
                               s->proc->log_tail());
    std::this_thread::sleep_for(10ms);
  }
}

// A DEALER client of a ROUTER echo; `endpoint` is tcp:// or inproc://.
class RawEchoClient {
 public:
  RawEchoClient(zmq::context_t& ctx, const std::string& endpoint,
                std::vector<std::uint8_t> payload, const SocketSetup& setup = {})
      : dealer_(ctx, zmq::socket_type::dealer), payload_(std::move(payload)) {
    dealer_.set(zmq::sockopt::linger, 0);
    dealer_.set(zmq::sockopt::rcvtimeo, 5000);
    if (setup) setup(dealer_);
    dealer_.connect(endpoint);
  }
  void one() {
    dealer_.send(zmq::buffer(payload_), zmq::send_flags::none);
    zmq::message_t reply;
    if (!dealer_.recv(reply) || reply.size() != payload_.size())
      throw std::runtime_error("raw echo: no reply within 5 s");
  }

 private:
  zmq::socket_t dealer_;
  std::vector<std::uint8_t> payload_;
};

// ---------------------------------------------------------------- latency
struct Rtt {
  double p50_us = 0;
  double p99_us = 0;
  std::size_t count = 0;
};

inline Rtt summarize(std::vector<std::int64_t>& ns) {
  if (ns.empty()) throw std::runtime_error("no samples");
  std::sort(ns.begin(), ns.end());
  auto at = [&](double q) {
    const auto n = static_cast<double>(ns.size());
    auto k = static_cast<std::size_t>(std::ceil(q * n));
    k = std::clamp<std::size_t>(k, 1, ns.size());
    return static_cast<double>(ns[k - 1]) / 1000.0;
  };
  return Rtt{at(0.50), at(0.99), ns.size()};
}

// How much of each latency system a round measures.
struct LatencyPlan {
  std::size_t count = 20000;  // measured round trips per system
  std::size_t warmup = 2000;  // unmeasured ones first
  double max_seconds = 3.0;   // or this much measured time, whichever first
  std::size_t slices = 50;    // the count is measured in this many slices
};

// One system of a latency row: `one` makes one round trip (or throws).
// With `timed` set instead, the system times its round trip itself and
// returns it in nanoseconds (for one made on another thread, whose
// hand-offs to and from the measuring thread must not count).
struct LatencySystem {
  std::string row;
  std::function<void()> one;
  std::vector<std::int64_t> ns{};
  double measured_s = 0;
  std::function<std::int64_t()> timed{};

  bool done(const LatencyPlan& plan) const {
    return ns.size() >= plan.count || measured_s >= plan.max_seconds;
  }
};

// The machine is shared and load drifts over seconds, so the systems
// compared are all set up at once and measured in alternating slices
// (a, b, b, a, ...), each one's samples pooled: a burst of load hits both
// sides instead of one. A warm-up for each, then slices until each has
// `count` round trips or has spent `max_seconds` in measured ones.
inline std::map<std::string, Rtt> run_latency(const LatencyPlan& plan,
                                              const std::vector<LatencySystem*>& systems,
                                              int round) {
  const auto once = [](LatencySystem& s) -> std::int64_t {
    if (s.timed) return s.timed();
    const auto t0 = Clock::now();
    s.one();
    return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count();
  };
  for (auto* s : systems)
    for (std::size_t i = 0; i < plan.warmup; ++i) once(*s);
  const std::size_t slice = (plan.count + plan.slices - 1) / plan.slices;
  for (std::size_t k = 0;; ++k) {
    std::vector<LatencySystem*> order = systems;
    if ((k + static_cast<std::size_t>(round)) % 2 == 1) std::reverse(order.begin(), order.end());
    bool any = false;
    for (auto* s : order) {
      if (s->done(plan)) continue;
      any = true;
      const std::size_t n = std::min(slice, plan.count - s->ns.size());
      for (std::size_t i = 0; i < n; ++i) {
        const std::int64_t d = once(*s);
        s->ns.push_back(d);
        s->measured_s += static_cast<double>(d) / 1e9;
        if (s->measured_s >= plan.max_seconds) break;
        if ((i & 255) == 0) check_interrupt();
      }
    }
    if (!any) break;
  }
  std::map<std::string, Rtt> out;
  for (auto* s : systems) out[s->row] = summarize(s->ns);
  return out;
}

// ---------------------------------------------------------------- python floor
// One run of bench/pyzmq_echo.py (it starts its own server process): its
// p50/p99, or nullopt with the reason in `note` (no python, no pyzmq, ...).
inline std::optional<Rtt> python_floor(const std::string& python, const std::string& script,
                                       const LatencyPlan& plan, std::string& note) {
  using json = nlohmann::json;
  if (::access(python.c_str(), X_OK) != 0) {
    note = "python row skipped: " + python + " not found";
    return std::nullopt;
  }
  if (::access(script.c_str(), R_OK) != 0) {
    note = "python row skipped: " + script + " not found";
    return std::nullopt;
  }
  const auto res = mesh::test::run_to_exit(
      {python, script, "--count", std::to_string(plan.count), "--warmup",
       std::to_string(plan.warmup), "--max-seconds", std::to_string(plan.max_seconds)},
      {}, std::chrono::milliseconds(static_cast<long>(plan.max_seconds * 1000) + 60000));
  const auto line = res.out.substr(0, res.out.find('\n'));
  const auto j = json::parse(line, nullptr, false);
  if (res.exit_code != 0 || j.is_discarded() || !j.contains("p50_us")) {
    std::string why = (!j.is_discarded() && j.contains("error"))
                          ? j["error"].get<std::string>()
                          : "exit " + std::to_string(res.exit_code);
    if (why.empty() || why.rfind("exit", 0) == 0) why += ": " + res.err.substr(0, 300);
    note = "python row skipped: " + why;
    return std::nullopt;
  }
  return Rtt{j["p50_us"].get<double>(), j["p99_us"].get<double>(), j["count"].get<std::size_t>()};
}

// ---------------------------------------------------------------- report
inline std::optional<double> median(std::vector<double> v) {
  if (v.empty()) return std::nullopt;
  std::sort(v.begin(), v.end());
  const auto m = v.size() / 2;
  return v.size() % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

inline nlohmann::json opt_json(const std::optional<double>& d) {
  return d ? nlohmann::json(*d) : nlohmann::json(nullptr);
}

inline std::string fmt(const std::optional<double>& d, int prec) {
  if (!d) return "-";
  std::ostringstream o;
  o << std::fixed << std::setprecision(prec) << *d;
  return o.str();
}

inline std::string rtt_line(const Rtt& r) {
  return "p50 " + fmt(r.p50_us, 1) + " us, p99 " + fmt(r.p99_us, 1) +
         " us (n=" + std::to_string(r.count) + ")";
}

}  // namespace mesh::bench
