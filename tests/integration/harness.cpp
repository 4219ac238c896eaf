#include "harness.hpp"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>

namespace mesh::swim::test {

bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds limit) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (true) {
    if (pred()) return true;
    if (std::chrono::steady_clock::now() > until) return false;
    std::this_thread::sleep_for(50ms);
  }
}

IoThreads::IoThreads(int threads) : guard_(asio::make_work_guard(io_)) {
  for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { io_.run(); });
}

IoThreads::~IoThreads() { stop(); }

void IoThreads::stop() {
  guard_.reset();
  io_.stop();
  for (auto& t : threads_)
    if (t.joinable()) t.join();
}

Config local_config(const std::string& name) {
  Config c = Config::local();
  c.name = name;
  return c;
}

NetOptions loopback(const std::string& host) {
  NetOptions n;
  n.bind_host = host;
  n.bind_port = 0;
  return n;
}

std::optional<MemberState> state_of(const Membership& m, const std::string& name) {
  for (const auto& i : m.members())
    if (i.member.name == name) return i.member.state;
  return std::nullopt;
}

bool sees(const Membership& m, const std::string& name, MemberState s) {
  return state_of(m, name) == s;
}

std::string seed_of(const Membership& m) {
  const Address& a = m.advertise();
  if (a.ip_len == 16) return "[::1]:" + std::to_string(a.port);
  return "127.0.0.1:" + std::to_string(a.port);
}

Membership::EventHandler EventLog::handler() {
  return [this](const MemberEvent& e) {
    std::lock_guard<std::mutex> lock(mu_);
    events_.push_back(e);
  };
}

bool EventLog::has(EventKind kind, const std::string& name) const {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& e : events_)
    if (e.kind == kind && e.member.name == name) return true;
  return false;
}

TestNode::TestNode(Config c, NetOptions n, std::uint64_t seed,
                   std::map<std::string, std::string> tags)
    : m(std::make_unique<Membership>(io.io(), std::move(c), std::move(n), seed)) {
  m->on_event(events.handler());
  m->start(tags);
}

TestNode::~TestNode() {
  m.reset();  // shuts down while the io_context still runs
  io.stop();
}

std::uint16_t free_port() {
  asio::io_context io;
  for (int i = 0; i < 50; ++i) {
    asio::ip::udp::socket u(io, asio::ip::udp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    const std::uint16_t port = u.local_endpoint().port();
    boost::system::error_code ec;
    asio::ip::tcp::acceptor t(io);
    t.open(asio::ip::tcp::v4());
    t.bind(asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), port), ec);
    if (!ec) return port;
  }
  throw std::runtime_error("no free port");
}

TempDir::TempDir() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "mesh-swim-XXXXXX").string();
  if (mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

ChildProcess::ChildProcess(const std::vector<std::string>& argv, const std::filesystem::path& log) {
  // Everything the child needs is prepared before fork(): between fork and
  // exec only async-signal-safe calls are allowed.
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const std::string log_path = log.string();
  const int pid = fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    const int fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
    }
    execv(args[0], args.data());
    _exit(127);
  }
  pid_ = pid;
}

ChildProcess::~ChildProcess() { kill9(); }

void ChildProcess::kill9() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
}

std::string find_on_path(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::stringstream ss(path != nullptr ? path : "/usr/bin:/bin");
  std::string dir;
  while (std::getline(ss, dir, ':')) {
    const std::filesystem::path p = std::filesystem::path(dir) / name;
    if (access(p.c_str(), X_OK) == 0) return p.string();
  }
  return {};
}

std::optional<std::string> run_capture(const std::string& command) {
  FILE* f = popen(command.c_str(), "r");
  if (f == nullptr) return std::nullopt;
  std::string out;
  char buf[4096];
  std::size_t n = 0;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  const int status = pclose(f);
  if (status != 0) return std::nullopt;
  return out;
}

std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace mesh::swim::test
