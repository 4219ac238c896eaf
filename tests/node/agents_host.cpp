// mesh_agents_host: a test program that hosts a Mesh with three agents and
// serves the admin API every node serves (mesh::AdminEndpoint: /healthz,
// /metrics, /v1/members, /v1/self, /v1/agents, POST /v1/send,
// /v1/request). Configured like mesh-node (flags, JC_* environment,
// P2P_ENABLED). Agents, each "<role>-<node name>":
//   echo  (capabilities echo, test): answers {"echo": data, "context": ctx}
//   sink  (capability log): keeps notifies; a request answers
//         {"received": [data, ...]} in arrival order
//   slow  (capability test): answers {"slept": true} after 1 s, or after
//         data["sleep_ms"] (at most 60 s) when the request gives it
//   relay (capability relay), only when AGENTS_HOST_RELAY=1 is in the
//         environment: uses its own PeerClient on request, so that tests
//         drive PeerClient calls made on this node (Relay below)
// With AGENTS_HOST_CONVERSATIONS=1, the agents of governed conversations
// (tests/node/conversation_process_test.cpp):
//   player  passes a notify {"ball": n} on to AGENTS_HOST_PARTNER (an agent
//           id) as {"ball": n + 1}; a request answers {"received": count,
//           "refused": the code of a refused or failed pass, or ""}
//   asker   a request {"path": [id, ...]} asks the first agent with the
//           rest of the path, and answers what came back, or {"error": code}
//   pricey  answers {"spent_before": the thread's cost} and costs 1.0
//   closer  authority only: answers {"closed": true}
// Exit codes: 0 after SIGINT / SIGTERM, 1 when it cannot start, 2 on bad
// configuration.
#include <algorithm>
#include <future>
#include <cstdlib>
#include <iostream>
#include <mutex>
#include <thread>
#include <vector>

#include "mesh/admin_endpoint.hpp"
#include "mesh/mesh.hpp"
#include "mesh/node_config.hpp"

namespace {

class Echo : public mesh::CustomAgent {
 public:
  explicit Echo(const std::string& node)
      : CustomAgent({.role = "echo",
                     .capabilities = {"echo", "test"},
                     .description = "answers with what it got",
                     .agent_id = "echo-" + node}) {}
  explicit Echo(mesh::AgentSpec spec) : CustomAgent(std::move(spec)) {}

 protected:
  std::optional<mesh::Json> on_peer_request(const mesh::IncomingMessage& m) override {
    return mesh::Json{{"echo", m.data}, {"context", m.context}};
  }
};

class Sink : public mesh::CustomAgent {
 public:
  explicit Sink(const std::string& node)
      : CustomAgent({.role = "sink",
                     .capabilities = {"log"},
                     .description = "keeps notifies",
                     .agent_id = "sink-" + node}) {}

 protected:
  void on_peer_notify(const mesh::IncomingMessage& m) override {
    std::lock_guard lock(mu_);
    received_.push_back(m.data);
  }
  std::optional<mesh::Json> on_peer_request(const mesh::IncomingMessage&) override {
    std::lock_guard lock(mu_);
    return mesh::Json{{"received", received_}};
  }

 private:
  std::mutex mu_;
  std::vector<mesh::Json> received_;
};

class Slow : public mesh::CustomAgent {
 public:
  explicit Slow(const std::string& node)
      : CustomAgent({.role = "slow",
                     .capabilities = {"test"},
                     .description = "answers after a second",
                     .agent_id = "slow-" + node,
                     .concurrency = 4}) {}

 protected:
  mesh::Task<std::optional<mesh::Json>> on_request(const mesh::IncomingMessage& m) override {
    std::int64_t ms = 1000;
    if (m.data.is_object() && m.data.contains("sleep_ms") && m.data["sleep_ms"].is_number_integer()) {
      ms = std::clamp<std::int64_t>(m.data["sleep_ms"].get<std::int64_t>(), 0, 60'000);
    }
    co_await peers().sleep(std::chrono::milliseconds(ms));
    co_return mesh::Json{{"slept", true}};
  }
};

std::string text_of(const mesh::Json& j, const char* key) {
  return j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : std::string();
}

mesh::Json peer_json(const mesh::PeerInfo& p) {
  return mesh::Json{{"agent_id", p.card.agent_id},
                    {"node", p.card.node},
                    {"location", p.local ? "local" : "remote"},
                    {"node_health", std::string(mesh::to_string(p.node_health))}};
}

mesh::Json response_json(const mesh::Response& r) {
  return mesh::Json{{"data", r.data},
                    {"context", r.context},
                    {"sender", r.sender},
                    {"sender_node", r.sender_node},
                    {"correlation_id", r.correlation_id}};
}

// Relay: a request {"op": ..., ...} makes this agent call its own
// PeerClient and answer with the outcome, so that a test in another process
// exercises PeerClient on this node. Context of the request travels on.
// "fill_bytes": N replaces "message" by a string of N bytes (at most 64 MiB),
// for oversized sends made here.
//   {"op":"request", "target", "message", "timeout_ms"?}
//       -> {"ok", "error", "response"?: {data, context, sender, ...}}
//   {"op":"notify", "target", "message"} -> {"sent"}
//   {"op":"ask", "target", "message", "timeout_ms"?, "wait_ms"?}
//       -> {"status", "error", "response"?} or {"thrown", "code"}
//   {"op":"discover", "role"?, "capability"?, "strategy"?}
//       -> {"peers": [{agent_id, node, location, node_health}]} or {"thrown"}
//   {"op":"broadcast", "message"} -> {"count"}
//   {"op":"respond", "message", "ctx"?}: answers with peers().respond (ctx
//       overrides the carried context when given), then tries a second
//       answer; as a notify, tries to answer it. Both outcomes are kept.
//   {"op":"last"} -> {"second_respond"?, "notify_respond"?}
//   {"op":"add_agent", "agent_id", "role"} / {"op":"remove_agent", "agent_id"}:
//       adds an echo-like agent to this node's Mesh, or removes one.
class Relay : public mesh::CustomAgent {
 public:
  Relay(const std::string& node, mesh::Mesh& host_mesh)
      : CustomAgent({.role = "relay",
                     .capabilities = {"relay"},
                     .description = "calls its PeerClient on request",
                     .agent_id = "relay-" + node,
                     .concurrency = 4}),
        mesh_(host_mesh) {}

 protected:
  mesh::Task<std::optional<mesh::Json>> on_request(const mesh::IncomingMessage& m) override {
    if (!m.data.is_object()) co_return mesh::Json{{"thrown", "the request must be an object"}};
    const std::string op = text_of(m.data, "op");
    const std::string target = text_of(m.data, "target");
    mesh::Json message = m.data.value("message", mesh::Json());
    if (m.data.contains("fill_bytes") && m.data["fill_bytes"].is_number_unsigned()) {
      message = std::string(std::min<std::size_t>(m.data["fill_bytes"].get<std::size_t>(), 64u << 20), 'z');
    }
    const auto timeout = std::chrono::milliseconds(m.data.value("timeout_ms", 5000));
    try {
      if (op == "request") {
        const mesh::RequestOutcome o = co_await peers().request_detailed(target, message, timeout, m.context);
        mesh::Json out{{"ok", o.ok()}, {"error", std::string(mesh::transport::to_string(o.error))}};
        if (o.response) out["response"] = response_json(*o.response);
        co_return out;
      }
      if (op == "notify") co_return mesh::Json{{"sent", peers().notify(target, message, m.context)}};
      if (op == "ask") {
        const std::string id = peers().ask_async(target, message, timeout, m.context);
        const auto check =
            co_await peers().check_inbox_status(id, std::chrono::milliseconds(m.data.value("wait_ms", 5000)));
        static constexpr const char* kStatus[] = {"pending", "ready", "expired", "unknown"};
        mesh::Json out{{"status", kStatus[static_cast<int>(check.status)]},
                       {"error", std::string(mesh::transport::to_string(check.error))}};
        if (check.response) out["response"] = response_json(*check.response);
        co_return out;
      }
      if (op == "discover") {
        const mesh::PeerQuery q{text_of(m.data, "role"), text_of(m.data, "capability")};
        const std::string strategy = m.data.value("strategy", std::string("first"));
        mesh::Json list = mesh::Json::array();
        for (const auto& p : peers().discover(q, strategy)) list.push_back(peer_json(p));
        co_return mesh::Json{{"peers", list}};
      }
      if (op == "broadcast") co_return mesh::Json{{"count", peers().broadcast(message, m.context)}};
      if (op == "respond") {
        std::optional<mesh::Json> ctx;
        if (m.data.contains("ctx")) ctx = m.data["ctx"];
        peers().respond(m, mesh::Json{{"responded", message}}, ctx);
        const bool again = peers().respond(m, mesh::Json{{"responded", "twice"}});
        std::lock_guard lock(mu_);
        last_["second_respond"] = again;
        co_return std::nullopt;
      }
      if (op == "last") {
        std::lock_guard lock(mu_);
        co_return last_;
      }
      if (op == "add_agent") {
        mesh_.add<Echo>(mesh::AgentSpec{.role = text_of(m.data, "role"), .agent_id = text_of(m.data, "agent_id")});
        co_return mesh::Json{{"added", true}};
      }
      if (op == "remove_agent") {
        // Mesh::remove waits for the agent to stop: not on the executor.
        auto removed = std::async(std::launch::async, [this, id = text_of(m.data, "agent_id")] { return mesh_.remove(id); });
        while (removed.wait_for(std::chrono::milliseconds(0)) != std::future_status::ready) {
          co_await peers().sleep(std::chrono::milliseconds(5));
        }
        co_return mesh::Json{{"removed", removed.get()}};
      }
    } catch (const mesh::MeshError& e) {
      co_return mesh::Json{{"thrown", e.what()}, {"code", std::string(mesh::transport::to_string(e.code()))}};
    } catch (const std::exception& e) {
      co_return mesh::Json{{"thrown", e.what()}};
    }
    co_return mesh::Json{{"thrown", "unknown op \"" + op + "\""}};
  }

  void on_peer_notify(const mesh::IncomingMessage& m) override {
    if (!m.data.is_object() || text_of(m.data, "op") != "respond") return;
    const bool answered = peers().respond(m, mesh::Json{{"responded", "a notify"}});
    std::lock_guard lock(mu_);
    last_["notify_respond"] = answered;
  }

 private:
  mesh::Mesh& mesh_;
  std::mutex mu_;
  mesh::Json last_ = mesh::Json::object();
};

class Player : public mesh::CustomAgent {
 public:
  Player(const std::string& node, std::string partner)
      : CustomAgent({.role = "player", .agent_id = "player-" + node}), partner_(std::move(partner)) {}

 protected:
  void setup() override {
    peers().on_delivery_failure([this](const mesh::DeliveryFailure& f) {
      std::lock_guard lock(mu_);
      refused_ = std::string(mesh::transport::to_string(f.reason));
    });
  }
  void on_peer_notify(const mesh::IncomingMessage& m) override {
    const auto ball = m.data.value("ball", 0);
    const auto e = peers().notify_detailed(partner_, mesh::Json{{"ball", ball + 1}});
    std::lock_guard lock(mu_);
    ++received_;
    if (e != mesh::ErrorCode::None) refused_ = std::string(mesh::transport::to_string(e));
  }
  std::optional<mesh::Json> on_peer_request(const mesh::IncomingMessage&) override {
    std::lock_guard lock(mu_);
    return mesh::Json{{"received", received_}, {"refused", refused_}};
  }

 private:
  const std::string partner_;
  std::mutex mu_;
  int received_ = 0;
  std::string refused_;
};

class Asker : public mesh::CustomAgent {
 public:
  explicit Asker(const std::string& node) : CustomAgent({.role = "asker", .agent_id = "asker-" + node}) {}

 protected:
  mesh::Task<std::optional<mesh::Json>> on_request(const mesh::IncomingMessage& m) override {
    mesh::Json path = m.data.value("path", mesh::Json::array());
    if (!path.is_array() || path.empty()) co_return mesh::Json{{"depth", m.thread().depth}};
    const std::string next = path[0].get<std::string>();
    path.erase(path.begin());
    const mesh::Json rest = {{"path", path}};
    const auto out = co_await peers().request_detailed(next, rest, std::chrono::milliseconds(5000));
    if (!out.ok()) co_return mesh::Json{{"error", std::string(mesh::transport::to_string(out.error))}};
    co_return out.response->data;
  }
};

class Pricey : public mesh::CustomAgent {
 public:
  explicit Pricey(const std::string& node) : CustomAgent({.role = "pricey", .agent_id = "pricey-" + node}) {}

 protected:
  std::optional<mesh::Json> on_peer_request(const mesh::IncomingMessage& m) override {
    m.report_cost(1.0);
    return mesh::Json{{"spent_before", m.thread().spent}};
  }
};

class Closer : public mesh::CustomAgent {
 public:
  explicit Closer(const std::string& node)
      : CustomAgent({.role = "closer", .agent_id = "closer-" + node, .authority_only = true}) {}

 protected:
  std::optional<mesh::Json> on_peer_request(const mesh::IncomingMessage&) override {
    return mesh::Json{{"closed", true}};
  }
};

int run(const mesh::NodeConfig& cfg) {
  mesh::Mesh node(cfg);
  node.add<Echo>(cfg.node_name);
  node.add<Sink>(cfg.node_name);
  node.add<Slow>(cfg.node_name);
  if (const char* relay = std::getenv("AGENTS_HOST_RELAY"); relay && std::string(relay) == "1") {
    node.add<Relay>(cfg.node_name, node);
  }
  if (const char* on = std::getenv("AGENTS_HOST_CONVERSATIONS"); on && std::string(on) == "1") {
    const char* partner = std::getenv("AGENTS_HOST_PARTNER");
    node.add<Player>(cfg.node_name, partner ? partner : "");
    node.add<Asker>(cfg.node_name);
    node.add<Pricey>(cfg.node_name);
    node.add<Closer>(cfg.node_name);
  }
  mesh::AdminEndpoint admin(node);
  node.start();
  admin.start();
  std::cerr << "mesh_agents_host: node " << cfg.node_name << " admin on http://"
            << admin.endpoint() << std::endl;
  node.run_forever();
  admin.stop();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const std::vector<std::string> args(argv + 1, argv + argc);
    const mesh::NodeConfig cfg = mesh::load_node_config(args, mesh::current_environment());
    return run(cfg);
  } catch (const mesh::ConfigError& e) {
    std::cerr << "mesh_agents_host: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "mesh_agents_host: " << e.what() << "\n";
    return 1;
  }
}
