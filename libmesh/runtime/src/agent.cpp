#include "mesh/agent.hpp"

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <memory>
#include <mutex>

#include "mesh_core.hpp"

namespace mesh {

Agent::Agent(AgentSpec spec) : spec_(std::move(spec)) {}

Agent::~Agent() = default;

AgentCard Agent::card() const {
  AgentCard c;
  c.agent_id = spec_.agent_id;
  c.role = spec_.role;
  c.capabilities = spec_.capabilities;
  c.description = spec_.description;
  c.input_schema = spec_.input_schema;
  c.output_schema = spec_.output_schema;
  return c;
}

PeerClient& Agent::peers() {
  if (!slot_ || !slot_->client) throw std::logic_error("agent '" + spec_.role + "' is not added to a Mesh");
  return *slot_->client;
}

const PeerClient& Agent::peers() const {
  if (!slot_ || !slot_->client) throw std::logic_error("agent '" + spec_.role + "' is not added to a Mesh");
  return *slot_->client;
}

std::size_t Agent::restarts() const { return slot_ ? slot_->restarts.load() : 0; }

bool Agent::stop_requested() const { return slot_ && slot_->stopping.load(); }

Task<void> Agent::run() { co_return; }

void Agent::on_error(const std::exception& error, const IncomingMessage* message) {
  std::fprintf(stderr, "mesh: agent %s failed%s%s: %s\n", spec_.agent_id.c_str(),
               message ? " handling a message from " : "", message ? message->sender.c_str() : "",
               error.what());
}

// ---------------------------------------------------------------- CustomAgent

// Not coroutines: the plain handler runs in the call, and the task comes
// back done, so the runtime ends the handling at once, without a coroutine
// frame of its own or of these (docs/peerclient.md, "Coroutines").
// What the plain handler throws leaves the call, as it would leave a
// coroutine's co_await of it.
Task<std::optional<Json>> CustomAgent::on_request(const IncomingMessage& message) {
  return Task<std::optional<Json>>::completed(on_peer_request(message));
}

Task<void> CustomAgent::on_notify(const IncomingMessage& message) {
  on_peer_notify(message);
  return Task<void>::completed();
}

std::optional<Json> CustomAgent::on_peer_request(const IncomingMessage&) { return std::nullopt; }

void CustomAgent::on_peer_notify(const IncomingMessage&) {}

std::function<void()> CustomAgent::hold_mailbox_place() {
  // The inbox is set when the agent starts and kept by its slot; the
  // releaser holds it weakly, so a late call after the mesh is gone is a
  // no-op, and the flag makes a second call one.
  const std::shared_ptr<transport::Inbox> inbox = slot_ ? slot_->inbox : nullptr;
  if (!inbox) return [] {};
  inbox->hold_place();
  return [weak = std::weak_ptr<transport::Inbox>(inbox), once = std::make_shared<std::atomic<bool>>(false)] {
    if (once->exchange(true)) return;
    if (auto in = weak.lock()) in->release_place();
  };
}

// ---------------------------------------------------------------- ThreadAgent

void ThreadAgent::run_blocking(std::stop_token stop) {
  std::mutex m;
  std::condition_variable_any cv;
  std::unique_lock lock(m);
  cv.wait(lock, stop, [] { return false; });
}

// Never started: a ThreadAgent's thread calls run_blocking.
Task<void> ThreadAgent::run() { co_return; }

}  // namespace mesh
