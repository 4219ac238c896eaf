// mesh_trust_cost: what the trust checks and governed conversations cost an
// agent's messages, measured against the same Meshes without them, side by
// side in one run.
//
// Two Meshes (P2P on, 127.0.0.1, ports chosen by the kernel) in this one
// process: node "acme-srv" hosts an agent answering every request and
// counting every notify; node "acme-cli" hosts the client, whose thread
// sends. Three configurations, each a fresh pair per round, in an order
// that rotates from round to round:
//
//   bare    no gossip key, no policy, and no conversations (MeshOptions::
//           conversations off: no thread stamped, none checked);
//   plain   no gossip key, no policy: no CURVE; the sender checks of issue 13
//           still run (a frame's node against its connection, the sender
//           agent against that node's registry): they cannot be turned off;
//           threads stamped and checked (the default);
//   audited plain, and both nodes write the audit trail (payload digests,
//           no fsync) to a temporary directory;
//   keyed   a gossip key: CURVE on every connection, each frame's node from
//           its key, signed registries;
//   policy  keyed, plus a policy (4 zones by node name, claim and role, 6
//           rules) checked before each send and on each arrival; the
//           traffic measured is allowed.
//
// Per configuration and round: --requests round trips, one in flight
// (PeerClient::request), after a warm-up; then --notifies notifies as fast
// as the sender's queue takes them (a refused one is retried after 50 µs;
// one the receiver refuses for want of mailbox room is sent again), timed
// from the first send to the last arrival at the agent. The report:
// medians over rounds of p50 / p99 / msg/s, and the ratios keyed/plain,
// policy/keyed (what the policy costs; the target is at most 1.10 for
// latency, at least 0.90 for throughput), policy/plain, plain/bare (what
// threads cost) and audited/bare (threads and the audit trail: the target is
// at most 1.10), and the audit records and bytes both nodes wrote per
// request.
//
//   mesh_trust_cost [--rounds 3] [--requests 5000] [--notifies 50000]
//                   [--configs bare,plain,audited,keyed,policy] [--json]
//
// Exit 0 after the run; 1 when a request fails or notifies stop arriving
// (a deadline of 60 s per phase); 2 on bad flags.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "mesh/cli.hpp"
#include "mesh/mesh.hpp"
#include "mesh/swim/membership.hpp"

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using Json = nlohmann::json;

constexpr char kGossipKey[] = "cg8StVXbQJ0gPvMd9o7yrg==";
constexpr char kPolicy[] = R"(
zones:
  acme:
    nodes: ["acme-*"]
  globex:
    nodes: ["globex-*"]
  certified:
    claims: ["acme", "eu"]
  ops:
    roles: ["auditor", "operator"]
rules:
  - from: globex
    to: globex
    allow: [notify, request]
  - from: ops
    to: "*"
    allow: [request, authority]
  - from: certified
    to: acme
    allow: [request]
  - from: globex
    to: acme
    allow: [request]
  - from: acme
    to: globex
    allow: [broadcast]
  - from: acme
    to: acme
    allow: [notify, request, broadcast]
)";

struct Options {
  std::size_t rounds = 3;
  std::size_t requests = 5000;
  std::size_t notifies = 50000;
  bool json = false;
};

class Server : public mesh::CustomAgent {
 public:
  // A mailbox that holds every notify of a run: the row measures the
  // path, not the mailbox bound (a refused notify is reported, not resent).
  explicit Server(std::size_t mailbox)
      : CustomAgent({.role = "server", .agent_id = "server", .mailbox_limit = mailbox}) {}
  std::atomic<std::uint64_t> notified{0};
  std::atomic<std::int64_t> last_ns{0};

 protected:
  std::optional<mesh::Json> on_peer_request(const mesh::IncomingMessage& m) override { return m.data; }
  void on_peer_notify(const mesh::IncomingMessage&) override {
    last_ns.store(Clock::now().time_since_epoch().count(), std::memory_order_relaxed);
    notified.fetch_add(1, std::memory_order_release);
  }
};

struct Figures {
  double p50_us = 0;
  double p99_us = 0;
  double msg_per_s = 0;
  // audited: what both nodes' trails wrote per request round trip (the
  // warm-up's included), counted once the request phase is over.
  double audit_records_per_request = 0;
  double audit_bytes_per_request = 0;
};

mesh::NodeConfig config_for(const std::string& name, const std::string& config, const std::string& policy_path,
                            std::vector<std::string> seeds, const std::string& audit_dir) {
  mesh::NodeConfig c;
  c.node_name = name;
  c.p2p_enabled = true;
  c.swim_host = "127.0.0.1";
  c.swim_port = 0;
  c.zmq_port = 0;
  c.profile = mesh::swim::Profile::Local;
  c.leave_timeout = 500ms;
  c.seeds = std::move(seeds);
  c.log_level = mesh::LogLevel::Error;  // "plain" warns that it is
  c.mailbox_bytes = 1u << 30;
  if (config == "keyed" || config == "policy") c.gossip_key = *mesh::swim::Keyring::decode_base64_key(kGossipKey);
  if (config == "policy") c.policy_file = policy_path;
  if (config == "audited") c.audit_dir = audit_dir + "/" + name;
  return c;
}

mesh::MeshOptions options_for(const std::string& config) {
  mesh::MeshOptions o;
  o.conversations = config != "bare";
  return o;
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const auto i = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1));
  return v[i];
}

// One configuration, one round: a fresh pair of Meshes.
std::optional<Figures> measure(const std::string& config, const std::string& policy_path,
                               const std::string& audit_dir, const Options& o) {
  mesh::Mesh server(config_for("acme-srv", config, policy_path, {}, audit_dir), options_for(config));
  auto& agent = server.add<Server>(o.notifies + 1000);
  server.start();
  mesh::Mesh client(config_for("acme-cli", config, policy_path, {"127.0.0.1:" + std::to_string(server.swim_port())},
                               audit_dir),
                    options_for(config));
  auto& me = client.add<mesh::Agent>(mesh::AgentSpec{.role = "client", .agent_id = "client"});
  client.start();
  const auto ready_by = Clock::now() + 60s;
  while (!me.peers().registry().contains("server") || !server.directory().find("client")) {
    if (Clock::now() > ready_by) {
      std::cerr << config << ": the two nodes did not find each other's agents in 60 s\n";
      return std::nullopt;
    }
    std::this_thread::sleep_for(10ms);
  }
  const mesh::Json payload = {{"data", std::string(200, 'x')}};
  for (int i = 0; i < 200; ++i) {
    if (!me.peers().request_blocking("server", payload, 10s)) {
      std::cerr << config << ": a warm-up request failed\n";
      return std::nullopt;
    }
  }
  std::vector<double> rtt;
  rtt.reserve(o.requests);
  for (std::size_t i = 0; i < o.requests; ++i) {
    const auto t0 = Clock::now();
    if (!me.peers().request_blocking("server", payload, 10s)) {
      std::cerr << config << ": request " << i << " failed\n";
      return std::nullopt;
    }
    rtt.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
  }
  Figures f;
  f.p50_us = percentile(rtt, 0.50);
  f.p99_us = percentile(rtt, 0.99);
  if (config == "audited") {
    // The trails write from a queue a few milliseconds behind: wait until
    // their counts stand still.
    std::uint64_t records = 0;
    std::uint64_t bytes = 0;
    for (;;) {
      std::this_thread::sleep_for(50ms);
      const auto c = client.stats();
      const auto s = server.stats();
      if (c.audit_records + s.audit_records == records) break;
      records = c.audit_records + s.audit_records;
      bytes = c.audit_bytes + s.audit_bytes;
    }
    const auto exchanges = static_cast<double>(o.requests + 200);
    f.audit_records_per_request = static_cast<double>(records) / exchanges;
    f.audit_bytes_per_request = static_cast<double>(bytes) / exchanges;
  }

  // A notify the receiver refuses for want of room (its mailbox's share
  // for one sender) is reported back and sent again; any other failure
  // ends the run.
  std::atomic<std::uint64_t> refused{0};
  std::atomic<std::uint64_t> lost{0};
  me.peers().on_delivery_failure([&](const mesh::DeliveryFailure& failure) {
    (failure.reason == mesh::ErrorCode::MailboxFull ? refused : lost).fetch_add(1);
  });
  const auto start = Clock::now();
  std::uint64_t sent = 0;
  while (agent.notified.load(std::memory_order_acquire) < o.notifies) {
    if (sent - refused.load() < o.notifies) {
      if (me.peers().notify("server", payload)) {
        ++sent;
      } else {
        std::this_thread::sleep_for(50us);  // the sender's own queue is full
      }
    } else {
      std::this_thread::sleep_for(100us);
    }
    if (Clock::now() - start > 60s || lost.load() > 0) {
      std::cerr << config << ": " << agent.notified.load() << " of " << o.notifies << " notifies arrived, "
                << lost.load() << " lost\n";
      return std::nullopt;
    }
  }
  me.peers().on_delivery_failure(nullptr);
  const double seconds =
      std::chrono::duration<double>(Clock::duration(agent.last_ns.load()) - start.time_since_epoch()).count();
  f.msg_per_s = static_cast<double>(o.notifies) / seconds;
  client.stop();
  server.stop();
  return f;
}

double median(std::vector<double> v) { return percentile(std::move(v), 0.5); }

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app(
      "What the trust checks and governed conversations cost an agent's requests and\n"
      "notifies: two Meshes in this process, bare (no conversations), plain (no gossip\n"
      "key), audited (an audit trail), keyed (CURVE, signed registries) and with a\n"
      "policy, side by side (docs/benchmarks.md). Exit 0 after the run, 1 when a\n"
      "request fails or notifies stop arriving, 2 on bad flags.");
  mesh::cli::setup(app, "mesh_trust_cost");
  app.add_option("--rounds", o.rounds, "rounds, 1..50 (default 3)")->transform(mesh::cli::whole_number(1, 50));
  app.add_option("--requests", o.requests, "round trips per configuration and round (default 5000)")
      ->transform(mesh::cli::whole_number(1, 1'000'000));
  app.add_option("--notifies", o.notifies, "notifies per configuration and round (default 50000)")
      ->transform(mesh::cli::whole_number(1, 10'000'000));
  std::vector<std::string> configs = {"bare", "plain", "audited", "keyed", "policy"};
  app.add_option("--configs", configs, "the configurations to run (default: all five)")
      ->delimiter(',')
      ->check(CLI::IsMember({"bare", "plain", "audited", "keyed", "policy"}));
  app.add_flag("--json", o.json, "one JSON object on stdout");
  try {
    if (auto done = mesh::cli::parse(app, argc, argv)) return *done;
  } catch (const mesh::UsageError& e) {
    std::cerr << "mesh_trust_cost: " << e.what() << "\n";
    return 2;
  }
  const std::string policy_path =
      (std::filesystem::temp_directory_path() / ("mesh-trust-cost-" + std::to_string(getpid()) + ".yaml")).string();
  std::ofstream(policy_path) << kPolicy;
  const std::string audit_dir =
      (std::filesystem::temp_directory_path() / ("mesh-trust-cost-audit-" + std::to_string(getpid()))).string();

  std::map<std::string, std::vector<Figures>> runs;
  int status = 0;
  for (std::size_t r = 0; r < o.rounds && status == 0; ++r) {
    for (std::size_t k = 0; k < configs.size(); ++k) {
      const std::string& c = configs[(k + r) % configs.size()];
      auto f = measure(c, policy_path, audit_dir, o);
      std::filesystem::remove_all(audit_dir);
      if (!f) {
        status = 1;
        break;
      }
      std::cerr << "round " << r + 1 << " " << c << ": p50 " << f->p50_us << " us, p99 " << f->p99_us << " us, "
                << f->msg_per_s << " msg/s";
      if (c == "audited") {
        std::cerr << ", trail per request: " << f->audit_records_per_request << " records, "
                  << f->audit_bytes_per_request << " bytes";
      }
      std::cerr << "\n";
      runs[c].push_back(*f);
    }
  }
  std::filesystem::remove(policy_path);
  if (status != 0) return status;

  Json out;
  std::map<std::string, Figures> med;
  for (const auto& c : configs) {
    std::vector<double> p50, p99, rate;
    for (const auto& f : runs[c]) {
      p50.push_back(f.p50_us);
      p99.push_back(f.p99_us);
      rate.push_back(f.msg_per_s);
    }
    med[c] = Figures{median(p50), median(p99), median(rate)};
    out[c] = {{"p50_us", med[c].p50_us}, {"p99_us", med[c].p99_us}, {"msg_per_s", med[c].msg_per_s}};
    if (c == "audited" && !runs[c].empty()) {
      out[c]["audit_records_per_request"] = runs[c].back().audit_records_per_request;
      out[c]["audit_bytes_per_request"] = runs[c].back().audit_bytes_per_request;
    }
  }
  // Each ratio: the median over rounds of that round's ratio.
  auto ratio = [&](const std::string& a, const std::string& b, double Figures::*field) {
    std::vector<double> v;
    for (std::size_t i = 0; i < runs[a].size(); ++i) v.push_back(runs[a][i].*field / runs[b][i].*field);
    return median(v);
  };
  for (const auto& [a, b] : {std::pair{"keyed", "plain"}, {"policy", "keyed"}, {"policy", "plain"},
                             {"plain", "bare"}, {"audited", "bare"}}) {
    if (!runs.contains(a) || !runs.contains(b)) continue;
    out["ratios"][std::string(a) + "/" + b] = {{"p50", ratio(a, b, &Figures::p50_us)},
                                               {"p99", ratio(a, b, &Figures::p99_us)},
                                               {"msg_per_s", ratio(a, b, &Figures::msg_per_s)}};
  }
  out["rounds"] = o.rounds;
  out["requests"] = o.requests;
  out["notifies"] = o.notifies;
  if (o.json) {
    std::cout << out.dump() << "\n";
    return 0;
  }
  std::printf("%-8s %10s %10s %12s\n", "config", "p50 us", "p99 us", "msg/s");
  for (const auto& c : configs) {
    std::printf("%-8s %10.1f %10.1f %12.0f\n", c.c_str(), med[c].p50_us, med[c].p99_us, med[c].msg_per_s);
  }
  if (out.contains("audited")) {
    std::printf("\naudit trail per request (both nodes): %.2f records, %.0f bytes\n",
                out["audited"]["audit_records_per_request"].get<double>(),
                out["audited"]["audit_bytes_per_request"].get<double>());
  }
  std::printf("\n%-14s %7s %7s %9s\n", "ratio", "p50", "p99", "msg/s");
  for (const auto& [k, v] : out["ratios"].items()) {
    std::printf("%-14s %7.2f %7.2f %9.2f\n", k.c_str(), v["p50"].get<double>(), v["p99"].get<double>(),
                v["msg_per_s"].get<double>());
  }
  return 0;
}
