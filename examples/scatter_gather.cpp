// scatter-gather: one question to many agents, answers collected under a
// policy (PeerClient::request_all).
//
// Five "estimator" agents guess how long a trip takes; each answers after
// its own delay, and one never answers at all. A plain agent asks all of
// them three times:
//   all       waits for every estimator, up to the deadline (the silent one
//             is reported missing with Timeout);
//   first_k 2 returns as soon as two answered (the fastest two);
//   quorum    returns as soon as a majority (3 of 5) answered.
// "missing" lists who had not answered when the call returned (Timeout).
// One process, P2P off. Exits 0.
#include <chrono>
#include <exception>
#include <iostream>
#include <string>
#include <thread>
#include <utility>

#include "mesh/mesh.hpp"

namespace {

using namespace std::chrono_literals;
using mesh::Json;

class Estimator : public mesh::CustomAgent {
 public:
  // delay < 0: never answers.
  Estimator(std::string id, std::chrono::milliseconds delay, int guess)
      // One question at a time on its strand; while one awaits (thinks),
      // the next is taken up, so a late answer never delays the next round.
      : CustomAgent({.role = "estimator", .capabilities = {"estimate"}, .agent_id = std::move(id)}),
        delay_(delay),
        guess_(guess) {}

 protected:
  mesh::Task<std::optional<Json>> on_request(const mesh::IncomingMessage& m) override {
    if (delay_.count() < 0) co_return std::nullopt;  // keeps quiet: the caller's deadline decides
    co_await peers().sleep(delay_);                  // thinking, without holding a thread
    co_return Json{{"trip", m.data.value("trip", "")}, {"hours", guess_}};
  }

 private:
  std::chrono::milliseconds delay_;
  int guess_;
};

void show(const std::string& name, const mesh::GatherResult& r, std::chrono::steady_clock::duration took);

// Asks every estimator the same question under each policy, then stops.
class Planner : public mesh::Agent {
 public:
  explicit Planner(mesh::Mesh& mesh) : Agent({.role = "planner", .agent_id = "planner"}), mesh_(mesh) {}

 protected:
  mesh::Task<void> run() override {
    const Json question = {{"trip", "the mountain pass"}};
    const auto query = mesh::by_role("estimator");
    for (auto [name, policy] : {std::pair{"all (deadline 2 s)", mesh::GatherPolicy::all(2s)},
                                std::pair{"first_k 2", mesh::GatherPolicy::first_k(2, 2s)},
                                std::pair{"quorum", mesh::GatherPolicy::quorum(2s)}}) {
      const auto t = std::chrono::steady_clock::now();
      const auto result = co_await peers().request_all(query, question, policy);
      show(name, result, std::chrono::steady_clock::now() - t);
    }
    mesh_.request_stop();
  }

 private:
  mesh::Mesh& mesh_;
};

void show(const std::string& name, const mesh::GatherResult& r, std::chrono::steady_clock::duration took) {
  std::cout << name << ": " << (r.satisfied ? "satisfied" : "NOT satisfied") << " after "
            << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms\n";
  double sum = 0;
  for (const auto& a : r.responses) {
    std::cout << "  answer  " << a.peer.card.agent_id << ": " << a.response.data["hours"] << " h\n";
    sum += a.response.data.value("hours", 0.0);
  }
  for (const auto& m : r.missing) {
    std::cout << "  missing " << m.peer.card.agent_id << " (" << mesh::transport::to_string(m.error) << ")\n";
  }
  if (!r.responses.empty()) std::cout << "  mean of the answers: " << sum / static_cast<double>(r.responses.size()) << " h\n";
}

}  // namespace

int main() {
  try {
    mesh::NodeConfig config;
    config.node_name = "scatter";
    config.p2p_enabled = false;
    mesh::Mesh mesh(config);
    mesh.add<Estimator>("fast", 50ms, 4);
    mesh.add<Estimator>("quick", 150ms, 5);
    mesh.add<Estimator>("steady", 400ms, 6);
    mesh.add<Estimator>("slow", 900ms, 9);
    mesh.add<Estimator>("silent", -1ms, 0);
    mesh.add<Planner>(mesh);
    mesh.run_forever();  // until the planner is done
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "scatter-gather: " << e.what() << '\n';
    return 1;
  }
}
