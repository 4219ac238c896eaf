// A program built against an installed mesh, once through the CMake package
// (CMakeLists.txt here) and once through pkg-config: two agents in one
// process (P2P off: no sockets), one asks the other to double a number.
// Prints "answer: {"twice":42} from doubler-1" and exits 0.
#include <chrono>
#include <exception>
#include <iostream>
#include <optional>

#include "mesh/mesh.hpp"

namespace {

class Doubler : public mesh::CustomAgent {
 public:
  Doubler() : CustomAgent({.role = "doubler", .capabilities = {"double"}, .agent_id = "doubler-1"}) {}

 protected:
  std::optional<mesh::Json> on_peer_request(const mesh::IncomingMessage& m) override {
    return mesh::Json{{"twice", 2 * m.data.at("n").get<int>()}};
  }
};

}  // namespace

int main() {
  try {
    mesh::NodeConfig config;
    config.node_name = "consumer";
    config.p2p_enabled = false;
    mesh::Mesh mesh(config);
    mesh.add<Doubler>();
    auto& asker = mesh.add<mesh::Agent>(mesh::AgentSpec{.role = "asker"});
    mesh.start();
    const auto reply = asker.peers().request_blocking("doubler", {{"n", 21}}, std::chrono::seconds(30));
    mesh.stop();
    if (!reply) {
      std::cerr << "consumer: no answer from the doubler\n";
      return 1;
    }
    std::cout << "answer: " << reply->data.dump() << " from " << reply->sender << std::endl;
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "consumer: " << e.what() << '\n';
    return 1;
  }
}
