// The files in deploy/, checked without a container engine (label unit):
// the compose file and the Kubernetes manifests parse, set only JC_*
// variables the node reads (`mesh-node --check-config` with each
// service's and pod's environment, which rejects unknown names), and say
// what docs/operations.md promises (headless Service, probes on the admin
// endpoint's /livez and /readyz, pods spread over machines and zones, a
// NetworkPolicy that keeps the admin port in the namespace, Prometheus
// annotations, the advertised address from the pod IP, a grace period
// longer than the leave, resource requests); the Dockerfile builds on
// Debian 12, runs as a non-root user, carries OCI labels, checks health
// with `meshctl health` and installs every library the binaries need; the
// systemd unit and its EnvironmentFile agree, and systemd-analyze rates
// the unit's sandbox OK (exposure 3.0 or less) without refusing a system
// call the node makes. The Grafana dashboard is well formed and queries
// only series a running node exports, with the labels they have.
// deploy_netns_test.cpp then runs the same environments as a cluster.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>
#include <vector>

#include "deploy_files.hpp"
#include "mesh/admin_client.hpp"
#include "process.hpp"

namespace mesh::test::deploy {
namespace {

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

std::size_t lines(const std::string& s) { return static_cast<std::size_t>(std::count(s.begin(), s.end(), '\n')); }

// Runs --check-config with `env` and returns its JSON, failing the test
// (with the node's one-line error) if the node rejects it.
nlohmann::json accepted(const std::string& who, const Env& env) {
  const CheckResult r = check_config(env);
  EXPECT_EQ(r.exit_code, 0) << who << ": mesh-node --check-config rejected the environment: " << r.err;
  if (r.exit_code != 0) return {};
  return nlohmann::json::parse(r.out);
}

TEST(DeployCheckConfig, UnknownJcVariableIsAOneLineError) {
  const CheckResult r = check_config({{"JC_SWIM_PROT", "7946"}});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, "mesh-node: JC_SWIM_PROT: unknown configuration variable (did you mean JC_SWIM_PORT?)\n");
  EXPECT_TRUE(r.out.empty());

  const CheckResult far = check_config({{"JC_SOMETHING_ELSE", "1"}});
  EXPECT_EQ(far.exit_code, 2);
  EXPECT_EQ(lines(far.err), 1U) << far.err;
  EXPECT_TRUE(contains(far.err, "JC_SOMETHING_ELSE: unknown configuration variable")) << far.err;
}

TEST(DeployCheckConfig, KnownVariablesAndOtherNamesAreAccepted) {
  // Not JC_*: none of the node's business (PATH, HOME, POD_NAMESPACE, ...).
  const auto j = accepted("env", {{"JC_SWIM_PORT", "8000"}, {"P2P_ENABLED", "true"}, {"POD_NAMESPACE", "x"}});
  EXPECT_EQ(j.value("admin_port", 0), 10000);
}

const std::string kAdminToken = "0123456789abcdef0123456789abcdef";
const std::string kGossipKey = "bWVzaC1kZXBsb3ktZmlsZXMtZ29zc2lwLWtleS0zMmI=";  // 32 bytes

TEST(DeployCompose, ServicesFormAClusterThroughSeeds) {
  const YAML::Node compose = YAML::LoadFile(deploy_path("compose.yaml"));
  TempDir files;
  const auto nodes =
      compose_nodes(compose, {{"admin-token", kAdminToken + "\n"}, {"gossip-key", kGossipKey + "\n"}}, files.path());
  ASSERT_EQ(nodes.size(), 3U);
  std::set<std::string> names;
  std::set<std::string> data_dirs;
  int agent_hosts = 0;
  for (const auto& n : nodes) {
    SCOPED_TRACE(n.name);
    ASSERT_FALSE(n.command.empty());
    EXPECT_TRUE(n.command[0] == "mesh-node" || n.command[0] == "mesh-agents") << n.command[0];
    if (n.command[0] == "mesh-agents") {
      ++agent_hosts;
      EXPECT_EQ(n.env.count("P2P_ENABLED"), 1U);
    }
    ASSERT_EQ(n.env.count("JC_SEED_NODES"), 1U);
    // Seeds are other services, by name.
    std::istringstream seeds(n.env.at("JC_SEED_NODES"));
    for (std::string s; std::getline(seeds, s, ',');) {
      EXPECT_EQ(compose["services"][s.substr(0, s.find(':'))].IsDefined(), true) << s;
    }
    const auto j = accepted(n.name, n.env);
    EXPECT_EQ(j.value("node_name", ""), n.name);
    names.insert(j.value("node_name", ""));
    // The image's HEALTHCHECK runs inside the container: the endpoint may stay on loopback.
    EXPECT_EQ(j.value("admin_host", ""), "127.0.0.1");
    // The compose secrets' files hold the admin token and the gossip key.
    EXPECT_EQ(j.value("admin_token", ""), "(set, not shown)");
    EXPECT_EQ(j.value("gossip_key", ""), "(32-byte key, not shown)");
    // Each node keeps its CURVE key and keyring on a volume of its own.
    const std::string data = j.value("data_dir", "");
    EXPECT_EQ(data.rfind(files.path() + "/" + n.name + "/volume-", 0), 0U) << data;
    data_dirs.insert(data);
    // The stop grace covers the leave (at most about 6 s).
    ASSERT_TRUE(compose["services"][n.name]["stop_grace_period"].IsDefined());
  }
  EXPECT_EQ(names.size(), 3U);
  EXPECT_EQ(data_dirs.size(), 3U);
  EXPECT_EQ(agent_hosts, 1);
  // As the StatefulSet's pods: each service starts once every seed before
  // it in the file is healthy (has joined), so that the first two seeds
  // cannot each join only themselves.
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    std::istringstream in(nodes[i].env.at("JC_SEED_NODES"));
    for (std::string s; std::getline(in, s, ',');) {
      const std::string seed = s.substr(0, s.find(':'));
      for (std::size_t j = 0; j < i; ++j) {
        if (nodes[j].name != seed) continue;
        const auto it = nodes[i].depends_on.find(seed);
        EXPECT_TRUE(it != nodes[i].depends_on.end() && it->second == "service_healthy")
            << nodes[i].name << " does not wait for " << seed << "'s health";
      }
    }
  }
  EXPECT_THROW(compose_nodes(compose, {}, files.path()), std::runtime_error);  // the secret is required
}

class DeployKubernetes : public ::testing::Test {
 protected:
  void SetUp() override {
    docs_ = load_all(deploy_path("k8s/mesh.yaml"));
    sts_ = find_kind(docs_, "StatefulSet");
  }
  std::vector<YAML::Node> docs_;
  YAML::Node sts_;
};

TEST_F(DeployKubernetes, EveryDocumentHasKindAndName) {
  ASSERT_GE(docs_.size(), 3U);
  for (const auto& d : docs_) {
    EXPECT_TRUE(d["apiVersion"].IsScalar());
    EXPECT_TRUE(d["kind"].IsScalar());
    EXPECT_TRUE(d["metadata"]["name"].IsScalar());
  }
}

TEST_F(DeployKubernetes, HeadlessServiceGivesPodsStableNames) {
  const std::string service = sts_["spec"]["serviceName"].as<std::string>();
  const YAML::Node svc = find_kind(docs_, "Service", service);
  EXPECT_EQ(svc["spec"]["clusterIP"].as<std::string>(), "None");
  EXPECT_TRUE(svc["spec"]["publishNotReadyAddresses"].as<bool>());
  // Same selector as the pods.
  for (const auto& kv : svc["spec"]["selector"]) {
    EXPECT_EQ(sts_["spec"]["template"]["metadata"]["labels"][kv.first.as<std::string>()].as<std::string>(),
              kv.second.as<std::string>());
  }
  std::set<std::string> ports;
  for (const auto& p : svc["spec"]["ports"]) {
    ports.insert(p["port"].as<std::string>() + "/" + p["protocol"].as<std::string>());
  }
  EXPECT_EQ(ports, (std::set<std::string>{"7946/UDP", "7946/TCP", "8946/TCP", "9946/TCP"}));
}

TEST_F(DeployKubernetes, PodEnvironmentIsValidAndAdvertisesThePodIp) {
  TempDir files;
  const int replicas = sts_["spec"]["replicas"].as<int>();
  ASSERT_GE(replicas, 3);
  const std::string set = sts_["metadata"]["name"].as<std::string>();
  const std::string service = sts_["spec"]["serviceName"].as<std::string>();
  for (int i = 0; i < replicas; ++i) {
    Pod pod{set + "-" + std::to_string(i), "10.0.0." + std::to_string(10 + i), "prod",
            {{{"mesh-admin-token", "token"}, kAdminToken}, {{"mesh-gossip", "key"}, kGossipKey}},
            files.path() + "/" + std::to_string(i)};
    const NodeSpec n = statefulset_node(docs_, sts_, pod);
    SCOPED_TRACE(n.name);
    const auto j = accepted(n.name, n.env);
    EXPECT_EQ(j.value("node_name", ""), pod.name);
    EXPECT_EQ(j.value("advertise_host", ""), pod.ip);
    // The kubelet probes the pod IP; beyond loopback, the Secret's token
    // guards the admin API.
    EXPECT_EQ(j.value("admin_host", ""), "0.0.0.0");
    EXPECT_EQ(j.value("admin_token", ""), "(set, not shown)");
    EXPECT_EQ(j.value("gossip_key", ""), "(32-byte key, not shown)");  // the Secret is required
    // The mounted ConfigMap was read.
    EXPECT_TRUE(contains(j.value("config_file", ""), "/etc/mesh/")) << j.dump();
    // The pod's CURVE key and keyring live on its claimed volume.
    EXPECT_EQ(j.value("data_dir", ""), pod.files_root + "/var/lib/mesh") << j.dump();
    // The first pods are the seeds, by their DNS names.
    const auto seeds = j["seeds"].get<std::vector<std::string>>();
    EXPECT_EQ(seeds, (std::vector<std::string>{pod_dns_name(set + "-0", service, "prod") + ":7946",
                                               pod_dns_name(set + "-1", service, "prod") + ":7946"}));
    // Probes point at the admin endpoint's port.
    EXPECT_EQ(http_probe(sts_, "readinessProbe").port, j.value("admin_port", 0));
    EXPECT_EQ(http_probe(sts_, "livenessProbe").port, j.value("admin_port", 0));
    EXPECT_EQ(http_probe(sts_, "startupProbe").port, j.value("admin_port", 0));
    // Prometheus scrapes the same port.
    EXPECT_EQ(sts_["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"].as<std::string>(),
              std::to_string(j.value("admin_port", 0)));
  }

  // With the Secret, gossip is encrypted.
  Pod keyed{set + "-0", "10.0.0.10", "prod",
            {{{"mesh-gossip", "key"}, "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="},
             {{"mesh-admin-token", "token"}, kAdminToken}},
            files.path() + "/keyed"};
  const auto j = accepted("keyed", statefulset_node(docs_, sts_, keyed).env);
  EXPECT_FALSE(j["gossip_key"].is_null());

  // The admin token's Secret is not optional: without a token the pods'
  // POST routes would be refused.
  Pod bare{set + "-0", "10.0.0.10", "prod", {}, files.path() + "/bare"};
  EXPECT_THROW(statefulset_node(docs_, sts_, bare), std::runtime_error);
}

TEST_F(DeployKubernetes, ProbesGraceAndResources) {
  // Ready once joined; alive while the endpoint answers (a node waiting for
  // its seeds is not restarted for it).
  EXPECT_EQ(http_probe(sts_, "readinessProbe").path, "/readyz");
  EXPECT_EQ(http_probe(sts_, "livenessProbe").path, "/livez");
  EXPECT_EQ(http_probe(sts_, "startupProbe").path, "/livez");
  // Each pod created once the one before has joined: started together, the
  // first two seeds could each join only themselves.
  EXPECT_EQ(sts_["spec"]["podManagementPolicy"].as<std::string>(), "OrderedReady");
  const YAML::Node spec = sts_["spec"]["template"]["spec"];
  // Longer than the leave (mesh-node's 5 s leave timeout plus up to 1 s for the intent).
  EXPECT_GE(spec["terminationGracePeriodSeconds"].as<int>(), 10);
  EXPECT_TRUE(spec["securityContext"]["runAsNonRoot"].as<bool>());
  const YAML::Node res = spec["containers"][0]["resources"];
  EXPECT_TRUE(res["requests"]["cpu"].IsScalar());
  EXPECT_TRUE(res["requests"]["memory"].IsScalar());
  EXPECT_TRUE(res["limits"]["memory"].IsScalar());
}

// The pod template's labels, which every selector below must match.
bool selects_pods(const YAML::Node& selector, const YAML::Node& statefulset) {
  const YAML::Node labels = statefulset["spec"]["template"]["metadata"]["labels"];
  if (!selector || !selector["matchLabels"] || selector["matchLabels"].size() == 0) return false;
  for (const auto& kv : selector["matchLabels"]) {
    const YAML::Node have = labels[kv.first.as<std::string>()];
    if (!have || have.as<std::string>() != kv.second.as<std::string>()) return false;
  }
  return true;
}

TEST_F(DeployKubernetes, PodsSpreadAcrossMachinesAndZones) {
  const YAML::Node spec = sts_["spec"]["template"]["spec"];
  // Preferred, so that a cluster with fewer machines than pods still runs them all.
  const YAML::Node anti = spec["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"];
  ASSERT_TRUE(anti && anti.IsSequence() && anti.size() >= 1);
  EXPECT_FALSE(spec["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]);
  EXPECT_EQ(anti[0]["podAffinityTerm"]["topologyKey"].as<std::string>(), "kubernetes.io/hostname");
  EXPECT_TRUE(selects_pods(anti[0]["podAffinityTerm"]["labelSelector"], sts_));
  const YAML::Node spread = spec["topologySpreadConstraints"];
  ASSERT_TRUE(spread && spread.IsSequence() && spread.size() >= 1);
  for (const auto& c : spread) {
    EXPECT_EQ(c["whenUnsatisfiable"].as<std::string>(), "ScheduleAnyway");
    EXPECT_TRUE(selects_pods(c["labelSelector"], sts_));
  }
  // The budget covers the same pods.
  EXPECT_TRUE(selects_pods(find_kind(docs_, "PodDisruptionBudget")["spec"]["selector"], sts_));
}

TEST_F(DeployKubernetes, PrometheusScrapesMetricsThroughAnnotations) {
  const YAML::Node a = sts_["spec"]["template"]["metadata"]["annotations"];
  ASSERT_TRUE(a && a.IsMap());
  EXPECT_EQ(a["prometheus.io/scrape"].as<std::string>(), "true");
  EXPECT_EQ(a["prometheus.io/path"].as<std::string>(), "/metrics");
  EXPECT_EQ(http_probe(sts_, "livenessProbe").port, a["prometheus.io/port"].as<int>());
}

// Gossip and ZeroMQ only between mesh pods; the admin port only from pods
// of the same namespace (a bare podSelector, no namespaceSelector, no
// ipBlock); no other port open.
TEST_F(DeployKubernetes, NetworkPolicyKeepsTheAdminPortInTheNamespace) {
  const YAML::Node np = find_kind(docs_, "NetworkPolicy");
  EXPECT_TRUE(selects_pods(np["spec"]["podSelector"], sts_));
  ASSERT_TRUE(np["spec"]["policyTypes"].IsSequence());
  EXPECT_EQ(np["spec"]["policyTypes"][0].as<std::string>(), "Ingress");
  std::map<std::string, std::string> open;  // "port/protocol" -> "mesh" | "namespace"
  for (const auto& rule : np["spec"]["ingress"]) {
    ASSERT_TRUE(rule["from"] && rule["from"].IsSequence() && rule["from"].size() > 0) << "a rule open to everyone";
    std::string who;
    for (const auto& peer : rule["from"]) {
      EXPECT_FALSE(peer["namespaceSelector"]) << "admits other namespaces";
      EXPECT_FALSE(peer["ipBlock"]) << "admits addresses";
      ASSERT_TRUE(peer["podSelector"]);
      const std::string w = selects_pods(peer["podSelector"], sts_) ? "mesh" : "namespace";
      if (w == "namespace") {
        EXPECT_EQ(peer["podSelector"].size(), 0U) << "expected the bare podSelector {}";
      }
      if (who.empty() || w == "namespace") who = w;
    }
    ASSERT_TRUE(rule["ports"] && rule["ports"].IsSequence()) << "a rule open on every port";
    for (const auto& p : rule["ports"]) {
      open[p["port"].as<std::string>() + "/" + p["protocol"].as<std::string>()] = who;
    }
  }
  EXPECT_EQ(open, (std::map<std::string, std::string>{
                      {"7946/UDP", "mesh"}, {"7946/TCP", "mesh"}, {"8946/TCP", "mesh"}, {"9946/TCP", "namespace"}}));
}

TEST(DeployDockerfile, TwoStagesOnDebian12NonRootWithHealthcheck) {
  const auto ins = dockerfile_instructions(read_text(deploy_path("Dockerfile")));
  std::vector<std::string> from;
  std::string user;
  std::string healthcheck;
  std::string install;
  bool copies_from_build = false;
  for (const auto& i : ins) {
    if (i.keyword == "FROM") from.push_back(i.args);
    if (i.keyword == "USER") user = i.args;
    if (i.keyword == "HEALTHCHECK") healthcheck = i.args;
    if (i.keyword == "COPY" && contains(i.args, "--from=build")) copies_from_build = true;
    if (i.keyword == "RUN" && from.size() == 2 && contains(i.args, "apt-get install")) install = i.args;
    // Configuration comes from the deployment only.
    if (i.keyword == "ENV") {
      EXPECT_FALSE(contains(i.args, "JC_") || contains(i.args, "P2P_ENABLED")) << i.args;
    }
  }
  ASSERT_EQ(from.size(), 2U);
  EXPECT_EQ(from[0], "debian:12 AS build");
  EXPECT_EQ(from[1], "debian:12-slim AS runtime");
  EXPECT_TRUE(copies_from_build);
  ASSERT_FALSE(user.empty());
  EXPECT_NE(user.substr(0, user.find(':')), "root");
  EXPECT_NE(user.substr(0, user.find(':')), "0");
  EXPECT_FALSE(contains(install, "-dev")) << install;
}

// The health check asks the node (`meshctl health`, GET /readyz), never
// `mesh-node --check-config`, which rejects the whole environment over one
// unknown JC_* name. meshctl is in the image for it.
TEST(DeployDockerfile, HealthcheckIsMeshctlHealthAndMeshctlIsInstalled) {
  const auto ins = dockerfile_instructions(read_text(deploy_path("Dockerfile")));
  const auto argv = healthcheck_command(ins);
  std::string joined;
  for (const auto& a : argv) joined += a + " ";
  EXPECT_TRUE(contains(joined, "/usr/local/bin/meshctl health")) << joined;
  EXPECT_FALSE(contains(joined, "--check-config")) << joined;
  bool builds_meshctl = false;
  bool installs_meshctl = false;
  for (const auto& i : ins) {
    if (i.keyword != "RUN") continue;
    if (contains(i.args, "--target") && contains(i.args, " meshctl")) builds_meshctl = true;
    if (contains(i.args, "/out/usr/local/bin") && contains(i.args, "/build/tools/meshctl")) installs_meshctl = true;
  }
  EXPECT_TRUE(builds_meshctl);
  EXPECT_TRUE(installs_meshctl);
  // The parser reads both forms.
  EXPECT_EQ(healthcheck_command(dockerfile_instructions("HEALTHCHECK --interval=5s CMD [\"/bin/true\", \"x\"]\n")),
            (std::vector<std::string>{"/bin/true", "x"}));
  EXPECT_THROW(healthcheck_command(dockerfile_instructions("HEALTHCHECK NONE\n")), std::runtime_error);
}

// What a registry shows: title, description, licence (the LICENSE file's),
// version (by default the project's), revision and source (build
// arguments).
TEST(DeployDockerfile, ImageCarriesOciLabels) {
  std::map<std::string, std::string> labels;
  std::map<std::string, std::string> args;  // ARG name -> default
  for (const auto& i : dockerfile_instructions(read_text(deploy_path("Dockerfile")))) {
    if (i.keyword == "ARG") {
      const auto eq = i.args.find('=');
      args[i.args.substr(0, eq)] = eq == std::string::npos ? "" : i.args.substr(eq + 1);
    }
    if (i.keyword != "LABEL") continue;
    // key="value" pairs, the values quoted.
    std::size_t pos = 0;
    while (pos < i.args.size()) {
      const auto eq = i.args.find("=\"", pos);
      if (eq == std::string::npos) break;
      const auto end = i.args.find('"', eq + 2);
      ASSERT_NE(end, std::string::npos) << i.args;
      std::string key = i.args.substr(pos, eq - pos);
      key.erase(0, key.find_first_not_of(' '));
      labels[key] = i.args.substr(eq + 2, end - eq - 2);
      pos = end + 1;
    }
  }
  const std::string oci = "org.opencontainers.image.";
  EXPECT_EQ(labels[oci + "title"], "mesh");
  EXPECT_FALSE(labels[oci + "description"].empty());
  EXPECT_EQ(labels[oci + "licenses"], "Apache-2.0");
  EXPECT_TRUE(contains(read_text(std::string(MESH_SOURCE_DIR) + "/LICENSE"), "Apache License\n"));
  // ARG defaults are substituted: the version is the project's.
  const std::string cmake = read_text(std::string(MESH_SOURCE_DIR) + "/CMakeLists.txt");
  EXPECT_TRUE(contains(cmake, "project(mesh VERSION " + labels[oci + "version"] + " ")) << labels[oci + "version"];
  EXPECT_EQ(args.count("VERSION"), 1U);
  EXPECT_EQ(args.count("REVISION"), 1U);
  EXPECT_EQ(args.count("SOURCE"), 1U);
  EXPECT_EQ(labels.count(oci + "revision"), 1U);
  EXPECT_EQ(labels.count(oci + "source"), 1U);
}

// The files compose reads its secrets from stay out of the build context
// (`COPY . .` would put them in a layer), as they stay out of git.
TEST(DeployDockerfile, ComposeSecretsStayOutOfTheBuildContext) {
  const std::string ignore = read_text(deploy_path("Dockerfile.dockerignore"));
  const YAML::Node secrets = YAML::LoadFile(deploy_path("compose.yaml"))["secrets"];
  ASSERT_TRUE(secrets && secrets.IsMap());
  for (const auto& kv : secrets) {
    std::string file = kv.second["file"].as<std::string>();
    if (file.rfind("./", 0) == 0) file = file.substr(2);
    EXPECT_TRUE(contains(ignore, "\ndeploy/" + file + "\n")) << "deploy/" << file << " is not in Dockerfile.dockerignore";
  }
}

// The runtime stage's `apt-get install` line.
std::string runtime_install() {
  std::string out;
  int stage = 0;
  for (const auto& i : dockerfile_instructions(read_text(deploy_path("Dockerfile")))) {
    if (i.keyword == "FROM") ++stage;
    if (i.keyword == "RUN" && stage == 2 && contains(i.args, "apt-get install")) out = i.args;
  }
  return out;
}

// Every library the binaries link directly comes from a package the
// runtime stage installs, or from the slim base. Needs dpkg and readelf
// (as on the Debian 12 build machines); the sanitizers' own runtimes are
// not the image's concern.
TEST(DeployDockerfile, RuntimeStageInstallsEveryLibraryTheBinariesLink) {
  if (run_to_exit({"/bin/sh", "-c", "command -v dpkg && command -v readelf"}, {}).exit_code != 0) {
    GTEST_SKIP() << "no dpkg or readelf here";
  }
  const std::string install = runtime_install();
  ASSERT_FALSE(install.empty());
  std::set<std::string> installed = {"libc6", "libstdc++6", "libgcc-s1", "libasan8", "libubsan1"};
  std::istringstream words(install);
  for (std::string w; words >> w;) installed.insert(w);
  // Each binary's NEEDED libraries, and where the loader finds them (the
  // directory tells the architecture: libm.so.6 is also in libc6-i386).
  std::map<std::string, std::vector<std::string>> needs;  // binary -> libraries
  std::map<std::string, std::string> pattern;             // library -> dpkg -S pattern
  for (const std::string& bin : {std::string(MESH_NODE_BIN), std::string(MESHCTL_BIN), std::string(MESH_AGENTS_BIN)}) {
    const auto r = run_to_exit(
        {"/bin/sh", "-c",
         "d=$(ldd '" + bin + "') && for l in $(readelf -d '" + bin +
             "' | sed -n 's/.*(NEEDED).*\\[\\(.*\\)\\]/\\1/p'); do "
             "echo \"$l $(printf '%s\\n' \"$d\" | awk -v l=\"$l\" '$1 == l {print $3}')\"; done"},
        {});
    ASSERT_EQ(r.exit_code, 0);
    std::istringstream in(r.out);
    for (std::string lib, path; in >> lib >> path;) {
      needs[bin].push_back(lib);
      pattern[lib] = "*/" + std::filesystem::path(path).parent_path().filename().string() + "/" + lib;
    }
  }
  // One dpkg -S for all (it reads every package's file list each time).
  std::string query = "dpkg -S";
  for (const auto& [lib, pat] : pattern) query += " '" + pat + "'";
  const auto owners = run_to_exit({"/bin/sh", "-c", query + " 2>/dev/null"}, {});
  std::map<std::string, std::string> package_of;  // library -> package
  std::istringstream lines_in(owners.out);
  for (std::string line; std::getline(lines_in, line);) {
    const auto colon = line.find(':');
    const auto slash = line.rfind('/');
    if (colon == std::string::npos || slash == std::string::npos) continue;
    package_of.emplace(line.substr(slash + 1), line.substr(0, std::min(colon, line.find(','))));
  }
  for (const auto& [bin, libs] : needs) {
    for (const auto& lib : libs) {
      const std::string pkg = package_of.count(lib) != 0 ? package_of.at(lib) : "(none found)";
      EXPECT_EQ(installed.count(pkg), 1U) << bin << " needs " << lib << " from package \"" << pkg
                                          << "\", which the runtime stage does not install";
    }
  }
}

TEST(DeploySystemd, UnitUsesEnvironmentFileRestartsAndStopsGracefully) {
  const std::string unit = read_text(deploy_path("systemd/mesh-node.service"));
  EXPECT_TRUE(contains(unit, "\nEnvironmentFile=/etc/mesh/mesh-node.env\n"));
  EXPECT_TRUE(contains(unit, "\nExecStartPre=/usr/local/bin/mesh-node --check-config\n"));
  EXPECT_TRUE(contains(unit, "\nRestart=on-failure\n"));
  EXPECT_TRUE(contains(unit, "\nRestartPreventExitStatus=2\n"));
  EXPECT_TRUE(contains(unit, "\nKillSignal=SIGTERM\n"));
  EXPECT_TRUE(contains(unit, "\nTimeoutStopSec=20s\n"));
  // The admin token as a credential, named by its directory (%d).
  EXPECT_TRUE(contains(unit, "\nLoadCredential=admin-token:/etc/mesh/admin-token\n"));
  EXPECT_TRUE(contains(unit, "\nEnvironment=JC_ADMIN_TOKEN_FILE=%d/admin-token\n"));
  // The CURVE key pair outlives restarts in the state directory.
  EXPECT_TRUE(contains(unit, "\nStateDirectory=mesh\n"));
  EXPECT_TRUE(contains(unit, "\nEnvironment=JC_DATA_DIR=/var/lib/mesh\n"));

  Env env = environment_file(read_text(deploy_path("systemd/mesh-node.env")));
  env["JC_DATA_DIR"] = "/var/lib/mesh";  // from the unit
  const auto j = accepted("mesh-node.env", env);
  EXPECT_EQ(j.value("data_dir", ""), "/var/lib/mesh");
  EXPECT_EQ(j.value("admin_host", ""), "127.0.0.1");
  EXPECT_EQ(j.value("advertise_host", ""), env.at("JC_ADVERTISE_HOST"));
}

// systemd-analyze, wherever PATH (or the usual places) has it; empty if
// nowhere. Its absence fails the tests that need it: CI installs the
// Debian package systemd (tools/setup.sh), so a missing one is a broken
// setup, not a reason to skip.
std::string systemd_analyze() {
  std::string dirs = "/usr/bin:/bin:/usr/sbin:/sbin";
  if (const char* path = std::getenv("PATH")) dirs = std::string(path) + ":" + dirs;
  std::istringstream in(dirs);
  for (std::string dir; std::getline(in, dir, ':');) {
    if (dir.empty()) continue;
    const std::string candidate = dir + "/systemd-analyze";
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

constexpr const char* kNoSystemdAnalyze =
    "systemd-analyze not found: install the Debian package systemd (tools/setup.sh lists it)";

// The unit's values of `key`, in file order (one per line that sets it).
std::vector<std::string> unit_values(const std::string& unit, const std::string& key) {
  std::vector<std::string> out;
  std::istringstream in(unit);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(key + "=", 0) == 0) out.push_back(line.substr(key.size() + 1));
  }
  return out;
}

// The overall exposure systemd-analyze gives the unit, 0.0 (sealed) to
// 10.0 (wide open); it must stay at 3.0 or below, which systemd calls
// "OK". The score is computed from the unit file alone (--offline), so no
// systemd needs to run here.
TEST(DeploySystemd, SecurityExposureIsAtMostThree) {
  const std::string analyze = systemd_analyze();
  ASSERT_FALSE(analyze.empty()) << kNoSystemdAnalyze;
  const std::string unit = deploy_path("systemd/mesh-node.service");
  const auto r = run_to_exit({analyze, "security", "--offline=true", "--no-pager", unit}, {}, std::chrono::seconds(60));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string marker = "Overall exposure level for mesh-node.service: ";
  const auto at = r.out.find(marker);
  ASSERT_NE(at, std::string::npos) << r.out << r.err;
  const double score = std::strtod(r.out.c_str() + at + marker.size(), nullptr);
  EXPECT_LE(score, 3.0) << r.out;
  EXPECT_GT(score, 0.0) << r.out;  // a parse that read nothing would give 0
}

// `systemd-analyze verify` against a scratch root holding the unit, the
// programs it names (empty stand-ins) and this system's own units (the
// targets it is ordered after): no warning, no error.
TEST(DeploySystemd, VerifyFindsNothingToSay) {
  const std::string analyze = systemd_analyze();
  ASSERT_FALSE(analyze.empty()) << kNoSystemdAnalyze;
  const std::string text = read_text(deploy_path("systemd/mesh-node.service"));
  TempDir root;
  namespace fs = std::filesystem;
  const fs::path units = "/usr/lib/systemd/system";
  ASSERT_TRUE(fs::is_directory(units)) << units << " is missing: the Debian package systemd installs it";
  fs::create_directories(root.path() + "/usr/lib/systemd");
  fs::copy(units, root.path() + "/usr/lib/systemd/system", fs::copy_options::recursive | fs::copy_options::copy_symlinks);
  fs::create_directories(root.path() + "/etc/systemd/system");
  fs::copy_file(deploy_path("systemd/mesh-node.service"), root.path() + "/etc/systemd/system/mesh-node.service");
  for (const std::string key : {"ExecStartPre", "ExecStart", "ExecReload", "ExecStop", "ExecStopPost"}) {
    for (const auto& cmd : unit_values(text, key)) {
      const std::string program = cmd.substr(0, cmd.find(' '));
      ASSERT_EQ(program.rfind('/', 0), 0U) << key << "=" << cmd;
      const fs::path stand_in = root.path() + program;
      fs::create_directories(stand_in.parent_path());
      std::ofstream(stand_in) << "#!/bin/sh\n";
      fs::permissions(stand_in, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                                    fs::perms::others_read | fs::perms::others_exec);
    }
  }
  const auto r = run_to_exit({analyze, "verify", "--no-pager", "--root=" + root.path(), "mesh-node.service"}, {},
                             std::chrono::seconds(60));
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(r.out + r.err, "");
}

// The sandbox still lets the node do its work. Its system call filter
// (the unit's SystemCallFilter= lines applied in order, groups expanded by
// `systemd-analyze syscall-filter`) admits every call the node was seen
// to make (strace -f of two mesh-nodes with a gossip key and a data
// directory joining, gossiping over UDP and TCP, answering meshctl,
// leaving; and of --check-config), including the two that the filter
// gives back from @resources; and the socket families it needs are there.
TEST(DeploySystemd, SandboxAdmitsWhatTheNodeDoes) {
  const std::string analyze = systemd_analyze();
  ASSERT_FALSE(analyze.empty()) << kNoSystemdAnalyze;
  const auto listing = run_to_exit({analyze, "syscall-filter", "--no-pager"}, {}, std::chrono::seconds(60));
  ASSERT_EQ(listing.exit_code, 0) << listing.err;
  std::map<std::string, std::vector<std::string>> groups;  // @group -> members (calls and @groups)
  {
    std::istringstream in(listing.out);
    std::string current;
    for (std::string line; std::getline(in, line);) {
      const auto b = line.find_first_not_of(' ');
      if (b == std::string::npos || line[b] == '#') continue;
      const std::string word = line.substr(b, line.find_first_of(" \t", b) - b);
      if (b == 0) {
        current = word;
      } else if (!current.empty()) {
        groups[current].push_back(word);
      }
    }
  }
  ASSERT_EQ(groups.count("@system-service"), 1U) << listing.out;
  std::function<std::set<std::string>(const std::string&)> expand = [&](const std::string& name) {
    if (name.empty() || name[0] != '@') return std::set<std::string>{name};
    std::set<std::string> out;
    for (const auto& m : groups[name]) out.merge(expand(m));
    return out;
  };

  const std::string unit = read_text(deploy_path("systemd/mesh-node.service"));
  const auto filters = unit_values(unit, "SystemCallFilter");
  ASSERT_FALSE(filters.empty());
  ASSERT_NE(filters.front().front(), '~') << "the first SystemCallFilter= line must be an allow list";
  std::set<std::string> allowed;
  for (const auto& f : filters) {
    const bool deny = f.front() == '~';
    std::istringstream words(deny ? f.substr(1) : f);
    for (std::string w; words >> w;) {
      for (const auto& call : expand(w)) {
        if (deny) {
          allowed.erase(call);
        } else {
          allowed.insert(call);
        }
      }
    }
  }
  const std::vector<std::string> used = {
      "accept",        "accept4",        "access",         "arch_prctl",       "bind",        "brk",
      "clone3",        "close",          "connect",        "epoll_create1",    "epoll_ctl",   "epoll_wait",
      "eventfd2",      "execve",         "exit",           "exit_group",       "fcntl",       "fsync",
      "futex",         "getpeername",    "getpid",         "getrandom",        "getsockname", "getsockopt",
      "gettid",        "ioctl",          "listen",         "lseek",            "madvise",     "mlock",
      "mmap",          "mprotect",       "munlock",        "munmap",           "newfstatat",  "openat",
      "poll",          "prctl",          "pread64",        "prlimit64",        "read",        "recvfrom",
      "recvmsg",       "rename",         "rseq",           "rt_sigaction",     "rt_sigprocmask",
      "rt_sigtimedwait", "sched_getaffinity", "sched_getparam", "sched_getscheduler", "sched_setscheduler",
      "sendmsg",       "sendto",         "set_robust_list", "set_tid_address", "setpriority", "setsockopt",
      "shutdown",      "socket",         "timerfd_create", "timerfd_settime",  "uname",       "write"};
  for (const auto& call : used) EXPECT_EQ(allowed.count(call), 1U) << call << " is refused by the unit's filter";
  // Refused on purpose: changing limits and affinity, privileged calls.
  for (const std::string call : {"setrlimit", "sched_setaffinity", "setuid", "chroot", "mount", "reboot"}) {
    EXPECT_EQ(allowed.count(call), 0U) << call << " is admitted";
  }

  const auto families = unit_values(unit, "RestrictAddressFamilies");
  ASSERT_EQ(families.size(), 1U);
  std::set<std::string> fam;
  std::istringstream words(families.front());
  for (std::string w; words >> w;) fam.insert(w);
  EXPECT_EQ(fam, (std::set<std::string>{"AF_INET", "AF_INET6", "AF_UNIX", "AF_NETLINK"}));
  // Gossip reaches every other node: no network namespace, no IP filter.
  EXPECT_TRUE(unit_values(unit, "PrivateNetwork").empty());
  EXPECT_TRUE(unit_values(unit, "IPAddressDeny").empty());
  EXPECT_TRUE(unit_values(unit, "IPAddressAllow").empty());
  // A refused call fails with an error the program can handle.
  EXPECT_EQ(unit_values(unit, "SystemCallErrorNumber"), (std::vector<std::string>{"EPERM"}));
}


// ---- the Grafana dashboard ------------------------------------------------------

nlohmann::json dashboard() {
  std::ifstream in(std::string(MESH_SOURCE_DIR) + "/deploy/grafana/mesh-dashboard.json");
  EXPECT_TRUE(in.good()) << "deploy/grafana/mesh-dashboard.json is missing";
  return nlohmann::json::parse(in, nullptr, false);
}

// What a PromQL expression names: metrics with the labels its selectors
// match on, and the labels it groups by. A small reader for the subset a
// dashboard uses (selectors, ranges, aggregations with by/without,
// functions, numbers, arithmetic); anything else fails the test.
struct Query {
  std::map<std::string, std::set<std::string>> metrics;  // name -> labels matched on
  std::set<std::string> grouping;
  std::string error;
};

Query read_query(const std::string& expr) {
  static const std::set<std::string> kFunctions = {"sum",  "avg",  "max",  "min",   "count",
                                                   "rate", "irate", "increase", "histogram_quantile",
                                                   "abs",  "clamp_min", "topk"};
  Query q;
  const auto fail = [&q](std::string why) {
    q.error = std::move(why);
    return q;
  };
  const auto ident_char = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == ':'; };
  const auto skip_space = [&](std::size_t& i) {
    while (i < expr.size() && std::isspace(static_cast<unsigned char>(expr[i]))) ++i;
  };
  const auto read_ident = [&](std::size_t& i) {
    const std::size_t from = i;
    while (i < expr.size() && ident_char(expr[i])) ++i;
    return expr.substr(from, i - from);
  };
  const auto read_string = [&](std::size_t& i) {  // at the opening quote
    ++i;
    while (i < expr.size() && expr[i] != '"') i += expr[i] == '\\' ? 2 : 1;
    ++i;
  };
  int depth = 0;
  std::string last_metric;
  for (std::size_t i = 0; i < expr.size();) {
    const char c = expr[i];
    if (std::isspace(static_cast<unsigned char>(c))) {
      ++i;
    } else if (c == '(' || c == ')') {
      depth += c == '(' ? 1 : -1;
      if (depth < 0) q.error = "unbalanced parentheses";
      ++i;
    } else if (c == '[') {  // a range: [5m], [$__rate_interval]
      const auto close = expr.find(']', i);
      if (close == std::string::npos) return fail("unclosed range");
      i = close + 1;
    } else if (c == '{') {  // matchers of the metric just read
      if (last_metric.empty()) return fail("a selector without a metric name");
      ++i;
      for (;;) {
        skip_space(i);
        if (i < expr.size() && expr[i] == '}') break;
        const std::string label = read_ident(i);
        if (label.empty()) return fail("a matcher without a label");
        q.metrics[last_metric].insert(label);
        skip_space(i);
        while (i < expr.size() && (expr[i] == '=' || expr[i] == '!' || expr[i] == '~')) ++i;
        skip_space(i);
        if (i >= expr.size() || expr[i] != '"') return fail("a matcher without a quoted value");
        read_string(i);
        skip_space(i);
        if (i < expr.size() && expr[i] == ',') ++i;
        if (i >= expr.size()) return fail("unclosed selector");
      }
      ++i;
    } else if (std::isdigit(static_cast<unsigned char>(c)) || c == '.') {
      while (i < expr.size() && (std::isdigit(static_cast<unsigned char>(expr[i])) || expr[i] == '.')) ++i;
    } else if (c == '+' || c == '-' || c == '*' || c == '/' || c == ',') {
      ++i;
    } else if (ident_char(c)) {
      const std::string word = read_ident(i);
      std::size_t j = i;
      skip_space(j);
      if (word == "by" || word == "without") {
        if (j >= expr.size() || expr[j] != '(') return fail(word + " without a label list");
        const auto close = expr.find(')', j);
        if (close == std::string::npos) return fail("unclosed label list");
        std::istringstream labels(expr.substr(j + 1, close - j - 1));
        for (std::string l; std::getline(labels, l, ',');) {
          l.erase(0, l.find_first_not_of(' '));
          l.erase(l.find_last_not_of(' ') + 1);
          q.grouping.insert(l);
        }
        i = close + 1;
      } else if (j < expr.size() && expr[j] == '(') {
        if (kFunctions.count(word) == 0) return fail("unknown function " + word);
        last_metric.clear();
      } else if (expr.compare(j, 3, "by ") == 0 || expr.compare(j, 3, "by(") == 0 ||
                 expr.compare(j, 8, "without ") == 0 || expr.compare(j, 8, "without(") == 0) {
        // An aggregation with its grouping first: sum by (x) (...).
        if (kFunctions.count(word) == 0) return fail("unknown aggregation " + word);
        last_metric.clear();
      } else {
        last_metric = word;
        q.metrics[word];
      }
    } else {
      return fail(std::string("unexpected '") + c + "'");
    }
  }
  if (depth != 0) q.error = "unbalanced parentheses";
  return q;
}

TEST(DeployGrafana, DashboardIsAWellFormedGrafanaDashboard) {
  const auto d = dashboard();
  ASSERT_TRUE(d.is_object()) << "not JSON";
  EXPECT_FALSE(d.value("title", "").empty());
  const std::string uid = d.value("uid", "");
  EXPECT_FALSE(uid.empty());
  EXPECT_LE(uid.size(), 40U);  // Grafana's limit
  EXPECT_GE(d.value("schemaVersion", 0), 36);
  // The data source is chosen at import: a variable every panel uses.
  std::set<std::string> variables;
  for (const auto& v : d.at("templating").at("list")) variables.insert(v.value("name", ""));
  ASSERT_EQ(variables.count("datasource"), 1U);
  const auto& panels = d.at("panels");
  ASSERT_TRUE(panels.is_array());
  std::set<int> ids;
  std::set<std::string> rows;
  std::vector<std::array<int, 4>> boxes;
  std::size_t graphs = 0;
  for (const auto& p : panels) {
    const int id = p.at("id").get<int>();
    EXPECT_TRUE(ids.insert(id).second) << "panel id " << id << " twice";
    const auto& g = p.at("gridPos");
    const std::array<int, 4> box = {g.at("x").get<int>(), g.at("y").get<int>(), g.at("w").get<int>(),
                                    g.at("h").get<int>()};
    EXPECT_GE(box[0], 0);
    EXPECT_GT(box[2], 0);
    EXPECT_GT(box[3], 0);
    EXPECT_LE(box[0] + box[2], 24) << "panel " << id << " is wider than the grid";
    for (const auto& o : boxes) {
      const bool apart = box[0] + box[2] <= o[0] || o[0] + o[2] <= box[0] || box[1] + box[3] <= o[1] ||
                         o[1] + o[3] <= box[1];
      EXPECT_TRUE(apart) << "panel " << id << " overlaps another";
    }
    boxes.push_back(box);
    const std::string type = p.value("type", "");
    if (type == "row") {
      rows.insert(p.value("title", ""));
      continue;
    }
    ++graphs;
    EXPECT_TRUE(type == "timeseries" || type == "stat" || type == "gauge") << type;
    EXPECT_FALSE(p.value("title", "").empty()) << "panel " << id;
    EXPECT_EQ(p.at("datasource").value("uid", ""), "${datasource}") << "panel " << id;
    std::set<std::string> refs;
    ASSERT_FALSE(p.at("targets").empty()) << "panel " << id;
    for (const auto& t : p.at("targets")) {
      EXPECT_TRUE(refs.insert(t.value("refId", "")).second) << "panel " << id << ": refId twice";
      const Query q = read_query(t.value("expr", ""));
      EXPECT_TRUE(q.error.empty()) << "panel " << id << ": " << q.error << " in " << t.value("expr", "");
      EXPECT_FALSE(q.metrics.empty()) << "panel " << id << " queries no metric";
    }
  }
  EXPECT_GE(graphs, 12U);
  for (const char* row : {"Membership", "Traffic", "Errors", "Latency"}) {
    EXPECT_EQ(rows.count(row), 1U) << "no row " << row;
  }
}

// A node's /metrics: series name -> the label names it has.
std::map<std::string, std::set<std::string>> exported(const std::string& text) {
  std::map<std::string, std::set<std::string>> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    const auto brace = line.find('{');
    const auto space = line.find(' ');
    auto& labels = out[line.substr(0, std::min(brace, space))];
    if (brace == std::string::npos || brace > space) continue;
    for (std::size_t i = brace + 1; i < line.size() && line[i] != '}';) {
      const auto eq = line.find('=', i);
      if (eq == std::string::npos) break;
      labels.insert(line.substr(i, eq - i));
      std::size_t k = eq + 2;  // past ="
      while (k < line.size() && line[k] != '"') k += line[k] == '\\' ? 2 : 1;
      i = k + 1;
      if (i < line.size() && line[i] == ',') ++i;
    }
  }
  return out;
}

// Every metric the dashboard queries is one a running node exports, with
// the labels the queries match on and group by (instance and job are
// Prometheus' own; le is a histogram bucket's).
TEST(DeployGrafana, EveryQueryNamesSeriesANodeExports) {
  TempDir dir;
  const std::uint16_t admin = free_port();
  Process node({MESH_AGENTS_BIN, "--node-name", "dash", "--swim-host", "127.0.0.1", "--swim-port",
                std::to_string(free_port()), "--zmq-port", std::to_string(free_port()), "--admin-port",
                std::to_string(admin), "--profile", "local", "--agents", "scout,analyst"},
               {{"P2P_ENABLED", "true"}}, dir.path(), "dash");
  std::map<std::string, std::set<std::string>> series;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline) {
    const auto r = http_get("127.0.0.1", admin, "/metrics", std::chrono::seconds(2));
    if (r.ok && r.status == 200) {
      series = exported(r.body);
      if (series.count("mesh_role_agents") != 0 && series.count("mesh_swim_members") != 0) break;
    }
    ASSERT_TRUE(node.running()) << node.log_tail();
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  ASSERT_EQ(series.count("mesh_role_agents"), 1U) << "no metrics\n" << node.log_tail();

  const auto d = dashboard();
  ASSERT_TRUE(d.is_object());
  std::vector<std::string> exprs;
  for (const auto& p : d.at("panels")) {
    if (!p.contains("targets")) continue;
    for (const auto& t : p.at("targets")) exprs.push_back(t.value("expr", ""));
  }
  for (const auto& v : d.at("templating").at("list")) {
    if (v.value("type", "") == "query") exprs.push_back(v.value("definition", ""));
  }
  ASSERT_FALSE(exprs.empty());
  const std::set<std::string> theirs = {"instance", "job"};
  for (const auto& expr : exprs) {
    // label_values(metric, label): the metric, grouped by the label.
    std::string e = expr;
    if (e.rfind("label_values(", 0) == 0) {
      const auto comma = e.find(',');
      e = "count by (" + e.substr(comma + 1, e.size() - comma - 2) + ") (" + e.substr(13, comma - 13) + ")";
    }
    const Query q = read_query(e);
    ASSERT_TRUE(q.error.empty()) << q.error << " in " << expr;
    std::set<std::string> available = theirs;
    for (const auto& [metric, labels] : q.metrics) {
      const auto it = series.find(metric);
      ASSERT_NE(it, series.end()) << metric << " (in " << expr << ") is not exported";
      for (const auto& l : labels) {
        EXPECT_TRUE(theirs.count(l) != 0 || it->second.count(l) != 0)
            << metric << " has no label " << l << " (in " << expr << ")";
      }
      available.insert(it->second.begin(), it->second.end());
    }
    for (const auto& l : q.grouping) {
      EXPECT_EQ(available.count(l), 1U) << "grouped by " << l << ", which none of its metrics has: " << expr;
    }
  }
}

}  // namespace
}  // namespace mesh::test::deploy
