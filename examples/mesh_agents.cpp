// mesh-agents: hosts a chosen set of the example agents on one node.
//
//   mesh-agents --agents scout,analyst,scout [--tick 2] [--duration 30] [config flags]
//
// Configuration is the node's usual one (node_config.hpp): P2P_ENABLED,
// JC_SWIM_HOST, JC_SWIM_PORT, JC_SEED_NODES, JC_NODE_NAME, JC_PROFILE, ...
// or the same as flags (--swim-port, --seeds, --node-name, --config FILE).
// A cluster is three commands (examples/README.md). Each line of output is
// one thing an agent did or one change of the directory this node sees.
// Runs until SIGINT / SIGTERM (a graceful leave) or --duration seconds.
// The node's admin endpoint (admin_host:admin_port, by default 127.0.0.1
// and JC_SWIM_PORT + 2000) serves the admin API every node serves
// (mesh::AdminEndpoint): GET /healthz, /metrics (Prometheus), /v1/members,
// /v1/self, /v1/agents, POST /v1/send, /v1/request: `meshctl
// members|peers|send|request --admin host:port` against this node. Logs
// follow JC_LOG_LEVEL and JC_LOG_FORMAT (text or json lines).
// `--version` / `-v` prints the version, `--help` every flag.
// Bad flags or configuration: one line on stderr, exit 2; a port in use
// (SWIM, ZeroMQ or admin): exit 1.
#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <mutex>
#include <stdexcept>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "agents.hpp"
#include "mesh/admin_endpoint.hpp"
#include "mesh/cli.hpp"
#include "mesh/logging.hpp"
#include "mesh/mesh.hpp"

namespace {

using examples::say;

constexpr const char* kDescription =
    "Hosts a chosen set of the example agents on one node. Configuration is the\n"
    "node's usual one: the environment (P2P_ENABLED, JC_SWIM_HOST, JC_SWIM_PORT,\n"
    "JC_SEED_NODES, ...) or the flags below. The admin endpoint\n"
    "(JC_ADMIN_HOST:JC_ADMIN_PORT) answers meshctl members|peers|send|request.";

struct Options {
  std::vector<std::string> agents{"scout", "analyst"};
  double tick_s = 2;
  double duration_s = 0;  // 0: until a signal
  mesh::ConfigFlags config;
};

// Prints the changes of the directory this node sees (other nodes' agents).
void watch(mesh::PeerClient& peers) {
  const std::string me = "[" + peers.node_name() + "] ";
  peers.subscribe([&peers, me](const mesh::PeerEvent& e) {
    if (e.local) return;
    auto agent = [&] { return e.card ? e.card->agent_id + " (" + e.card->role + ")" : std::string("?"); };
    auto total = [&] {
      const auto all = peers.list_peers();
      const auto remote = std::count_if(all.begin(), all.end(), [](const mesh::PeerInfo& p) { return !p.local; });
      return "remote agents known: " + std::to_string(remote);
    };
    switch (e.kind) {
      case mesh::PeerEventKind::AgentAdded:
        say(me + "directory: + " + agent() + " on node " + e.node + "; " + total());
        break;
      case mesh::PeerEventKind::AgentRemoved:
        say(me + "directory: - " + agent() + " on node " + e.node + "; " + total());
        break;
      case mesh::PeerEventKind::NodeDead:
        say(me + "node " + e.node + " is DEAD: its agents left the directory; " + total());
        break;
      case mesh::PeerEventKind::NodeLeft:
        say(me + "node " + e.node + " left: its agents left the directory; " + total());
        break;
      case mesh::PeerEventKind::NodeSuspect:
        say(me + "node " + e.node + " is suspect (its agents stay listed, marked suspect)");
        break;
      case mesh::PeerEventKind::NodeJoined:
        say(me + "node " + e.node + " joined");
        break;
      case mesh::PeerEventKind::NodeAlive:
        say(me + "node " + e.node + " is alive again");
        break;
      case mesh::PeerEventKind::AgentConflict:
        say(me + "node " + e.node + " claims agent id " + (e.card ? e.card->agent_id : "?") +
            ", held elsewhere: ignored");
        break;
      case mesh::PeerEventKind::AgentUpdated:
        break;
    }
  });
}

int run(const Options& o) {
  const auto config = mesh::load_node_config(o.config, mesh::current_environment());
  mesh::configure_logging(config.log_format, config.log_level, config.node_name);
  mesh::Mesh mesh(config);

  const auto tick = std::chrono::milliseconds(static_cast<long long>(o.tick_s * 1000));
  std::vector<mesh::Agent*> hosted;
  for (const auto& kind : o.agents) {
    if (kind == "scout") {
      hosted.push_back(&mesh.add<examples::ScoutAgent>(tick));
    } else {
      hosted.push_back(&mesh.add<examples::AnalystAgent>());
    }
  }
  if (hosted.empty()) throw mesh::UsageError("--agents: nothing to host");
  watch(hosted.front()->peers());

  // The admin API every node serves (meshctl members | peers | send |
  // request, GET /metrics); binds now, so that a taken port fails before
  // the node joins anyone.
  mesh::AdminEndpoint admin(mesh);
  mesh.start();
  admin.start();
  std::string names;
  for (const auto* a : hosted) names += (names.empty() ? "" : ", ") + a->id();
  const std::string me = "[" + mesh.node_name() + "] ";
  if (config.p2p_enabled) {
    std::string seeds;
    for (const auto& s : config.seeds) seeds += (seeds.empty() ? "" : ",") + s;
    say(me + "node " + mesh.node_name() + " up: SWIM " + config.swim_host + ":" + std::to_string(mesh.swim_port()) +
        ", ZeroMQ port " + std::to_string(mesh.zmq_port()) + ", seeds " + (seeds.empty() ? "(none)" : seeds));
  } else {
    say(me + "node " + mesh.node_name() + " up: P2P off (agents talk in memory, this process only)");
  }
  say(me + "hosting " + names);
  say(me + "admin endpoint http://" + admin.endpoint() + " (meshctl members|peers --admin " + admin.endpoint() + ")");

  // --duration: a timer that ends run_forever, cut short when it returns.
  std::jthread timer;
  if (o.duration_s > 0) {
    const auto limit = std::chrono::milliseconds(static_cast<long long>(o.duration_s * 1000));
    timer = std::jthread([&mesh, limit](std::stop_token stop) {
      std::mutex m;
      std::condition_variable_any cv;
      std::unique_lock lock(m);
      if (!cv.wait_for(lock, stop, limit, [] { return false; }) && !stop.stop_requested()) mesh.request_stop();
    });
  }
  mesh.run_forever();  // stop() included: agents stop, the node leaves the cluster
  admin.stop();
  say(me + (config.p2p_enabled ? "stopped (left the cluster)" : "stopped"));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app(kDescription);
  mesh::cli::setup(app, "mesh-agents");
  Options options;
  app.add_option("--agents", options.agents,
                 "agents to host, comma-separated, repeats allowed (default scout,analyst); kinds: "
                 "scout (finds items, validates others'), analyst (collects findings)")
      ->type_name("LIST")
      ->delimiter(',')
      ->check(CLI::IsMember({"scout", "analyst"}));
  app.add_option("--tick", options.tick_s,
                 "how often each scout searches, in seconds (default 2; 0: never by itself)")
      ->type_name("S")
      ->transform(mesh::cli::number(0, 1e6, "seconds"));
  app.add_option("--duration", options.duration_s,
                 "stop (leaving the cluster) after S seconds (default: until SIGINT/SIGTERM)")
      ->type_name("S")
      ->transform(mesh::cli::number(0, 1e6, "seconds"));
  mesh::add_config_flags(app, options.config);
  try {
    if (auto done = mesh::cli::parse(app, argc, argv)) return *done;
    return run(options);
  } catch (const mesh::ConfigError& e) {  // also a UsageError
    std::cerr << "mesh-agents: " << e.what() << '\n';
    return 2;
  } catch (const std::invalid_argument& e) {
    std::cerr << "mesh-agents: " << e.what() << '\n';
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "mesh-agents: " << e.what() << '\n';
    return 1;
  }
}
