// swim_vs_serf: our mesh-node against real `serf agent`s, side by side in
// the same run, on 127.0.0.1 with the LAN timing profile (serf's default).
//
// For each cluster size N and each trial, for each system:
//   1. start node 0, then nodes 1..N-2 joining node 0, --spawn-gap-ms
//      apart; wait until all of them list N-1 alive (not measured);
//   2. join: start node N-1 with node 0 as seed (our JC_SEED_NODES, serf's
//      -join); from its spawn until every member lists all N alive;
//   3. idle (no polling): --settle-s (default 1) to settle, then
//      utime+stime over 10 s as % of a core, VmRSS and PSS after 5 s; all
//      averaged over the N nodes. Our nodes close a connection after a
//      minute without traffic, and the join opens one to each member
//      (registry fetches): --settle-s 65 measures the steady state;
//   4. detect: kill -9 of nodes 1..K (--kill K, default 1) at once; until
//      every remaining node lists all K dead (ours) / failed (serf);
//   5. leave: SIGTERM (ours) / `serf leave` (serf) on node K+1; until every
//      remaining node lists it left.
// Membership is polled every ~100 ms on every live node: ours with GET
// /v1/members on each admin endpoint, on an HTTP connection per node kept
// for the trial; serf with a `members` call of its RPC protocol (what
// `serf members` sends) on a connection per agent kept for the trial. A
// round sends every node its request first and then reads the answers,
// so that a round lasts about as long as the slowest node takes to
// answer, not the sum of all of them (at N = 100, asked one after
// another, our round took 1.5 s: a phase's end was known to 1.5 s). Spawning a `serf members` per
// agent and round cost about 20 ms of CPU each: at N = 100 the polling
// itself took the machine.
// Ports come from a block below the kernel's ephemeral range (32768 and
// up, which it hands out to outgoing connections): from --port-base up,
// each checked free on TCP and UDP before use.
// A phase ends at the end of the first poll round in which it holds (an
// upper bound; the round length is reported). Every phase has a deadline;
// every child is SIGKILLed and reaped on every path (RAII, and SIGINT/SIGTERM
// of this program unwind).
//
//   swim_vs_serf [--sizes 5,10] [--trials 3] [--kill K] [--json] [--mesh-node PATH]
//                [--serf PATH] [--deadline-s 60] [--port-base 20000] [--spawn-gap-ms 20]
//                [--settle-s 1]
// At N = 100: `--sizes 100 --kill 5` (about 2 minutes a trial and system).
// --trials below 1 counts as 1, --deadline-s below 5 as 5. Exit codes: 0
// after the run (a phase past its deadline is a failed trial in the
// report), 1 when the run cannot go on (serf or mesh-node missing,
// SIGINT/SIGTERM, any other error), 2 with one line on stderr for bad flags.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <iomanip>
#include <iostream>
#include <map>
#include <memory>
#include <msgpack.hpp>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "mesh/cli.hpp"
#include "process.hpp"

#ifndef MESH_NODE_BIN
#define MESH_NODE_BIN "mesh-node"
#endif

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using json = nlohmann::json;
using mesh::test::Process;

std::atomic<bool> g_interrupted{false};
extern "C" void on_signal(int) { g_interrupted.store(true); }

void check_interrupt() {
  if (g_interrupted.load()) throw std::runtime_error("interrupted");
}

void sleep_for(std::chrono::milliseconds d) {
  const auto end = Clock::now() + d;
  while (Clock::now() < end) {
    check_interrupt();
    std::this_thread::sleep_for(std::min<Clock::duration>(end - Clock::now(), 50ms));
  }
}

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

struct Options {
  std::vector<int> sizes{5, 10};
  int trials = 3;
  int kill = 1;
  int port_base = 20000;
  int spawn_gap_ms = 20;
  int settle_s = 1;
  bool json_out = false;
  std::string mesh_node = MESH_NODE_BIN;
  std::string serf;
  int deadline_s = 60;
};

std::string find_on_path(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::stringstream ss(path ? path : "");
  for (std::string dir; std::getline(ss, dir, ':');) {
    const std::string p = dir + "/" + name;
    if (::access(p.c_str(), X_OK) == 0) return p;
  }
  return {};
}

// name -> state, with serf's "failed" written "dead".
using View = std::map<std::string, std::string>;

// ---------------------------------------------------------------- /proc
// The kB figure of the line starting with `key` in /proc/<pid>/<file>.
std::optional<long> proc_kb(pid_t pid, const char* file, std::string_view key) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/" + file);
  for (std::string line; std::getline(in, line);)
    if (line.starts_with(key)) return std::stol(line.substr(key.size()));
  return std::nullopt;
}

std::optional<long> rss_kb(pid_t pid) { return proc_kb(pid, "status", "VmRSS:"); }

// Proportional set size: each shared page counted 1/k in each of the k
// processes mapping it, so summed over processes it is their real
// footprint (RSS counts shared library pages in full in every one).
std::optional<long> pss_kb(pid_t pid) { return proc_kb(pid, "smaps_rollup", "Pss:"); }


std::optional<long long> cpu_ticks(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto close = all.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream rest(all.substr(close + 2));
  // Fields after the command: state(3) ppid pgrp session tty tpgid flags
  // minflt cminflt majflt cmajflt utime(14) stime(15).
  std::vector<std::string> f;
  for (std::string s; rest >> s && f.size() < 13;) f.push_back(s);
  if (f.size() < 13) return std::nullopt;
  return std::stoll(f[11]) + std::stoll(f[12]);
}

// ---------------------------------------------------------------- ports
bool port_free(std::uint16_t port, int type) {
  const int fd = ::socket(AF_INET, type, 0);
  if (fd < 0) return false;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(fd);
  return ok;
}

// Hands out ports from `base` up, below 32768, each free on TCP and UDP
// when handed out (the SWIM port needs both).
class PortBlock {
 public:
  explicit PortBlock(int base) : next_(base) {}
  std::uint16_t take() {
    for (; next_ < 32768; ++next_) {
      const auto p = static_cast<std::uint16_t>(next_);
      if (port_free(p, SOCK_STREAM) && port_free(p, SOCK_DGRAM)) {
        ++next_;
        return p;
      }
    }
    throw std::runtime_error("no free port left below 32768 (--port-base)");
  }

 private:
  int next_;
};

// A TCP connection to 127.0.0.1:port; -1 on failure.
int connect_loopback(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

bool send_all(int fd, const char* data, std::size_t size) {
  for (std::size_t off = 0; off < size;) {
    const ssize_t k = ::send(fd, data + off, size - off, MSG_NOSIGNAL);
    if (k <= 0) return false;
    off += static_cast<std::size_t>(k);
  }
  return true;
}

// ---------------------------------------------------------------- serf RPC
// A client of serf's RPC protocol: msgpack maps over TCP, a header
// {Command, Seq} before each request's body and {Seq, Error} before each
// answer's; `handshake` (version 1) first, then `members`, whose body is
// {Members: [{Name, Status, ...}]}. One connection, reopened after any
// error.
class SerfRpc {
 public:
  explicit SerfRpc(std::uint16_t port) : port_(port) {}
  ~SerfRpc() { drop(); }
  SerfRpc(const SerfRpc&) = delete;
  SerfRpc& operator=(const SerfRpc&) = delete;

  std::optional<View> members() {
    if (!ask_members()) return std::nullopt;
    return members_answer();
  }

  // The two halves of members(), so that a poll round can ask every
  // agent before it reads any answer. False: not sent (the connection is
  // dropped, and members_answer() then returns nullopt).
  bool ask_members() {
    asked_ = false;
    if (fd_ < 0 && !open()) return false;
    if (!send_call("members", nullptr)) return false;
    asked_ = true;
    return true;
  }
  std::optional<View> members_answer() {
    if (!asked_) return std::nullopt;
    asked_ = false;
    auto body = answer(true);
    if (!body) return std::nullopt;
    const msgpack::object* list = field(body->get(), "Members");
    if (list == nullptr || list->type != msgpack::type::ARRAY) return fail();
    View v;
    for (std::uint32_t i = 0; i < list->via.array.size; ++i) {
      const msgpack::object& m = list->via.array.ptr[i];
      const msgpack::object* name = field(m, "Name");
      const msgpack::object* status = field(m, "Status");
      if (name == nullptr || status == nullptr) return fail();
      std::string st(text(*status));
      if (st == "failed") st = "dead";
      v[std::string(text(*name))] = st;
    }
    return v;
  }

 private:
  static std::string_view text(const msgpack::object& o) {
    if (o.type == msgpack::type::STR) return {o.via.str.ptr, o.via.str.size};
    if (o.type == msgpack::type::BIN) return {o.via.bin.ptr, o.via.bin.size};
    return {};
  }
  static const msgpack::object* field(const msgpack::object& map, std::string_view key) {
    if (map.type != msgpack::type::MAP) return nullptr;
    for (std::uint32_t i = 0; i < map.via.map.size; ++i) {
      if (text(map.via.map.ptr[i].key) == key) return &map.via.map.ptr[i].val;
    }
    return nullptr;
  }

  bool open() {
    fd_ = connect_loopback(port_);
    if (fd_ < 0) return false;
    const bool version_one = true;
    if (!call("handshake", &version_one, false)) return false;
    return true;
  }
  void drop() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    unpacker_.reset();
    unpacker_ = std::make_unique<msgpack::unpacker>();
  }
  std::nullopt_t fail() {
    drop();
    return std::nullopt;
  }

  // Sends a request; returns the answer's body (or, for `with_body` false,
  // an empty handle) once its header said no error.
  std::optional<msgpack::object_handle> call(const char* command, const bool* handshake,
                                             bool with_body = true) {
    if (!send_call(command, handshake)) return std::nullopt;
    return answer(with_body);
  }

  bool send_call(const char* command, const bool* handshake) {
    msgpack::sbuffer buf;
    msgpack::packer<msgpack::sbuffer> pk(buf);
    const std::uint64_t seq = seq_++;
    pk.pack_map(2);
    pk.pack(std::string_view("Command"));
    pk.pack(std::string_view(command));
    pk.pack(std::string_view("Seq"));
    pk.pack(seq);
    if (handshake) {
      pk.pack_map(1);
      pk.pack(std::string_view("Version"));
      pk.pack(1);
    }
    if (!send_all(fd_, buf.data(), buf.size())) {
      drop();
      return false;
    }
    return true;
  }

  // The answer to the last request sent (its Seq is seq_ - 1).
  std::optional<msgpack::object_handle> answer(bool with_body) {
    const std::uint64_t seq = seq_ - 1;
    auto header = next();
    if (!header) return std::nullopt;
    const msgpack::object* error = field(header->get(), "Error");
    const msgpack::object* got = field(header->get(), "Seq");
    if (error == nullptr || !text(*error).empty() || got == nullptr ||
        got->type != msgpack::type::POSITIVE_INTEGER || got->via.u64 != seq) {
      return fail();
    }
    if (!with_body) return msgpack::object_handle();
    return next();
  }

  // The next object of the stream, waiting up to 2 s for its bytes.
  std::optional<msgpack::object_handle> next() {
    const auto deadline = Clock::now() + 2s;
    for (;;) {
      msgpack::object_handle oh;
      try {
        if (unpacker_->next(oh)) return oh;
      } catch (const std::exception&) {
        return fail();
      }
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (left.count() <= 0) return fail();
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return fail();
      unpacker_->reserve_buffer(64 * 1024);
      const ssize_t k = ::recv(fd_, unpacker_->buffer(), unpacker_->buffer_capacity(), 0);
      if (k <= 0) return fail();
      unpacker_->buffer_consumed(static_cast<std::size_t>(k));
    }
  }

  std::uint16_t port_;
  int fd_ = -1;
  std::uint64_t seq_ = 0;
  bool asked_ = false;  // ask_members() sent a request not yet read
  std::unique_ptr<msgpack::unpacker> unpacker_ = std::make_unique<msgpack::unpacker>();
};

// ---------------------------------------------------------------- admin HTTP
// GET /v1/members on one kept-alive HTTP/1.1 connection per node, as the
// serf side keeps one RPC connection per agent: a fresh connection per
// poll costs an accept and a wake-up more on the node's side, which on a
// loaded machine made our poll rounds 4x serf's and coarsened what they
// measure. Reopened after any error; every read waits at most 2 s.
class AdminHttp {
 public:
  explicit AdminHttp(std::uint16_t port) : port_(port) {}
  ~AdminHttp() { drop(); }
  AdminHttp(const AdminHttp&) = delete;
  AdminHttp& operator=(const AdminHttp&) = delete;

  // The body of a 200 answer; nullopt otherwise.
  std::optional<std::string> get(const std::string& path) {
    if (!ask(path)) return std::nullopt;
    return answer();
  }

  // The two halves of get(), so that a poll round can ask every node
  // before it reads any answer. False: not sent (the connection is
  // dropped, and answer() then returns nullopt).
  bool ask(const std::string& path) {
    asked_ = false;
    if (fd_ < 0 && !open()) return false;
    const std::string req = "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n";
    if (!send_all(fd_, req.data(), req.size())) {
      drop();
      return false;
    }
    asked_ = true;
    return true;
  }
  std::optional<std::string> answer() {
    if (!asked_) return std::nullopt;
    asked_ = false;
    std::size_t end;
    while ((end = in_.find("\r\n\r\n")) == std::string::npos) {
      if (in_.size() > 64 * 1024 || !more()) return fail();
    }
    std::string head = in_.substr(0, end);
    in_.erase(0, end + 4);
    for (auto& c : head) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    const auto cl = head.find("\r\ncontent-length:");
    if (head.rfind("http/1.1 ", 0) != 0 || cl == std::string::npos) return fail();
    const std::size_t length = std::strtoull(head.c_str() + cl + 17, nullptr, 10);
    while (in_.size() < length) {
      if (!more()) return fail();
    }
    std::string body = in_.substr(0, length);
    in_.erase(0, length);
    const bool ok = head.compare(9, 3, "200") == 0;
    if (head.find("\r\nconnection: close") != std::string::npos) drop();
    if (!ok) return std::nullopt;
    return body;
  }

 private:
  bool open() {
    fd_ = connect_loopback(port_);
    return fd_ >= 0;
  }
  void drop() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    in_.clear();
  }
  std::nullopt_t fail() {
    drop();
    return std::nullopt;
  }
  bool more() {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, 2000) <= 0) return false;
    char buf[64 * 1024];
    const ssize_t k = ::recv(fd_, buf, sizeof buf, 0);
    if (k <= 0) return false;
    in_.append(buf, static_cast<std::size_t>(k));
    return true;
  }

  std::uint16_t port_;
  int fd_ = -1;
  bool asked_ = false;  // ask() sent a request not yet read
  std::string in_;
};

// ---------------------------------------------------------------- systems
class System {
 public:
  virtual ~System() = default;
  virtual std::string label() const = 0;
  virtual std::string name(int i) const = 0;
  // Spawns node i; seed < 0: none.
  virtual void start(int i, int seed) = 0;
  // One poll round over `nodes`: each one's view, nullopt if unreachable.
  virtual std::vector<std::optional<View>> poll(const std::vector<int>& nodes) = 0;
  virtual void leave(int i) = 0;
  virtual std::string failed_word() const = 0;
  // Drops what the poller holds open to node i (it was killed).
  virtual void forget(int) {}
  void kill9(int i) {
    procs_.at(i)->signal(SIGKILL);
    procs_.at(i)->wait_exit(5s);
    forget(i);
  }
  pid_t pid(int i) const { return procs_.at(i)->pid(); }
  std::string log_tail(int i) const {
    if (!procs_.at(i)) return {};
    return procs_.at(i)->log_tail(15) + procs_.at(i)->stdout_text().substr(
                                            procs_.at(i)->stdout_text().size() > 1500
                                                ? procs_.at(i)->stdout_text().size() - 1500
                                                : 0);
  }
  void stop_all() {
    for (auto& p : procs_) p.reset();
  }

 protected:
  std::string dir_;
  std::vector<std::unique_ptr<Process>> procs_;
};

class Ours : public System {
 public:
  Ours(std::string bin, std::string dir, int n, PortBlock& ports) : bin_(std::move(bin)) {
    dir_ = std::move(dir);
    procs_.resize(n);
    clients_.resize(n);
    for (int i = 0; i < n; ++i) {
      swim_.push_back(ports.take());
      admin_.push_back(ports.take());
      zmq_.push_back(ports.take());
    }
  }
  std::string label() const override { return "ours"; }
  std::string name(int i) const override { return "m" + std::to_string(i); }
  std::string failed_word() const override { return "dead"; }
  void start(int i, int seed) override {
    std::map<std::string, std::string> env = {
        {"JC_NODE_NAME", name(i)},
        {"JC_SWIM_HOST", "127.0.0.1"},
        {"JC_SWIM_PORT", std::to_string(swim_[i])},
        {"JC_ADMIN_HOST", "127.0.0.1"},
        {"JC_ADMIN_PORT", std::to_string(admin_[i])},
        {"JC_ZMQ_PORT", std::to_string(zmq_[i])},
        {"JC_PROFILE", "lan"},
        {"JC_LOG_LEVEL", "info"},
    };
    if (seed >= 0) env["JC_SEED_NODES"] = "127.0.0.1:" + std::to_string(swim_[seed]);
    procs_[i] = std::make_unique<Process>(std::vector<std::string>{bin_}, env, dir_, name(i));
  }
  std::vector<std::optional<View>> poll(const std::vector<int>& nodes) override {
    for (int i : nodes) {
      if (!clients_[i]) clients_[i] = std::make_unique<AdminHttp>(admin_[i]);
      clients_[i]->ask("/v1/members");
    }
    std::vector<std::optional<View>> out;
    for (int i : nodes) {
      const auto body = clients_[i]->answer();
      if (!body) {
        out.emplace_back();
        continue;
      }
      auto j = json::parse(*body, nullptr, false);
      if (j.is_discarded() || !j.is_array()) {
        out.emplace_back();
        continue;
      }
      View v;
      for (const auto& m : j) v[m.value("name", "")] = m.value("state", "");
      out.emplace_back(std::move(v));
    }
    return out;
  }
  void forget(int i) override { clients_.at(i).reset(); }
  void leave(int i) override { procs_.at(i)->signal(SIGTERM); }
  std::optional<int> wait_exit(int i, std::chrono::milliseconds t) {
    return procs_.at(i)->wait_exit(t);
  }

 private:
  std::string bin_;
  std::vector<std::uint16_t> swim_, admin_, zmq_;
  std::vector<std::unique_ptr<AdminHttp>> clients_;
};

class Serf : public System {
 public:
  Serf(std::string bin, std::string dir, int n, PortBlock& ports) : bin_(std::move(bin)) {
    dir_ = std::move(dir);
    procs_.resize(n);
    clients_.resize(n);
    for (int i = 0; i < n; ++i) {
      bind_.push_back(ports.take());
      rpc_.push_back(ports.take());
    }
  }
  ~Serf() override { leavers_.clear(); }
  std::string label() const override { return "serf"; }
  std::string name(int i) const override { return "s" + std::to_string(i); }
  std::string failed_word() const override { return "failed"; }
  void start(int i, int seed) override {
    std::vector<std::string> argv = {bin_,
                                     "agent",
                                     "-node=" + name(i),
                                     "-bind=127.0.0.1:" + std::to_string(bind_[i]),
                                     "-rpc-addr=" + rpc(i)};
    if (seed >= 0) argv.push_back("-join=127.0.0.1:" + std::to_string(bind_[seed]));
    procs_[i] = std::make_unique<Process>(argv, std::map<std::string, std::string>{}, dir_, name(i));
  }
  std::vector<std::optional<View>> poll(const std::vector<int>& nodes) override {
    for (int i : nodes) {
      if (!clients_[i]) clients_[i] = std::make_unique<SerfRpc>(rpc_[i]);
      clients_[i]->ask_members();
    }
    std::vector<std::optional<View>> out;
    for (int i : nodes) out.push_back(clients_[i]->members_answer());
    return out;
  }
  void forget(int i) override { clients_.at(i).reset(); }
  void leave(int i) override {
    leavers_.push_back(std::make_unique<Process>(
        std::vector<std::string>{bin_, "leave", "-rpc-addr=" + rpc(i)},
        std::map<std::string, std::string>{}, dir_, name(i) + "-leave"));
  }

 private:
  std::string rpc(int i) const { return "127.0.0.1:" + std::to_string(rpc_[i]); }
  std::string bin_;
  std::vector<std::uint16_t> bind_, rpc_;
  std::vector<std::unique_ptr<SerfRpc>> clients_;
  std::vector<std::unique_ptr<Process>> leavers_;
};

// ---------------------------------------------------------------- one trial
struct TrialResult {
  std::optional<double> join_ms, detect_ms, leave_ms, rss_kb, pss_kb, cpu_pct;
  int false_failures = 0;   // (observer, live subject) pairs ever shown dead/failed
  std::vector<std::string> false_failure_notes;
  double mean_round_ms = 0;
  std::string error;
  std::optional<int> leave_exit;  // ours: exit code after SIGTERM
};

struct Poller {
  System& sys;
  std::chrono::milliseconds period;
  std::set<std::pair<std::string, std::string>> false_seen;
  double round_ms_sum = 0;
  int rounds = 0;

  // Polls `observers` until pred(views) holds or `limit` passes; the time
  // from t0 to the end of the first round where it holds. `live` are the
  // names that must never be shown dead.
  std::optional<double> until(Clock::time_point t0, const std::vector<int>& observers,
                              const std::set<std::string>& live,
                              const std::function<bool(const std::vector<std::optional<View>>&)>& pred,
                              std::chrono::seconds limit) {
    const auto deadline = t0 + limit;
    while (Clock::now() < deadline) {
      check_interrupt();
      const auto r0 = Clock::now();
      auto views = sys.poll(observers);
      const auto r1 = Clock::now();
      round_ms_sum += std::chrono::duration<double, std::milli>(r1 - r0).count();
      ++rounds;
      for (std::size_t k = 0; k < views.size(); ++k) {
        if (!views[k]) continue;
        for (const auto& [n, s] : *views[k])
          if (live.count(n) && s == "dead") false_seen.insert({sys.name(observers[k]), n});
      }
      if (pred(views)) return std::chrono::duration<double, std::milli>(r1 - t0).count();
      const auto next = r0 + period;
      if (Clock::now() < next) std::this_thread::sleep_until(next);
    }
    return std::nullopt;
  }
};

bool all_alive(const std::vector<std::optional<View>>& views, const std::vector<std::string>& names) {
  for (const auto& v : views) {
    if (!v) return false;
    for (const auto& n : names) {
      auto it = v->find(n);
      if (it == v->end() || it->second != "alive") return false;
    }
  }
  return true;
}

bool all_show(const std::vector<std::optional<View>>& views, const std::string& name,
              const std::string& state) {
  for (const auto& v : views) {
    if (!v) return false;
    auto it = v->find(name);
    if (it == v->end() || it->second != state) return false;
  }
  return true;
}

std::vector<int> range_except(int n, const std::set<int>& skip) {
  std::vector<int> r;
  for (int i = 0; i < n; ++i)
    if (!skip.count(i)) r.push_back(i);
  return r;
}

TrialResult run_trial(System& sys, int n, const Options& opt) {
  TrialResult res;
  const auto limit = std::chrono::seconds(opt.deadline_s);
  Poller poller{sys, 100ms, {}, 0, 0};
  std::vector<std::string> names;
  for (int i = 0; i < n; ++i) names.push_back(sys.name(i));
  std::set<std::string> live(names.begin(), names.end());
  auto finish = [&] {
    res.false_failures = static_cast<int>(poller.false_seen.size());
    for (const auto& [obs, subj] : poller.false_seen)
      res.false_failure_notes.push_back(obs + " saw " + subj + " dead");
    res.mean_round_ms = poller.rounds ? poller.round_ms_sum / poller.rounds : 0;
  };
  auto fail = [&](const std::string& what, int node) {
    finish();
    res.error = what;
    std::cerr << "  [" << sys.label() << " N=" << n << "] " << what << "\n";
    if (node >= 0) std::cerr << sys.log_tail(node);
    return res;
  };

  // 1. the first N-1 nodes.
  sys.start(0, -1);
  if (!poller.until(Clock::now(), {0}, live, [&](const auto& v) { return v[0].has_value(); }, limit))
    return fail("node 0 never answered", 0);
  for (int i = 1; i < n - 1; ++i) {
    sys.start(i, 0);
    sleep_for(std::chrono::milliseconds(opt.spawn_gap_ms));
  }
  std::vector<std::string> first(names.begin(), names.end() - 1);
  if (!poller.until(Clock::now(), range_except(n - 1, {}), live,
                    [&](const auto& v) { return all_alive(v, first); }, limit))
    return fail("the first N-1 nodes never converged", 1);

  // 2. join of the N-th.
  auto t0 = Clock::now();
  sys.start(n - 1, 0);
  res.join_ms = poller.until(t0, range_except(n, {}), live,
                             [&](const auto& v) { return all_alive(v, names); }, limit);
  if (!res.join_ms) return fail("join of the N-th node not seen by all within the deadline", n - 1);

  // 3. idle: no polling.
  sleep_for(std::chrono::seconds(opt.settle_s));
  std::vector<long long> c0(n);
  for (int i = 0; i < n; ++i) c0[i] = cpu_ticks(sys.pid(i)).value_or(0);
  const auto idle0 = Clock::now();
  sleep_for(5s);
  double rss_sum = 0;
  double pss_sum = 0;
  for (int i = 0; i < n; ++i) {
    rss_sum += static_cast<double>(rss_kb(sys.pid(i)).value_or(0));
    pss_sum += static_cast<double>(pss_kb(sys.pid(i)).value_or(0));
  }
  res.rss_kb = rss_sum / n;
  if (pss_sum > 0) res.pss_kb = pss_sum / n;
  sleep_for(5s);
  const double idle_s = std::chrono::duration<double>(Clock::now() - idle0).count();
  double ticks = 0;
  for (int i = 0; i < n; ++i) ticks += static_cast<double>(cpu_ticks(sys.pid(i)).value_or(0) - c0[i]);
  res.cpu_pct = ticks / static_cast<double>(::sysconf(_SC_CLK_TCK)) / idle_s * 100.0 / n;

  // 4. kill -9 of nodes 1..K at once.
  const int leaver = opt.kill + 1;
  std::set<int> victims;
  for (int i = 1; i <= opt.kill; ++i) victims.insert(i);
  t0 = Clock::now();
  for (int v : victims) {
    sys.kill9(v);
    live.erase(names[v]);
  }
  res.detect_ms = poller.until(t0, range_except(n, victims), live,
                               [&](const auto& v) {
                                 for (int k : victims)
                                   if (!all_show(v, names[k], "dead")) return false;
                                 return true;
                               },
                               limit);
  if (!res.detect_ms) return fail("kill -9 not seen as " + sys.failed_word() + " by all", 0);

  // 5. graceful leave of node 2 (shown dead at any time counts as false).
  t0 = Clock::now();
  sys.leave(leaver);
  std::set<int> gone = victims;
  gone.insert(leaver);
  res.leave_ms = poller.until(t0, range_except(n, gone), live,
                              [&](const auto& v) { return all_show(v, names[leaver], "left"); },
                              limit);
  if (auto* ours = dynamic_cast<Ours*>(&sys)) res.leave_exit = ours->wait_exit(leaver, 10s);
  if (!res.leave_ms) return fail("leave not seen as left by all", leaver);

  finish();
  return res;
}

// ---------------------------------------------------------------- report
std::optional<double> median(std::vector<double> v) {
  if (v.empty()) return std::nullopt;
  std::sort(v.begin(), v.end());
  const auto m = v.size() / 2;
  return v.size() % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

struct Series {
  std::vector<double> join, detect, leave, rss, pss, cpu, round;
  int false_failures = 0, failed_trials = 0;
  std::vector<std::string> notes;
  std::vector<int> leave_exit;
  void add(const TrialResult& r) {
    if (!r.error.empty()) {
      ++failed_trials;
      notes.push_back("trial failed: " + r.error);
    }
    if (r.join_ms) join.push_back(*r.join_ms);
    if (r.detect_ms) detect.push_back(*r.detect_ms);
    if (r.leave_ms) leave.push_back(*r.leave_ms);
    if (r.rss_kb) rss.push_back(*r.rss_kb);
    if (r.pss_kb) pss.push_back(*r.pss_kb);
    if (r.cpu_pct) cpu.push_back(*r.cpu_pct);
    if (r.mean_round_ms > 0) round.push_back(r.mean_round_ms);
    if (r.leave_exit) leave_exit.push_back(*r.leave_exit);
    false_failures += r.false_failures;
    for (const auto& x : r.false_failure_notes) notes.push_back(x);
  }
};

json opt_json(const std::optional<double>& d) { return d ? json(*d) : json(nullptr); }

json series_json(const Series& s) {
  json j;
  j["join_ms"] = s.join;
  j["detect_ms"] = s.detect;
  j["leave_ms"] = s.leave;
  j["rss_kb"] = s.rss;
  j["pss_kb"] = s.pss;
  j["cpu_pct"] = s.cpu;
  j["mean_poll_round_ms"] = s.round;
  j["false_failures"] = s.false_failures;
  j["failed_trials"] = s.failed_trials;
  j["notes"] = s.notes;
  if (!s.leave_exit.empty()) j["leave_exit_codes"] = s.leave_exit;
  j["median"] = {{"join_ms", opt_json(median(s.join))},
                 {"detect_ms", opt_json(median(s.detect))},
                 {"leave_ms", opt_json(median(s.leave))},
                 {"rss_kb", opt_json(median(s.rss))},
                 {"pss_kb", opt_json(median(s.pss))},
                 {"cpu_pct", opt_json(median(s.cpu))}};
  return j;
}

std::optional<double> ratio(const std::vector<double>& a, const std::vector<double>& b) {
  auto ma = median(a), mb = median(b);
  if (!ma || !mb || *mb == 0) return std::nullopt;
  return *ma / *mb;
}

std::string fmt(const std::optional<double>& d, int prec) {
  if (!d) return "-";
  std::ostringstream o;
  o << std::fixed << std::setprecision(prec) << *d;
  return o.str();
}

void print_table(std::ostream& os, int n, const Series& o, const Series& s, int trials) {
  os << "\nN = " << n << " (" << trials << " trials each; medians)\n\n";
  os << "| metric | ours | serf | ours/serf |\n|---|---|---|---|\n";
  auto row = [&](const std::string& name, const std::vector<double>& a, const std::vector<double>& b,
                 int prec) {
    os << "| " << name << " | " << fmt(median(a), prec) << " | " << fmt(median(b), prec) << " | "
       << fmt(ratio(a, b), 2) << " |\n";
  };
  row("join seen by all (ms)", o.join, s.join, 0);
  row("kill -9 -> dead/failed seen by all (ms)", o.detect, s.detect, 0);
  row("leave -> left seen by all (ms)", o.leave, s.leave, 0);
  row("RSS per idle node (MB)", [&] { auto v = o.rss; for (auto& x : v) x /= 1024; return v; }(),
      [&] { auto v = s.rss; for (auto& x : v) x /= 1024; return v; }(), 1);
  row("PSS per idle node (MB)", [&] { auto v = o.pss; for (auto& x : v) x /= 1024; return v; }(),
      [&] { auto v = s.pss; for (auto& x : v) x /= 1024; return v; }(), 1);
  row("CPU per idle node (% of a core)", o.cpu, s.cpu, 2);
  os << "| false failures (live node shown dead/failed) | " << o.false_failures << " | "
     << s.false_failures << " | |\n";
  os << "| failed trials | " << o.failed_trials << " | " << s.failed_trials << " | |\n";
  os << "| mean poll round (ms) | " << fmt(median(o.round), 1) << " | " << fmt(median(s.round), 1)
     << " | |\n";
}

// "5,10": each size 4..200. Throws mesh::UsageError, without the flag's name
// (CLI11 puts it in front).
std::vector<int> parse_sizes(const std::string& s) {
  std::vector<int> r;
  std::stringstream ss(s);
  for (std::string x; std::getline(ss, x, ',');) {
    int n = 0;
    const auto [end, ec] = std::from_chars(x.data(), x.data() + x.size(), n);
    if (x.empty() || ec != std::errc{} || end != x.data() + x.size() || n < 4 || n > 200) {
      throw mesh::UsageError("each size must be 4..200 (got " + x + ")");
    }
    r.push_back(n);
  }
  if (r.empty()) throw mesh::UsageError("empty");
  return r;
}

int run(int argc, char** argv) {
  Options opt;
  CLI::App app(
      "Our mesh-node against real `serf agent`s, side by side in the same run, on\n"
      "127.0.0.1 with the LAN timing profile: join, failure detection, leave, idle\n"
      "RSS and CPU, per cluster size (docs/benchmarks.md).");
  mesh::cli::setup(app, "swim_vs_serf");
  // A flag given twice: the last one counts.
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  std::string sizes_text = "5,10";
  app.add_option("--sizes", sizes_text, "cluster sizes, comma-separated, each 4..200 (default 5,10)")
      ->type_name("N,N")
      ->check(CLI::Validator(
          [](std::string& text) -> std::string {
            try {
              parse_sizes(text);
              return "";
            } catch (const mesh::UsageError& e) {
              return e.what();
            }
          },
          ""));
  app.add_option("--trials", opt.trials, "trials per size and system, at least 1 (default 3)")
      ->type_name("N")
      ->transform(mesh::cli::whole_number(0, 1000000));
  app.add_option("--kill", opt.kill,
                 "nodes killed at once in the detection phase, 1..N-3 of the smallest N (default 1)")
      ->type_name("K")
      ->transform(mesh::cli::whole_number(1, 197));
  app.add_option("--port-base", opt.port_base,
                 "first port of the block the nodes use, below the ephemeral range (default 20000)")
      ->type_name("PORT")
      ->transform(mesh::cli::whole_number(1024, 32000));
  app.add_option("--spawn-gap-ms", opt.spawn_gap_ms,
                 "pause between the spawns of the first N-1 nodes (default 20)")
      ->type_name("MS")
      ->transform(mesh::cli::whole_number(0, 10000));
  app.add_option("--settle-s", opt.settle_s,
                 "pause between the join and the idle measurement (default 1)")
      ->type_name("S")
      ->transform(mesh::cli::whole_number(0, 3600));
  app.add_flag("--json", opt.json_out, "one JSON object on stdout (the tables go to stderr)");
  app.add_option("--mesh-node", opt.mesh_node,
                 "the mesh-node binary (default: the one built beside)")
      ->type_name("PATH");
  app.add_option("--serf", opt.serf, "the serf binary (default: serf on PATH)")->type_name("PATH");
  app.add_option("--deadline-s", opt.deadline_s,
                 "deadline of each phase, at least 5 s (default 60)")
      ->type_name("S")
      ->transform(mesh::cli::whole_number(0, 1000000));
  if (auto done = mesh::cli::parse(app, argc, argv)) return *done;
  opt.sizes = parse_sizes(sizes_text);
  if (const int smallest = *std::min_element(opt.sizes.begin(), opt.sizes.end()); opt.kill > smallest - 3) {
    throw mesh::UsageError("--kill: " + std::to_string(opt.kill) + " leaves too few nodes at N = " +
                           std::to_string(smallest) + " (at most N-3)");
  }
  opt.trials = std::max(1, opt.trials);
  opt.deadline_s = std::max(5, opt.deadline_s);
  if (opt.serf.empty()) opt.serf = find_on_path("serf");
  if (opt.serf.empty()) throw std::runtime_error("serf not found on PATH (--serf PATH)");
  // Checked here: a serf that cannot start fails every trial, one deadline
  // at a time, and the run would end with nothing measured.
  if (::access(opt.serf.c_str(), X_OK) != 0)
    throw std::runtime_error("serf not executable: " + opt.serf);
  if (::access(opt.mesh_node.c_str(), X_OK) != 0)
    throw std::runtime_error("mesh-node not executable: " + opt.mesh_node);

  std::ostream& table_out = opt.json_out ? std::cerr : std::cout;
  std::map<int, std::pair<Series, Series>> results;
  for (int n : opt.sizes) {
    for (int t = 0; t < opt.trials; ++t) {
      // Alternate which system goes first, so that drifting load on the
      // shared machine does not favour one.
      for (int k = 0; k < 2; ++k) {
        const bool ours_now = (k == 0) == (t % 2 == 0);
        mesh::test::TempDir dir;
        std::unique_ptr<System> sys;
        PortBlock ports(opt.port_base);
        if (ours_now) sys = std::make_unique<Ours>(opt.mesh_node, dir.path(), n, ports);
        else sys = std::make_unique<Serf>(opt.serf, dir.path(), n, ports);
        const auto started = Clock::now();
        TrialResult r = run_trial(*sys, n, opt);
        sys->stop_all();
        std::cerr << "[N=" << n << " trial " << t + 1 << " " << sys->label() << "] join "
                  << fmt(r.join_ms, 0) << " ms, detect " << fmt(r.detect_ms, 0) << " ms, leave "
                  << fmt(r.leave_ms, 0) << " ms, rss " << fmt(r.rss_kb, 0) << " kB, pss "
                  << fmt(r.pss_kb, 0) << " kB, cpu "
                  << fmt(r.cpu_pct, 2) << " %, false " << r.false_failures << ", round "
                  << fmt(r.mean_round_ms, 1) << " ms (" << fmt(ms_since(started) / 1000, 1)
                  << " s)\n";
        (ours_now ? results[n].first : results[n].second).add(r);
        sleep_for(1s);
      }
    }
  }

  json out;
  out["method"] = {
      {"profile", "lan (serf default; JC_PROFILE=lan)"},
      {"host", "127.0.0.1"},
      {"trials", opt.trials},
      {"poll", "every ~100 ms, every live node each round, all asked before any answer is read: ours "
               "GET /v1/members; serf the RPC `members` call on a connection per agent"},
      {"spawn_gap_ms", opt.spawn_gap_ms},
      {"ports", "from " + std::to_string(opt.port_base) + " up, below 32768"},
      {"phase_end", "end of the first poll round in which the condition holds"},
      {"join", "spawn of the N-th node (seed node 0) -> all N list all N alive"},
      {"detect", "SIGKILL of nodes 1.." + std::to_string(opt.kill) +
                     " at once -> all remaining list them dead/failed"},
      {"kill", opt.kill},
      {"leave", "SIGTERM / `serf leave` of node " + std::to_string(opt.kill + 1) +
                    " -> all remaining list it left"},
      {"settle_s", opt.settle_s},
      {"rss", "mean VmRSS per node after settle_s + 5 s idle (kB)"},
      {"pss", "mean proportional set size (smaps_rollup Pss) per node, same moment (kB)"},
      {"cpu", "mean (utime+stime) per node over 10 s idle, % of one core"}};
  json sizes = json::object();
  for (const auto& [n, ss] : results) {
    const auto& [o, s] = ss;
    json j;
    j["ours"] = series_json(o);
    j["serf"] = series_json(s);
    j["join_ratio"] = opt_json(ratio(o.join, s.join));
    j["detect_ratio"] = opt_json(ratio(o.detect, s.detect));
    j["leave_ratio"] = opt_json(ratio(o.leave, s.leave));
    j["rss_ratio"] = opt_json(ratio(o.rss, s.rss));
    j["pss_ratio"] = opt_json(ratio(o.pss, s.pss));
    j["cpu_ratio"] = opt_json(ratio(o.cpu, s.cpu));
    sizes[std::to_string(n)] = j;
    print_table(table_out, n, o, s, opt.trials);
  }
  const int top = results.count(10) ? 10 : results.rbegin()->first;
  out["n"] = top;
  for (const char* k : {"join_ratio", "detect_ratio", "leave_ratio", "rss_ratio", "pss_ratio", "cpu_ratio"})
    out[k] = sizes[std::to_string(top)][k];
  out["sizes"] = sizes;
  if (opt.json_out) std::cout << out.dump(2) << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  ::sigemptyset(&sa.sa_mask);
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
  ::sigaction(SIGHUP, &sa, nullptr);
  try {
    return run(argc, argv);
  } catch (const mesh::UsageError& e) {
    std::cerr << "swim_vs_serf: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "swim_vs_serf: " << e.what() << "\n";
    return 1;
  }
}
