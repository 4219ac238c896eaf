// deploy/ proved without a container engine: three "hosts" made of network
// namespaces (a NetnsLab: 10.251.<lab>.<i+1>, one per node), each node
// started there with exactly the command and environment that
// deploy/compose.yaml or the StatefulSet of deploy/k8s/mesh.yaml gives it
// (read from those files by deploy_files.hpp; only the pod IP, the pod
// name, the namespace, the gossip and admin token Secrets and the compose
// admin-token and gossip-key secrets are filled in, as the cluster would). Names the files use as seeds (compose service names, the pods'
// DNS names under the headless Service) resolve through
// /etc/netns/<ns>/hosts, which `ip netns exec` mounts over /etc/hosts.
//
// What is checked, through the nodes' admin endpoints (meshctl run inside
// a host's namespace) and never through logs. A mesh-node shows its member
// list (/v1/members); an agent host its directory (/v1/agents: the agents
// of every live node, and their node's health):
//  - compose: services started in file order, one whose depends_on asks
//    for another's health after the image's HEALTHCHECK (`meshctl
//    health`) passes there; the HEALTHCHECK then passes on every node; the
//    mesh-nodes list all three alive and the agent host lists its agents,
//    which answer; the agent host's node killed with SIGKILL is listed
//    dead by both mesh-nodes;
//  - StatefulSet: pods started as its podManagementPolicy says
//    (OrderedReady: each ready before the next), each passing its
//    startupProbe, then its readinessProbe (HTTP GETs on the pod IP
//    answering 200), its livenessProbe answering too; gossip encrypted
//    with the Secret's key;
//    every pod lists a scout and an analyst on every pod, and a request
//    crosses hosts both ways; a pod killed with SIGKILL drops out of the
//    others' directories, and started again (on its claimed volume) comes
//    back with the CURVE key it had; a pod sent SIGTERM exits 0 within the
//    manifest's terminationGracePeriodSeconds and drops out too.
//
// Root only (namespaces, /etc/netns): skipped otherwise. Every wait is a
// predicate polled up to a generous deadline; nothing checks a duration.
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "deploy_files.hpp"
#include "netns_lab.hpp"
#include "process.hpp"
#include "wait_for.hpp"

namespace mesh::test::deploy {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using Json = nlohmann::json;

constexpr auto kPoll = 1s;
constexpr auto kStart = 60s;
constexpr auto kConverge = 90s;
// lan profile: suspicion lasts 4-24 s for three nodes; dead members are
// reaped 30 s later.
constexpr auto kDetect = 120s;
constexpr const char* kTestNamespace = "mesh-test";
// base64 of 32 bytes, standing in for the mesh-gossip Secret.
constexpr const char* kGossipKey = "bWVzaC1kZXBsb3ktdGVzdC1nb3NzaXAta2V5LTMyYnk=";
// Standing in for the admin token (the compose secret, the Kubernetes Secret).
constexpr const char* kAdminToken = "mesh-deploy-test-admin-token-0123";

std::string program(const std::string& name) {
  if (name == "mesh-node") return MESH_NODE_BIN;
  if (name == "mesh-agents") return MESH_AGENTS_BIN;
  if (name == "meshctl") return MESHCTL_BIN;
  throw std::runtime_error("the deploy files run \"" + name + "\", which this test does not know");
}

constexpr const char* kNetnsEtc = "/etc/netns";

// /etc/netns/<ns>/hosts for every host of the lab, removed (with the
// directory, if this created it) on destruction.
class HostsFiles {
 public:
  HostsFiles(const NetnsLab& lab, const std::map<std::string, int>& names) {
    std::string text = "127.0.0.1 localhost\n::1 localhost\n";
    for (const auto& [name, host] : names) text += lab.ip(host) + " " + name + "\n";
    if (!std::filesystem::exists(kNetnsEtc)) dirs_.push_back(kNetnsEtc);  // removed last
    for (int i = 0; i < lab.size(); ++i) {
      const std::filesystem::path dir = std::string(kNetnsEtc) + "/" + lab.ns(i);
      if (!std::filesystem::exists(dir)) {
        std::filesystem::create_directories(dir);
        dirs_.push_back(dir);
      }
      files_.push_back(dir / "hosts");
      std::ofstream(files_.back()) << text;
    }
  }
  ~HostsFiles() {
    std::error_code ec;
    for (const auto& f : files_) std::filesystem::remove(f, ec);
    // Innermost first; a directory someone else still uses is not empty and stays.
    for (auto d = dirs_.rbegin(); d != dirs_.rend(); ++d) std::filesystem::remove(*d, ec);
  }
  HostsFiles(const HostsFiles&) = delete;
  HostsFiles& operator=(const HostsFiles&) = delete;

 private:
  std::vector<std::filesystem::path> files_;
  std::vector<std::filesystem::path> dirs_;
};

// The nodes of one deployment, node i on lab host i.
class Deployment {
 public:
  Deployment(const NetnsLab& lab, std::vector<NodeSpec> nodes)
      : lab_(lab), nodes_(std::move(nodes)) {
    procs_.resize(nodes_.size());
    admin_.resize(nodes_.size());
  }

  int size() const { return static_cast<int>(nodes_.size()); }
  const NodeSpec& node(int i) const { return nodes_.at(static_cast<std::size_t>(i)); }
  Process& process(int i) { return *procs_.at(static_cast<std::size_t>(i)); }

  std::vector<std::string> in_ns(int i, std::vector<std::string> argv) const {
    std::vector<std::string> full = lab_.exec_prefix(i);
    full.insert(full.end(), argv.begin(), argv.end());
    return full;
  }

  // `mesh-node --check-config` accepts node i's environment; remembers
  // where its admin endpoint is reachable from inside its host.
  void check(int i) {
    const CheckResult r = check_config(node(i).env);
    ASSERT_EQ(r.exit_code, 0) << node(i).name << ": " << r.err;
    const Json j = Json::parse(r.out);
    std::string host = j.at("admin_host");
    if (host == "0.0.0.0") host = lab_.ip(i);
    admin_.at(static_cast<std::size_t>(i)) = host + ":" + std::to_string(j.at("admin_port").get<int>());
  }

  void start(int i) {
    std::vector<std::string> argv = node(i).command;
    argv.at(0) = program(argv.at(0));
    procs_.at(static_cast<std::size_t>(i)) =
        std::make_unique<Process>(in_ns(i, argv), node(i).env, dir_.path(), node(i).name);
  }

  // meshctl inside host i against node i's endpoint, with the node's
  // environment (as `docker compose exec` and `kubectl exec` give it: the
  // admin token file); parsed --json output.
  std::optional<Json> meshctl(int i, std::vector<std::string> args) const {
    std::vector<std::string> argv = {MESHCTL_BIN};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.insert(argv.end(), {"--json", "--admin", admin_.at(static_cast<std::size_t>(i))});
    const auto r = run_to_exit(in_ns(i, argv), node(i).env, 40s);
    if (r.exit_code != 0) return std::nullopt;
    try {
      return Json::parse(r.out);
    } catch (const std::exception&) {
      return std::nullopt;
    }
  }

  // Node i's members, name -> state.
  std::optional<std::map<std::string, std::string>> members(int i) const {
    auto j = meshctl(i, {"members"});
    if (!j || !j->is_array()) return std::nullopt;
    std::map<std::string, std::string> out;
    for (const auto& m : *j) out[m.value("name", "")] = m.value("state", "");
    return out;
  }

  // Node i's agents (meshctl peers), as /v1/agents lists them.
  std::vector<Json> agents(int i) const {
    auto j = meshctl(i, {"peers"});
    if (!j || !j->is_array()) return {};
    return {j->begin(), j->end()};
  }

  bool hosts_agents(int i) const { return node(i).command.at(0) == "mesh-agents"; }

  // Whether node o shows node s as a live member of its cluster. mesh-node
  // answers with its member list (/v1/members); an agent host with its
  // directory (/v1/agents): s's agents listed, s healthy. An agent host
  // cannot tell about a node without agents: true.
  bool sees_alive(int o, int s) const {
    if (!hosts_agents(o)) {
      const auto view = members(o);
      if (!view) return false;
      const auto it = view->find(node(s).name);
      return it != view->end() && it->second == "alive";
    }
    if (!hosts_agents(s)) return true;
    int listed = 0;
    for (const auto& a : agents(o)) {
      if (a.value("node", "") != node(s).name) continue;
      if (o != s && a.value("node_health", "") != "alive") return false;
      ++listed;
    }
    return listed > 0;
  }

  bool cluster_formed() const {
    for (int o = 0; o < size(); ++o) {
      for (int s = 0; s < size(); ++s) {
        if (!sees_alive(o, s)) return false;
      }
    }
    return true;
  }

  // Runs a shell command in host i with node i's environment (plus PATH
  // with the built binaries first); its exit code.
  int shell(int i, const std::string& script) const { return run(i, {"/bin/bash", "-c", script}); }

  // Runs argv in host i as shell() does; its exit code.
  int run(int i, const std::vector<std::string>& argv) const {
    Env env = node(i).env;
    const std::string bin_dirs = std::filesystem::path(MESH_NODE_BIN).parent_path().string() + ":" +
                                 std::filesystem::path(MESHCTL_BIN).parent_path().string();
    const char* path = std::getenv("PATH");
    env["PATH"] = bin_dirs + ":" + (path != nullptr ? path : "/usr/bin:/bin");
    return run_to_exit(in_ns(i, argv), env, 30s).exit_code;
  }

  void wait_for(const std::string& what, std::chrono::milliseconds timeout, const std::function<bool()>& pred) {
    mesh::test::wait_for_or_fail(what, timeout, pred, [this] { return describe(); }, kPoll);
  }

  std::string describe() const {
    std::string out;
    for (int i = 0; i < size(); ++i) {
      out += "  " + node(i).name + " (" + lab_.ip(i) + ", admin " + admin_.at(static_cast<std::size_t>(i)) +
             ") sees:";
      if (hosts_agents(i)) {
        for (const auto& a : agents(i)) {
          out += " " + a.value("agent_id", "?") + "@" + a.value("node", "?") + "(" + a.value("node_health", "?") + ")";
        }
      } else if (auto view = members(i)) {
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
  const NetnsLab& lab_;
  std::vector<NodeSpec> nodes_;
  std::vector<std::string> admin_;
  TempDir dir_;  // before procs_: logs outlive the processes
  std::vector<std::unique_ptr<Process>> procs_;
};

// Waits until every node but `victim` has seen it fail: a mesh-node lists
// it dead (in any poll: a dead member is reaped later), an agent host no
// longer lists its agents (those of a dead or left node leave the
// directory).
void wait_seen_gone(Deployment& d, int victim) {
  std::set<int> seen;
  d.wait_for(d.node(victim).name + " seen dead by the others", kDetect, [&] {
    for (int o = 0; o < d.size(); ++o) {
      if (o == victim || seen.count(o) != 0) continue;
      if (d.hosts_agents(o)) {
        const auto agents = d.agents(o);
        const bool listed = std::any_of(agents.begin(), agents.end(), [&](const Json& a) {
          return a.value("node", "") == d.node(victim).name;
        });
        if (!agents.empty() && !listed) seen.insert(o);
      } else if (const auto view = d.members(o)) {
        const auto it = view->find(d.node(victim).name);
        if (it != view->end() && it->second == "dead") seen.insert(o);
      }
    }
    return static_cast<int>(seen.size()) == d.size() - 1;
  });
}

std::string agent_of(const std::vector<Json>& agents, const std::string& role, const std::string& node) {
  for (const auto& a : agents) {
    if (a.value("role", "") == role && a.value("node", "") == node) return a.value("agent_id", "");
  }
  return "";
}

class DeployNetns : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string reason = NetnsLab::unavailable_reason();
    if (!reason.empty()) GTEST_SKIP() << reason;
  }
};

TEST_F(DeployNetns, ComposeClusterFormsServesAgentsAndSeesAKilledNode) {
  TempDir files;
  const auto nodes =
      compose_nodes(YAML::LoadFile(deploy_path("compose.yaml")),
                    {{"admin-token", kAdminToken}, {"gossip-key", kGossipKey}}, files.path());
  ASSERT_EQ(nodes.size(), 3U);
  NetnsLab lab(static_cast<int>(nodes.size()));
  std::map<std::string, int> names;  // service names resolve on the project network
  for (int i = 0; i < lab.size(); ++i) names[nodes.at(static_cast<std::size_t>(i)).name] = i;
  HostsFiles hosts(lab, names);
  Deployment d(lab, nodes);

  int agent_host = -1;
  for (int i = 0; i < d.size(); ++i) {
    d.check(i);
    if (d.node(i).command.at(0) == "mesh-agents") agent_host = i;
  }
  ASSERT_GE(agent_host, 0);
  // The image's HEALTHCHECK, with the image's programs replaced by the
  // built ones.
  std::vector<std::string> healthcheck = healthcheck_command(dockerfile_instructions(read_text(deploy_path("Dockerfile"))));
  for (auto& arg : healthcheck) {
    for (const auto& [installed, built] : std::vector<std::pair<std::string, std::string>>{
             {"/usr/local/bin/meshctl", MESHCTL_BIN}, {"/usr/local/bin/mesh-node", MESH_NODE_BIN}}) {
      for (auto at = arg.find(installed); at != std::string::npos; at = arg.find(installed, at + built.size())) {
        arg.replace(at, installed.size(), built);
      }
    }
  }
  auto healthy = [&](int i) { return d.run(i, healthcheck) == 0; };
  // In file order, as compose starts them; a service that depends on
  // another's health waits for it.
  for (int i = 0; i < d.size(); ++i) {
    for (const auto& [dep, condition] : d.node(i).depends_on) {
      if (condition != "service_healthy") continue;
      const int j = names.at(dep);
      ASSERT_LT(j, i) << d.node(i).name << " waits for " << dep << ", which starts later";
      d.wait_for(dep + "'s HEALTHCHECK to pass, before " + d.node(i).name + " starts", kStart,
                 [&] { return healthy(j); });
    }
    d.start(i);
  }
  for (int i = 0; i < d.size(); ++i) {
    d.wait_for(d.node(i).name + "'s HEALTHCHECK to pass", kStart, [&] { return healthy(i); });
  }
  d.wait_for("every node to see every node alive", kConverge, [&] { return d.cluster_formed(); });

  // The agent host serves its scout and analyst, and they answer.
  const std::string me = d.node(agent_host).name;
  std::string analyst;
  d.wait_for("the agent host to list its agents", kStart, [&] {
    const auto agents = d.agents(agent_host);
    analyst = agent_of(agents, "analyst", me);
    return !analyst.empty() && !agent_of(agents, "scout", me).empty();
  });
  const auto summary = d.meshctl(agent_host, {"request", analyst, R"({"kind":"summary"})", "--timeout-ms", "10000"});
  ASSERT_TRUE(summary.has_value()) << d.describe();
  EXPECT_EQ(summary->at("response").value("node", ""), me) << summary->dump();

  // SIGKILL the agent host's node: the two mesh-nodes list it dead.
  d.process(agent_host).signal(SIGKILL);
  ASSERT_TRUE(d.process(agent_host).wait_exit(10s).has_value());
  wait_seen_gone(d, agent_host);
}

TEST_F(DeployNetns, StatefulSetPodsFormAClusterTheirAgentsTalkAndFailuresAreSeen) {
  const auto docs = load_all(deploy_path("k8s/mesh.yaml"));
  const YAML::Node sts = find_kind(docs, "StatefulSet");
  const std::string set = sts["metadata"]["name"].as<std::string>();
  const std::string service = sts["spec"]["serviceName"].as<std::string>();
  const int replicas = sts["spec"]["replicas"].as<int>();
  ASSERT_GE(replicas, 3);
  const int grace = sts["spec"]["template"]["spec"]["terminationGracePeriodSeconds"].as<int>();
  const HttpProbe startup = http_probe(sts, "startupProbe");
  const HttpProbe readiness = http_probe(sts, "readinessProbe");
  const HttpProbe liveness = http_probe(sts, "livenessProbe");
  const YAML::Node policy = sts["spec"]["podManagementPolicy"];
  const bool ordered = !policy || policy.as<std::string>() == "OrderedReady";

  NetnsLab lab(3);
  TempDir files;
  std::vector<NodeSpec> pods;
  std::map<std::string, int> names;  // the headless Service's DNS records
  for (int i = 0; i < lab.size(); ++i) {
    Pod pod{set + "-" + std::to_string(i), lab.ip(i), kTestNamespace,
            {{{"mesh-gossip", "key"}, kGossipKey}, {{"mesh-admin-token", "token"}, kAdminToken}},
            files.path() + "/" + std::to_string(i)};
    pods.push_back(statefulset_node(docs, sts, pod));
    names[pod_dns_name(pod.name, service, kTestNamespace)] = i;
  }
  HostsFiles hosts(lab, names);
  Deployment d(lab, pods);

  // An HTTP GET on the pod IP from the pod's host, as the kubelet probes.
  auto probe_ok = [&](int i, const HttpProbe& p) {
    return d.shell(i, "exec 3<>/dev/tcp/" + lab.ip(i) + "/" + std::to_string(p.port) + " && printf 'GET " +
                          p.path +
                          " HTTP/1.1\\r\\nHost: kubelet\\r\\nConnection: close\\r\\n\\r\\n' >&3 && read -r -t 5 s <&3 && "
                          "[[ $s == *' 200 '* ]]") == 0;
  };
  // Each pod's startupProbe passes, then its readinessProbe (once it has
  // joined through a seed), and its livenessProbe answers. OrderedReady:
  // each pod ready before the next is created; Parallel: all created at
  // once.
  auto becomes_ready = [&](int i) {
    d.wait_for(d.node(i).name + "'s startupProbe", kStart, [&] { return probe_ok(i, startup); });
    d.wait_for(d.node(i).name + " ready", kStart, [&] { return probe_ok(i, readiness); });
    EXPECT_TRUE(probe_ok(i, liveness));
  };
  for (int i = 0; i < d.size(); ++i) {
    d.check(i);
    d.start(i);
    if (ordered) becomes_ready(i);
  }
  if (!ordered) {
    for (int i = 0; i < d.size(); ++i) becomes_ready(i);
  }
  d.wait_for("every node to see every node alive", kConverge, [&] { return d.cluster_formed(); });

  // Every pod lists a scout and an analyst on every pod.
  d.wait_for("every pod to list every pod's scout and analyst", kConverge, [&] {
    for (int o = 0; o < d.size(); ++o) {
      const auto agents = d.agents(o);
      for (int s = 0; s < d.size(); ++s) {
        if (agent_of(agents, "scout", d.node(s).name).empty()) return false;
        if (agent_of(agents, "analyst", d.node(s).name).empty()) return false;
      }
    }
    return true;
  });
  // Requests cross hosts, both ways.
  for (const auto& [from, to] : std::vector<std::pair<int, int>>{{0, 1}, {2, 0}}) {
    const std::string analyst = agent_of(d.agents(from), "analyst", d.node(to).name);
    const auto r = d.meshctl(from, {"request", analyst, R"({"kind":"summary"})", "--timeout-ms", "10000"});
    ASSERT_TRUE(r.has_value()) << d.node(from).name << " -> " << analyst << "\n" << d.describe();
    EXPECT_EQ(r->at("response").value("node", ""), d.node(to).name) << r->dump();
  }

  // SIGKILL pod 2's node: its agents leave the other pods' directories.
  const int victim = 2;
  // Its CURVE public key, as pod 0 has it from gossip.
  auto zkey_of = [&](int i) {
    const auto list = d.meshctl(0, {"members"});
    if (!list || !list->is_array()) return std::string();
    for (const auto& m : *list) {
      if (m.value("name", "") == d.node(i).name && m.value("state", "") == "alive") {
        return m.contains("tags") ? m["tags"].value("zkey", "") : std::string();
      }
    }
    return std::string();
  };
  const std::string zkey = zkey_of(victim);
  ASSERT_EQ(zkey.size(), 40U) << d.describe();
  d.process(victim).signal(SIGKILL);
  ASSERT_TRUE(d.process(victim).wait_exit(10s).has_value());
  wait_seen_gone(d, victim);

  // The kubelet starts it again on the same volume: same identity.
  d.start(victim);
  d.wait_for(d.node(victim).name + " back with its key", kDetect, [&] { return !zkey_of(victim).empty(); });
  EXPECT_EQ(zkey_of(victim), zkey);

  // SIGTERM pod 1's node, as the kubelet does: it leaves and exits 0
  // within the grace period; its agents leave pod 0's directory.
  d.process(1).signal(SIGTERM);
  const auto code = d.process(1).wait_exit(std::chrono::seconds(grace));
  ASSERT_TRUE(code.has_value()) << "still running after terminationGracePeriodSeconds\n" << d.describe();
  EXPECT_EQ(*code, 0) << d.process(1).log_tail();
  d.wait_for(d.node(1).name + "'s agents gone from " + d.node(0).name, kDetect, [&] {
    const auto agents = d.agents(0);
    return !agents.empty() && agent_of(agents, "scout", d.node(1).name).empty() &&
           agent_of(agents, "analyst", d.node(1).name).empty();
  });
}

}  // namespace
}  // namespace mesh::test::deploy
