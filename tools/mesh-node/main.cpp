// mesh-node: runs one node of the mesh without agents of its own: a Mesh
// (mesh/mesh.hpp) with SWIM membership and the ZeroMQ transport always on,
// and the admin endpoint (mesh/admin_endpoint.hpp), so that the node can be
// addressed like any other: it takes part in membership, answers registry
// fetches (an empty registry), and serves the same admin API as every
// program that runs a Mesh (`meshctl members`, `meshctl peers`, send,
// request, GET /metrics). Programs that host agents run the same Mesh and
// endpoint (examples/mesh_agents.cpp). docs/mesh-node.md is the manual.
//
// Threads: the Mesh's (transport, SWIM, control) and the admin endpoint's.
// SIGINT, SIGTERM, SIGHUP, SIGUSR1 and SIGUSR2 are blocked in all of them
// and taken by the main thread with sigwait. SIGINT or SIGTERM (or POST
// /v1/leave, `meshctl leave`, whose handler raises SIGUSR1) starts the
// graceful leave (Mesh::stop, bounded by leave_timeout) on a thread of its
// own while /readyz and /healthz answer "leaving"; a second signal during
// the leave exits at once. SIGHUP reloads the policy file (as POST
// /v1/reload, `meshctl reload`); a bad file is logged and changes nothing.
// SIGUSR2 is raised when the start-up join gives up (retry_join_max).
//
// Memory: glibc's malloc is told to keep one arena for all threads and to
// give freed memory at the top of the heap back at once (tune_malloc).
//
// Exit codes: 0 after a graceful leave, 1 when the node cannot start or
// its start-up join gave up, 2 on bad configuration.
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/udp.hpp>
#include <cerrno>
#include <cstdlib>
#include <ctime>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <spdlog/spdlog.h>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "mesh/admin_endpoint.hpp"
#include "mesh/mesh_admin.hpp"
#include "mesh/cli.hpp"
#include "mesh/logging.hpp"
#include "mesh/mesh.hpp"
#include "mesh/node_config.hpp"

namespace mesh {
namespace {

constexpr const char* kDescription =
    "Runs one node of the mesh without agents: SWIM membership (memberlist/Serf\n"
    "compatible), the ZeroMQ transport, and the admin HTTP endpoint (GET /healthz,\n"
    "/metrics, /v1/members, /v1/self, /v1/agents; POST /v1/send, /v1/request).";

// Text by default, JSON lines with JC_LOG_FORMAT=json (mesh/logging.hpp).
void setup_logging(const NodeConfig& cfg) {
  LoggingOptions o;
  o.format = cfg.log_format;
  o.level = cfg.log_level;
  o.node_name = cfg.node_name;
  o.logger_name = "mesh-node";
  configure_logging(o);
}

const char* signal_name(int sig) {
  return sig == SIGTERM ? "SIGTERM" : sig == SIGINT ? "SIGINT" : sig == SIGHUP ? "SIGHUP" : "signal";
}

// SIGHUP: what POST /v1/reload does, with the outcome in the log.
std::string join_words(const std::vector<std::string>& words) {
  std::string out;
  for (const auto& w : words) out += (out.empty() ? "" : ", ") + w;
  return out;
}

// SIGHUP: the configuration is read again (file, environment, the start's
// flags). What a running node can take applies now: the log level, the
// tags (gossiped to the cluster), the defaults agents see (discovery
// strategy, request timeout), and the policy file (as POST /v1/reload).
// Every other setting that differs from the running one is named as
// taking effect only after a restart. A configuration that no longer
// loads changes nothing.
void reload(Mesh& mesh, const ConfigFlags& flags, NodeConfig& running) {
  NodeConfig fresh;
  try {
    fresh = load_node_config(flags, current_environment());
  } catch (const ConfigError& e) {
    spdlog::error("received SIGHUP: the configuration does not load, nothing changed: {}", e.what());
    return;
  }
  fresh.p2p_enabled = true;  // as at start: mesh-node always runs P2P
  std::vector<std::string> applied;
  if (fresh.log_level != running.log_level) {
    applied.push_back("log_level " + std::string(to_string(running.log_level)) + " -> " +
                      std::string(to_string(fresh.log_level)));
    spdlog::default_logger()->set_level(to_spdlog_level(fresh.log_level));
    running.log_level = fresh.log_level;
  }
  if (fresh.tags != running.tags) {
    // Gossiped at once, as `serf tags` does.
    if (auto error = mesh.set_tags(fresh.tags)) {
      spdlog::error("received SIGHUP: {}; the node keeps its tags", *error);
      fresh.tags = running.tags;  // not named below as waiting for a restart
    } else {
      applied.push_back("tags");
      running.tags = fresh.tags;
    }
  }
  // The defaults agents see (a client's own strategy, a request's own
  // timeout, stay). Both were checked by the loader.
  const auto was = nlohmann::json::parse(to_json_string(running));
  const auto now = nlohmann::json::parse(to_json_string(fresh));
  const auto change = [&](const char* key) {
    return std::string(key) + " " + was.at(key).get<std::string>() + " -> " + now.at(key).get<std::string>();
  };
  if (fresh.discovery_strategy != running.discovery_strategy) {
    mesh.set_discovery_strategy(fresh.discovery_strategy);
    applied.push_back(change("discovery_strategy"));
    running.discovery_strategy = fresh.discovery_strategy;
  }
  if (fresh.request_timeout != running.request_timeout) {
    mesh.set_request_timeout(fresh.request_timeout);
    applied.push_back(change("request_timeout"));
    running.request_timeout = fresh.request_timeout;
  }
  // The rest, compared as --check-config prints them (secrets as "set").
  std::vector<std::string> restart;
  for (const auto& [key, value] : now.items()) {
    if (key == "sources" || key == "log_level" || key == "policy_file" || key == "tags" ||
        key == "discovery_strategy" || key == "request_timeout") {
      continue;
    }
    if (!was.contains(key) || was[key] != value) restart.push_back(key);
  }
  if (fresh.policy_file != running.policy_file) restart.push_back("policy_file");
  std::string line = "received SIGHUP: ";
  line += applied.empty() ? "no setting to apply" : "applied " + join_words(applied);
  if (!restart.empty()) line += "; changed, effective after a restart: " + join_words(restart);
  spdlog::info("{}", line);
  if (running.policy_file.empty()) return;
  if (auto error = mesh.reload_policy()) spdlog::error("received SIGHUP: {}", *error);
}

// A node that peers could not reach is bad configuration (exit 2). Checked
// when the node starts, not by --check-config, which validates settings on
// any machine (the interfaces are those of where the node will run).
void check_advertise_host(const NodeConfig& c) {
  if (c.advertise_host.empty() && !default_advertise_host(c)) {
    throw ConfigError("advertise_host: swim_host " + c.swim_host +
                      " is not an address peers can use and no private IPv4 address was found;"
                      " set JC_ADVERTISE_HOST or --advertise-host");
  }
}

// The next signal of `set` (blocked in every thread), or 0 after
// `timeout_ms` without one; a negative timeout waits for as long as it
// takes (the idle main thread: no wake-up of its own).
int next_signal(const sigset_t& set, long timeout_ms) {
  timespec ts{timeout_ms / 1000, (timeout_ms % 1000) * 1'000'000};
  for (;;) {
    const int sig = timeout_ms < 0 ? ::sigwaitinfo(&set, nullptr) : ::sigtimedwait(&set, nullptr, &ts);
    if (sig > 0) return sig;
    if (errno != EINTR) return 0;
  }
}

// Why host:port cannot be bound for UDP (the SWIM port), or nullopt.
std::optional<std::string> udp_port_taken(const std::string& host, std::uint16_t port) {
  boost::asio::io_context io;
  boost::system::error_code ec;
  const auto address = boost::asio::ip::make_address(host, ec);
  if (ec) return std::nullopt;
  boost::asio::ip::udp::socket probe(io);
  const boost::asio::ip::udp::endpoint at(address, port);
  if (probe.open(at.protocol(), ec); ec) return std::nullopt;
  if (probe.bind(at, ec); ec) return ec.message();
  return std::nullopt;
}

int run(NodeConfig cfg, const ConfigFlags& flags) {
  // Before any thread exists, so that every thread inherits the mask and
  // only next_signal() takes these signals.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGHUP);
  sigaddset(&stop_signals, SIGUSR1);  // raised for POST /v1/leave
  sigaddset(&stop_signals, SIGUSR2);  // raised when the start-up join gives up
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  check_advertise_host(cfg);
  // p2p_enabled says whether agents talk over the network; a node without
  // agents is there to be on the network, whatever a shared configuration
  // file says for the agent hosts.
  if (!cfg.p2p_enabled && cfg.sources.count("p2p_enabled") != 0) {
    spdlog::info("p2p_enabled=false (from {}) does not apply to mesh-node, which runs "
                 "membership and the transport either way",
                 cfg.sources.at("p2p_enabled"));
  }
  cfg.p2p_enabled = true;
  MeshOptions options;
  // As Consul's agent: out of join attempts (retry_join_max), the node
  // exits 1, so that its supervisor sees the failure.
  options.on_join_failed = [](const std::string&) { ::kill(::getpid(), SIGUSR2); };
  Mesh mesh(cfg, std::move(options));
  // Binds now: a taken admin port fails before the node joins anyone.
  std::unique_ptr<AdminEndpoint> admin_holder;
  try {
    admin_holder = std::make_unique<AdminEndpoint>(mesh);
  } catch (const std::runtime_error&) {
    // The admin port follows the SWIM port unless set: when both are
    // taken, another node runs here, and its SWIM port is the news.
    if (cfg.sources.count("admin_port") == 0 || cfg.sources.at("admin_port").rfind("derived", 0) == 0) {
      if (auto why = udp_port_taken(cfg.swim_host, cfg.swim_port)) {
        throw std::runtime_error("SWIM port " + cfg.swim_host + ":" + std::to_string(cfg.swim_port) +
                                 ": cannot bind (" + *why + "): is another node running here with swim_port " +
                                 std::to_string(cfg.swim_port) + "?");
      }
    }
    throw;
  }
  AdminEndpoint& admin = *admin_holder;
  // Wakes the main thread's sigwait, which then leaves as on SIGTERM.
  admin.api().on_leave([] { ::kill(::getpid(), SIGUSR1); });
  mesh.start();  // binds SWIM and ZeroMQ, joins the seeds
  admin.start();
  const bool v6 = cfg.swim_host.find(':') != std::string::npos;
  spdlog::info("node {} ({} profile): SWIM on {}{}{}:{}, ZeroMQ port {}, admin on http://{}", cfg.node_name,
               swim::to_string(cfg.profile), v6 ? "[" : "", cfg.swim_host, v6 ? "]" : "", mesh.swim_port(),
               mesh.zmq_port(), admin.endpoint());
  if (cfg.seeds.empty()) spdlog::info("no seeds: waiting to be joined");

  int sig = 0;
  while (sig == 0) {
    sig = next_signal(stop_signals, -1);
    if (sig == SIGHUP) {
      reload(mesh, flags, cfg);
      sig = 0;
    }
  }
  const bool join_failed = sig == SIGUSR2;
  const std::string join_failure = join_failed ? mesh.readiness().reason : std::string();
  if (sig == SIGUSR1) {
    spdlog::info("asked to leave through the admin API: leaving the cluster");
  } else if (join_failed) {
    spdlog::error("{}: stopping", join_failure);
  } else {
    spdlog::info("received {}: leaving the cluster", signal_name(sig));
  }
  admin.set_leaving();
  // The leave on a thread of its own, so that a second signal is heard.
  std::atomic<bool> stopped{false};
  std::thread stopper([&] {
    mesh.stop();
    stopped = true;
  });
  while (!stopped) {
    if (const int again = next_signal(stop_signals, 100); again == SIGINT || again == SIGTERM) {
      // The operator does not want to wait: skip the rest of the leave.
      spdlog::warn("second {}: exiting without finishing the leave", signal_name(again));
      spdlog::default_logger()->flush();
      std::_Exit(1);
    }
  }
  stopper.join();
  admin.stop();
  if (join_failed) {
    std::cerr << "mesh-node: " << join_failure << "\n";
    return 1;
  }
  spdlog::info("left the cluster");
  return 0;
}

// A node without agents allocates little and rarely (membership,
// control messages, the admin API), so glibc's defaults, made for busy
// multi-threaded programs, cost it more memory than they save time:
//  - an arena per thread that allocates (up to 8 per core): each keeps its
//    own free memory and its own slack; one arena for the node's ~10
//    threads, whose contention at this allocation rate does not show
//    (tcache still serves small sizes without the lock);
//  - 128 KB of free memory kept at the top of each heap (M_TOP_PAD) and
//    trimming only beyond another 128 KB (M_TRIM_THRESHOLD): a push-pull's
//    buffers, freed, stayed resident until the next one.
// Measured on 10 idle nodes: 98 KB less private memory per node
// (docs/benchmarks.md, "No libcrypto in an idle node"). Must run before any
// thread starts. Programs that host agents keep glibc's defaults.
void tune_malloc() {
  ::mallopt(M_ARENA_MAX, 1);
  ::mallopt(M_TOP_PAD, 0);
  ::mallopt(M_TRIM_THRESHOLD, 32 * 1024);
}

// Parses the command line into `flags` and `check_config`; an exit code
// when done already (--help, --version). The CLI::App, with an object per
// flag, is gone when this returns: kept for the node's life, it held ~46
// KB of heap.
std::optional<int> parse_command_line(int argc, char** argv, ConfigFlags& flags, bool& check_config) {
  CLI::App app(kDescription);
  cli::setup(app, "mesh-node");
  app.add_flag("--check-config", check_config,
               "validate the configuration (an unknown JC_* variable in the environment is an "
               "error), print it as JSON and exit");
  add_config_flags(app, flags);
  return cli::parse(app, argc, argv);
}

}  // namespace
}  // namespace mesh

int main(int argc, char** argv) {
  mesh::tune_malloc();
  bool check_config = false;
  mesh::ConfigFlags flags;
  try {
    if (auto done = mesh::parse_command_line(argc, argv, flags, check_config)) return *done;
    const mesh::Environment env = mesh::current_environment();
    if (check_config) mesh::reject_unknown_variables(env);
    const mesh::NodeConfig cfg = mesh::load_node_config(flags, env);
    if (check_config) {
      std::cout << mesh::to_json_string(cfg) << "\n";
      return 0;
    }
    mesh::setup_logging(cfg);
    return mesh::run(cfg, flags);
  } catch (const mesh::ConfigError& e) {  // also a UsageError
    std::cerr << "mesh-node: " << e.what() << "\n";
    return 2;
  } catch (const std::invalid_argument& e) {  // settings the Mesh refuses
    std::cerr << "mesh-node: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "mesh-node: " << e.what() << "\n";
    return 1;
  }
}
