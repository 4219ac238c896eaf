// Runs one agent: its thread, its loop, its failures reported once.
#include "mesh_core.hpp"

#include <spdlog/spdlog.h>

namespace mesh::detail {

void AgentSlot::report(const std::exception& error, const IncomingMessage* message) {
  core->stats.agent_failures.fetch_add(1);
  try {
    agent->on_error(error, message);
  } catch (...) {
    // on_error must not throw; one that does changes nothing.
  }
}

void AgentSlot::run_agent(std::stop_token stop) {
  const auto initial = core->options.restart_backoff;
  const auto max = core->options.restart_backoff_max;
  auto backoff = initial;
  running.store(true);
  while (!stop.stop_requested()) {
    bool failed = false;
    const auto began = std::chrono::steady_clock::now();
    try {
      agent->setup();
      agent->run(stop);
    } catch (const HandlerFailed&) {
      failed = true;  // reported by the handler loop already
    } catch (const std::exception& e) {
      failed = true;
      report(e, nullptr);
    } catch (...) {
      failed = true;
      report(std::runtime_error("a non-standard exception"), nullptr);
    }
    try {
      agent->teardown();
    } catch (const std::exception& e) {
      report(e, nullptr);
    } catch (...) {
      report(std::runtime_error("a non-standard exception in teardown"), nullptr);
    }
    if (!failed || stop.stop_requested()) break;
    // A run that lasted a while was healthy: the next failure starts over.
    if (std::chrono::steady_clock::now() - began > max) backoff = initial;
    restarts.fetch_add(1);
    core->stats.agent_restarts.fetch_add(1);
    std::mutex m;
    std::condition_variable_any cv;
    std::unique_lock lock(m);
    cv.wait_for(lock, stop, backoff, [] { return false; });
    backoff = std::min(backoff * 2, max);
  }
  running.store(false);
}

void MeshCore::start_agent(const std::shared_ptr<AgentSlot>& slot) {
  AgentSlot* s = slot.get();
  slot->thread = std::jthread([s](std::stop_token stop) { s->run_agent(stop); });
}

}  // namespace mesh::detail
