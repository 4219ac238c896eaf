// Agents: long-running objects with a role, capabilities and a mailbox,
// hosted by a Mesh (mesh.hpp) on its executor: a small pool of threads
// (NodeConfig::worker_threads) shared by every agent of the node. Each
// agent is a strand on it (its code never runs on two threads at once) with
// a bounded mailbox. An idle agent costs memory only: no thread, no timer.
//
// CustomAgent is the message-driven kind, the one most agents are: each
// message goes to on_request / on_notify, coroutines (mesh::Task) that may
// co_await other agents. While a handler awaits, the agent handles its
// other messages, so two agents asking each other never deadlock. A request
// handler's return value, when it has one, is the response.
//
//   class Coder : public mesh::CustomAgent {
//    public:
//     Coder() : CustomAgent({.role = "coder", .capabilities = {"python"}}) {}
//     mesh::Task<std::optional<mesh::Json>> on_request(const mesh::IncomingMessage& m) override {
//       auto review = co_await peers().request("reviewer", m.data["task"]);
//       co_return mesh::Json{{"code", write(m.data["task"])}, {"reviewed", review.has_value()}};
//     }
//   };
//   mesh.add<Coder>();
//
// Handlers that never wait may be plain functions instead: on_peer_request
// and on_peer_notify (the names of the Python original). A CustomAgent may
// also override run() for work of its own (a periodic task, say); it runs
// on the same strand, in turn with the handlers.
//
// Agent is the plain kind: its run() coroutine receives by itself
// (co_await peers().receive()). ThreadAgent owns a thread, for code that
// must block on something other than the mesh (a device, a blocking
// library); there, and only there, the PeerClient's *_blocking calls are
// allowed to an agent. A blocking call on the executor's threads fails at
// once (std::logic_error) instead of stalling every agent.
//
// Failure: an exception escaping setup(), run() or a handler reaches
// on_error(); a request being handled is answered with an error (Rejected);
// then the agent is restarted (teardown, a backoff of 100 ms doubling to
// 5 s, setup, run) while its messages wait in its bounded mailbox. One
// agent's failure never stops the node or another agent.
//
// Stopping is a cancellation: whatever an agent awaits completes at once
// (a request with Shutdown, receive with nullopt), stop_requested() turns
// true, and its coroutines must then return soon.
#pragma once

#include <chrono>
#include <cstddef>
#include <exception>
#include <functional>
#include <optional>
#include <stop_token>
#include <string>
#include <vector>

#include "mesh/agent_card.hpp"
#include "mesh/peer_client.hpp"
#include "mesh/task.hpp"

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
  // CustomAgent handlers in progress at once. 1: one at a time on the
  // agent's strand (a handler that awaits lets the next one start; none
  // runs in parallel with another, nor with the agent's events). n > 1: up
  // to n handlers, awaiting or not, running in parallel on the executor.
  std::size_t concurrency = 1;
  // Mailbox bound; 0: NodeConfig::mailbox_limit. A sender to a full
  // mailbox learns it (notify false, request MailboxFull).
  std::size_t mailbox_limit = 0;
  // Takes authority messages only (directives, decisions of record): an
  // advisory message to it is refused, PermissionDenied, before any
  // handler runs; so an answer can never be taken for an order.
  bool authority_only = false;
  // JSON Schemas of the request this agent takes and of its answer, carried
  // by its card (null: none; otherwise a JSON object, checked when the
  // agent is added: see validate_card). peers_as_tools gives an agent with
  // an input schema a tool of its own taking exactly that (peer_tools.hpp).
  nlohmann::json input_schema{};
  nlohmann::json output_schema{};
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

  // True once the agent is being stopped (the mesh stops, or it is removed).
  bool stop_requested() const;

 protected:
  // Called on the agent's strand before run() (again after each restart).
  virtual void setup() {}
  // Called on the agent's strand when it stops, and before a restart.
  virtual void teardown() {}
  // The agent's own work, a coroutine on its strand, started after setup().
  // Must return soon after stop_requested() turns true (every await then
  // completes at once). The default returns at once: the agent handles
  // events only. Returning ends the work (it is not restarted); throwing
  // restarts the agent.
  virtual Task<void> run();
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
  // `message` lives until the handler returns. The default calls
  // on_peer_request.
  virtual Task<std::optional<Json>> on_request(const IncomingMessage& message);
  // A notify arrived. Throwing calls on_error and restarts the agent. The
  // default calls on_peer_notify.
  virtual Task<void> on_notify(const IncomingMessage& message);
  // The same as plain functions, for handlers that never wait.
  virtual std::optional<Json> on_peer_request(const IncomingMessage& message);
  virtual void on_peer_notify(const IncomingMessage& message);

  // For an agent whose handlers hand each message on to be worked on
  // elsewhere and return at once (the Python binding queues it for its
  // event loop): call from a handler to keep the message's place in the
  // mailbox taken until the returned function is called (from any thread,
  // once; later calls do nothing; the mesh stopping makes it harmless).
  // So the mailbox bound counts the messages still being worked on, and a
  // sender to a full one learns it as it does for any agent: notify false,
  // a remote notify's delivery failure, a request's MailboxFull. Outside a
  // running mesh's handler it holds nothing.
  std::function<void()> hold_mailbox_place();


 private:
  friend struct detail::AgentSlot;
};

// An agent with a thread of its own, for code that blocks on something
// other than the mesh. run_blocking runs on that thread after setup() and
// may use the PeerClient's *_blocking calls; it must return soon after
// `stop` is requested (its mailbox closes then too, which ends a
// receive_blocking without timeout). setup and teardown run on that thread.
class ThreadAgent : public Agent {
 public:
  using Agent::Agent;

 protected:
  // The default waits for the stop request.
  virtual void run_blocking(std::stop_token stop);
  Task<void> run() final;

 private:
  friend struct detail::AgentSlot;
};

}  // namespace mesh
