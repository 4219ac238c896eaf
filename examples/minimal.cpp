// The smallest complete program: a CustomAgent that answers, and a plain
// agent whose run() coroutine asks it. Copy it to start your own.
//
// As it is (P2P_ENABLED unset) both agents live in this process and talk in
// memory. With P2P_ENABLED=true, JC_SWIM_PORT and JC_SEED_NODES set, the
// same program joins a cluster and "greeter" may be an agent on any node.
//
// Every agent runs on the Mesh's executor (a few threads for any number of
// agents); a handler or run() that awaits (co_await) frees its thread.
#include <chrono>
#include <exception>
#include <iostream>
#include <optional>
#include <string>

#include "mesh/mesh.hpp"

// A message-driven agent: the Mesh calls its handlers on the agent's strand.
class Greeter : public mesh::CustomAgent {
 public:
  Greeter() : CustomAgent({.role = "greeter", .capabilities = {"greet"}}) {}

 protected:
  // A request: the returned value is the response. An exception (here: a
  // "name" that is not a string) answers Rejected and restarts the agent.
  mesh::Task<std::optional<mesh::Json>> on_request(const mesh::IncomingMessage& m) override {
    co_return mesh::Json{{"text", "hello, " + m.data.value("name", std::string("stranger"))}};
  }
  // A notify: nothing to answer.
  mesh::Task<void> on_notify(const mesh::IncomingMessage& m) override {
    std::cout << id() << " was told by " << m.sender << ": " << m.data.dump() << std::endl;
    co_return;
  }
};

// A plain agent with work of its own: run() is a coroutine.
class Visitor : public mesh::Agent {
 public:
  explicit Visitor(mesh::Mesh& mesh) : Agent({.role = "visitor"}), mesh_(mesh) {}
  bool answered = false;

 protected:
  mesh::Task<void> run() override {
    for (const auto& peer : peers().discover(mesh::by_role("greeter"))) {
      std::cout << "found " << peer.card.agent_id << " on node " << peer.card.node << std::endl;
    }
    const mesh::Json hello = {{"name", "Ada"}};
    const auto reply = co_await peers().request("greeter", hello, std::chrono::seconds(5));
    std::cout << (reply ? reply->data.dump() : std::string("no answer")) << std::endl;
    answered = reply.has_value();
    peers().notify("greeter", {{"note", "thanks"}});
    co_await peers().sleep(std::chrono::milliseconds(200));  // let the notify arrive
    mesh_.request_stop();  // run_forever() in main returns
  }

 private:
  mesh::Mesh& mesh_;
};

int main() {
  try {
    // P2P_ENABLED, JC_SWIM_PORT, JC_SEED_NODES, JC_NODE_NAME, ... (node_config.hpp)
    auto mesh = mesh::Mesh::from_environment();
    mesh->add<Greeter>();
    auto& visitor = mesh->add<Visitor>(*mesh);
    mesh->run_forever();  // starts; until request_stop(), SIGINT or SIGTERM
    return visitor.answered ? 0 : 1;
  } catch (const std::exception& e) {  // bad configuration, a port in use, ...
    std::cerr << "minimal: " << e.what() << '\n';
    return 1;
  }
}
