#include "mesh/agent.hpp"

#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <thread>

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

void Agent::run(std::stop_token stop) {
  std::mutex m;
  std::condition_variable_any cv;
  std::unique_lock lock(m);
  cv.wait(lock, stop, [] { return false; });
}

void Agent::on_error(const std::exception& error, const IncomingMessage* message) {
  std::fprintf(stderr, "mesh: agent %s failed%s%s: %s\n", spec_.agent_id.c_str(),
               message ? " handling a message from " : "", message ? message->sender.c_str() : "",
               error.what());
}

// ---------------------------------------------------------------- CustomAgent

std::optional<Json> CustomAgent::on_peer_request(const IncomingMessage&) { return std::nullopt; }

void CustomAgent::on_peer_notify(const IncomingMessage&) {}

void CustomAgent::run(std::stop_token stop) {
  // The workers share one stop source: the first failure stops them all,
  // and the runner then restarts the agent as a whole.
  std::stop_source inner;
  std::stop_callback link(stop, [&inner] { inner.request_stop(); });
  std::mutex failure_mu;
  std::exception_ptr failure;
  auto body = [&] {
    try {
      worker(inner.get_token());
    } catch (...) {
      std::lock_guard lock(failure_mu);
      if (!failure) failure = std::current_exception();
      inner.request_stop();
    }
  };
  std::vector<std::jthread> extra;
  const std::size_t n = spec().concurrency == 0 ? 1 : spec().concurrency;
  for (std::size_t i = 1; i < n; ++i) extra.emplace_back(body);
  body();
  extra.clear();  // joins
  if (failure) std::rethrow_exception(failure);
}

void CustomAgent::worker(std::stop_token stop) {
  using namespace std::chrono_literals;
  PeerClient& client = peers();
  while (!stop.stop_requested()) {
    // A bounded wait, so that a stop request is seen without closing the
    // mailbox (its messages must survive a restart).
    const auto began = std::chrono::steady_clock::now();
    auto message = client.receive(200ms);
    if (!message) {
      // Nothing to wait on (mailbox closed while stopping): do not spin.
      if (std::chrono::steady_clock::now() - began < 10ms) std::this_thread::sleep_for(50ms);
      continue;
    }
    try {
      if (message->is_request()) {
        if (auto answer = on_peer_request(*message)) client.respond(*message, *answer);
      } else {
        on_peer_notify(*message);
      }
    } catch (...) {
      if (message->is_request() && message->handle) {
        if (auto t = slot_->core->get_transport()) {
          t->respond_error(*message->handle, transport::ErrorCode::Rejected);
        }
      }
      try {
        throw;
      } catch (const std::exception& e) {
        slot_->report(e, &*message);
      } catch (...) {
        slot_->report(std::runtime_error("a non-standard exception"), &*message);
      }
      throw detail::HandlerFailed{};
    }
  }
}

}  // namespace mesh
