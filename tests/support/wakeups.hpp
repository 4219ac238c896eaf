// Counting how often a process's threads wake up, to show that an idle
// node sleeps: the kernel counts, per thread, every time it blocked of its
// own accord (voluntary_ctxt_switches in /proc/self/task/<tid>/status):
// a poll(), an epoll_wait(), a futex, a sleep. Each such block ends in one
// wake-up, so over a window the difference is the number of wake-ups.
//
// Header-only: a test includes it and links nothing more.
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <string_view>

namespace mesh::test {

struct ThreadWakeups {
  std::string name;  // the thread's name (pthread_setname_np), "comm"
  std::uint64_t count = 0;
};

// Every thread of this process at one instant, by thread id.
class WakeupSnapshot {
 public:
  static WakeupSnapshot take() {
    WakeupSnapshot s;
    std::error_code ec;
    for (const auto& task : std::filesystem::directory_iterator("/proc/self/task", ec)) {
      std::ifstream status(task.path() / "status");
      ThreadWakeups t;
      bool found = false;
      std::string line;
      while (std::getline(status, line)) {
        if (line.starts_with("Name:")) t.name = trim(std::string_view(line).substr(5));
        if (line.starts_with("voluntary_ctxt_switches:")) {
          t.count = std::stoull(line.substr(line.find(':') + 1));
          found = true;
        }
      }
      // A thread that exited between the listing and the read is skipped.
      if (found) s.threads_[task.path().filename().string()] = t;
    }
    return s;
  }

  // The wake-ups of each thread since `before` (a thread born since then
  // counts all of its own; one that ended is missing).
  std::map<std::string, ThreadWakeups> since(const WakeupSnapshot& before) const {
    std::map<std::string, ThreadWakeups> out;
    for (const auto& [tid, t] : threads_) {
      ThreadWakeups d = t;
      if (auto it = before.threads_.find(tid); it != before.threads_.end()) d.count -= it->second.count;
      out[tid] = d;
    }
    return out;
  }

 private:
  static std::string trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    return std::string(s);
  }
  std::map<std::string, ThreadWakeups> threads_;
};

// The sum over `by_thread` (as since() returns it), and the sum over the
// threads whose name starts with `prefix` ("ZMQbg/" for libzmq's).
inline std::uint64_t wakeups_total(const std::map<std::string, ThreadWakeups>& by_thread) {
  std::uint64_t n = 0;
  for (const auto& [tid, t] : by_thread) n += t.count;
  return n;
}
inline std::uint64_t wakeups_of(const std::map<std::string, ThreadWakeups>& by_thread, std::string_view prefix) {
  std::uint64_t n = 0;
  for (const auto& [tid, t] : by_thread) {
    if (t.name.starts_with(prefix)) n += t.count;
  }
  return n;
}

// One line per thread, "tid name: count", for a test's output.
inline std::string describe_wakeups(const std::map<std::string, ThreadWakeups>& by_thread) {
  std::ostringstream out;
  for (const auto& [tid, t] : by_thread) out << "  " << tid << " " << t.name << ": " << t.count << "\n";
  return out.str();
}

}  // namespace mesh::test
