// mesh-trust-probe: a test-only node for tests/netns/trust_netns_test.cpp
// (never installed). It runs one Mesh with the node's usual JC_*
// environment (P2P always on) and its admin endpoint, and plays the part a
// test gives it:
//
//   mesh-trust-probe [--agent ID]... [--bad-signature]
//                    [--forge VICTIM_NODE --foreign-agent AGENT --to NODE/AGENT]
//                    [--say-to AGENT]
//   mesh-trust-probe --get HOST:PORT PATH    (an HTTP GET, e.g. /metrics)
//   mesh-trust-probe --curve-keygen          (a CURVE key pair, JSON)
//
//  --agent ID       hosts a recording agent: every message it gets is one
//                   JSON line on stdout, flushed:
//                   {"got": data, "kind": "notify"|"request", "to": ID,
//                    "from": sender agent, "from_node": sender node};
//                   requests are answered {"echo": data, "by": ID, "node": N}.
//  --bad-signature  serves its registry signed with a CURVE secret drawn
//                   here, not its own (Mesh::sign_registry_with_for_test):
//                   other nodes must list none of its agents.
//  --forge ...      once NODE/AGENT and AGENT are in its directory, sends
//                   NODE raw envelopes (Transport::send_raw_for_test) that
//                   lie about their sender: a notify and a request naming
//                   VICTIM_NODE as sender_node, then a notify and a request
//                   from this node naming AGENT (an agent another node
//                   holds) as sender agent; then an honest raw notify and
//                   one through the agent's client, from the first --agent.
//                   Each send is one JSON line on stdout ({"sent": label,
//                   ...}), then {"forged_all": true}. Payloads of the lies
//                   carry "forged": true, so a receiver printing one is
//                   caught.
//  --say-to AGENT   once AGENT is in its directory, the first --agent asks
//                   it (a request, 20 s) and then tells it (a notify), the
//                   ordinary way; prints {"said": "request"|"notify",
//                   "result": error code, "response": ...}.
// Runs until SIGINT / SIGTERM. Logs (JC_LOG_LEVEL) go to stderr.
#include <chrono>
#include <exception>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "mesh/admin_client.hpp"
#include "mesh/admin_endpoint.hpp"
#include "mesh/logging.hpp"
#include "mesh/mesh.hpp"
#include "mesh/transport/envelope.hpp"
#include "mesh/transport/transport.hpp"

namespace {

using mesh::Json;
using namespace std::chrono_literals;

std::mutex out_mu;

// One JSON line on stdout, flushed (the test reads the file as it grows).
void emit(const Json& line) {
  std::lock_guard lock(out_mu);
  std::cout << line.dump() << std::endl;
}

class Recorder : public mesh::CustomAgent {
 public:
  explicit Recorder(std::string id) : CustomAgent({.role = "recorder", .agent_id = std::move(id)}) {}

 protected:
  std::optional<Json> on_peer_request(const mesh::IncomingMessage& m) override {
    record(m, "request");
    return Json{{"echo", m.data}, {"by", id()}, {"node", peers().node_name()}};
  }
  void on_peer_notify(const mesh::IncomingMessage& m) override { record(m, "notify"); }

 private:
  void record(const mesh::IncomingMessage& m, const char* kind) {
    emit(Json{{"got", m.data}, {"kind", kind}, {"to", id()}, {"from", m.sender}, {"from_node", m.sender_node}});
  }
};

struct Options {
  std::vector<std::string> agents;
  bool bad_signature = false;
  std::string victim_node;
  std::string foreign_agent;
  std::string to_node;
  std::string to_agent;
  std::string say_to;
};

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Sends the lies and the honest messages of --forge (see the top).
void forge(mesh::Mesh& mesh, const Options& o, mesh::PeerClient& own) {
  // Both agents must be known first: the target to be reachable, the
  // foreign agent so that the receiver knows whose it is.
  const auto deadline = std::chrono::steady_clock::now() + 80s;
  while (!(mesh.directory().find(o.to_agent) && mesh.directory().find(o.foreign_agent))) {
    if (std::chrono::steady_clock::now() > deadline || !mesh.running()) {
      emit(Json{{"forge_error", "the target or the foreign agent never appeared in the directory"}});
      return;
    }
    std::this_thread::sleep_for(200ms);
  }
  mesh::transport::Transport& transport = *mesh.transport_for_test();
  mesh::transport::MessageIdGenerator ids;
  auto send = [&](const std::string& label, mesh::transport::MessageType type, const std::string& sender_node,
                  const std::string& sender_agent, bool forged) {
    mesh::transport::Envelope e;
    e.id = ids.next();
    e.type = type;
    e.sender_node = sender_node;
    e.sender_agent = sender_agent;
    e.target = o.to_agent;
    e.created_ms = now_ms();
    if (type == mesh::transport::MessageType::Request) e.deadline_ms = e.created_ms + 10000;
    e.payload = Json::to_msgpack(Json{{"label", label}, {"forged", forged}});
    const auto result = transport.send_raw_for_test(o.to_node, mesh::transport::encode(e));
    emit(Json{{"sent", label},
              {"sender_node", sender_node},
              {"sender_agent", sender_agent},
              {"result", std::string(mesh::transport::to_string(result))}});
  };
  using mesh::transport::MessageType;
  send("victim-node-notify", MessageType::Notify, o.victim_node, o.foreign_agent, true);
  send("victim-node-request", MessageType::Request, o.victim_node, o.foreign_agent, true);
  send("foreign-agent-notify", MessageType::Notify, mesh.node_name(), o.foreign_agent, true);
  send("foreign-agent-request", MessageType::Request, mesh.node_name(), o.foreign_agent, true);
  // The same connection, the same codec, honest fields: it must arrive.
  send("honest-raw-notify", MessageType::Notify, mesh.node_name(), own.my_id(), false);
  const bool api = own.notify(o.to_agent, Json{{"label", "honest-api-notify"}, {"forged", false}});
  emit(Json{{"sent", "honest-api-notify"}, {"sender_node", mesh.node_name()}, {"sender_agent", own.my_id()},
            {"result", api ? "none" : "refused"}});
  emit(Json{{"forged_all", true}});
}

// --say-to: the first agent's ordinary request and notify to o.say_to.
void say(mesh::Mesh& mesh, const Options& o, mesh::PeerClient& own) {
  const auto deadline = std::chrono::steady_clock::now() + 80s;
  while (!mesh.directory().find(o.say_to)) {
    if (std::chrono::steady_clock::now() > deadline || !mesh.running()) {
      emit(Json{{"say_error", o.say_to + " never appeared in the directory"}});
      return;
    }
    std::this_thread::sleep_for(200ms);
  }
  const auto asked = own.request_detailed_blocking(o.say_to, Json{{"label", "say-request"}}, 20s);
  emit(Json{{"said", "request"},
            {"result", std::string(mesh::transport::to_string(asked.error))},
            {"response", asked.response ? asked.response->data : Json()}});
  const bool told = own.notify(o.say_to, Json{{"label", "say-notify"}});
  emit(Json{{"said", "notify"}, {"result", told ? "none" : "refused"}});
}

int run(const Options& o) {
  auto config = mesh::load_node_config(std::vector<std::string>{}, mesh::current_environment());
  config.p2p_enabled = true;
  mesh::configure_logging(config.log_format, config.log_level, config.node_name);
  mesh::Mesh mesh(config);
  std::vector<mesh::Agent*> hosted;
  for (const auto& id : o.agents) hosted.push_back(&mesh.add<Recorder>(id));
  if (o.bad_signature) mesh.sign_registry_with_for_test(mesh::transport::generate_curve_keypair().secret_key);
  mesh::AdminEndpoint admin(mesh);
  mesh.start();
  admin.start();
  emit(Json{{"up", mesh.node_name()}, {"admin", admin.endpoint()}});
  std::jthread forger;
  if (!o.victim_node.empty()) {
    forger = std::jthread([&mesh, &o, &hosted] { forge(mesh, o, hosted.front()->peers()); });
  }
  std::jthread sayer;
  if (!o.say_to.empty()) {
    sayer = std::jthread([&mesh, &o, &hosted] { say(mesh, o, hosted.front()->peers()); });
  }
  mesh.run_forever();
  admin.stop();
  return 0;
}

int usage(const std::string& why) {
  std::cerr << "mesh-trust-probe: " << why << "\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string> args(argv + 1, argv + argc);
  Options o;
  try {
    for (std::size_t i = 0; i < args.size(); ++i) {
      const std::string& a = args[i];
      auto value = [&]() -> const std::string& {
        if (i + 1 >= args.size()) throw std::invalid_argument(a + " needs a value");
        return args[++i];
      };
      if (a == "--get") {
        const std::string where = value();
        const std::string path = value();
        const auto hp = mesh::parse_host_port(where);
        if (!hp) return usage("--get: \"" + where + "\" is not host:port");
        const auto r = mesh::http_get(hp->host, hp->port, path, 10s);
        if (!r.ok) {
          std::cerr << "mesh-trust-probe: --get " << where << path << ": " << r.error << "\n";
          return 1;
        }
        std::cout << r.body;
        return r.status == 200 ? 0 : 1;
      }
      if (a == "--curve-keygen") {
        const auto keys = mesh::transport::generate_curve_keypair();
        std::cout << Json{{"public_key", keys.public_key}, {"secret_key", keys.secret_key}}.dump() << "\n";
        return 0;
      }
      if (a == "--agent") {
        o.agents.push_back(value());
      } else if (a == "--bad-signature") {
        o.bad_signature = true;
      } else if (a == "--forge") {
        o.victim_node = value();
      } else if (a == "--foreign-agent") {
        o.foreign_agent = value();
      } else if (a == "--say-to") {
        o.say_to = value();
      } else if (a == "--to") {
        const std::string to = value();
        const auto slash = to.find('/');
        if (slash == std::string::npos) return usage("--to: give NODE/AGENT");
        o.to_node = to.substr(0, slash);
        o.to_agent = to.substr(slash + 1);
      } else {
        return usage("unknown argument \"" + a + "\"");
      }
    }
    if (!o.victim_node.empty() && (o.foreign_agent.empty() || o.to_agent.empty() || o.agents.empty())) {
      return usage("--forge needs --foreign-agent, --to and an --agent of its own");
    }
    if (!o.say_to.empty() && o.agents.empty()) return usage("--say-to needs an --agent to speak");
    return run(o);
  } catch (const std::exception& e) {
    std::cerr << "mesh-trust-probe: " << e.what() << "\n";
    return 1;
  }
}
