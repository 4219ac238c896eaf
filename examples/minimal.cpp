// The smallest complete program: a CustomAgent that answers, and a plain
// agent this main() speaks through. Copy it to start your own.
//
// As it is (P2P_ENABLED unset) both agents live in this process and talk in
// memory. With P2P_ENABLED=true, JC_SWIM_PORT and JC_SEED_NODES set, the
// same program joins a cluster and "greeter" may be an agent on any node.
#include <chrono>
#include <exception>
#include <iostream>
#include <optional>
#include <string>
#include <thread>

#include "mesh/mesh.hpp"

// A message-driven agent: the Mesh calls its handlers on the agent's thread.
class Greeter : public mesh::CustomAgent {
 public:
  Greeter() : CustomAgent({.role = "greeter", .capabilities = {"greet"}}) {}

 protected:
  // A request: the returned value is the response. An exception (here: a
  // "name" that is not a string) answers Rejected and restarts the agent.
  std::optional<mesh::Json> on_peer_request(const mesh::IncomingMessage& m) override {
    return mesh::Json{{"text", "hello, " + m.data.value("name", std::string("stranger"))}};
  }
  // A notify: nothing to answer.
  void on_peer_notify(const mesh::IncomingMessage& m) override {
    std::cout << id() << " was told by " << m.sender << ": " << m.data.dump() << std::endl;
  }
};

int main() {
  try {
    // P2P_ENABLED, JC_SWIM_PORT, JC_SEED_NODES, JC_NODE_NAME, ... (node_config.hpp)
    auto mesh = mesh::Mesh::from_environment();
    mesh->add<Greeter>();
    // A plain Agent does nothing by itself: main() uses its PeerClient.
    auto& me = mesh->add<mesh::Agent>(mesh::AgentSpec{.role = "visitor"});
    mesh->start();

    for (const auto& peer : me.peers().discover(mesh::by_role("greeter"))) {
      std::cout << "found " << peer.card.agent_id << " on node " << peer.card.node << std::endl;
    }
    const auto reply = me.peers().request("greeter", {{"name", "Ada"}}, std::chrono::seconds(5));
    std::cout << (reply ? reply->data.dump() : std::string("no answer")) << std::endl;
    me.peers().notify("greeter", {{"note", "thanks"}});

    std::this_thread::sleep_for(std::chrono::milliseconds(200));  // let the notify arrive
    mesh->stop();  // or mesh->run_forever(): until SIGINT / SIGTERM
    return reply ? 0 : 1;
  } catch (const std::exception& e) {  // bad configuration, a port in use, ...
    std::cerr << "minimal: " << e.what() << '\n';
    return 1;
  }
}
