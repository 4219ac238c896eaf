// Governed conversations inside one Mesh (P2P off): threads inherited by
// what a handler sends, and each limit refusing the message before its
// handler runs. tests/node/conversation_process_test.cpp does the same
// across processes.
#include <gtest/gtest.h>

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "mesh/audit_verify.hpp"
#include "mesh/mesh.hpp"
#include "mesh_fixtures.hpp"

namespace mesh {
namespace {

using namespace std::chrono_literals;
using test::eventually;

NodeConfig local_config() {
  NodeConfig c;
  c.node_name = "conv";
  c.p2p_enabled = false;
  c.worker_threads = 2;
  return c;
}

// Passes the ball to its partner, as a notify in the same thread, until a
// send is refused; remembers the refusal.
class Player : public CustomAgent {
 public:
  Player(std::string id, std::string partner)
      : CustomAgent({.role = "player", .agent_id = std::move(id)}), partner_(std::move(partner)) {}
  std::atomic<int> received{0};
  std::atomic<int> refused_with{0};
  std::mutex mu;
  std::vector<std::uint32_t> turns;
  ThreadId thread;

  void on_peer_notify(const IncomingMessage& m) override {
    ++received;
    {
      std::lock_guard lock(mu);
      turns.push_back(m.thread().turn);
      thread = m.thread().id;
    }
    const ErrorCode e = peers().notify_detailed(partner_, Json{{"ball", m.data["ball"].get<int>() + 1}});
    if (e != ErrorCode::None) refused_with = static_cast<int>(e);
  }

 private:
  std::string partner_;
};

TEST(Conversations, PingPongStopsAtMaxTurns) {
  Mesh mesh(local_config());
  auto& a = static_cast<Player&>(mesh.add(std::make_unique<Player>("ping", "pong")));
  auto& b = static_cast<Player&>(mesh.add(std::make_unique<Player>("pong", "ping")));
  mesh.start();
  // The node's client opens the thread with 10 turns: its serve is turn 1.
  ASSERT_TRUE(mesh.node_client().notify("ping", Json{{"ball", 0}}, SendOptions{.subject = "rally",
                                                                            .limits = {.max_turns = 10}}));
  ASSERT_TRUE(eventually([&] { return a.refused_with.load() != 0 || b.refused_with.load() != 0; }, 10s));
  // Turns 1..10 were delivered (a got the odd ones), the 11th refused at once.
  EXPECT_EQ(a.received.load() + b.received.load(), 10);
  EXPECT_EQ(a.received.load(), 5);
  EXPECT_EQ(b.refused_with.load(), static_cast<int>(ErrorCode::TurnLimit));
  EXPECT_EQ(a.refused_with.load(), 0);
  {
    std::lock_guard lock(b.mu);
    EXPECT_EQ(b.turns, (std::vector<std::uint32_t>{2, 4, 6, 8, 10}));
  }
  const auto record = mesh.thread(a.thread);
  ASSERT_TRUE(record);
  EXPECT_EQ(record->subject, "rally");
  EXPECT_EQ(record->turns, 10u);
  EXPECT_EQ(record->state, ThreadState::Refused);
  EXPECT_EQ(record->last_refusal, Refusal::TurnLimit);
  EXPECT_EQ(mesh.stats().threads.refusals[static_cast<int>(Refusal::TurnLimit)], 1u);
}

// B asks A back while A waits on B, in A's thread: refused as a loop.
class Asker : public CustomAgent {
 public:
  Asker(std::string id, std::string next) : CustomAgent({.role = "asker", .agent_id = std::move(id)}), next_(next) {}
  Task<std::optional<Json>> on_request(const IncomingMessage& m) override {
    if (next_.empty()) co_return Json{{"depth", m.thread().depth}};
    const Json ask = m.data;
    auto out = co_await peers().request_detailed(next_, ask);
    if (!out.ok()) co_return Json{{"error", std::string(transport::to_string(out.error))}};
    co_return out.response->data;
  }

 private:
  std::string next_;
};

TEST(Conversations, AskingBackAlongThePathIsALoop) {
  Mesh mesh(local_config());
  mesh.add(std::make_unique<Asker>("a", "b"));
  mesh.add(std::make_unique<Asker>("b", "a"));
  mesh.start();
  auto& client = mesh.node_client();
  // $node -> a -> b -> a: the last hop would re-enter a.
  const auto out = client.request_blocking("a", Json{{"q", 1}}, 5s);
  ASSERT_TRUE(out);
  EXPECT_EQ(out->data, (Json{{"error", "loop"}}));
  EXPECT_EQ(mesh.stats().threads.refusals[static_cast<int>(Refusal::Loop)], 1u);
}

TEST(Conversations, DepthIsABudget) {
  Mesh mesh(local_config());
  mesh.add(std::make_unique<Asker>("a", "b"));
  mesh.add(std::make_unique<Asker>("b", "c"));
  mesh.add(std::make_unique<Asker>("c", ""));
  mesh.start();
  auto& client = mesh.node_client();
  // $node -> a (depth 1) -> b (2) -> c (3).
  auto out = client.request_blocking("a", Json::object(), SendOptions{.timeout = 5s});
  ASSERT_TRUE(out);
  EXPECT_EQ(out->data, (Json{{"depth", 3}}));
  out = client.request_blocking("a", Json::object(), SendOptions{.timeout = 5s, .limits = {.max_depth = 2}});
  ASSERT_TRUE(out);
  EXPECT_EQ(out->data, (Json{{"error", "budget_exceeded"}}));
}

// Each answer costs 1.0; the thread may spend 2.5.
class Pricey : public CustomAgent {
 public:
  Pricey() : CustomAgent({.role = "pricey", .agent_id = "pricey"}) {}
  std::optional<Json> on_peer_request(const IncomingMessage& m) override {
    m.report_cost(1.0);
    return Json{{"spent_before", m.thread().spent}};
  }
};

TEST(Conversations, CostCapStopsTheThread) {
  Mesh mesh(local_config());
  mesh.add(std::make_unique<Pricey>());
  mesh.start();
  auto& client = mesh.node_client();
  auto first = client.request_detailed_blocking("pricey", Json::object(),
                                                SendOptions{.timeout = 5s, .limits = {.max_cost = 2.5}});
  ASSERT_TRUE(first.ok());
  EXPECT_DOUBLE_EQ(first.response->cost, 1.0);
  const ThreadId thread = first.response->thread;
  ASSERT_FALSE(thread.empty());
  auto second = client.request_detailed_blocking("pricey", Json::object(), SendOptions{.timeout = 5s, .thread = thread});
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second.response->data["spent_before"], 1.0);
  auto third = client.request_detailed_blocking("pricey", Json::object(), SendOptions{.timeout = 5s, .thread = thread});
  ASSERT_TRUE(third.ok());
  auto fourth = client.request_detailed_blocking("pricey", Json::object(), SendOptions{.timeout = 5s, .thread = thread});
  EXPECT_EQ(fourth.error, ErrorCode::BudgetExceeded);
  const auto record = mesh.thread(thread);
  ASSERT_TRUE(record);
  EXPECT_DOUBLE_EQ(record->spent, 3.0);
}

TEST(Conversations, TtlExpires) {
  Mesh mesh(local_config());
  mesh.add(std::make_unique<Pricey>());
  mesh.start();
  auto& client = mesh.node_client();
  auto first = client.request_detailed_blocking("pricey", Json::object(),
                                                SendOptions{.timeout = 5s, .limits = {.ttl = 300ms}});
  ASSERT_TRUE(first.ok());
  std::this_thread::sleep_for(400ms);
  auto late = client.request_detailed_blocking("pricey", Json::object(),
                                               SendOptions{.timeout = 5s, .thread = first.response->thread});
  EXPECT_EQ(late.error, ErrorCode::Expired);
  EXPECT_EQ(mesh.thread(first.response->thread)->state, ThreadState::Expired);
  // A thread never closed expires where it stands.
  ASSERT_TRUE(client.notify("pricey", Json::object(), SendOptions{.limits = {.ttl = 100ms}}));
  EXPECT_TRUE(eventually([&] { return mesh.stats().threads.expired >= 1; }, 5s));
  // A thread this node never saw cannot be continued.
  auto unknown = client.request_detailed_blocking("pricey", Json::object(),
                                                  SendOptions{.timeout = 5s, .thread = ThreadId{1, 2}});
  EXPECT_EQ(unknown.error, ErrorCode::Expired);
}

// Closes a task of record: takes orders only.
class Closer : public CustomAgent {
 public:
  Closer() : CustomAgent({.role = "closer", .agent_id = "closer", .authority_only = true}) {}
  std::atomic<int> closed{0};
  std::optional<Json> on_peer_request(const IncomingMessage& m) override {
    EXPECT_TRUE(m.is_authority());
    ++closed;
    return Json{{"closed", true}};
  }
};

// Answers advisory questions, and tries to pass one on as an order.
class Advisor : public CustomAgent {
 public:
  Advisor() : CustomAgent({.role = "advisor", .agent_id = "advisor"}) {}
  Task<std::optional<Json>> on_request(const IncomingMessage&) override {
    const Json order = {{"close", "task-7"}};
    // Named, not a temporary in the co_await (GCC 12, docs/peerclient.md).
    const SendOptions as_order{.message_class = MessageClass::Authority};
    auto out = co_await peers().request_detailed("closer", order, as_order);
    co_return Json{{"escalation", std::string(transport::to_string(out.error))}};
  }
};

TEST(Conversations, AdvisoryNeverSatisfiesAnAuthorityOnlyHandler) {
  Mesh mesh(local_config());
  auto& closer = static_cast<Closer&>(mesh.add(std::make_unique<Closer>()));
  mesh.add(std::make_unique<Advisor>());
  mesh.start();
  auto& client = mesh.node_client();
  auto advisory = client.request_detailed_blocking("closer", Json{{"close", "task-7"}}, SendOptions{.timeout = 5s});
  EXPECT_EQ(advisory.error, ErrorCode::PermissionDenied);
  EXPECT_EQ(closer.closed.load(), 0);
  // An advisor handling a question cannot turn it into an order.
  auto relayed = client.request_blocking("advisor", Json{{"q", "close it?"}}, SendOptions{.timeout = 5s});
  ASSERT_TRUE(relayed);
  EXPECT_EQ(relayed->data, (Json{{"escalation", "permission_denied"}}));
  EXPECT_EQ(closer.closed.load(), 0);
  // An order from outside any advisory handling goes through, and its
  // answer says it is of authority too.
  auto order = client.request_detailed_blocking("closer", Json{{"close", "task-7"}},
                                                SendOptions{.timeout = 5s, .message_class = MessageClass::Authority});
  ASSERT_TRUE(order.ok());
  EXPECT_EQ(order.response->message_class, MessageClass::Authority);
  EXPECT_EQ(closer.closed.load(), 1);
  EXPECT_EQ(mesh.stats().authority_refused, 2u);
}

// Records what its handler sees, and asks a helper inside the handling.
class Inspector : public CustomAgent {
 public:
  Inspector() : CustomAgent({.role = "inspector", .agent_id = "inspector"}) {}
  std::promise<std::tuple<ThreadId, ThreadId, ThreadId, bool>> seen;
  Task<std::optional<Json>> on_request(const IncomingMessage& m) override {
    const Json q = Json::object();
    auto same = co_await peers().request_detailed("helper", q);
    const SendOptions fresh{.new_thread = true};
    auto child = co_await peers().request_detailed("helper", q, fresh);
    const bool deadline = m.deadline().has_value() && *m.deadline() > std::chrono::system_clock::now();
    seen.set_value({m.thread().id, ThreadId::parse(same.response->data["thread"].get<std::string>()).value(),
                    ThreadId::parse(child.response->data["thread"].get<std::string>()).value(), deadline});
    co_return Json::object();
  }
};

class Helper : public CustomAgent {
 public:
  Helper() : CustomAgent({.role = "helper", .agent_id = "helper"}) {}
  std::optional<Json> on_peer_request(const IncomingMessage& m) override {
    return Json{{"thread", m.thread().id.to_string()},
                {"parent", m.thread().parent ? m.thread().parent->to_string() : ""}};
  }
};

TEST(Conversations, HandlersInheritTheirMessagesThread) {
  Mesh mesh(local_config());
  auto& inspector = static_cast<Inspector&>(mesh.add(std::make_unique<Inspector>()));
  mesh.add(std::make_unique<Helper>());
  mesh.start();
  auto seen = inspector.seen.get_future();
  auto out = mesh.node_client().request_detailed_blocking("inspector", Json::object(), SendOptions{.timeout = 5s});
  ASSERT_TRUE(out.ok());
  ASSERT_EQ(seen.wait_for(5s), std::future_status::ready);
  const auto [own, same, child, deadline] = seen.get();
  EXPECT_EQ(out.response->thread, own);
  EXPECT_EQ(same, own);
  EXPECT_NE(child, own);
  EXPECT_TRUE(deadline);
  const auto record = mesh.thread(child);
  ASSERT_TRUE(record);
  EXPECT_EQ(record->parent, own);
  // The request that opened it here was answered: closed.
  EXPECT_EQ(mesh.thread(own)->state, ThreadState::Closed);
}

// Takes its messages only when told to: they queue meanwhile.
class Late : public Agent {
 public:
  Late() : Agent({.role = "late", .agent_id = "late"}) {}
  std::promise<void> go;
  std::promise<std::vector<std::string>> order;
  Task<void> run() override {
    go.get_future().wait();  // before any receive: nothing is taken yet (a test hook; never block on the executor)
    std::vector<std::string> got;
    for (int i = 0; i < 4; ++i) {
      auto m = co_await peers().receive(5s);
      if (!m) break;
      got.push_back(m->data.get<std::string>());
    }
    order.set_value(got);
  }
};

TEST(Conversations, UrgentOvertakesQueuedNormal) {
  NodeConfig config = local_config();
  Mesh mesh(config);
  auto& late = static_cast<Late&>(mesh.add(std::make_unique<Late>()));
  mesh.start();
  auto& client = mesh.node_client();
  ASSERT_TRUE(client.notify("late", Json("low"), SendOptions{.priority = Priority::Low}));
  ASSERT_TRUE(client.notify("late", Json("normal")));
  ASSERT_TRUE(client.notify("late", Json("critical"), SendOptions{.priority = Priority::Critical}));
  ASSERT_TRUE(client.notify("late", Json("urgent"), SendOptions{.priority = Priority::Urgent}));
  late.go.set_value();
  auto order = late.order.get_future();
  ASSERT_EQ(order.wait_for(10s), std::future_status::ready);
  EXPECT_EQ(order.get(), (std::vector<std::string>{"critical", "urgent", "normal", "low"}));
}

// With audit_fsync "always" a record is written (and synced) before its
// message goes on: when request_blocking returns, all four records of the
// exchange are on disk already, the node still running.
TEST(Conversations, AuditTrailWithFsyncAlwaysIsOnDiskWhenTheCallReturns) {
  const auto dir =
      std::filesystem::temp_directory_path() / ("mesh-conv-audit-sync-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  {
    NodeConfig config = local_config();
    config.audit_dir = dir.string();
    config.audit_fsync = "always";
    Mesh mesh(config);
    mesh.add(std::make_unique<Pricey>());
    mesh.start();
    for (int i = 1; i <= 3; ++i) {
      ASSERT_TRUE(mesh.node_client().request_blocking("pricey", Json{{"i", i}}, SendOptions{.timeout = 5s}));
      std::vector<std::string> events;
      const AuditReadResult read =
          read_audit_dir(dir.string(), [&](const AuditEntry& e) { events.push_back(e.record.value("event", "")); });
      ASSERT_TRUE(read.ok) << read.error;
      ASSERT_EQ(events.size(), static_cast<std::size_t>(4 * i));
      EXPECT_EQ(events.back(), "answer");
    }
    EXPECT_TRUE(verify_audit_dir(dir.string()).ok);
    mesh.stop();
  }
  std::filesystem::remove_all(dir);
}

// The trail of one request between two agents of one node: every event,
// in order, written by the trail's thread while agents run on the pool.
TEST(Conversations, AuditTrailRecordsEveryEventOfAMessage) {
  const auto dir = std::filesystem::temp_directory_path() / ("mesh-conv-audit-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  {
    NodeConfig config = local_config();
    config.audit_dir = dir.string();
    Mesh mesh(config);
    mesh.add(std::make_unique<Pricey>());
    mesh.start();
    for (int i = 0; i < 50; ++i) {
      ASSERT_TRUE(mesh.node_client().request_blocking("pricey", Json{{"i", i}}, SendOptions{.timeout = 5s}));
    }
    mesh.stop();
  }  // the Mesh is gone, and with it the trail's thread: everything queued is written
  std::vector<std::string> events;
  std::size_t digests = 0;
  const AuditReadResult read = read_audit_dir(dir.string(), [&](const AuditEntry& e) {
    events.push_back(e.record.value("event", ""));
    digests += e.record.contains("payload_sha256") ? 1 : 0;
  });
  ASSERT_TRUE(read.ok) << read.error;
  ASSERT_EQ(events.size(), 200u);
  for (std::size_t i = 0; i < events.size(); i += 4) {
    EXPECT_EQ(events[i], "sent");
    EXPECT_EQ(events[i + 1], "received");
    EXPECT_EQ(events[i + 2], "answered");
    EXPECT_EQ(events[i + 3], "answer");
  }
  EXPECT_EQ(digests, 150u);  // the answer's record carries no payload
  EXPECT_TRUE(verify_audit_dir(dir.string()).ok);
  // The records' text is what nlohmann::json writes for them: members in
  // byte order, numbers and strings in its forms (the runtime writes the
  // text itself).
  std::size_t lines = 0;
  for (const auto& file : std::filesystem::directory_iterator(dir)) {
    if (file.path().extension() != ".jsonl") continue;
    std::ifstream in(file.path());
    for (std::string line; std::getline(in, line); ++lines) {
      Json members = Json::parse(line);
      members.erase("seq");
      members.erase("prev");
      members.erase("hash");
      const std::string text = members.dump();
      const std::size_t at = line.find(",\"prev\":\"") + 9 + 64 + 2;  // past prev's value and its comma
      ASSERT_LT(at, line.size()) << line;
      EXPECT_EQ(line.substr(at, text.size() - 2), text.substr(1, text.size() - 2)) << line;
    }
  }
  EXPECT_EQ(lines, 200u);
  std::filesystem::remove_all(dir);
}

// Counts the notifies it handles. Its mailbox holds a whole burst: the
// test is about the trail, and four senders on a busy machine can outrun
// one handler past the default bound (a sender then gets `false`).
class Tally : public CustomAgent {
 public:
  Tally() : CustomAgent({.role = "tally", .agent_id = "tally", .mailbox_limit = 4096}) {}
  std::atomic<int> handled{0};
  void on_peer_notify(const IncomingMessage&) override { ++handled; }
};

// Senders on four threads at once: the trail's thread takes the records in
// batches, and none is lost or out of its chain.
TEST(Conversations, AuditTrailKeepsEveryRecordOfABurst) {
  const auto dir = std::filesystem::temp_directory_path() / ("mesh-conv-burst-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  constexpr int kSenders = 4;
  constexpr int kEach = 300;
  {
    NodeConfig config = local_config();
    config.audit_dir = dir.string();
    Mesh mesh(config);
    auto& tally = static_cast<Tally&>(mesh.add(std::make_unique<Tally>()));
    mesh.start();
    std::vector<std::thread> senders;
    std::atomic<int> failed{0};
    for (int t = 0; t < kSenders; ++t) {
      senders.emplace_back([&] {
        for (int i = 0; i < kEach; ++i) {
          if (!mesh.node_client().notify("tally", Json{{"i", i}})) ++failed;
        }
      });
    }
    for (auto& s : senders) s.join();
    EXPECT_EQ(failed.load(), 0);
    ASSERT_TRUE(eventually([&] { return tally.handled.load() == kSenders * kEach; }, 20s));
    mesh.stop();
  }  // the trail's thread writes what waits as the Mesh goes
  std::map<std::string, int> events;
  const AuditReadResult read = read_audit_dir(dir.string(), [&](const AuditEntry& e) {
    ++events[e.record.value("event", "")];
  });
  ASSERT_TRUE(read.ok) << read.error;
  EXPECT_EQ(events["sent"], kSenders * kEach);
  EXPECT_EQ(events["received"], kSenders * kEach);
  EXPECT_EQ(events["handled"], kSenders * kEach);
  const auto verified = verify_audit_dir(dir.string());
  EXPECT_TRUE(verified.ok);
  EXPECT_EQ(verified.records, 3u * kSenders * kEach);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace mesh
