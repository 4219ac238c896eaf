// Helpers for the driver's integration tests: io_context threads, nodes on
// loopback with port 0, polling with generous deadlines, child processes.
#pragma once

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/udp.hpp>

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "mesh/swim/membership.hpp"

namespace mesh::swim::test {

using namespace std::chrono_literals;
namespace asio = boost::asio;

// Polls `pred` every 50 ms until it holds or `limit` passes. Deadlines are
// generous: they bound a hang, they do not measure anything.
bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds limit = 30s);

// An io_context run by `threads` threads until stop() or destruction.
class IoThreads {
 public:
  explicit IoThreads(int threads = 1);
  ~IoThreads();
  IoThreads(const IoThreads&) = delete;
  IoThreads& operator=(const IoThreads&) = delete;
  asio::io_context& io() { return io_; }
  void stop();

 private:
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> guard_;
  std::vector<std::thread> threads_;
};

Config local_config(const std::string& name);
NetOptions loopback(const std::string& host = "127.0.0.1");

// What `m` thinks of `name`: nullopt when unknown.
std::optional<MemberState> state_of(const Membership& m, const std::string& name);
bool sees(const Membership& m, const std::string& name, MemberState s);
// "127.0.0.1:port" or "[::1]:port" for joining `m`.
std::string seed_of(const Membership& m);

// Records every event a Membership reports (thread-safe).
class EventLog {
 public:
  Membership::EventHandler handler();
  bool has(EventKind kind, const std::string& name) const;

 private:
  mutable std::mutex mu_;
  std::vector<MemberEvent> events_;
};

// A node of the test with its own io_context thread.
struct TestNode {
  TestNode(Config c, NetOptions n, std::uint64_t seed,
           std::map<std::string, std::string> tags = {});
  ~TestNode();
  IoThreads io;
  EventLog events;
  std::unique_ptr<Membership> m;
};

// A port that is free for both UDP and TCP on 127.0.0.1 right now.
std::uint16_t free_port();

// A temporary directory removed with everything in it on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// A child process with stdout and stderr sent to a file. Killed (SIGKILL)
// and reaped on destruction, whatever the test's outcome.
class ChildProcess {
 public:
  ChildProcess(const std::vector<std::string>& argv, const std::filesystem::path& log);
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  void kill9();
  bool running() const { return pid_ > 0; }

 private:
  int pid_ = -1;
};

// Full path of an executable found on PATH, or empty.
std::string find_on_path(const std::string& name);
// Runs a command (through /bin/sh) and returns its stdout; nullopt when it
// exits non-zero.
std::optional<std::string> run_capture(const std::string& command);
std::string read_file(const std::filesystem::path& p);

}  // namespace mesh::swim::test
