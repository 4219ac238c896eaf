// Agents: long-running objects with a role, capabilities and a mailbox,
// hosted by a Mesh (mesh.hpp).
//
// Agent is the plain kind: the Mesh calls setup(), then run(stop_token) on
// the agent's own thread, then teardown(). run() talks to other agents
// through peers() and receives by itself (peers().receive()).
//
// CustomAgent is the message-driven kind: its run loop pops the inbox and
// calls on_peer_request / on_peer_notify. A request handler's return value,
// when it has one, is the response. With `concurrency` > 1 that many
// threads handle messages of the same agent at once.
//
// Failure: an exception escaping setup(), run() or a handler reaches
// on_error(); a request being handled is answered with an error (Rejected);
// then the agent is restarted (teardown, a backoff of 100 ms doubling to
// 5 s, setup, run) while its messages wait in its bounded mailbox. One
// agent's failure never stops the node or another agent.
//
//   class Coder : public mesh::CustomAgent {
//    public:
//     Coder() : CustomAgent({.role = "coder", .capabilities = {"python"}}) {}
//     std::optional<mesh::Json> on_peer_request(const mesh::IncomingMessage& m) override {
//       return mesh::Json{{"code", write(m.data["task"])}};
//     }
//   };
//   mesh.add<Coder>();
#pragma once

#include <chrono>
#include <cstddef>
#include <exception>
#include <optional>
#include <stop_token>
#include <string>
#include <vector>

#include "mesh/agent_card.hpp"
#include "mesh/peer_client.hpp"

namespace mesh {

class Mesh;
namespace detail {
struct AgentSlot;
struct MeshCore;
}

// What an agent is. Only role is required.
struct AgentSpec {
  // Default member initializers, so that designated initializers may leave
  // fields out without -Wmissing-field-initializers.
  std::string role{};
  std::vector<std::string> capabilities{};
  std::string description{};
  // Empty: "<role>-<8 hex digits>", drawn when the agent is added.
  std::string agent_id{};
  // Messages handled at once (CustomAgent: worker threads). At least 1.
  std::size_t concurrency = 1;
  // Mailbox bound; 0: NodeConfig::mailbox_limit. A sender to a full
  // mailbox learns it (notify false, request MailboxFull).
  std::size_t mailbox_limit = 0;
};

class Agent {
 public:
  explicit Agent(AgentSpec spec);
  virtual ~Agent();
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;

  // The id is final once the agent is added to a Mesh.
  const std::string& id() const { return spec_.agent_id; }
  const std::string& role() const { return spec_.role; }
  const std::vector<std::string>& capabilities() const { return spec_.capabilities; }
  const std::string& description() const { return spec_.description; }
  const AgentSpec& spec() const { return spec_; }
  // The card the node advertises for this agent (node and version unset).
  AgentCard card() const;

  // This agent's client. Throws std::logic_error before the agent is added
  // to a Mesh.
  PeerClient& peers();
  const PeerClient& peers() const;

  // How often the agent was restarted after a failure.
  std::size_t restarts() const;

 protected:
  // Called on the agent's thread before run() (again after each restart).
  virtual void setup() {}
  // Called on the agent's thread after run() returns or fails.
  virtual void teardown() {}
  // The agent's work. Must return soon after `stop` is requested. The
  // default does nothing until then. Returning early ends the agent (it is
  // not restarted); throwing restarts it.
  virtual void run(std::stop_token stop);
  // An exception escaped setup/run/a handler. `message` is the message
  // being handled, if any. The default logs it to stderr. Must not throw.
  virtual void on_error(const std::exception& error, const IncomingMessage* message);

 private:
  friend class Mesh;
  friend class CustomAgent;
  friend struct detail::AgentSlot;
  friend struct detail::MeshCore;

  AgentSpec spec_;
  detail::AgentSlot* slot_ = nullptr;  // set by Mesh::add
};

class CustomAgent : public Agent {
 public:
  using Agent::Agent;

 protected:
  // A request arrived. A value is sent as the response; nullopt sends
  // nothing (answer later with peers().respond, or let it time out).
  // Throwing answers Rejected, calls on_error and restarts the agent.
  virtual std::optional<Json> on_peer_request(const IncomingMessage& message);
  // A notify arrived. Throwing calls on_error and restarts the agent.
  virtual void on_peer_notify(const IncomingMessage& message);

  // The dispatch loop (final: override the handlers instead).
  void run(std::stop_token stop) final;

 private:
  void worker(std::stop_token stop);
};

}  // namespace mesh
