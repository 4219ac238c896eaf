// A bounded debate: two LLM-style agents argue in one governed thread
// until the mesh stops them (docs/conversations.md walks through it).
//
// The moderator opens a thread with a turn limit, a cost cap and a time to
// live, and passes each side's latest argument to the other side. Each
// debater "thinks" (a stand-in for a model call) and reports what its
// answer cost. No agent counts turns or adds up costs: the receiving node
// refuses the message that would go past a limit, and the moderator learns
// why. Debaters speak advisory; only the moderator, outside any advisory
// handling, may send the clerk an authority message, the verdict of record.
//
//   mesh-debate [--max-turns N] [--max-cost USD]
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <string>
#include <thread>

#include "mesh/mesh.hpp"

namespace {

using mesh::Json;

// A stand-in for a model: answers the other side's point with its own
// stance, and says what the call cost (USD per 1000 tokens, made up).
class Debater : public mesh::CustomAgent {
 public:
  Debater(std::string id, std::string stance)
      : CustomAgent({.role = "debater", .agent_id = std::move(id)}), stance_(std::move(stance)) {}

  mesh::Task<std::optional<Json>> on_request(const mesh::IncomingMessage& m) override {
    const std::string point = m.data.value("point", std::string());
    const std::size_t tokens = 200 + point.size() * 2;
    m.report_cost(static_cast<double>(tokens) * 0.002 / 1000 * 50);  // a pricey model
    co_return Json{{"point", id() + ": " + stance_ + " (turn " + std::to_string(m.thread().turn) + ")"}};
  }

 private:
  std::string stance_;
};

// Keeps the decisions of record; takes authority messages only.
class Clerk : public mesh::CustomAgent {
 public:
  Clerk() : CustomAgent({.role = "clerk", .agent_id = "clerk", .authority_only = true}) {}
  std::optional<Json> on_peer_request(const mesh::IncomingMessage& m) override {
    std::cout << "clerk: recorded verdict \"" << m.data.value("verdict", "") << "\" ("
              << mesh::to_string(m.message_class()) << ")\n";
    return Json{{"recorded", true}};
  }
};

class Moderator : public mesh::Agent {
 public:
  Moderator(std::uint32_t max_turns, double max_cost)
      : Agent({.role = "moderator", .agent_id = "moderator"}), max_turns_(max_turns), max_cost_(max_cost) {}
  std::atomic<bool> done{false};

 protected:
  mesh::Task<void> run() override {
    Json point = {{"point", "Should the cluster adopt governed conversations?"}};
    mesh::SendOptions options{.timeout = std::chrono::seconds(5),
                              .subject = "adopt governed conversations?",
                              .limits = {.max_turns = max_turns_,
                                         .ttl = std::chrono::minutes(1),
                                         .max_cost = max_cost_}};
    const char* sides[] = {"pro", "con"};
    double cost = 0;
    for (int turn = 0;; ++turn) {
      auto out = co_await peers().request_detailed(sides[turn % 2], point, options);
      if (!out.ok()) {
        std::cout << "moderator: the mesh stopped the debate: " << mesh::transport::to_string(out.error) << "\n";
        break;
      }
      cost += out.response->cost;
      std::cout << out.response->data["point"].get<std::string>() << "  [cost so far $" << cost << "]\n";
      options.thread = out.response->thread;  // the rest of the debate: the same thread
      point = out.response->data;
    }
    // Outside any advisory handling: the moderator may issue the verdict.
    // (Options and payloads are named, not temporaries in the co_await:
    // GCC 12 mishandles those.)
    const Json verdict = {{"verdict", "adopt, with limits"}};
    const mesh::SendOptions of_record{.message_class = mesh::MessageClass::Authority};
    auto recorded = co_await peers().request_detailed("clerk", verdict, of_record);
    std::cout << "moderator: verdict " << (recorded.ok() ? "recorded" : "refused") << "\n";
    done = true;
  }

 private:
  std::uint32_t max_turns_;
  double max_cost_;
};

}  // namespace

int main(int argc, char** argv) {
  std::uint32_t max_turns = 6;
  double max_cost = 1.0;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--max-turns") {
      max_turns = static_cast<std::uint32_t>(std::strtoul(argv[i + 1], nullptr, 10));
    } else if (flag == "--max-cost") {
      max_cost = std::strtod(argv[i + 1], nullptr);
    } else {
      std::cerr << "usage: mesh-debate [--max-turns N] [--max-cost USD]\n";
      return 2;
    }
  }
  mesh::NodeConfig config;
  config.node_name = "debate";  // one process, P2P off: the same rules hold across nodes
  mesh::Mesh mesh(config);
  mesh.add<Debater>("pro", "governed threads stop runaway loops");
  mesh.add<Debater>("con", "limits will cut good debates short");
  mesh.add<Clerk>();
  auto& moderator = mesh.add<Moderator>(max_turns, max_cost);
  mesh.start();
  for (int i = 0; i < 500 && !moderator.done; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  for (const auto& t : mesh.threads()) {
    std::cout << "thread " << t.id.to_string() << " \"" << t.subject << "\": " << t.turns << " turns, $" << t.spent
              << " spent, " << mesh::to_string(t.state);
    if (t.last_refusal != mesh::Refusal::None) std::cout << " (" << mesh::to_string(t.last_refusal) << ")";
    std::cout << "\n";
  }
  mesh.stop();
  return moderator.done ? 0 : 1;
}
