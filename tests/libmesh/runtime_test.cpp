// The agent runtime: agents on the Mesh's executor (strands on a few
// threads), coroutine handlers, awaits that a stop cancels, events in turn
// with handlers, and blocking calls that refuse to run on the executor.
// P2P off: one process, no sockets.
#include <dirent.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <future>
#include <string>
#include <vector>

#include "mesh/json_limits.hpp"
#include "mesh/mesh.hpp"
#include "mesh_fixtures.hpp"

namespace mesh {
namespace {

using namespace std::chrono_literals;
using test::Echo;
using test::eventually;
using test::Probe;
using test::Silent;

NodeConfig local_config(std::size_t workers = 2) {
  NodeConfig c;
  c.node_name = "runtime";
  c.p2p_enabled = false;
  c.worker_threads = workers;
  return c;
}

// A field of /proc/self/status ("Threads"), or of one thread's status.
long status_field(const std::string& path, const std::string& key) {
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key + ":", 0) == 0) return std::stol(line.substr(key.size() + 1));
  }
  return -1;
}

long thread_count() { return status_field("/proc/self/status", "Threads"); }

// Threads whose name starts with `prefix` (the executor's: "mesh-worker-").
long threads_named(const std::string& prefix) {
  long n = 0;
  DIR* d = ::opendir("/proc/self/task");
  if (!d) return -1;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] == '.') continue;
    std::ifstream in(std::string("/proc/self/task/") + e->d_name + "/comm");
    std::string name;
    std::getline(in, name);
    if (name.rfind(prefix, 0) == 0) ++n;
  }
  ::closedir(d);
  return n;
}

// How often the process's threads went to sleep and were woken since they
// started: the sum of voluntary context switches over its threads.
long wakeups() {
  long total = 0;
  DIR* d = ::opendir("/proc/self/task");
  if (!d) return -1;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] == '.') continue;
    const long v = status_field(std::string("/proc/self/task/") + e->d_name + "/status", "voluntary_ctxt_switches");
    if (v > 0) total += v;
  }
  ::closedir(d);
  return total;
}

// ---------------------------------------------------------------- scale

TEST(Runtime, TenThousandAgentsOnAFewThreads) {
  const long before = thread_count();
  constexpr int kAgents = 10'000;  // the directory's limit of local agents
  {
    Mesh mesh(local_config(2));
    for (int i = 0; i < kAgents - 1; ++i) mesh.add<Echo>("echo-" + std::to_string(i));
    auto& probe = mesh.add<Probe>("probe");
    mesh.start();
    const long during = thread_count();
    EXPECT_EQ(threads_named("mesh-worker-"), 2);
    std::printf("threads: %ld before the mesh, %ld with %d agents (2 workers)\n", before, during, kAgents);
    // Two workers; no thread per agent (the transport needs none with P2P off).
    EXPECT_LE(during, before + 2 + 4);

    // Every agent answers.
    std::vector<std::future<RequestOutcome>> answers;
    for (int i = 0; i < kAgents - 1; i += 97) {
      answers.push_back(probe.peers().request_async("echo-" + std::to_string(i), {{"i", i}}, 30s));
    }
    for (auto& f : answers) {
      ASSERT_EQ(f.wait_for(60s), std::future_status::ready);
      EXPECT_TRUE(f.get().ok());
    }

    // Idle, they cost no wake-ups: over 2 s only the control strand's
    // repair timer (every 2 s) may wake a worker.
    const long w0 = wakeups();
    std::this_thread::sleep_for(2s);
    const long idle = wakeups() - w0;
    std::printf("wake-ups over 2 s idle with %d agents: %ld\n", kAgents, idle);
    EXPECT_LT(idle, 50) << "an idle agent must not poll";

    const auto t0 = std::chrono::steady_clock::now();
    mesh.stop();
    const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
    std::printf("stop of %d agents: %lld ms\n", kAgents, static_cast<long long>(took.count()));
    // Not a timing assertion (see docs/benchmarks.md for the figure): a
    // stop that waited on each agent in turn would take minutes.
    EXPECT_LT(took, 30s);
  }
  // (Not the process's count: a sanitizer may have started a thread of its own.)
  EXPECT_TRUE(eventually([&] { return threads_named("mesh-worker-") == 0; })) << "the executor's threads are gone";
}

// ---------------------------------------------------------------- coroutines

// On {"ask": target}: asks `target` (co_await) and answers with what it
// got; otherwise answers {"from": its id}. Concurrency 1.
class Asker : public CustomAgent {
 public:
  explicit Asker(std::string id) : CustomAgent({.role = "asker", .agent_id = std::move(id)}) {}
  Task<std::optional<Json>> on_request(const IncomingMessage& m) override {
    if (m.data.contains("ask")) {
      const Json hop = {{"hop", 1}};
      const auto r = co_await peers().request(m.data["ask"].get<std::string>(), hop, 20s);
      co_return Json{{"got", r ? r->data : Json("none")}, {"by", id()}};
    }
    co_return Json{{"from", id()}};
  }
};

TEST(Runtime, MutualRequestsCompleteWithConcurrencyOne) {
  Mesh mesh(local_config(1));  // one worker: nothing but the awaits can make room
  mesh.add<Asker>("a");
  mesh.add<Asker>("b");
  auto& probe = mesh.add<Probe>("probe");
  mesh.start();
  for (int round = 0; round < 20; ++round) {
    // A asks B while B asks A.
    auto to_a = probe.peers().request_async("a", {{"ask", "b"}}, 30s);
    auto to_b = probe.peers().request_async("b", {{"ask", "a"}}, 30s);
    ASSERT_EQ(to_a.wait_for(40s), std::future_status::ready);
    ASSERT_EQ(to_b.wait_for(40s), std::future_status::ready);
    auto ra = to_a.get();
    auto rb = to_b.get();
    ASSERT_TRUE(ra.ok()) << transport::to_string(ra.error);
    ASSERT_TRUE(rb.ok()) << transport::to_string(rb.error);
    EXPECT_EQ(ra.response->data["got"]["from"], "b");
    EXPECT_EQ(rb.response->data["got"]["from"], "a");
  }
}

// Counts handlers running at once (not awaiting: running).
class Overlap : public CustomAgent {
 public:
  Overlap() : CustomAgent({.role = "overlap", .agent_id = "overlap-1"}) {}
  void setup() override {
    token_ = peers().subscribe([this](const PeerEvent&) {
      enter();
      ++events;  // a plain int: TSan reports a handler running beside it
      events_seen.fetch_add(1);
      leave();
    });
  }
  void teardown() override { peers().unsubscribe(token_); }
  Task<void> on_notify(const IncomingMessage&) override {
    enter();
    ++notifies;
    leave();
    co_await peers().sleep(0ms);  // suspend: the next message may start meanwhile
    enter();
    notifies_resumed.fetch_add(1);
    leave();
  }
  void enter() {
    if (inside.fetch_add(1) != 0) overlaps.fetch_add(1);
  }
  void leave() { inside.fetch_sub(1); }

  int events = 0, notifies = 0;  // only ever touched on the strand
  std::atomic<int> notifies_resumed{0}, events_seen{0};
  std::atomic<int> inside{0}, overlaps{0};

 private:
  PeerClient::Token token_ = 0;
};

TEST(Runtime, EventsNeverOverlapHandlers) {
  Mesh mesh(local_config(2));
  auto& agent = mesh.add<Overlap>();
  auto& probe = mesh.add<Probe>("probe");
  mesh.start();
  ASSERT_TRUE(eventually([&] { return agent.peers().registry().contains("probe"); }));
  constexpr int kNotifies = 2000;
  std::thread churn([&] {
    // Agents coming and going: AgentAdded / AgentRemoved events.
    for (int i = 0; i < 40; ++i) {
      mesh.add<Echo>("churn-" + std::to_string(i));
      mesh.remove("churn-" + std::to_string(i));
    }
  });
  int sent = 0;
  for (int i = 0; i < kNotifies; ++i) {
    if (probe.peers().notify("overlap-1", {{"i", i}})) {
      ++sent;
    } else {
      std::this_thread::sleep_for(1ms);  // mailbox full: let it drain
    }
  }
  churn.join();
  ASSERT_TRUE(eventually([&] { return agent.notifies_resumed.load() == sent; }));
  // Every add and remove is an event (and so is the probe's own add).
  EXPECT_TRUE(eventually([&] { return agent.events_seen.load() >= 80; })) << agent.events_seen.load();
  mesh.stop();  // the plain counters are read after it: stop waits for the strand
  EXPECT_EQ(agent.overlaps.load(), 0) << "an event ran beside a handler, or two handlers at once";
  EXPECT_EQ(agent.notifies, sent);
  EXPECT_EQ(agent.notifies_resumed.load(), sent);
  EXPECT_EQ(agent.events, agent.events_seen.load());
}

// A plain Agent in the Python style: run() receives in a loop.
class Collector : public Agent {
 public:
  Collector() : Agent({.role = "collector", .agent_id = "collector-1"}) {}
  Task<void> run() override {
    // A timeout that passes with nothing to receive.
    auto none = co_await peers().receive(10ms);
    timed_out = !none.has_value();
    while (!stop_requested()) {
      auto m = co_await peers().receive();  // no timeout: the stop ends it
      if (!m) continue;
      ++received;
      if (m->is_request()) peers().respond(*m, {{"n", received.load()}});
    }
    ended = true;
  }
  std::atomic<int> received{0};
  std::atomic<bool> timed_out{false}, ended{false};
};

TEST(Runtime, RunLoopReceivesAndStopEndsIt) {
  Mesh mesh(local_config(2));
  auto& c = mesh.add<Collector>();
  auto& probe = mesh.add<Probe>("probe");
  mesh.start();
  ASSERT_TRUE(eventually([&] { return c.timed_out.load(); }));
  EXPECT_TRUE(probe.peers().notify("collector-1", {{"x", 1}}));
  auto r = probe.peers().request_blocking("collector-1", {{"x", 2}}, 10s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->data["n"], 2);
  mesh.stop();
  EXPECT_TRUE(c.ended.load()) << "stop completed the receive without timeout, and run() returned";
}

// Awaits a request to an agent that never answers.
class Waiter : public CustomAgent {
 public:
  Waiter() : CustomAgent({.role = "waiter", .agent_id = "waiter-1"}) {}
  Task<void> on_notify(const IncomingMessage&) override {
    started = true;
    const Json q = {{"q", 1}};
    const auto out = co_await peers().request_detailed("silent-1", q, 60s);
    outcome = out.error;
    finished = true;
  }
  std::atomic<bool> started{false}, finished{false};
  std::atomic<ErrorCode> outcome{ErrorCode::None};
};

TEST(Runtime, StopCancelsAwaits) {
  Mesh mesh(local_config(2));
  auto& w = mesh.add<Waiter>();
  auto& silent = mesh.add<Silent>("silent-1");
  auto& probe = mesh.add<Probe>("probe");
  mesh.start();
  ASSERT_TRUE(probe.peers().notify("waiter-1", {{"go", 1}}));
  ASSERT_TRUE(eventually([&] { return silent.requests.load() == 1; }));
  const auto t0 = std::chrono::steady_clock::now();
  mesh.stop();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 30s) << "not the request's 60 s timeout";
  EXPECT_TRUE(w.finished.load());
  EXPECT_EQ(w.outcome.load(), ErrorCode::Shutdown);
}

// A plain handler that blocks on the mesh: refused, with the reason.
class Blocker : public CustomAgent {
 public:
  Blocker() : CustomAgent({.role = "blocker", .agent_id = "blocker-1"}) {}
  std::optional<Json> on_peer_request(const IncomingMessage&) override {
    auto r = peers().request_blocking("echo-1", {{"x", 1}}, 5s);  // throws
    return Json{{"got", r.has_value()}};
  }
  void on_error(const std::exception& e, const IncomingMessage*) override {
    std::lock_guard lock(mu);
    error = e.what();
  }
  std::mutex mu;
  std::string error;
};

TEST(Runtime, ABlockingCallOnTheExecutorFailsClearly) {
  Mesh mesh(local_config(1));
  auto& b = mesh.add<Blocker>();
  mesh.add<Echo>("echo-1");
  auto& probe = mesh.add<Probe>("probe");
  mesh.start();
  const auto out = probe.peers().request_detailed_blocking("blocker-1", {{"x", 1}}, 10s);
  EXPECT_EQ(out.error, ErrorCode::Rejected);
  std::lock_guard lock(b.mu);
  EXPECT_NE(b.error.find("co_await"), std::string::npos) << b.error;
  EXPECT_NE(b.error.find("request_blocking"), std::string::npos) << b.error;
}

// The awaitable forms against the blocking ones, from a coroutine.
class Driver : public Agent {
 public:
  Driver() : Agent({.role = "driver", .agent_id = "driver-1"}) {}
  Task<void> run() override {
    // GCC 12 cannot keep a braced initializer alive across co_await: each
    // payload is a named Json first.
    const Json x1 = {{"x", 1}}, x3 = {{"x", 3}};
    auto r = co_await peers().request("echo-1", x1, 10s);
    request_ok = r && r->data["echo"]["x"] == 1;
    auto missing = co_await peers().request_detailed("nobody", x1, 1s);
    unknown_ok = missing.error == ErrorCode::TargetUnknown;
    const auto id = peers().ask_async("echo-1", {{"x", 2}}, 10s);
    auto ask = co_await peers().check_inbox(id, 10s);
    ask_ok = ask && ask->data["echo"]["x"] == 2;
    auto gathered = co_await peers().request_all(by_role("echo"), x3, GatherPolicy::all(10s));
    gather_ok = gathered.satisfied && gathered.responses.size() == 2;
    const auto t0 = std::chrono::steady_clock::now();
    co_await peers().sleep(50ms);
    slept_ok = std::chrono::steady_clock::now() - t0 >= 50ms;
    done = true;
  }
  std::atomic<bool> request_ok{false}, unknown_ok{false}, ask_ok{false}, gather_ok{false}, slept_ok{false},
      done{false};
};

TEST(Runtime, EveryAwaitableCall) {
  Mesh mesh(local_config(2));
  mesh.add<Echo>("echo-1");
  mesh.add<Echo>("echo-2");
  auto& d = mesh.add<Driver>();
  mesh.start();
  ASSERT_TRUE(eventually([&] { return d.done.load(); }));
  EXPECT_TRUE(d.request_ok.load());
  EXPECT_TRUE(d.unknown_ok.load());
  EXPECT_TRUE(d.ask_ok.load());
  EXPECT_TRUE(d.gather_ok.load());
  EXPECT_TRUE(d.slept_ok.load());
}

// A handler that awaits lets the next message in; concurrency 1 still
// never runs two at once (Overlap above), while concurrency n does.
class Parallel : public CustomAgent {
 public:
  Parallel() : CustomAgent({.role = "parallel", .agent_id = "parallel-1", .concurrency = 2}) {}
  std::optional<Json> on_peer_request(const IncomingMessage&) override {
    const int now = inside.fetch_add(1) + 1;
    int seen = peak.load();
    while (now > seen && !peak.compare_exchange_weak(seen, now)) {
    }
    const auto until = std::chrono::steady_clock::now() + 5s;
    while (peak.load() < 2 && std::chrono::steady_clock::now() < until) std::this_thread::yield();
    inside.fetch_sub(1);
    return Json{{"peak", peak.load()}};
  }
  std::atomic<int> inside{0}, peak{0};
};

TEST(Runtime, ConcurrencyTwoRunsHandlersInParallel) {
  Mesh mesh(local_config(2));
  auto& p = mesh.add<Parallel>();
  auto& probe = mesh.add<Probe>("probe");
  mesh.start();
  auto a = probe.peers().request_async("parallel-1", {{"i", 1}}, 20s);
  auto b = probe.peers().request_async("parallel-1", {{"i", 2}}, 20s);
  ASSERT_EQ(a.wait_for(30s), std::future_status::ready);
  ASSERT_EQ(b.wait_for(30s), std::future_status::ready);
  EXPECT_EQ(p.peak.load(), 2);
}

// ---------------------------------------------------------------- same-node hand-off

// Notifies "receiver", then awaits until it has handled that message.
class SendThenAwait : public CustomAgent {
 public:
  explicit SendThenAwait(std::atomic<bool>& seen) : CustomAgent({.role = "waiter", .agent_id = "waiter"}), seen_(seen) {}
  Task<void> on_notify(const IncomingMessage&) override {
    peers().notify("receiver", Json(1));
    // With one worker the receiver can only run while this handler awaits.
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    while (!seen_.load() && std::chrono::steady_clock::now() < deadline) co_await peers().sleep(0ms);
    done.store(seen_.load() ? 1 : -1);
  }
  std::atomic<int> done{0};

 private:
  std::atomic<bool>& seen_;
};

class Receiver : public CustomAgent {
 public:
  explicit Receiver(std::atomic<bool>& seen) : CustomAgent({.role = "receiver", .agent_id = "receiver"}), seen_(seen) {}
  void on_peer_notify(const IncomingMessage&) override { seen_.store(true); }

 private:
  std::atomic<bool>& seen_;
};

TEST(Runtime, ASameNodeMessageRunsWhileItsSenderAwaits) {
  // docs/peerclient.md, "Who runs next": the receiver runs on the sender's
  // worker once the sender's handler awaits; here there is no other worker.
  std::atomic<bool> seen{false};
  Mesh mesh(local_config(1));
  auto& waiter = mesh.add<SendThenAwait>(seen);
  mesh.add<Receiver>(seen);
  auto& probe = mesh.add<Probe>("probe");
  mesh.start();
  ASSERT_TRUE(probe.peers().notify("waiter", Json(0)));
  ASSERT_TRUE(eventually([&] { return waiter.done.load() != 0; }, 40s));
  EXPECT_EQ(waiter.done.load(), 1);
}

// Relays what it gets, as it got it, to "sink"; answers requests with it.
class Mirror : public CustomAgent {
 public:
  Mirror() : CustomAgent({.role = "mirror", .agent_id = "mirror"}) {}
  Task<std::optional<Json>> on_request(const IncomingMessage& m) override {
    co_return Json{{"data", m.data}, {"context", m.context}, {"thread", m.thread().id.to_string()}};
  }
};

TEST(Runtime, ASameNodeMessageArrivesAsSent) {
  // A same-node receiver takes the sender's JSON without a decode: it must
  // be the same document, context and thread as the bytes would carry.
  Mesh mesh(local_config(2));
  mesh.add<Mirror>();
  auto& probe = mesh.add<Probe>("probe");
  mesh.start();
  const Json data = {{"text", std::string(300, 'x')}, {"list", {1, -2, 3.5, nullptr, true}}, {"nested", {{"k", "v"}}}};
  const Json ctx = {{"trace", "abc"}};
  SendOptions o;
  o.context = ctx;
  o.subject = "mirror test";
  auto out = probe.peers().request_detailed_blocking("mirror", data, o);
  ASSERT_TRUE(out.ok()) << transport::to_string(out.error);
  EXPECT_EQ(out.response->data["data"], data);
  EXPECT_EQ(out.response->data["context"], ctx);
  EXPECT_EQ(out.response->data["thread"], out.response->thread.to_string());
  EXPECT_NE(out.response->data["thread"], ThreadId{}.to_string());
  // Notifies too.
  auto& sink = mesh.add<Echo>("sink");
  ASSERT_TRUE(probe.peers().notify("sink", data, ctx));
  ASSERT_TRUE(eventually([&] { return sink.notify_count() == 1; }, 30s));
  const auto got = sink.notifies_copy();
  EXPECT_EQ(got[0].data, data);
  EXPECT_EQ(got[0].context, ctx);
  EXPECT_EQ(got[0].sender, "probe");
}

// What a handler saw of each message, copied while it ran.
class Recorder : public CustomAgent {
 public:
  Recorder() : CustomAgent({.role = "recorder", .agent_id = "recorder"}) {}
  std::optional<Json> on_peer_request(const IncomingMessage& m) override {
    keep(m);
    return Json("ok");
  }
  void on_peer_notify(const IncomingMessage& m) override { keep(m); }
  struct Seen {
    IncomingMessage message;
    std::string thread;
    bool has_handle = false;
  };
  std::vector<Seen> seen_copy() {
    std::lock_guard lock(mu);
    return seen;
  }

 private:
  void keep(const IncomingMessage& m) {
    std::lock_guard lock(mu);
    seen.push_back({m, m.thread().id.to_string(), m.handle != nullptr});
  }
  std::mutex mu;
  std::vector<Seen> seen;
};

TEST(Runtime, AMessageBuiltWhereAnEarlierOneWasKeepsNothingOfIt) {
  // A worker builds each message in the one its last handler gave back:
  // nothing of a request (its context, correlation id, priority, thread)
  // may show in the notify after it, and the reverse.
  Mesh mesh(local_config(1));  // one worker: every message in the same spare
  auto& recorder = mesh.add<Recorder>();
  auto& probe = mesh.add<Probe>("probe");
  mesh.start();
  SendOptions with_all;
  with_all.context = Json{{"trace", "t1"}};
  with_all.priority = Priority::Urgent;
  with_all.subject = "first";
  ASSERT_TRUE(probe.peers().request_detailed_blocking("recorder", Json{{"n", 1}}, with_all).ok());
  ASSERT_TRUE(probe.peers().notify("recorder", Json(2)));
  ASSERT_TRUE(probe.peers().request_detailed_blocking("recorder", Json("three"), SendOptions{}).ok());
  ASSERT_TRUE(mesh.node_client().notify("recorder", Json::array({4}), Json{{"k", "v"}}));
  ASSERT_TRUE(probe.peers().notify("recorder", Json(nullptr)));
  ASSERT_TRUE(eventually([&] { return recorder.seen_copy().size() == 5; }, 30s));
  const auto seen = recorder.seen_copy();

  const IncomingMessage& first = seen[0].message;
  EXPECT_TRUE(first.is_request());
  EXPECT_EQ(first.data, (Json{{"n", 1}}));
  EXPECT_EQ(first.context, (Json{{"trace", "t1"}}));
  EXPECT_EQ(first.priority, Priority::Urgent);
  EXPECT_EQ(first.correlation_id, first.id);
  EXPECT_EQ(first.sender, "probe");

  const IncomingMessage& second = seen[1].message;
  EXPECT_TRUE(second.is_notify());
  EXPECT_EQ(second.data, Json(2));
  EXPECT_EQ(second.context, Json::object()) << "the request's context stayed";
  EXPECT_EQ(second.priority, Priority::Normal);
  EXPECT_TRUE(second.correlation_id.empty()) << "the request's correlation id stayed";
  EXPECT_NE(second.id, first.id);
  EXPECT_NE(seen[1].thread, seen[0].thread) << "a new conversation, not the request's";

  const IncomingMessage& third = seen[2].message;
  EXPECT_TRUE(third.is_request());
  EXPECT_EQ(third.context, Json::object());
  EXPECT_EQ(third.correlation_id, third.id);

  const IncomingMessage& fourth = seen[3].message;
  EXPECT_TRUE(fourth.is_notify());
  EXPECT_EQ(fourth.data, Json::array({4}));
  EXPECT_EQ(fourth.context, (Json{{"k", "v"}}));
  EXPECT_NE(fourth.sender, "probe");

  const IncomingMessage& fifth = seen[4].message;
  EXPECT_EQ(fifth.data, Json(nullptr));
  EXPECT_EQ(fifth.context, Json::object()) << "the node client's context stayed";
  EXPECT_EQ(fifth.sender, "probe");
  for (const auto& s : seen) {
    EXPECT_TRUE(s.has_handle);
    EXPECT_EQ(s.message.target, "recorder");
  }
}

// Answers that cannot be sent, and handlers that fail, in both forms: a
// plain handler (ended where it started) and a coroutine (awaited).
class Faulty : public CustomAgent {
 public:
  explicit Faulty(std::string id) : CustomAgent({.role = "faulty", .agent_id = std::move(id)}) {}
  std::optional<Json> on_peer_request(const IncomingMessage& m) override {
    const std::string what = m.data.value("do", "");
    if (what == "deep") return nested(kMaxJsonDepth + 8);  // more than a message may nest
    if (what == "throw") throw std::runtime_error("plain handler failed");
    return Json{{"ok", what}};
  }
  void on_peer_notify(const IncomingMessage& m) override {
    if (m.data.value("do", "") == "throw") throw std::runtime_error("plain notify failed");
    notified.fetch_add(1);
  }
  void on_error(const std::exception& e, const IncomingMessage*) override {
    std::lock_guard lock(mu);
    errors.emplace_back(e.what());
  }
  static Json nested(std::size_t depth) {
    Json j = 1;
    for (std::size_t i = 0; i < depth; ++i) j = Json::array({std::move(j)});
    return j;
  }
  std::vector<std::string> errors_copy() {
    std::lock_guard lock(mu);
    return errors;
  }
  std::atomic<int> notified{0};
  std::mutex mu;
  std::vector<std::string> errors;
};

// The same, as coroutines that suspend before they answer.
class FaultyAsync : public Faulty {
 public:
  FaultyAsync() : Faulty("faulty-async") {}
  Task<std::optional<Json>> on_request(const IncomingMessage& m) override {
    co_await peers().sleep(1ms);
    co_return on_peer_request(m);
  }
  Task<void> on_notify(const IncomingMessage& m) override {
    co_await peers().sleep(1ms);
    on_peer_notify(m);
  }
};

TEST(Runtime, AnAnswerThatCannotBeSentFailsTheRequestNotTheProcess) {
  Mesh mesh(local_config(2));
  auto& plain = mesh.add<Faulty>("faulty-plain");
  auto& async = mesh.add<FaultyAsync>();
  auto& probe = mesh.add<Probe>("probe");
  mesh.start();
  for (Faulty* agent : {static_cast<Faulty*>(&plain), static_cast<Faulty*>(&async)}) {
    const std::string id = agent->id();
    SCOPED_TRACE(id);
    auto ok = probe.peers().request_detailed_blocking(id, {{"do", "fine"}}, 10s);
    ASSERT_TRUE(ok.ok()) << transport::to_string(ok.error);
    EXPECT_EQ(ok.response->data["ok"], "fine");
    // Too deep to encode: the caller hears Rejected at once, on_error is told.
    auto deep = probe.peers().request_detailed_blocking(id, {{"do", "deep"}}, 10s);
    EXPECT_EQ(deep.error, ErrorCode::Rejected);
    auto thrown = probe.peers().request_detailed_blocking(id, {{"do", "throw"}}, 10s);
    EXPECT_EQ(thrown.error, ErrorCode::Rejected);
    ASSERT_TRUE(probe.peers().notify(id, {{"do", "throw"}}));
    ASSERT_TRUE(probe.peers().notify(id, {{"do", "fine"}}));
    ASSERT_TRUE(eventually([&] { return agent->notified.load() == 1 && agent->errors_copy().size() == 3; }, 30s));
    const auto errors = agent->errors_copy();
    EXPECT_NE(errors[0].find("nested deeper than"), std::string::npos) << errors[0];
    EXPECT_EQ(errors[1], "plain handler failed");
    EXPECT_EQ(errors[2], "plain notify failed");
    // Each failure restarts the agent; it goes on answering.
    auto again = probe.peers().request_detailed_blocking(id, {{"do", "again"}}, 10s);
    ASSERT_TRUE(again.ok()) << transport::to_string(again.error);
    EXPECT_EQ(again.response->data["ok"], "again");
  }
}

TEST(Runtime, TaskCompletedCarriesItsResult) {
  auto value = Task<int>::completed(7);
  EXPECT_TRUE(value.valid());
  EXPECT_TRUE(value.is_completed());
  EXPECT_TRUE(value.await_ready());
  EXPECT_EQ(value.await_resume(), 7);
  auto done = Task<void>::completed();
  EXPECT_TRUE(done.is_completed());
  done.await_resume();
  EXPECT_FALSE(Task<int>{}.valid());
  // Awaited from a coroutine, as a user's handler would await the default.
  bool ran = false;
  auto outer = [](bool& flag) -> Task<int> {
    const int v = co_await Task<int>::completed(41);
    co_await Task<void>::completed();
    flag = true;
    co_return v + 1;
  }(ran);
  EXPECT_FALSE(outer.is_completed());  // a coroutine's task: lazy
  int result = 0;
  detail::spawn(std::move(outer), [&](std::optional<int> r, std::exception_ptr) { result = r.value_or(-1); });
  EXPECT_TRUE(ran);
  EXPECT_EQ(result, 42);
}

}  // namespace
}  // namespace mesh
