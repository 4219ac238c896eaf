// mesh-demo: a tour of PeerClient in one process, no configuration needed.
//
// Five agents share one Mesh with P2P off (they talk in memory, no sockets):
// three scouts, an analyst (examples/agents.hpp), a slow validator, and a
// "guide" (a plain Agent whose run() coroutine is the tour) that shows each
// call: discovery with every strategy, notify, request/response, broadcast,
// ask_async/check_inbox and request_all under its three policies, each
// awaited with co_await. Runs for a few seconds and exits 0, or 1 when a
// step did not work.
#include <chrono>
#include <exception>
#include <functional>
#include <iostream>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "agents.hpp"
#include "mesh/cli.hpp"
#include "mesh/mesh.hpp"

namespace {

using namespace std::chrono_literals;
using examples::say;
using mesh::Json;

// A validator that takes its time: request_all's policies differ on it.
class SlowValidator : public mesh::CustomAgent {
 public:
  SlowValidator()
      : CustomAgent({.role = "validator", .capabilities = {"validate"}, .description = "careful but slow"}) {}

 protected:
  mesh::Task<std::optional<Json>> on_request(const mesh::IncomingMessage&) override {
    co_await peers().sleep(1500ms);  // thinking; other messages are handled meanwhile
    co_return Json{{"valid", true}, {"checked_by", id()}, {"node", peers().node_name()}};
  }
  void on_peer_notify(const mesh::IncomingMessage& m) override {
    say("[" + peers().node_name() + "] " + id() + " ← " + m.sender + " (node " + m.sender_node + "): " + m.data.dump());
  }
};

struct Failed : std::runtime_error {
  using std::runtime_error::runtime_error;
};

void check(bool ok, const std::string& what) {
  if (!ok) throw Failed(what);
}

// Waits (without holding a thread) until pred() holds or `limit` passes.
mesh::Task<bool> eventually(mesh::PeerClient& peers, std::function<bool()> pred, std::chrono::milliseconds limit = 5s) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > until) co_return false;
    co_await peers.sleep(10ms);
  }
  co_return true;
}

void step(const std::string& title) { say("\n== " + title); }

std::string ids(const std::vector<mesh::PeerInfo>& peers) {
  if (peers.empty()) return "(none)";
  std::string out;
  for (const auto& p : peers) out += (out.empty() ? "" : ", ") + p.card.agent_id;
  return out;
}

std::string join(const std::set<std::string>& items) {
  std::string out;
  for (const auto& s : items) out += (out.empty() ? "" : ", ") + s;
  return out;
}

long long ms_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t).count();
}

std::string describe(const mesh::GatherResult& r) {
  std::string out = std::to_string(r.responses.size()) + " answered (";
  std::string first;
  for (const auto& a : r.responses) first += (first.empty() ? "" : ", ") + a.peer.card.agent_id;
  out += first + "), " + std::to_string(r.missing.size()) + " not waited for or missing, satisfied: " +
         (r.satisfied ? "yes" : "no");
  return out;
}

struct Cast {
  examples::ScoutAgent* scout_a;
  examples::ScoutAgent* scout_b;
  examples::ScoutAgent* scout_c;
  examples::AnalystAgent* analyst;
};

mesh::Task<void> tour(mesh::Mesh& mesh, mesh::Agent& guide, const Cast& cast) {
  auto& scout_a = *cast.scout_a;
  auto& analyst = *cast.analyst;
  mesh::PeerClient& peers = guide.peers();

  step("1. Six agents in one mesh (node \"demo\", P2P off: in memory, no sockets)");
  for (const auto* agent : mesh.agents()) {
    std::string caps;
    for (const auto& c : agent->capabilities()) caps += (caps.empty() ? "" : ", ") + c;
    say("   " + agent->id() + "  role " + agent->role() + (caps.empty() ? "" : ", can " + caps));
  }

  step("2. Discovery, as the guide (" + guide.id() + ") sees it: never itself");
  const auto roles = peers.list_roles();
  say("   list_roles()                          " + join(roles));
  check(roles.contains("scout") && roles.contains("analyst") && !roles.contains("guide"), "list_roles");
  say("   list_peers()                          " + std::to_string(peers.list_peers().size()) + " peers");
  const auto first = peers.discover(mesh::by_role("scout"));
  say("   discover(role scout, first)           " + ids(first));
  check(first.size() == 3, "discover(role scout) found " + std::to_string(first.size()));
  for (int i = 0; i < 3; ++i) {
    say("   discover(role scout, round_robin)     " + ids(peers.discover(mesh::by_role("scout"), "round_robin")));
  }
  say("   discover(capability validate, random) " +
      ids(peers.discover(mesh::by_capability("validate"), mesh::Strategy::Random)));
  peers.record_peer_usage(scout_a.id());
  say("   record_peer_usage(" + scout_a.id() + "), then");
  const auto least = peers.discover(mesh::by_role("scout"), "least_recent");
  say("   discover(role scout, least_recent)    " + ids(least));
  check(least.back().card.agent_id == scout_a.id(), "least_recent did not put the used scout last");
  const auto both = peers.discover({.role = "scout", .capability = "validate"});
  say("   discover(role scout + cap validate)   " + ids(both));
  const auto an = peers.get_peer("analyst");
  check(an.has_value(), "get_peer(analyst)");
  say("   get_peer(\"analyst\")                   " + an->card.agent_id + " (" + mesh::peer_to_json(*an).dump() + ")");
  say("   discover(role wizard)                 " + ids(peers.discover(mesh::by_role("wizard"))));
  try {
    peers.discover(mesh::by_role("scout"), "fastest");
    check(false, "an unknown strategy was accepted");
  } catch (const std::invalid_argument& e) {
    say("   discover(role scout, \"fastest\")       error: " + std::string(e.what()));
  }

  step("3. notify (fire-and-forget): the guide tells " + scout_a.id() + " to search");
  say("   (the scout asks another scout to validate its find, by request, then notifies the analyst)");
  check(peers.notify(scout_a.id(), {{"kind", "search"}}), "notify scout");
  check(co_await eventually(peers, [&] { return analyst.findings() >= 1; }), "the analyst got no finding");
  // A role as the target: the caller's default strategy picks the scout.
  peers.set_default_strategy("least_recent");
  say("   set_default_strategy(\"least_recent\"), then notify(\"scout\", ...): the least recently used scout");
  check(peers.notify("scout", {{"kind", "search"}}), "notify by role");
  check(co_await eventually(peers, [&] { return analyst.findings() >= 2; }), "the analyst got no second finding");

  step("4. request / response: the guide asks the analyst for a summary");
  const Json summary_please = {{"kind", "summary"}}, trace = {{"trace", "demo-4"}};
  const auto summary = co_await peers.request("analyst", summary_please, 2s, trace);
  check(summary.has_value(), "no summary");
  say("   response from " + summary->sender + ": " + summary->data.dump());
  say("   context carried back: " + summary->context.dump());
  check(summary->data.value("findings", 0) >= 2, "summary counts");

  step("5. broadcast: one copy to every other agent");
  const auto copies = peers.broadcast({{"news", "a storm is coming"}});
  say("   broadcast() accepted " + std::to_string(copies) + " copies");
  check(copies == 5, "broadcast reached " + std::to_string(copies) + " agents, expected 5");
  co_await peers.sleep(300ms);  // let the agents print what they got

  step("6. ask_async / check_inbox: ask the slow validator, keep working, collect later");
  const auto ask_id = peers.ask_async("validator", {{"kind", "validate"}, {"item", {{"number", 1}}}}, 5s);
  say("   ask_async() returned request id " + ask_id);
  const auto now_status = co_await peers.check_inbox_status(ask_id, 0ms, false);
  say(std::string("   check_inbox right away: ") +
      (now_status.status == mesh::AskStatus::Pending ? "not yet (pending)" : "already there"));
  const auto later = co_await peers.check_inbox(ask_id, 3s);
  check(later.has_value(), "check_inbox got no answer");
  say("   check_inbox(id, 3 s): " + later->data.dump());
  const auto again = co_await peers.check_inbox_status(ask_id);
  say(std::string("   check_inbox again: ") + (again.status == mesh::AskStatus::Unknown ? "unknown (removed once read)" : "still there"));

  step("7. request_all: the same question to every validator (3 scouts + the slow one)");
  const Json question = {{"kind", "validate"}, {"item", {{"number", 4}, {"what", "a safe camp"}}}};
  for (const auto& [name, policy] : {std::pair{std::string("all     "), mesh::GatherPolicy::all(3s)},
                                     std::pair{std::string("first_k 2"), mesh::GatherPolicy::first_k(2, 3s)},
                                     std::pair{std::string("quorum  "), mesh::GatherPolicy::quorum(3s)}}) {
    const auto t = std::chrono::steady_clock::now();
    const auto result = co_await peers.request_all(mesh::by_capability("validate"), question, policy);
    say("   " + name + ": " + describe(result) + ", in " + std::to_string(ms_since(t)) + " ms");
    check(result.satisfied, name + " not satisfied");
  }

  step("8. The analyst's tally");
  const auto before = analyst.findings();
  for (auto* scout : {cast.scout_a, cast.scout_b, cast.scout_c}) peers.notify(scout->id(), {{"kind", "search"}});
  check(co_await eventually(peers, [&] { return analyst.findings() >= before + 3; }), "a search did not report");
  const auto tally = co_await peers.request(analyst.id(), summary_please, 2s);
  check(tally.has_value(), "no tally");
  say("   " + tally->data.dump());
  (void)mesh;
}

// The agent the demo speaks through: its run() is the tour, then it stops
// the mesh (run_forever in main returns).
class Guide : public mesh::Agent {
 public:
  Guide(mesh::Mesh& mesh, Cast cast)
      : Agent({.role = "guide", .description = "the demo's narrator"}), mesh_(mesh), cast_(cast) {}
  bool passed = false;

 protected:
  mesh::Task<void> run() override {
    const auto started = std::chrono::steady_clock::now();
    try {
      co_await tour(mesh_, *this, cast_);
      passed = true;
      say("\ndemo finished in " + std::to_string(ms_since(started)) + " ms: every call worked.");
    } catch (const Failed& e) {
      std::cerr << "mesh-demo: FAILED: " << e.what() << '\n';
    } catch (const std::exception& e) {
      std::cerr << "mesh-demo: " << e.what() << '\n';
    }
    mesh_.request_stop();
  }

 private:
  mesh::Mesh& mesh_;
  Cast cast_;
};

bool run_demo() {
  mesh::NodeConfig config;  // P2P off: one process, agents talk in memory
  config.node_name = "demo";
  config.p2p_enabled = false;
  mesh::MeshOptions options;
  options.seed = 7;  // the "random" strategy's shuffle replays
  mesh::Mesh mesh(config, options);

  Cast cast{&mesh.add<examples::ScoutAgent>(), &mesh.add<examples::ScoutAgent>(), &mesh.add<examples::ScoutAgent>(),
            &mesh.add<examples::AnalystAgent>()};
  mesh.add<SlowValidator>();
  auto& guide = mesh.add<Guide>(mesh, cast);
  mesh.run_forever();  // starts the mesh; returns once the guide is done (or on Ctrl-C)
  return guide.passed;
}

}  // namespace

int main(int argc, char** argv) {
  // No options: --help and --version only, like every program here.
  CLI::App app(
      "A tour of PeerClient in one process: six agents (P2P off, no sockets) use every\n"
      "call; see examples/README.md.");
  mesh::cli::setup(app, "mesh-demo");
  try {
    if (auto done = mesh::cli::parse(app, argc, argv)) return *done;
  } catch (const mesh::UsageError& e) {
    std::cerr << "mesh-demo: " << e.what() << '\n';
    return 2;
  }
  try {
    return run_demo() ? 0 : 1;
  } catch (const std::exception& e) {
    std::cerr << "mesh-demo: " << e.what() << '\n';
  }
  return 1;
}
