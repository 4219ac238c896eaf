// The Mesh's executor: a small pool of threads running one io_context, on
// which every agent is a strand. And the two rules around it: an await is
// cancelled by a stop, and a blocking call refuses to run on the pool.
#include <pthread.h>

#include <algorithm>
#include <spdlog/spdlog.h>

#include "mesh_core.hpp"

namespace mesh::detail {

namespace {
thread_local bool tl_executor_thread = false;
}  // namespace

bool on_executor_thread() { return tl_executor_thread; }

void forbid_blocking(std::string_view call) {
  if (!tl_executor_thread) return;
  throw std::logic_error(std::string(call) +
                         ": blocks the thread, and this is one of the mesh's executor threads (an agent's "
                         "handler, run() or event callback), which every agent shares: co_await the "
                         "awaitable form instead, or make the agent a ThreadAgent");
}

boost::asio::any_io_executor AwaitScope::executor() const {
  if (strand) return *strand;
  return pool->get_executor();
}

std::mutex& AwaitScope::mu() const {
  // 64 locks for every scope of the process: a scope's critical sections
  // are a few instructions and never take another scope's lock, so a
  // shared stripe costs nothing noticeable, where a mutex each was 40
  // bytes of every agent.
  static std::mutex stripes[64];
  return stripes[(reinterpret_cast<std::uintptr_t>(this) / alignof(AwaitScope)) % 64];
}

std::uint64_t AwaitScope::add(std::function<void()> cancel) {
  std::lock_guard lock(mu());
  if (stopped_) return 0;
  const std::uint64_t key = next_++;
  cancels_.emplace_back(key, std::move(cancel));
  return key;
}

void AwaitScope::remove(std::uint64_t key) {
  if (key == 0) return;
  std::lock_guard lock(mu());
  // Keys grow: the newest awaits are at the end, where removal looks first.
  for (auto it = cancels_.rbegin(); it != cancels_.rend(); ++it) {
    if (it->first == key) {
      cancels_.erase(std::next(it).base());
      break;
    }
  }
  // A burst of awaits (a parallel agent's) leaves room no idle agent needs.
  if (cancels_.empty() && cancels_.capacity() > 16) cancels_ = {};
}

void AwaitScope::stop() {
  std::vector<std::pair<std::uint64_t, std::function<void()>>> cancels;
  {
    std::lock_guard lock(mu());
    stopped_ = true;
    cancels.swap(cancels_);
  }
  for (auto& [key, cancel] : cancels) cancel();
}

bool AwaitScope::stopped() const {
  std::lock_guard lock(mu());
  return stopped_;
}

void MeshCore::start_pool() {
  std::size_t n = config.worker_threads;
  if (n == 0) n = std::max(1u, std::thread::hardware_concurrency());
  pool_work.emplace(boost::asio::make_work_guard(*pool));
  for (std::size_t i = 0; i < n; ++i) {
    workers.emplace_back([this, i] {
      const std::string name = "mesh-worker-" + std::to_string(i);
      ::pthread_setname_np(::pthread_self(), name.substr(0, 15).c_str());
      tl_executor_thread = true;
      for (;;) {
        try {
          pool->run();
          break;
        } catch (const std::exception& e) {
          // A task let an exception out (ours catch theirs): log it, go on.
          spdlog::error("{}: executor task failed: {}", node_name, e.what());
        }
      }
    });
  }
}

void MeshCore::stop_pool() {
  if (workers.empty()) return;
  // Everything on the pool was told to end (agents, control strand): let
  // what is queued finish, then the threads return.
  pool_work.reset();
  for (auto& w : workers) {
    if (w.joinable()) w.join();
  }
  workers.clear();
}

}  // namespace mesh::detail
