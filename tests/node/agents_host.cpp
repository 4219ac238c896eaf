// mesh_agents_host: a test program that hosts a Mesh with three agents and
// serves its admin endpoint with MeshAdmin (GET /v1/agents, POST /v1/send,
// /v1/request) beside /healthz. Configured like mesh-node (flags, JC_*
// environment, P2P_ENABLED). Agents, each "<role>-<node name>":
//   echo  (capabilities echo, test): answers {"echo": data, "context": ctx}
//   sink  (capability log): keeps notifies; a request answers
//         {"received": [data, ...]} in arrival order
//   slow  (capability test): answers {"slept": true} after 1 s
// Exit codes: 0 after SIGINT / SIGTERM, 1 when it cannot start, 2 on bad
// configuration.
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <iostream>
#include <mutex>
#include <thread>
#include <vector>

#include "mesh/admin_server.hpp"
#include "mesh/mesh.hpp"
#include "mesh/mesh_admin.hpp"
#include "mesh/node_config.hpp"

namespace {

class Echo : public mesh::CustomAgent {
 public:
  explicit Echo(const std::string& node)
      : CustomAgent({.role = "echo",
                     .capabilities = {"echo", "test"},
                     .description = "answers with what it got",
                     .agent_id = "echo-" + node}) {}

 protected:
  std::optional<mesh::Json> on_peer_request(const mesh::IncomingMessage& m) override {
    return mesh::Json{{"echo", m.data}, {"context", m.context}};
  }
};

class Sink : public mesh::CustomAgent {
 public:
  explicit Sink(const std::string& node)
      : CustomAgent({.role = "sink",
                     .capabilities = {"log"},
                     .description = "keeps notifies",
                     .agent_id = "sink-" + node}) {}

 protected:
  void on_peer_notify(const mesh::IncomingMessage& m) override {
    std::lock_guard lock(mu_);
    received_.push_back(m.data);
  }
  std::optional<mesh::Json> on_peer_request(const mesh::IncomingMessage&) override {
    std::lock_guard lock(mu_);
    return mesh::Json{{"received", received_}};
  }

 private:
  std::mutex mu_;
  std::vector<mesh::Json> received_;
};

class Slow : public mesh::CustomAgent {
 public:
  explicit Slow(const std::string& node)
      : CustomAgent({.role = "slow",
                     .capabilities = {"test"},
                     .description = "answers after a second",
                     .agent_id = "slow-" + node}) {}

 protected:
  std::optional<mesh::Json> on_peer_request(const mesh::IncomingMessage&) override {
    std::this_thread::sleep_for(std::chrono::seconds(1));
    return mesh::Json{{"slept", true}};
  }
};

int run(const mesh::NodeConfig& cfg) {
  namespace asio = boost::asio;
  asio::io_context io;
  auto work = asio::make_work_guard(io);
  mesh::AdminServer admin(io, cfg.admin_host, cfg.admin_port);
  mesh::Mesh node(cfg);
  node.add<Echo>(cfg.node_name);
  node.add<Sink>(cfg.node_name);
  node.add<Slow>(cfg.node_name);
  mesh::MeshAdmin agents_admin(node, admin);
  admin.route("/healthz", [](const mesh::HttpRequest&) {
    return mesh::HttpResponse::json(R"({"status":"ok"})");
  });
  node.start();
  admin.start();
  std::thread io_thread([&] { io.run(); });
  std::cerr << "mesh_agents_host: node " << cfg.node_name << " admin on http://"
            << admin.endpoint() << std::endl;
  node.run_forever();
  asio::post(io, [&] { admin.stop(); });
  work.reset();
  io_thread.join();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const std::vector<std::string> args(argv + 1, argv + argc);
    const mesh::NodeConfig cfg = mesh::load_node_config(args, mesh::current_environment());
    return run(cfg);
  } catch (const mesh::ConfigError& e) {
    std::cerr << "mesh_agents_host: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "mesh_agents_host: " << e.what() << "\n";
    return 1;
  }
}
