// Five mesh-node processes, each in its own network namespace (one host of
// a NetnsLab: 10.251.<lab>.<i+1> on a bridge), with the local profile (the loss test: lan); N0
// is the seed of N1..N4. Faults are applied on the bridge with nftables:
// a partition drops everything between two groups, loss drops each UDP/TCP
// frame with a probability. This kernel has no sch_netem, so there is no
// delay or jitter: only silence.
//
// The test process stays in the root namespace, which is not on the
// bridge, so it never talks to a node directly: it reads a node's
// /v1/members by running `ip netns exec <ns> meshctl members --json` in
// that node's namespace (the admin endpoint binds the host IP; traffic to
// one's own address stays on the host and is never dropped by the lab).
//
// Every wait is a predicate polled until a generous deadline; no test
// checks how long anything took. Declaration order makes the nodes die
// before the lab is removed, however a test ends.
#include <gtest/gtest.h>

#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "netns_lab.hpp"
#include "member_states.hpp"
#include "process.hpp"
#include "wait_for.hpp"

namespace mesh::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr int kNodes = 5;
// Every node has a namespace of its own, so they can all use the defaults.
constexpr int kSwimPort = 7946;
constexpr int kAdminPort = 9946;
constexpr auto kPoll = 1s;
constexpr auto kConverge = 60s;
// Local profile: suspicion lasts 3-18 s (18 s when nobody confirms, as on
// the minority side), and dead members are reaped 15 s later.
constexpr auto kDetect = 90s;
// After a heal, nothing is probed across the old cut: the members come
// back through the periodic reconnect of failed members (every 30 s, with
// probability failed/alive), so this takes tens of seconds.
constexpr auto kHeal = 150s;

class NetnsCluster {
 public:
  // `profile`: the partition test uses `local` (fast detection); the loss
  // test `lan`, the profile for a real LAN: `local` (one indirect probe,
  // 200 ms timeouts, 3 s suspicion) is not made for lossy links, and the
  // simulator declares live nodes dead with it at 20 % loss (123 false
  // deaths in 8 x 600 s of 5 nodes, against 0 with `lan`).
  explicit NetnsCluster(int n, std::string profile = "local")
      : lab_(n), profile_(std::move(profile)) {
    procs_.resize(static_cast<std::size_t>(n));
  }

  int size() const { return lab_.size(); }
  NetnsLab& lab() { return lab_; }
  static std::string name(int i) { return "N" + std::to_string(i); }

  std::vector<std::string> in_ns(int i, std::vector<std::string> argv) const {
    std::vector<std::string> full = lab_.exec_prefix(i);
    full.insert(full.end(), argv.begin(), argv.end());
    return full;
  }

  void start(int i) {
    const std::string host = lab_.ip(i);
    std::map<std::string, std::string> env = {
        {"JC_NODE_NAME", name(i)},       {"JC_SWIM_HOST", host},
        {"JC_ADVERTISE_HOST", host},     {"JC_ADMIN_HOST", host},
        {"JC_SWIM_PORT", std::to_string(kSwimPort)},
        {"JC_ADMIN_PORT", std::to_string(kAdminPort)},
        {"JC_PROFILE", profile_},         {"JC_LOG_LEVEL", "debug"}};
    if (i != 0) env["JC_SEED_NODES"] = lab_.ip(0) + ":" + std::to_string(kSwimPort);
    // `ip netns exec` execs the command in place: the child's pid is the node's.
    procs_.at(static_cast<std::size_t>(i)) =
        std::make_unique<Process>(in_ns(i, {MESH_NODE_BIN}), env, dir_.path(), name(i));
  }

  void start_all() {
    start(0);
    wait_for("N0's admin endpoint to answer", kConverge, [&] { return members(0).has_value(); });
    for (int i = 1; i < size(); ++i) start(i);
  }

  // Node i's view, name -> state, or nullopt when it does not answer.
  std::optional<std::map<std::string, std::string>> members(int i) const {
    const auto r = run_to_exit(
        in_ns(i, {MESHCTL_BIN, "members", "--json", "--admin",
                  lab_.ip(i) + ":" + std::to_string(kAdminPort)}),
        {}, 10s);
    if (r.exit_code != 0) return std::nullopt;
    return member_states(r.out);
  }

  // Every node's view in one pass (a missing entry: no answer).
  std::map<int, std::map<std::string, std::string>> views() const {
    std::map<int, std::map<std::string, std::string>> out;
    for (int i = 0; i < size(); ++i) {
      if (auto v = members(i)) out[i] = std::move(*v);
    }
    return out;
  }

  bool all_alive() const {
    for (int o = 0; o < size(); ++o) {
      auto view = members(o);
      if (!view) return false;
      for (int s = 0; s < size(); ++s) {
        auto it = view->find(name(s));
        if (it == view->end() || it->second != "alive") return false;
      }
    }
    return true;
  }

  bool all_running() {
    for (auto& p : procs_) {
      if (!p || !p->running()) return false;
    }
    return true;
  }

  void wait_for(const std::string& what, std::chrono::milliseconds timeout,
                const std::function<bool()>& pred) {
    mesh::test::wait_for_or_fail(what, timeout, pred, [this] { return describe(); }, kPoll);
  }

  std::string describe() const {
    std::string out;
    for (int i = 0; i < size(); ++i) {
      out += "  " + name(i) + " (" + lab_.ip(i) + ") sees:";
      if (auto view = members(i)) {
        for (const auto& [n, st] : *view) out += " " + n + "=" + st;
      } else {
        out += " (no answer)";
      }
      out += "\n";
      if (const auto& p = procs_.at(static_cast<std::size_t>(i))) out += p->log_tail(15);
    }
    return out;
  }

 private:
  NetnsLab lab_;  // declared first: removed after the nodes are killed
  std::string profile_;
  TempDir dir_;  // before procs_: logs outlive the processes
  std::vector<std::unique_ptr<Process>> procs_;
};

class NetnsClusterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string reason = NetnsLab::unavailable_reason();
    if (!reason.empty()) GTEST_SKIP() << reason;
  }

  static void converge(NetnsCluster& c) {
    c.start_all();
    c.wait_for("all alive everywhere", kConverge, [&] { return c.all_alive(); });
  }
};

// A 2|3 partition: each side declares the other dead; after the heal,
// everyone sees everyone alive again.
TEST_F(NetnsClusterTest, PartitionTwoThreeThenHeal) {
  NetnsCluster c(kNodes);
  converge(c);

  const std::vector<int> a = {0, 1};
  const std::vector<int> b = {2, 3, 4};
  c.lab().partition(a, b);

  // Every (observer, subject) pair across the cut must be seen dead at
  // least once: a dead member is reaped 15 s later, so the views need not
  // all show it in the same poll. Pairs are recorded as they are seen.
  std::set<std::pair<int, int>> seen_not_alive;
  std::set<std::pair<int, int>> seen_dead;
  std::vector<std::pair<int, int>> cross;
  for (int x : a) {
    for (int y : b) {
      cross.emplace_back(x, y);
      cross.emplace_back(y, x);
    }
  }
  c.wait_for("each side to see the other side dead", kDetect, [&] {
    for (const auto& [o, view] : c.views()) {
      for (const auto& [obs, subj] : cross) {
        if (obs != o) continue;
        auto it = view.find(NetnsCluster::name(subj));
        const std::string st = it == view.end() ? "" : it->second;
        if (st != "alive") seen_not_alive.insert({obs, subj});
        if (st == "dead") seen_dead.insert({obs, subj});
      }
    }
    return seen_dead.size() == cross.size();
  });
  EXPECT_EQ(seen_not_alive.size(), cross.size());
  ASSERT_TRUE(c.all_running()) << c.describe();

  c.lab().heal();
  c.wait_for("all alive everywhere after the heal", kHeal, [&] { return c.all_alive(); });
  EXPECT_TRUE(c.all_running()) << c.describe();
}

// 20 % loss on every link for about a minute: members may be suspected,
// but a live member is never declared dead.
TEST_F(NetnsClusterTest, TwentyPercentLossNeverDeclaresLiveNodeDead) {
  NetnsCluster c(kNodes, "lan");
  converge(c);

  c.lab().set_loss(0.2);
  struct Sighting {
    int observer;
    std::string subject;
    std::string state;
    long at_s;
  };
  std::vector<Sighting> dead;
  int suspect_polls = 0;
  int unanswered = 0;
  const auto start = Clock::now();
  const auto end = start + 60s;
  while (Clock::now() < end) {
    const auto views = c.views();
    unanswered += c.size() - static_cast<int>(views.size());
    for (const auto& [o, view] : views) {
      for (const auto& [subject, state] : view) {
        const long at =
            static_cast<long>(std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - start).count());
        if (state == "dead" || state == "left") dead.push_back({o, subject, state, at});
        if (state == "suspect") ++suspect_polls;
      }
    }
    std::this_thread::sleep_for(kPoll);
  }
  ASSERT_TRUE(c.all_running()) << "a node exited under loss\n" << c.describe();
  std::string report;
  for (const auto& s : dead) {
    report += "  " + NetnsCluster::name(s.observer) + " saw " + s.subject + " " + s.state +
              " at +" + std::to_string(s.at_s) + " s\n";
  }
  EXPECT_TRUE(dead.empty()) << "live members declared dead under 20 % loss:\n"
                            << report << c.describe();
  // Not an assertion: how often suspicion showed, for whoever reads the log.
  std::cout << "[ info ] suspect sightings under loss: " << suspect_polls
            << ", unanswered polls: " << unanswered << "\n";
  // Unanswered admin queries would hide dead sightings: there must be few.
  EXPECT_LT(unanswered, 10) << c.describe();

  c.lab().set_loss(0.0);
  c.wait_for("all alive everywhere after the loss", kConverge, [&] { return c.all_alive(); });
}

}  // namespace
}  // namespace mesh::test
