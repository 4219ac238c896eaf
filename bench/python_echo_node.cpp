// python-echo-node: the C++ side of bench/python_binding.py. One node
// (configured from the environment: P2P_ENABLED, JC_SWIM_HOST,
// JC_SWIM_PORT, JC_SEED_NODES, ...) hosting one agent of role "echo" that
// answers each request with its payload, as the pyzmq + json echo the
// benchmark compares with does. Prints "ready <agent_id>" once started;
// runs until SIGINT / SIGTERM (a graceful leave).
#include <exception>
#include <iostream>
#include <optional>

#include "mesh/mesh.hpp"

namespace {

class Echo : public mesh::CustomAgent {
 public:
  Echo() : CustomAgent({.role = "echo", .capabilities = {"echo"}, .description = "answers with the request"}) {}

 protected:
  std::optional<mesh::Json> on_peer_request(const mesh::IncomingMessage& message) override { return message.data; }
};

}  // namespace

int main() {
  try {
    auto mesh = mesh::Mesh::from_environment();
    auto& echo = mesh->add<Echo>();
    mesh->start();
    std::cout << "ready " << echo.id() << std::endl;
    mesh->run_forever();
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "python-echo-node: " << e.what() << "\n";
    return 1;
  }
}
