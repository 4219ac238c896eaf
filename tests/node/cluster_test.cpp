// Five mesh-node processes on 127.0.0.1 with the local profile; N0 is the
// seed of N1..N4. Every assertion reads /v1/members over HTTP (never the
// logs), every wait is a predicate polled until a generous deadline, and
// the Cluster kills whatever is left of its processes however a test ends.
//
// Timing facts the deadlines rest on (memberlist's local profile): probe
// every 1 s, suspicion between 3 s (SuspicionMult 3, confirmed) and 18 s
// (6x that, unconfirmed), dead and left members reaped after 15 s. The
// deadlines are several times those, and no test checks how long anything
// took.
#include <gtest/gtest.h>
#include <signal.h>

#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>

#include "mesh/admin_client.hpp"
#include "member_states.hpp"
#include "process.hpp"
#include "wait_for.hpp"

namespace mesh::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr auto kPoll = 150ms;
constexpr auto kConverge = 45s;
constexpr auto kDetect = 60s;  // > 18 s max suspicion, with room for a loaded machine

struct NodeSpec {
  std::string name;
  std::uint16_t swim_port = 0;
  std::uint16_t admin_port = 0;
  std::uint16_t zmq_port = 0;
};

class Cluster {
 public:
  explicit Cluster(int n, std::map<std::string, std::string> env = {}) : env_(std::move(env)) {
    for (int i = 0; i < n; ++i) {
      specs_.push_back({"N" + std::to_string(i), free_port(), free_port(), free_port()});
    }
    procs_.resize(static_cast<std::size_t>(n));
  }

  int size() const { return static_cast<int>(specs_.size()); }
  const std::string& name(int i) const { return spec(i).name; }
  Process& proc(int i) { return *procs_.at(static_cast<std::size_t>(i)); }
  bool up(int i) const { return procs_.at(static_cast<std::size_t>(i)) != nullptr; }

  // Starts node i (again, after a kill: same name, same ports). Nodes other
  // than N0 join through N0.
  void start(int i) {
    const NodeSpec& s = spec(i);
    std::vector<std::string> argv = {
        MESH_NODE_BIN,  "--node-name", s.name, "--swim-host", "127.0.0.1",
        "--swim-port",  std::to_string(s.swim_port), "--admin-port",
        std::to_string(s.admin_port), "--zmq-port", std::to_string(s.zmq_port),
        "--profile",    "local",       "--log-level", "debug"};
    if (i != 0) {
      argv.push_back("--seeds");
      argv.push_back("127.0.0.1:" + std::to_string(spec(0).swim_port));
    }
    const std::string label = s.name + "." + std::to_string(++starts_[i]);
    procs_.at(static_cast<std::size_t>(i)) =
        std::make_unique<Process>(argv, env_, dir_.path(), label);
  }

  // Starts every node, N0 first and answering, then the others.
  void start_all() {
    start(0);
    wait_for("N0's admin endpoint to answer", kConverge, [&] { return members(0).has_value(); });
    for (int i = 1; i < size(); ++i) start(i);
  }

  // Forgets node i's process after it ended (or kills it now).
  void reap(int i) { procs_.at(static_cast<std::size_t>(i)).reset(); }

  // Node i's view: name -> state, or nullopt when it does not answer.
  std::optional<std::map<std::string, std::string>> members(int i) const {
    if (!up(i)) return std::nullopt;
    const auto r = http_get("127.0.0.1", spec(i).admin_port, "/v1/members", 1s);
    if (!r.ok || r.status != 200) return std::nullopt;
    return member_states(r.body);
  }

  // State of `target` as node i sees it; "" when absent or unreachable.
  std::string state_of(int i, int target) const {
    auto view = members(i);
    if (!view) return "";
    auto it = view->find(name(target));
    return it == view->end() ? "" : it->second;
  }

  // True when every node in `observers` lists every node in `subjects` alive.
  bool all_alive(const std::vector<int>& observers, const std::vector<int>& subjects) const {
    for (int o : observers) {
      auto view = members(o);
      if (!view) return false;
      for (int s : subjects) {
        auto it = view->find(name(s));
        if (it == view->end() || it->second != "alive") return false;
      }
    }
    return true;
  }

  std::vector<int> all() const {
    std::vector<int> v;
    for (int i = 0; i < size(); ++i) v.push_back(i);
    return v;
  }
  std::vector<int> all_but(int x) const {
    std::vector<int> v;
    for (int i = 0; i < size(); ++i) {
      if (i != x) v.push_back(i);
    }
    return v;
  }

  // Polls `pred` until it holds; on timeout fails the test with `what` and
  // every node's view and log tail.
  void wait_for(const std::string& what, std::chrono::milliseconds timeout,
                const std::function<bool()>& pred) {
    mesh::test::wait_for_or_fail(what, timeout, pred, [this] { return describe(); }, kPoll);
  }

  // Waits until every observer has reported `target` in `state` at least
  // once. Per observer, because a dead or left member is reaped 15 s after
  // the fact: the views need not all show it in the same poll.
  void wait_state_everywhere(int target, const std::string& state,
                             const std::vector<int>& observers, std::chrono::milliseconds timeout) {
    std::set<int> seen;
    wait_for(name(target) + " " + state + " everywhere", timeout, [&] {
      for (int o : observers) {
        if (seen.count(o) == 0 && state_of(o, target) == state) seen.insert(o);
      }
      return seen.size() == observers.size();
    });
  }

  std::string describe() const {
    std::string out;
    for (int i = 0; i < size(); ++i) {
      out += "  " + name(i) + " sees:";
      if (auto view = members(i)) {
        for (const auto& [n, st] : *view) out += " " + n + "=" + st;
      } else {
        out += " (no answer)";
      }
      out += "\n";
      if (up(i)) out += procs_.at(static_cast<std::size_t>(i))->log_tail(15);
    }
    return out;
  }

 private:
  const NodeSpec& spec(int i) const { return specs_.at(static_cast<std::size_t>(i)); }

  std::map<std::string, std::string> env_;
  TempDir dir_;  // declared before procs_: logs outlive the processes
  std::vector<NodeSpec> specs_;
  std::vector<std::unique_ptr<Process>> procs_;
  std::map<int, int> starts_;
};

// Every test starts from a converged cluster of five.
class NodeCluster : public ::testing::Test {
 protected:
  void converge(Cluster& c) {
    c.start_all();
    c.wait_for("all alive everywhere", kConverge, [&] { return c.all_alive(c.all(), c.all()); });
  }
};

TEST_F(NodeCluster, AllSeeAllAlive) {
  Cluster c(5);
  converge(c);
  // Exactly the five, each seeing itself too.
  for (int i = 0; i < c.size(); ++i) {
    auto view = c.members(i);
    ASSERT_TRUE(view.has_value());
    EXPECT_EQ(view->size(), 5u) << c.describe();
  }
}

TEST_F(NodeCluster, KilledNodeIsDeadEverywhere) {
  Cluster c(5);
  converge(c);
  // S1: N3 is killed with no chance to say goodbye.
  c.proc(3).signal(SIGKILL);
  ASSERT_TRUE(c.proc(3).wait_exit(10s).has_value());
  c.reap(3);
  // S2: the others probe it, suspect it, and declare it dead.
  c.wait_state_everywhere(3, "dead", c.all_but(3), kDetect);
  // S3: nobody else was hurt on the way.
  EXPECT_TRUE(c.all_alive(c.all_but(3), c.all_but(3))) << c.describe();
}

TEST_F(NodeCluster, PausedNodeIsSuspectedThenAliveNeverDead) {
  Cluster c(5);
  converge(c);
  const int paused = 2;
  const auto others = c.all_but(paused);
  // S1: N2 stops answering (SIGSTOP: sockets stay open, nothing is read).
  c.proc(paused).signal(SIGSTOP);
  bool seen_dead = false;
  auto watch = [&](const std::string& wanted) {
    bool any = false;
    for (int o : others) {
      const std::string st = c.state_of(o, paused);
      if (st == "dead") seen_dead = true;
      if (st == wanted) any = true;
    }
    return any || seen_dead;
  };
  // S2: someone suspects it. Continue it at once, well within the
  // suspicion timeout (at least 3 s here), so that it can refute.
  try {
    c.wait_for("N2 suspected by some node", kDetect, [&] { return watch("suspect"); });
  } catch (...) {
    c.proc(paused).signal(SIGCONT);
    throw;
  }
  c.proc(paused).signal(SIGCONT);
  ASSERT_FALSE(seen_dead) << "N2 was declared dead while paused\n" << c.describe();
  // S3: it refutes the suspicion; everyone, itself included, sees all
  // alive again, and no view ever showed it dead.
  c.wait_for("N2 alive everywhere again", kConverge, [&] {
    for (int o : others) {
      if (c.state_of(o, paused) == "dead") seen_dead = true;
    }
    return seen_dead || c.all_alive(c.all(), c.all());
  });
  EXPECT_FALSE(seen_dead) << "N2 was declared dead\n" << c.describe();
}

TEST_F(NodeCluster, TerminatedNodeLeavesAndExitsZero) {
  Cluster c(5);
  converge(c);
  // S1: N4 is asked to stop; it leaves gracefully and exits 0.
  c.proc(4).signal(SIGTERM);
  const auto code = c.proc(4).wait_exit(30s);
  ASSERT_TRUE(code.has_value()) << "N4 did not exit after SIGTERM\n" << c.describe();
  EXPECT_EQ(*code, 0) << c.proc(4).log_tail();
  c.reap(4);
  // S2: everyone else records a departure, not a failure.
  c.wait_state_everywhere(4, "left", c.all_but(4), kConverge);
}

TEST_F(NodeCluster, RestartedNodeIsAliveEverywhereAgain) {
  Cluster c(5);
  converge(c);
  // S1: N1 is killed and declared dead.
  c.proc(1).signal(SIGKILL);
  ASSERT_TRUE(c.proc(1).wait_exit(10s).has_value());
  c.reap(1);
  c.wait_state_everywhere(1, "dead", c.all_but(1), kDetect);
  // S2: it comes back under the same name and address; it learns it was
  // declared dead, refutes with a higher incarnation, and all see it alive.
  c.start(1);
  c.wait_for("N1 alive everywhere again", kConverge, [&] { return c.all_alive(c.all(), c.all()); });
}

TEST_F(NodeCluster, EncryptedPairConverges) {
  // The same gossip key (from the environment) on both: they talk. The
  // keyring plumbing from JC_GOSSIP_KEY to the sockets is what is tested.
  Cluster c(2, {{"JC_GOSSIP_KEY", "cg8StVXbQJ0gPvMd9o7yrg9pswE6XDmJNQnIvB5cP9s="}});
  converge(c);
}

}  // namespace
}  // namespace mesh::test
