// Child processes for the multi-process tests, owned RAII-style: a Process
// that goes out of scope (a passing test, a failed ASSERT, an exception) is
// SIGKILLed and reaped, so no test leaves a node running.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace mesh::test {

class Process {
 public:
  // Runs argv[0] (a path) with argv. The child inherits this environment
  // minus every JC_* variable and P2P_ENABLED (so that a developer's
  // settings cannot leak into a test), plus `env`. stdin is /dev/null;
  // stdout and stderr go to files under `log_dir` named after `label`.
  Process(std::vector<std::string> argv, const std::map<std::string, std::string>& env,
          const std::string& log_dir, const std::string& label);
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  void signal(int sig);
  // Waits until the child exits; its exit code (128 + signal if killed),
  // or nullopt if it is still running after `timeout`.
  std::optional<int> wait_exit(std::chrono::milliseconds timeout);
  bool running();
  std::string stdout_text() const;
  std::string stderr_text() const;
  // The last `lines` lines of stderr (where the node logs), for failures.
  std::string log_tail(std::size_t lines = 30) const;

 private:
  pid_t pid_ = -1;
  std::optional<int> exit_code_;
  std::string out_path_;
  std::string err_path_;
};

// A private temporary directory, removed with its contents.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string write(const std::string& name, const std::string& text) const;

 private:
  std::string path_;
};

// A port that is free for both TCP and UDP on 127.0.0.1 right now (the
// kernel's choice of an ephemeral port, checked for UDP too). Another
// process could take it before we use it; tests accept that small race.
std::uint16_t free_port();

// Runs a program to completion (bounded), capturing stdout and stderr.
struct RunResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};
RunResult run_to_exit(std::vector<std::string> argv, const std::map<std::string, std::string>& env,
                      std::chrono::milliseconds timeout = std::chrono::seconds(20));

}  // namespace mesh::test
