// mesh-node: runs one node of the mesh. For now that is SWIM membership
// (mesh::swim::Membership) and the admin HTTP endpoint; agents and the
// ZeroMQ transport come with later issues. docs/mesh-node.md is the manual.
//
// Threads: one thread runs the io_context (the SWIM driver, the admin
// endpoint, the signal set). The main thread waits for a stop reason and
// then performs the graceful leave, which blocks until the leave broadcast
// went out; that wait must not happen on the io thread, which does the
// sending. Admin requests that need a membership snapshot are answered from
// a one-thread worker, because Membership's snapshot calls post to its
// strand and wait: made from the io thread itself they would wait on work
// queued behind them.
//
// Exit codes: 0 after a signal (graceful leave), 1 when the node cannot
// start or fails while running, 2 on bad configuration.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/thread_pool.hpp>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <mutex>
#include <optional>
#include <random>
#include <spdlog/spdlog.h>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "mesh/admin_server.hpp"
#include "mesh/logging.hpp"
#include "mesh/member_json.hpp"
#include "mesh/metrics.hpp"
#include "mesh/node_config.hpp"
#include "mesh/swim/membership.hpp"

#ifndef MESH_VERSION
#define MESH_VERSION "unknown"
#endif

namespace mesh {
namespace {

namespace asio = boost::asio;

// Long enough for the leave broadcast to reach everyone through gossip on
// a LAN (retransmits x gossip interval is well under a second for tens of
// nodes), short enough that an orchestrator's stop timeout (10 s in
// Docker and systemd) is not reached.
constexpr std::chrono::milliseconds kLeaveTimeout{5000};

constexpr const char* kUsage =
    "Usage: mesh-node [options]\n"
    "Runs one node of the mesh: SWIM membership (memberlist/Serf compatible)\n"
    "and an admin HTTP endpoint (GET /v1/members, /v1/self, /healthz, /metrics).\n"
    "\n"
    "  --check-config           validate the configuration (an unknown JC_* variable in\n"
    "                           the environment is an error), print it as JSON and exit\n"
    "  --version                print the version and exit\n"
    "  --help                   print this help and exit\n"
    "\n";

// Text by default, JSON lines with JC_LOG_FORMAT=json (mesh/logging.hpp).
void setup_logging(const NodeConfig& cfg) {
  LoggingOptions o;
  o.format = cfg.log_format;
  o.level = cfg.log_level;
  o.node_name = cfg.node_name;
  o.logger_name = "mesh-node";
  configure_logging(o);
}

// Why the node is stopping; set once, by whoever sees it first.
class StopReason {
 public:
  void set(std::string why, bool failure) {
    std::lock_guard lock(mutex_);
    if (why_) return;
    why_ = std::move(why);
    failure_ = failure;
    cv_.notify_all();
  }
  // Blocks until set; returns whether it is a failure.
  bool wait(std::string& why) {
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [&] { return why_.has_value(); });
    why = *why_;
    return failure_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  std::optional<std::string> why_;
  bool failure_ = false;
};

const char* signal_name(int sig) {
  return sig == SIGTERM ? "SIGTERM" : sig == SIGINT ? "SIGINT" : "signal";
}

std::uint64_t random_seed() {
  std::random_device rd;
  const auto now = static_cast<std::uint64_t>(
      std::chrono::steady_clock::now().time_since_epoch().count());
  return (static_cast<std::uint64_t>(rd()) << 32 ^ rd()) ^ now ^
         (static_cast<std::uint64_t>(::getpid()) << 17);
}

swim::NetOptions net_options(const NodeConfig& c) {
  swim::NetOptions net;
  net.bind_host = c.swim_host;
  net.bind_port = c.swim_port;
  net.advertise_port = c.advertise_port;
  if (!c.advertise_host.empty()) {
    net.advertise_host = c.advertise_host;
  } else if (auto ip = default_advertise_host(c)) {
    net.advertise_host = *ip;
  } else {
    throw ConfigError("advertise_host: swim_host " + c.swim_host +
                      " is not an address peers can use and no private IPv4 address was found;"
                      " set JC_ADVERTISE_HOST or --advertise-host");
  }
  if (!c.gossip_key.empty()) {
    net.keyring = swim::Keyring({swim::Bytes(c.gossip_key.begin(), c.gossip_key.end())});
  }
  return net;
}

// Runs `make` on a worker thread and answers with what it returns; a
// throw becomes a 500 instead of ending the process (an exception that
// leaves an Asio handler on a thread pool calls std::terminate).
template <class Make>
void answer(const AdminServer::Respond& respond, Make&& make) {
  try {
    respond(make());
  } catch (const std::exception& e) {
    respond(HttpResponse::error(500, e.what()));
  } catch (...) {
    respond(HttpResponse::error(500, "snapshot failed"));
  }
}

int run(const NodeConfig& cfg) {
  asio::io_context io;
  auto work = asio::make_work_guard(io);

  swim::Config sc = swim::Config::for_profile(cfg.profile);
  sc.name = cfg.node_name;
  const swim::NetOptions net = net_options(cfg);
  // Both binds happen here, before anything runs; either may throw.
  AdminServer admin(io, cfg.admin_host, cfg.admin_port);
  swim::Membership membership(io, sc, net, random_seed());
  // If start-up throws from here on, the io_context has never run, and
  // Membership's destructor waits for its strand unless the io_context is
  // stopped: stop it first (this guard is destroyed before `membership`).
  struct StopOnUnwind {
    asio::io_context& io;
    ~StopOnUnwind() { io.stop(); }
  } stop_on_unwind{io};

  std::atomic<bool> leaving{false};
  // See the file comment: snapshots are taken off the io thread.
  asio::thread_pool snapshot_worker(1);
  admin.route("/healthz", [&](const HttpRequest&) {
    if (leaving) return HttpResponse::json(R"({"status":"leaving"})", 503);
    return HttpResponse::json(R"({"status":"ok"})");
  });
  admin.route_async("/v1/members", [&](const HttpRequest&, AdminServer::Respond respond) {
    asio::post(snapshot_worker, [&membership, respond = std::move(respond)] {
      answer(respond, [&] {
        nlohmann::json list = nlohmann::json::array();
        for (const auto& m : membership.members()) list.push_back(member_json(m));
        return HttpResponse::from_json(list);
      });
    });
  });
  // GET /metrics (Prometheus text format), scraped on a thread of its own.
  auto metrics = std::make_shared<Metrics>();
  metrics->watch(membership);
  std::optional<MetricsEndpoint> metrics_endpoint;
  metrics_endpoint.emplace(admin, metrics);
  admin.route_async("/v1/self", [&](const HttpRequest&, AdminServer::Respond respond) {
    asio::post(snapshot_worker, [&membership, respond = std::move(respond)] {
      answer(respond, [&] {
        return HttpResponse::from_json(self_json(membership.self(), membership.health_score(),
                                                 membership.node_stats(), membership.driver_stats()));
      });
    });
  });

  StopReason stop;
  asio::signal_set signals(io, SIGINT, SIGTERM);
  std::function<void(const boost::system::error_code&, int)> on_signal =
      [&](const boost::system::error_code& ec, int sig) {
        if (ec) return;
        if (leaving.exchange(true)) {
          // A second signal while leaving: the operator does not want to
          // wait. Skip the rest of the leave.
          spdlog::warn("second {}: exiting without finishing the leave", signal_name(sig));
          spdlog::default_logger()->flush();
          std::_Exit(1);
        }
        stop.set(std::string("received ") + signal_name(sig), false);
        signals.async_wait(on_signal);
      };
  signals.async_wait(on_signal);

  // Membership logs member events and join/leave progress itself.
  membership.start(cfg.tags);
  admin.start();
  const bool v6 = cfg.swim_host.find(':') != std::string::npos;
  spdlog::info("node {} ({} profile): SWIM on {}{}{}:{}, advertised as {}, admin on http://{}",
               cfg.node_name, swim::to_string(cfg.profile), v6 ? "[" : "", cfg.swim_host,
               v6 ? "]" : "", membership.bound_port(), membership.advertise().to_string(), admin.endpoint());
  if (cfg.seeds.empty()) {
    spdlog::info("no seeds: waiting to be joined");
  } else {
    membership.join(cfg.seeds);
  }

  std::thread io_thread([&] {
    try {
      io.run();
    } catch (const std::exception& e) {
      stop.set(std::string("failure on the I/O thread: ") + e.what(), true);
      // Stopped, so that Membership's snapshot and shutdown calls do not
      // wait for a strand nobody runs.
      io.stop();
    }
  });

  std::string why;
  const bool failed = stop.wait(why);
  leaving = true;
  if (failed) {
    spdlog::error("{}", why);
  } else {
    spdlog::info("{}: leaving the cluster", why);
  }
  // New admin requests are refused from here on; requests already handed
  // to the worker finish while the io thread still runs.
  asio::post(io, [&] { admin.stop(); });
  snapshot_worker.join();
  metrics_endpoint.reset();  // waits for a scrape in progress
  // A leave that times out is still an orderly exit (exit code 0): the
  // others will notice by probing, as for any failure.
  if (!failed) membership.leave(kLeaveTimeout);
  membership.shutdown();
  work.reset();
  io.stop();
  io_thread.join();
  return failed ? 1 : 0;
}

// Levenshtein distance, for "did you mean" on a mistyped variable name.
std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diag = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

// --check-config is what deployments run to validate their environment
// (docs/operations.md), so there a JC_* variable the loader does not read
// is an error: a typo such as JC_SEEDS_NODES would otherwise be ignored in
// silence and the node started alone. A running node does not check, so
// that a stray variable cannot keep it from starting.
void reject_unknown_variables(const Environment& env) {
  const auto& known = config_environment_variables();
  for (const auto& [name, value] : env) {
    if (name.rfind("JC_", 0) != 0) continue;
    if (std::find(known.begin(), known.end(), name) != known.end()) continue;
    std::string hint;
    std::size_t best = 4;  // suggest only a near miss
    for (const auto& k : known) {
      const std::size_t d = edit_distance(name, k);
      if (d < best) {
        best = d;
        hint = k;
      }
    }
    throw ConfigError(name + ": unknown configuration variable" +
                      (hint.empty() ? std::string(" (mesh-node --help lists them)")
                                    : " (did you mean " + hint + "?)"));
  }
}

}  // namespace
}  // namespace mesh

int main(int argc, char** argv) {
  std::vector<std::string> args;
  bool check_config = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::cout << mesh::kUsage << mesh::config_usage();
      return 0;
    }
    if (a == "--version") {
      std::cout << "mesh-node " << MESH_VERSION << "\n";
      return 0;
    }
    if (a == "--check-config") {
      check_config = true;
      continue;
    }
    args.push_back(a);
  }
  try {
    const mesh::Environment env = mesh::current_environment();
    if (check_config) mesh::reject_unknown_variables(env);
    const mesh::NodeConfig cfg = mesh::load_node_config(args, env);
    if (check_config) {
      std::cout << mesh::to_json_string(cfg) << "\n";
      return 0;
    }
    mesh::setup_logging(cfg);
    return mesh::run(cfg);
  } catch (const mesh::ConfigError& e) {
    std::cerr << "mesh-node: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "mesh-node: " << e.what() << "\n";
    return 1;
  }
}
