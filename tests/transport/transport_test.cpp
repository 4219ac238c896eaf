// In-process tests of the Transport: two or three transports in one
// process, bound to 127.0.0.1 on ephemeral ports. Waits are on conditions
// with generous deadlines; no test asserts a wall-clock figure.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zmq.h>

#include <zmq.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <future>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "mesh/transport/transport.hpp"
#include "wakeups.hpp"

namespace mesh::transport {
namespace {

using namespace std::chrono_literals;

constexpr auto kLong = 20s;  // "generous": only reached when something is broken

TransportOptions options_for(const std::string& name) {
  TransportOptions o;
  o.node_name = name;
  o.bind_address = "127.0.0.1";
  o.port = 0;
  o.heartbeat_interval = 200ms;
  o.heartbeat_timeout = 2000ms;
  o.reconnect_interval = 50ms;
  o.reconnect_interval_max = 500ms;
  return o;
}

TransportOptions with_curve(const std::string& name, const CurveKeyPair& keys) {
  auto o = options_for(name);
  o.curve = keys;
  return o;
}

PeerAddress address_of(const Transport& t, const std::string& key = {}) {
  return PeerAddress{t.node_name(), "127.0.0.1", t.bound_port(), key};
}

std::vector<std::uint8_t> bytes(std::string_view s) { return {s.begin(), s.end()}; }
std::string text(const std::vector<std::uint8_t>& b) { return {b.begin(), b.end()}; }

OutMessage to(const std::string& node, const std::string& target, std::string_view payload = "hi") {
  OutMessage m;
  m.to = Address{node, target};
  m.sender_agent = "tester";
  m.payload = bytes(payload);
  return m;
}

template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds limit = kLong) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < until) {
    if (pred()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return pred();
}

void link(Transport& a, Transport& b, const std::string& key_a = {}, const std::string& key_b = {}) {
  a.add_peer(address_of(b, key_b));
  b.add_peer(address_of(a, key_a));
  ASSERT_TRUE(eventually([&] { return a.peer_connected(b.node_name()) && b.peer_connected(a.node_name()); }));
}

// A TCP port with nothing listening on it.
std::uint16_t closed_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sa.sin_port = 0;
  ::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
  socklen_t len = sizeof sa;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
  ::close(fd);
  return ntohs(sa.sin_port);
}

// A "frozen" peer: the kernel completes TCP handshakes into the backlog,
// but nobody ever speaks ZMTP.
struct FrozenListener {
  int fd = -1;
  std::uint16_t port = 0;
  FrozenListener() {
    fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
    ::listen(fd, 16);
    socklen_t len = sizeof sa;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
    port = ntohs(sa.sin_port);
  }
  ~FrozenListener() { ::close(fd); }
};

struct Undeliverable {
  MessageId id;
  std::string node;
  std::string target;
  ErrorCode reason;
};

// Collects on_undeliverable reports.
struct UndeliverableLog {
  std::mutex mu;
  std::vector<Undeliverable> items;
  void attach(TransportOptions& o) {
    o.on_undeliverable = [this](const MessageId& id, std::string_view node, std::string_view target, ErrorCode r) {
      std::lock_guard lock(mu);
      items.push_back(Undeliverable{id, std::string(node), std::string(target), r});
    };
  }
  std::size_t size() {
    std::lock_guard lock(mu);
    return items.size();
  }
  std::optional<Undeliverable> find(const MessageId& id) {
    std::lock_guard lock(mu);
    for (const auto& u : items) {
      if (u.id == id) return u;
    }
    return std::nullopt;
  }
};

QuickHandler echo_handler() {
  return [](const EnvelopeView& req, std::vector<std::uint8_t>& out) {
    out.assign(req.payload.begin(), req.payload.end());
    return ErrorCode::None;
  };
}

// A msgpack map {"k": 1}.
const std::vector<std::uint8_t> kContext{0x81, 0xa1, 'k', 0x01};
const std::vector<std::uint8_t> kOtherContext{0x81, 0xa1, 'z', 0x02};

class TransportTest : public ::testing::Test {
 protected:
  void make_pair(TransportOptions oa = options_for("A"), TransportOptions ob = options_for("B")) {
    a = std::make_unique<Transport>(std::move(oa));
    b = std::make_unique<Transport>(std::move(ob));
    link(*a, *b);
  }
  std::unique_ptr<Transport> a;
  std::unique_ptr<Transport> b;
};

// ---------------------------------------------------------------- notify

TEST_F(TransportTest, NotifyIsDelivered) {
  make_pair();
  auto inbox = b->open_inbox("agent");
  auto m = to("B", "agent", "hello");
  m.context = kContext;
  ASSERT_EQ(a->notify(m), ErrorCode::None);
  auto got = inbox->pop(kLong);
  ASSERT_TRUE(got);
  EXPECT_TRUE(got->is_notify());
  EXPECT_EQ(text(got->envelope.payload), "hello");
  EXPECT_EQ(got->envelope.sender_node, "A");
  EXPECT_EQ(got->envelope.sender_agent, "tester");
  EXPECT_EQ(got->envelope.target, "agent");
  EXPECT_EQ(got->envelope.context, kContext);
  EXPECT_EQ(got->route, nullptr);
  EXPECT_EQ(a->stats().sent[0], 1u);
  EXPECT_EQ(b->stats().received[0], 1u);
}

TEST_F(TransportTest, RespondToNotifyIsRejected) {
  make_pair();
  auto inbox = b->open_inbox("agent");
  ASSERT_EQ(a->notify(to("B", "agent")), ErrorCode::None);
  auto got = inbox->pop(kLong);
  ASSERT_TRUE(got);
  EXPECT_EQ(b->respond(*got, bytes("x")), ErrorCode::Rejected);
  EXPECT_EQ(b->respond_error(*got, ErrorCode::Rejected), ErrorCode::Rejected);
}

// ---------------------------------------------------------------- request

TEST_F(TransportTest, RequestGetsResponseWithContextCarriedOver) {
  make_pair();
  auto inbox = b->open_inbox("svc");
  std::thread responder([&] {
    for (int i = 0; i < 2; ++i) {
      auto in = inbox->pop(kLong);
      if (!in) return;
      EXPECT_TRUE(in->is_request());
      // The first answer leaves the context alone, the second overrides it.
      if (i == 0) {
        EXPECT_EQ(b->respond(*in, bytes("pong:" + text(in->envelope.payload))), ErrorCode::None);
      } else {
        EXPECT_EQ(b->respond(*in, bytes("second"), kOtherContext), ErrorCode::None);
      }
    }
  });
  auto m = to("B", "svc", "ping");
  m.context = kContext;
  Reply r = a->request(m, kLong);
  ASSERT_TRUE(r.ok()) << to_string(r.error);
  EXPECT_EQ(r.envelope.type, MessageType::Response);
  EXPECT_EQ(text(r.envelope.payload), "pong:ping");
  EXPECT_EQ(r.envelope.context, kContext);
  EXPECT_EQ(r.envelope.sender_agent, "svc");
  EXPECT_EQ(r.envelope.sender_node, "B");
  EXPECT_EQ(r.envelope.target, "tester");
  EXPECT_TRUE(r.envelope.correlation.has_value());

  Reply r2 = a->request(m, kLong);
  ASSERT_TRUE(r2.ok());
  EXPECT_EQ(text(r2.envelope.payload), "second");
  EXPECT_EQ(r2.envelope.context, kOtherContext);
  responder.join();
  EXPECT_EQ(a->stats().pending_requests, 0u);
}

TEST_F(TransportTest, RequestAsyncAndFuture) {
  make_pair();
  auto inbox = b->open_inbox("svc");
  std::thread responder([&] {
    for (int i = 0; i < 2; ++i) {
      auto in = inbox->pop(kLong);
      if (!in) return;
      b->respond(*in, in->envelope.payload);
    }
  });
  std::promise<Reply> p;
  a->request_async(to("B", "svc", "one"), kLong, [&p](Reply r) { p.set_value(std::move(r)); });
  auto f = a->request_future(to("B", "svc", "two"), kLong);
  Reply r1 = p.get_future().get();
  Reply r2 = f.get();
  ASSERT_TRUE(r1.ok());
  ASSERT_TRUE(r2.ok());
  EXPECT_EQ(text(r1.envelope.payload), "one");
  EXPECT_EQ(text(r2.envelope.payload), "two");
  responder.join();
}

TEST_F(TransportTest, RespondTwiceIsRejected) {
  make_pair();
  auto inbox = b->open_inbox("svc");
  std::atomic<int> second{-1};
  std::atomic<int> third{-1};
  std::thread responder([&] {
    auto in = inbox->pop(kLong);
    if (!in) return;
    b->respond(*in, bytes("first"));
    second = static_cast<int>(b->respond(*in, bytes("again")));
    third = static_cast<int>(b->respond_error(*in, ErrorCode::Rejected));
  });
  Reply r = a->request(to("B", "svc"), kLong);
  responder.join();
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(text(r.envelope.payload), "first");
  EXPECT_EQ(second.load(), static_cast<int>(ErrorCode::Rejected));
  EXPECT_EQ(third.load(), static_cast<int>(ErrorCode::Rejected));
}

TEST_F(TransportTest, RespondErrorReachesRequester) {
  make_pair();
  auto inbox = b->open_inbox("svc");
  std::thread responder([&] {
    auto in = inbox->pop(kLong);
    if (in) b->respond_error(*in, ErrorCode::Rejected);
  });
  Reply r = a->request(to("B", "svc"), kLong);
  responder.join();
  EXPECT_EQ(r.error, ErrorCode::Rejected);
  EXPECT_EQ(r.envelope.type, MessageType::Error);
}

TEST_F(TransportTest, QuickHandlerAnswersOnTheTransportThread) {
  make_pair();
  auto quick = b->open_inbox("echo", 0, [](const EnvelopeView& req, std::vector<std::uint8_t>& out) {
    out.assign(req.payload.begin(), req.payload.end());
    out.push_back('!');
    return ErrorCode::None;
  });
  auto refusing = b->open_inbox("no", 0, [](const EnvelopeView&, std::vector<std::uint8_t>&) {
    return ErrorCode::Rejected;
  });
  auto m = to("B", "echo", "abc");
  m.context = kContext;
  Reply r = a->request(m, kLong);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(text(r.envelope.payload), "abc!");
  EXPECT_EQ(r.envelope.context, kContext);
  EXPECT_EQ(quick->size(), 0u);
  EXPECT_EQ(a->request(to("B", "no"), kLong).error, ErrorCode::Rejected);
}

TEST_F(TransportTest, RequestToUnknownPeerFailsAtOnce) {
  a = std::make_unique<Transport>(options_for("A"));
  Reply r = a->request(to("nobody", "svc"), kLong);
  EXPECT_EQ(r.error, ErrorCode::PeerUnknown);
  EXPECT_EQ(a->notify(to("nobody", "svc")), ErrorCode::PeerUnknown);
  auto ticket = a->ask_async(to("nobody", "svc"), kLong);
  EXPECT_EQ(ticket.error, ErrorCode::PeerUnknown);
  EXPECT_EQ(a->check_inbox(ticket.id).state, AskState::Unknown);
}

TEST_F(TransportTest, RequestToPortWithoutListenerFailsFast) {
  a = std::make_unique<Transport>(options_for("A"));
  a->add_peer(PeerAddress{"ghost", "127.0.0.1", closed_port(), {}});
  // The timeout is far beyond the test's patience: an answer at all means
  // the failure was detected, not timed out.
  auto f = a->request_future(to("ghost", "svc"), 600s);
  ASSERT_EQ(f.wait_for(kLong), std::future_status::ready);
  EXPECT_EQ(f.get().error, ErrorCode::PeerUnreachable);
  // Now known unreachable: refused synchronously.
  EXPECT_EQ(a->notify(to("ghost", "svc")), ErrorCode::PeerUnreachable);
  EXPECT_FALSE(a->peer_connected("ghost"));
  EXPECT_GE(a->stats().requests_failed_fast, 1u);
}

TEST_F(TransportTest, RemovePeerWhileRequestPendingFailsWithPeerDead) {
  make_pair();
  auto inbox = b->open_inbox("svc");
  auto f = a->request_future(to("B", "svc"), 600s);
  ASSERT_TRUE(eventually([&] { return inbox->size() == 1; }));
  a->remove_peer("B", ErrorCode::PeerDead);
  ASSERT_EQ(f.wait_for(kLong), std::future_status::ready);
  EXPECT_EQ(f.get().error, ErrorCode::PeerDead);
  EXPECT_EQ(a->notify(to("B", "svc")), ErrorCode::PeerDead);
  EXPECT_EQ(a->request(to("B", "svc"), 1s).error, ErrorCode::PeerDead);
  // A re-add makes it a peer again.
  a->add_peer(address_of(*b));
  ASSERT_TRUE(eventually([&] { return a->peer_connected("B"); }));
  EXPECT_EQ(a->notify(to("B", "svc")), ErrorCode::None);
}

TEST_F(TransportTest, DestroyedResponderFailsPendingRequestFast) {
  make_pair();
  auto inbox = b->open_inbox("svc");
  auto f = a->request_future(to("B", "svc"), 600s);
  ASSERT_TRUE(eventually([&] { return inbox->size() == 1; }));
  b.reset();
  ASSERT_EQ(f.wait_for(kLong), std::future_status::ready);
  EXPECT_EQ(f.get().error, ErrorCode::PeerUnreachable);
  // The inbox object outlives its transport: closed, drained, then empty.
  EXPECT_TRUE(inbox->closed());
  EXPECT_TRUE(inbox->pop(0ms).has_value());
  EXPECT_FALSE(inbox->pop(0ms).has_value());
}

TEST_F(TransportTest, SilentResponderTimesOut) {
  // Through the transport thread; DirectRequestTimesOutAndDropsTheLateReply
  // is the same over a request channel.
  auto oa = options_for("A");
  oa.direct_requests = false;
  make_pair(std::move(oa));
  auto inbox = b->open_inbox("svc");
  Reply r = a->request(to("B", "svc"), 200ms);
  EXPECT_EQ(r.error, ErrorCode::Timeout);
  EXPECT_EQ(a->stats().requests_timed_out, 1u);
  // A late answer is dropped and counted, not delivered anywhere.
  auto in = inbox->pop(kLong);
  ASSERT_TRUE(in);
  EXPECT_EQ(b->respond(*in, bytes("late")), ErrorCode::None);
  EXPECT_TRUE(eventually([&] { return a->stats().replies_unmatched == 1; }));
}

TEST_F(TransportTest, UnknownTargetIsReported) {
  UndeliverableLog log;
  auto oa = options_for("A");
  log.attach(oa);
  make_pair(std::move(oa));
  Reply r = a->request(to("B", "missing"), kLong);
  EXPECT_EQ(r.error, ErrorCode::TargetUnknown);
  auto m = to("B", "missing");
  m.id = MessageId{7, 7};
  EXPECT_EQ(a->notify(m), ErrorCode::None);
  ASSERT_TRUE(eventually([&] { return log.find(m.id).has_value(); }));
  auto u = *log.find(m.id);
  EXPECT_EQ(u.node, "B");
  EXPECT_EQ(u.target, "missing");
  EXPECT_EQ(u.reason, ErrorCode::TargetUnknown);
  EXPECT_EQ(a->stats().refused[0], 1u);
  EXPECT_EQ(b->stats().refused[0], 1u);
}

// A caller's direct send on the peer's DEALER may take the signal that
// would have woken the transport thread for a refusal arriving there; the
// thread must still read and report every refusal.
TEST_F(TransportTest, RefusalsOfDirectNotifiesAreAllReported) {
  UndeliverableLog log;
  auto oa = options_for("A");
  log.attach(oa);
  make_pair(std::move(oa));
  constexpr std::size_t kNotifies = 300;
  for (std::size_t i = 0; i < kNotifies; ++i) {
    ASSERT_EQ(a->notify(to("B", "missing")), ErrorCode::None);
    // Pauses let libzmq's throttled command processing come due in a send.
    if (i % 10 == 9) std::this_thread::sleep_for(2ms);
  }
  ASSERT_TRUE(eventually([&] { return log.size() == kNotifies; }));
  EXPECT_EQ(b->stats().refused[0], kNotifies);
}

TEST_F(TransportTest, FullInboxRefusesRequestsAndReportsNotifies) {
  UndeliverableLog log;
  auto oa = options_for("A");
  log.attach(oa);
  make_pair(std::move(oa));
  auto inbox = b->open_inbox("svc", 1);
  ASSERT_EQ(a->notify(to("B", "svc", "fills it")), ErrorCode::None);
  ASSERT_TRUE(eventually([&] { return inbox->size() == 1; }));
  EXPECT_EQ(a->request(to("B", "svc"), kLong).error, ErrorCode::MailboxFull);
  auto m = to("B", "svc");
  ASSERT_EQ(a->notify(m), ErrorCode::None);
  ASSERT_TRUE(eventually([&] { return log.size() == 1; }));
  EXPECT_EQ(log.items[0].reason, ErrorCode::MailboxFull);
  EXPECT_EQ(log.items[0].target, "svc");
  EXPECT_EQ(inbox->size(), 1u);
}

TEST_F(TransportTest, SenderQueueLimitGivesMailboxFullAndShutdownDoesNotHang) {
  FrozenListener frozen;
  UndeliverableLog log;
  auto oa = options_for("A");
  oa.peer_queue_limit = 3;
  oa.heartbeat_timeout = 30s;  // the handshake with the frozen peer stays pending
  log.attach(oa);
  a = std::make_unique<Transport>(std::move(oa));
  a->add_peer(PeerAddress{"frozen", "127.0.0.1", frozen.port, {}});
  for (int i = 0; i < 3; ++i) EXPECT_EQ(a->notify(to("frozen", "x")), ErrorCode::None);
  EXPECT_EQ(a->notify(to("frozen", "x")), ErrorCode::MailboxFull);
  EXPECT_EQ(a->stats().outbound_queued, 3u);
  EXPECT_FALSE(a->peer_connected("frozen"));
  a.reset();  // must return although three frames are queued for a peer that never answers
  EXPECT_EQ(log.size(), 3u);
  for (const auto& u : log.items) EXPECT_EQ(u.reason, ErrorCode::Shutdown);
}

TEST_F(TransportTest, ShutdownCompletesPendingRequestsToFrozenPeer) {
  FrozenListener frozen;
  auto oa = options_for("A");
  oa.heartbeat_timeout = 30s;
  a = std::make_unique<Transport>(std::move(oa));
  a->add_peer(PeerAddress{"frozen", "127.0.0.1", frozen.port, {}});
  auto f = a->request_future(to("frozen", "x"), 600s);
  std::promise<Reply> p;
  a->request_async(to("frozen", "x"), 600s, [&p](Reply r) { p.set_value(std::move(r)); });
  a.reset();
  ASSERT_EQ(f.wait_for(kLong), std::future_status::ready);
  EXPECT_EQ(f.get().error, ErrorCode::Shutdown);
  EXPECT_EQ(p.get_future().get().error, ErrorCode::Shutdown);
}

// ---------------------------------------------------------------- inbox, dedup, same node

TEST_F(TransportTest, HigherPriorityOvertakesQueuedLower) {
  a = std::make_unique<Transport>(options_for("A"));
  auto inbox = a->open_inbox("agent");
  auto low = to("", "agent", "low");
  low.priority = Priority::Low;
  ASSERT_EQ(a->notify(low), ErrorCode::None);
  for (int i = 0; i < 3; ++i) ASSERT_EQ(a->notify(to("", "agent", "normal" + std::to_string(i))), ErrorCode::None);
  auto urgent = to("A", "agent", "urgent");
  urgent.priority = Priority::Urgent;
  ASSERT_EQ(a->notify(urgent), ErrorCode::None);
  auto critical = to("A", "agent", "critical");
  critical.priority = Priority::Critical;
  ASSERT_EQ(a->notify(critical), ErrorCode::None);
  for (const std::string expected : {"critical", "urgent", "normal0", "normal1", "normal2", "low"}) {
    auto next = inbox->pop(0ms);
    ASSERT_TRUE(next);
    EXPECT_EQ(text(next->envelope.payload), expected);
  }
  EXPECT_FALSE(inbox->pop(0ms));
}

// pop_batch hands out what pop() would, in the same order, and frees the
// room it took at once.
TEST_F(TransportTest, PopBatchTakesInPopOrderAndFreesTheRoom) {
  a = std::make_unique<Transport>(options_for("A"));
  auto inbox = a->open_inbox("agent", 5);
  std::vector<Incoming> got;
  EXPECT_EQ(inbox->pop_batch(got, 10, 0ms), 0u) << "empty: times out";
  for (int i = 0; i < 3; ++i) ASSERT_EQ(a->notify(to("", "agent", "normal" + std::to_string(i))), ErrorCode::None);
  auto low = to("", "agent", "low");
  low.priority = Priority::Low;
  ASSERT_EQ(a->notify(low), ErrorCode::None);
  auto urgent = to("", "agent", "urgent");
  urgent.priority = Priority::Urgent;
  ASSERT_EQ(a->notify(urgent), ErrorCode::None);
  EXPECT_EQ(a->notify(to("", "agent", "over")), ErrorCode::MailboxFull);
  EXPECT_EQ(inbox->pop_batch(got, 2, 0ms), 2u);
  EXPECT_EQ(inbox->size(), 3u);
  EXPECT_EQ(inbox->bytes() > 0, true);
  ASSERT_EQ(a->notify(to("", "agent", "normal3")), ErrorCode::None) << "room freed by the batch";
  EXPECT_EQ(inbox->pop_batch(got, 100, 0ms), 4u);
  std::vector<std::string> order;
  for (const auto& m : got) order.push_back(text(m.envelope.payload));
  EXPECT_EQ(order, (std::vector<std::string>{"urgent", "normal0", "normal1", "normal2", "normal3", "low"}));
  EXPECT_EQ(inbox->size(), 0u);
  EXPECT_EQ(inbox->bytes(), 0u);
  // A waiting consumer is woken by a push, and by close once drained.
  std::thread late([&] {
    std::this_thread::sleep_for(20ms);
    (void)a->notify(to("", "agent", "late"));
  });
  std::vector<Incoming> woken;
  EXPECT_EQ(inbox->pop_batch(woken, 8, kLong), 1u);
  late.join();
  inbox->close();
  EXPECT_EQ(inbox->pop_batch(woken, 8), 0u) << "closed and drained: returns at once";
}

// idle_disconnect: a peer's connection is opened by its first message and
// closed once unused for that long; the next message opens it again. No
// message is lost on the way.
TEST_F(TransportTest, ConnectionsOnDemandOpenOnFirstUseAndCloseWhenIdle) {
  auto oa = options_for("A");
  auto ob = options_for("B");
  oa.idle_disconnect = ob.idle_disconnect = 300ms;
  a = std::make_unique<Transport>(std::move(oa));
  b = std::make_unique<Transport>(std::move(ob));
  a->add_peer(address_of(*b));
  b->add_peer(address_of(*a));
  auto inbox = b->open_inbox("agent");
  std::this_thread::sleep_for(100ms);
  EXPECT_FALSE(a->peer_connected("B")) << "no connection before the first message";
  EXPECT_EQ(a->stats().peers_connected, 0u);
  EXPECT_EQ(a->stats().peers, 1u);

  ASSERT_EQ(a->notify(to("B", "agent", "one")), ErrorCode::None);
  auto got = inbox->pop(kLong);
  ASSERT_TRUE(got);
  EXPECT_EQ(text(got->envelope.payload), "one");
  EXPECT_TRUE(a->peer_connected("B"));
  EXPECT_FALSE(b->peer_connected("A")) << "B has sent nothing to A";

  ASSERT_TRUE(eventually([&] { return !a->peer_connected("B"); })) << "closed once idle";
  EXPECT_EQ(a->stats().connections_closed_idle, 1u);
  // The closed connection's memory goes back once, a moment later.
  EXPECT_TRUE(eventually([&] { return a->stats().memory_trims == 1u; }));

  // Opened again by the next messages; a burst sent while it opens
  // arrives whole and in order.
  for (int i = 0; i < 50; ++i) ASSERT_EQ(a->notify(to("B", "agent", std::to_string(i))), ErrorCode::None);
  for (int i = 0; i < 50; ++i) {
    auto m = inbox->pop(kLong);
    ASSERT_TRUE(m);
    EXPECT_EQ(text(m->envelope.payload), std::to_string(i));
  }
  std::thread responder([&] {
    if (auto in = inbox->pop(kLong)) b->respond(*in, bytes("pong"));
  });
  auto r = a->request(to("B", "agent", "ping"), kLong);
  responder.join();
  EXPECT_EQ(r.error, ErrorCode::None);
  EXPECT_EQ(text(r.envelope.payload), "pong");
  EXPECT_TRUE(eventually([&] { return a->stats().connections_closed_idle == 2u && !a->peer_connected("B"); }));
}

// A node that talks once to each of many peers (a join's registry
// fetches) keeps only the idle_spare_max connections used last once they
// have been idle for idle_spare; the others close without waiting out
// idle_disconnect.
TEST_F(TransportTest, OnlyAFewSpareConnectionsAreKept) {
  auto oa = options_for("A");
  oa.idle_disconnect = 60s;
  oa.idle_spare = 200ms;
  oa.idle_spare_max = 2;
  a = std::make_unique<Transport>(std::move(oa));
  std::vector<std::unique_ptr<Transport>> others;
  std::vector<std::shared_ptr<Inbox>> inboxes;
  for (int i = 0; i < 5; ++i) {
    others.push_back(std::make_unique<Transport>(options_for("B" + std::to_string(i))));
    inboxes.push_back(others.back()->open_inbox("agent"));
    a->add_peer(address_of(*others.back()));
  }
  const auto send_to = [&](int i) {
    ASSERT_EQ(a->notify(to("B" + std::to_string(i), "agent", "hi")), ErrorCode::None);
    ASSERT_TRUE(inboxes[i]->pop(kLong));
  };
  for (int i = 0; i < 3; ++i) send_to(i);
  std::this_thread::sleep_for(100ms);
  send_to(3);
  send_to(4);
  ASSERT_TRUE(eventually([&] { return a->stats().connections_closed_idle == 3u; }));
  EXPECT_TRUE(a->peer_connected("B3") && a->peer_connected("B4")) << "the two used last are kept";
  for (int i = 0; i < 3; ++i) EXPECT_FALSE(a->peer_connected("B" + std::to_string(i)));
  EXPECT_EQ(a->stats().peers_connected, 2u);

  // Used again, B0 reopens; once it is spare too, one of the others goes.
  send_to(0);
  ASSERT_TRUE(eventually([&] { return a->stats().connections_closed_idle == 4u; }));
  EXPECT_TRUE(a->peer_connected("B0"));
  EXPECT_EQ(a->stats().peers_connected, 2u);
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(a->stats().connections_closed_idle, 4u) << "two spares are kept until idle_disconnect";
}

// A request that takes longer than idle_disconnect is answered: the wait
// for its reply keeps the connection in use, or the request's own channel
// carries it.
TEST_F(TransportTest, SlowRequestOutlivesTheIdleTimeout) {
  for (const bool direct : {false, true}) {
    SCOPED_TRACE(direct ? "direct request" : "through the transport thread");
    auto oa = options_for("A");
    auto ob = options_for("B");
    oa.idle_disconnect = ob.idle_disconnect = 150ms;
    oa.direct_requests = direct;
    a = std::make_unique<Transport>(std::move(oa));
    b = std::make_unique<Transport>(std::move(ob));
    a->add_peer(address_of(*b));
    b->add_peer(address_of(*a));
    auto inbox = b->open_inbox("agent");
    // Opens the connection first, so that the direct path is taken.
    ASSERT_EQ(a->notify(to("B", "agent", "hello")), ErrorCode::None);
    ASSERT_TRUE(inbox->pop(kLong));
    std::thread responder([&] {
      if (auto in = inbox->pop(kLong)) {
        std::this_thread::sleep_for(700ms);
        b->respond(*in, bytes("late"));
      }
    });
    auto r = a->request(to("B", "agent", "slow"), kLong);
    responder.join();
    EXPECT_EQ(r.error, ErrorCode::None);
    EXPECT_EQ(text(r.envelope.payload), "late");
    b.reset();
    a.reset();
  }
}

TEST_F(TransportTest, HigherPriorityOvertakesOverTheWireToo) {
  make_pair();
  auto inbox = b->open_inbox("agent");
  for (int i = 0; i < 3; ++i) ASSERT_EQ(a->notify(to("B", "agent", "normal")), ErrorCode::None);
  auto high = to("B", "agent", "urgent");
  high.priority = Priority::Urgent;
  ASSERT_EQ(a->notify(high), ErrorCode::None);
  ASSERT_TRUE(eventually([&] { return inbox->size() == 4; }));
  auto first = inbox->pop(0ms);
  ASSERT_TRUE(first);
  EXPECT_EQ(text(first->envelope.payload), "urgent");
  EXPECT_EQ(first->envelope.priority, Priority::Urgent);
}

TEST_F(TransportTest, InboxFullLocallyAndClose) {
  a = std::make_unique<Transport>(options_for("A"));
  auto inbox = a->open_inbox("agent", 2);
  EXPECT_THROW(a->open_inbox("agent"), TransportError);
  EXPECT_EQ(a->notify(to("", "agent")), ErrorCode::None);
  EXPECT_EQ(a->notify(to("", "agent")), ErrorCode::None);
  EXPECT_EQ(a->notify(to("", "agent")), ErrorCode::MailboxFull);
  EXPECT_EQ(a->request(to("", "agent"), 1s).error, ErrorCode::MailboxFull);
  EXPECT_EQ(a->notify(to("", "nobody")), ErrorCode::TargetUnknown);
  inbox->close();
  EXPECT_EQ(a->notify(to("", "agent")), ErrorCode::TargetUnknown);
  EXPECT_TRUE(inbox->pop(0ms));
  EXPECT_TRUE(inbox->pop());  // closed: returns at once, still draining
  EXPECT_FALSE(inbox->pop());
  auto again = a->open_inbox("agent");  // the name is free again
  EXPECT_EQ(a->notify(to("", "agent")), ErrorCode::None);
  EXPECT_EQ(again->size(), 1u);
}

// The executor's consumer: it takes messages without blocking, and the
// inbox calls it back once for the first message after it ran dry. Taking
// the last message arms the callback already, and says so: the consumer
// needs no second look (and lock) to learn that it is empty.
TEST_F(TransportTest, TryPopOrArmArmsWhenItTakesTheLastMessage) {
  a = std::make_unique<Transport>(options_for("A"));
  auto inbox = a->open_inbox("agent");
  int calls = 0;
  inbox->set_ready_callback([&calls] { ++calls; });
  Incoming m;
  bool armed = false;
  EXPECT_FALSE(inbox->try_pop_or_arm(m, armed));
  EXPECT_TRUE(armed);
  ASSERT_EQ(a->notify(to("", "agent", "one")), ErrorCode::None);
  EXPECT_EQ(calls, 1);
  ASSERT_EQ(a->notify(to("", "agent", "two")), ErrorCode::None);
  EXPECT_EQ(calls, 1) << "not armed again: the consumer has not looked since";
  ASSERT_TRUE(inbox->try_pop_or_arm(m, armed));
  EXPECT_EQ(text(m.envelope.payload), "one");
  EXPECT_FALSE(armed) << "one more is queued";
  ASSERT_TRUE(inbox->try_pop_or_arm(m, armed));
  EXPECT_EQ(text(m.envelope.payload), "two");
  EXPECT_TRUE(armed) << "the last one taken";
  ASSERT_EQ(a->notify(to("", "agent", "three")), ErrorCode::None);
  EXPECT_EQ(calls, 2) << "armed by the last pop: the next push calls back";
  ASSERT_TRUE(inbox->try_pop_or_arm(m, armed));
  EXPECT_TRUE(armed);
  inbox->close();
  EXPECT_EQ(calls, 3) << "closing calls an armed consumer back";
  EXPECT_FALSE(inbox->try_pop_or_arm(m, armed));
  EXPECT_FALSE(armed) << "a closed inbox is never armed";
}

// An agent mesh adds and removes agents for as long as it runs: the
// inboxes of removed ones must not pile up in the transport's table.
TEST_F(TransportTest, ClosedInboxesLeaveTheTable) {
  a = std::make_unique<Transport>(options_for("A"));
  auto kept = a->open_inbox("kept");
  for (int i = 0; i < 5000; ++i) {
    auto inbox = a->open_inbox("short-lived-" + std::to_string(i));
    ASSERT_EQ(a->notify(to("", "short-lived-" + std::to_string(i))), ErrorCode::None);
    inbox->close();  // closed with a message still queued
    EXPECT_LE(a->stats().inbox_table, 130u) << "after " << i + 1 << " inboxes";
  }
  EXPECT_EQ(a->stats().inbox_queued, 0u);  // what closed inboxes hold is not waiting
  ASSERT_EQ(a->notify(to("", "kept")), ErrorCode::None);
  EXPECT_EQ(kept->size(), 1u);
  EXPECT_EQ(a->stats().inbox_queued, 1u);
}

// A consumer that hands messages on keeps their places (hold_place) until
// it is done with them: the limit counts them as if still queued.
TEST_F(TransportTest, HeldPlacesCountAgainstTheInboxLimit) {
  a = std::make_unique<Transport>(options_for("A"));
  auto inbox = a->open_inbox("agent", 2);
  EXPECT_EQ(a->notify(to("", "agent")), ErrorCode::None);
  ASSERT_TRUE(inbox->pop(0ms));
  inbox->hold_place();
  EXPECT_EQ(a->notify(to("", "agent")), ErrorCode::None);
  EXPECT_EQ(a->notify(to("", "agent")), ErrorCode::MailboxFull) << "one queued and one held: full";
  EXPECT_EQ(a->request(to("", "agent"), 1s).error, ErrorCode::MailboxFull);
  EXPECT_EQ(inbox->size(), 1u) << "a held place is not a queued message";
  inbox->release_place();
  EXPECT_EQ(a->notify(to("", "agent")), ErrorCode::None);
  EXPECT_EQ(a->notify(to("", "agent")), ErrorCode::MailboxFull);
  inbox->release_place();  // none held: nothing changes
  EXPECT_EQ(a->notify(to("", "agent")), ErrorCode::MailboxFull);
  EXPECT_EQ(inbox->size(), 2u);
}

TEST_F(TransportTest, SameIdIsDeliveredOnce) {
  make_pair();
  auto inbox = b->open_inbox("agent");
  auto m = to("B", "agent", "once");
  m.id = MessageId{0xabc, 42};
  ASSERT_EQ(a->notify(m), ErrorCode::None);
  ASSERT_EQ(a->notify(m), ErrorCode::None);
  ASSERT_TRUE(eventually([&] { return b->stats().deduplicated[0] == 1; }));
  auto got = inbox->pop(kLong);
  ASSERT_TRUE(got);
  EXPECT_EQ(got->envelope.id, m.id);
  EXPECT_FALSE(inbox->pop(100ms));
  EXPECT_EQ(b->stats().received[0], 2u);
}

TEST_F(TransportTest, SameNodeTrafficNeverTouchesSockets) {
  a = std::make_unique<Transport>(options_for("A"));
  auto plain = a->open_inbox("plain");
  auto quick = a->open_inbox("quick", 0, [](const EnvelopeView& req, std::vector<std::uint8_t>& out) {
    out.assign(req.payload.begin(), req.payload.end());
    return ErrorCode::None;
  });
  ASSERT_EQ(a->notify(to("", "plain", "n")), ErrorCode::None);
  ASSERT_EQ(a->notify(to("A", "plain", "n")), ErrorCode::None);
  EXPECT_EQ(plain->size(), 2u);
  plain->pop(0ms);
  plain->pop(0ms);

  Reply q = a->request(to("", "quick", "fast"), kLong);
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(text(q.envelope.payload), "fast");

  std::thread responder([&] {
    auto in = plain->pop(kLong);
    if (in) a->respond(*in, bytes("local"));
  });
  auto m = to("", "plain", "req");
  m.context = kContext;
  Reply r = a->request(m, kLong);
  responder.join();
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(text(r.envelope.payload), "local");
  EXPECT_EQ(r.envelope.context, kContext);

  // A same-node request nobody answers still times out.
  EXPECT_EQ(a->request(to("", "plain"), 100ms).error, ErrorCode::Timeout);
  std::promise<Reply> p;
  a->request_async(to("", "plain"), 100ms, [&p](Reply x) { p.set_value(std::move(x)); });
  EXPECT_EQ(p.get_future().get().error, ErrorCode::Timeout);

  const auto s = a->stats();
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(s.sent[i], 0u) << i;
    EXPECT_EQ(s.received[i], 0u) << i;
  }
}

// What a same-node sender attaches beside the bytes.
struct Note final : LocalBody {
  explicit Note(int v) : value(v) {}
  int value;
};

TEST_F(TransportTest, LocalBodyReachesSameNodeReceiversOnly) {
  make_pair();
  auto here = a->open_inbox("here");
  auto there = b->open_inbox("there");
  auto note = std::make_shared<Note>(7);

  auto m = to("", "here", "n");
  m.local = note;
  ASSERT_EQ(a->notify(std::move(m)), ErrorCode::None);
  auto got = here->pop(kLong);
  ASSERT_TRUE(got);
  EXPECT_EQ(got->local.get(), note.get());  // handed over, not copied
  EXPECT_EQ(text(got->envelope.payload), "n");  // the bytes still come along

  // A same-node request carries it too; its answer is bytes only.
  std::thread responder([&] {
    auto in = here->pop(kLong);
    if (in && in->local && static_cast<const Note&>(*in->local).value == 7) a->respond(*in, bytes("seen"));
  });
  auto r = to("A", "here", "req");
  r.local = note;
  Reply reply = a->request(std::move(r), kLong);
  responder.join();
  ASSERT_TRUE(reply.ok()) << to_string(reply.error);
  EXPECT_EQ(text(reply.envelope.payload), "seen");

  // Another node's receiver never sees it: it does not leave the process.
  auto far = to("B", "there", "far");
  far.local = note;
  ASSERT_EQ(a->notify(std::move(far)), ErrorCode::None);
  auto remote = there->pop(kLong);
  ASSERT_TRUE(remote);
  EXPECT_EQ(text(remote->envelope.payload), "far");
  EXPECT_EQ(remote->local, nullptr);
  got.reset();
  EXPECT_EQ(note.use_count(), 1);  // nothing else kept a reference
}

TEST(TransportLocalOnly, SameNodeWorksWithoutSocketsOrThread) {
  auto o = options_for("solo");
  o.local_only = true;
  Transport t(o);
  EXPECT_EQ(t.bound_port(), 0);
  auto plain = t.open_inbox("plain");
  auto quick = t.open_inbox("quick", 0, echo_handler());
  ASSERT_EQ(t.notify(to("", "plain", "n")), ErrorCode::None);
  ASSERT_TRUE(plain->pop(0ms));
  Reply q = t.request(to("solo", "quick", "q"), kLong);
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(text(q.envelope.payload), "q");
  std::thread responder([&] {
    auto in = plain->pop(kLong);
    if (in) t.respond(*in, bytes("r"));
  });
  Reply r = t.request(to("", "plain"), kLong);
  responder.join();
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(text(r.envelope.payload), "r");
  // Other nodes do not exist here.
  t.add_peer(PeerAddress{"B", "127.0.0.1", 1, {}});
  EXPECT_TRUE(t.peers().empty());
  EXPECT_EQ(t.notify(to("B", "x")), ErrorCode::PeerUnknown);
  EXPECT_EQ(t.request(to("B", "x"), 1s).error, ErrorCode::PeerUnknown);
  // Deadlines still pass: a blocking request watches its own; an async
  // one times out by itself, with no further call into the transport (the
  // deadline watcher, started by the first such request).
  EXPECT_EQ(t.request(to("", "plain"), 50ms).error, ErrorCode::Timeout);
  std::atomic<int> outcome{-1};
  t.request_async(to("", "plain"), 50ms, [&](Reply x) { outcome = static_cast<int>(x.error); });
  EXPECT_TRUE(eventually([&] { return outcome.load() == static_cast<int>(ErrorCode::Timeout); }));
  // A later, earlier-expiring request is not held up by a long one.
  auto late = std::make_shared<std::atomic<int>>(-1);  // completed (Shutdown) when t goes
  t.request_async(to("", "plain"), 600s, [late](Reply x) { *late = static_cast<int>(x.error); });
  auto soon = t.request_future(to("", "plain"), 50ms);
  ASSERT_EQ(soon.wait_for(kLong), std::future_status::ready);
  EXPECT_EQ(soon.get().error, ErrorCode::Timeout);
  EXPECT_EQ(late->load(), -1);
  auto ticket = t.ask_async(to("", "plain"), 50ms);
  ASSERT_EQ(ticket.error, ErrorCode::None);
  EXPECT_TRUE(eventually([&] { return t.check_inbox(ticket.id).state == AskState::Expired; }));
  const auto s = t.stats();
  for (int i = 0; i < 5; ++i) EXPECT_EQ(s.sent[i], 0u);
}

TEST(TransportLocalOnly, ShutdownCompletesAsyncRequests) {
  auto o = options_for("solo");
  o.local_only = true;
  auto t = std::make_unique<Transport>(o);
  auto plain = t->open_inbox("plain");
  auto f = t->request_future(to("", "plain"), 600s);
  t.reset();
  ASSERT_EQ(f.wait_for(kLong), std::future_status::ready);
  EXPECT_EQ(f.get().error, ErrorCode::Shutdown);
  EXPECT_TRUE(plain->closed());
}

// admit() holds what it cannot decide yet: readmit() asks again, and what
// is still held after hold_timeout is refused Unauthenticated, by the
// receiving thread on its own (nothing else wakes it here).
TEST_F(TransportTest, HeldMessagesAreReadmittedOrRefusedAfterHoldTimeout) {
  UndeliverableLog log;
  auto oa = options_for("A");
  log.attach(oa);
  auto ob = options_for("B");
  ob.hold_timeout = 300ms;
  std::atomic<bool> known{false};
  ob.admit = [&known](const EnvelopeView& m, std::string_view, bool) {
    using Admission = TransportOptions::Admission;
    if (m.target == "svc" && known.load()) return Admission{Admission::Admit, {}};
    return Admission{Admission::Hold, {}};
  };
  make_pair(std::move(oa), std::move(ob));
  auto inbox = b->open_inbox("svc");
  ASSERT_EQ(a->notify(to("B", "svc", "first")), ErrorCode::None);
  ASSERT_TRUE(eventually([&] { return b->stats().frames_holding == 1; }));
  known = true;
  b->readmit("A");
  auto got = inbox->pop(kLong);
  ASSERT_TRUE(got);
  EXPECT_EQ(text(got->envelope.payload), "first");

  auto never = to("B", "other");
  never.id = MessageId{9, 9};
  ASSERT_EQ(a->notify(never), ErrorCode::None);
  EXPECT_EQ(a->request(to("B", "other"), kLong).error, ErrorCode::Unauthenticated);
  ASSERT_TRUE(eventually([&] { return log.find(never.id).has_value(); }));
  EXPECT_EQ(log.find(never.id)->reason, ErrorCode::Unauthenticated);
  EXPECT_EQ(b->stats().frames_holding, 0u);
}

// ---------------------------------------------------------------- ask_async

TEST_F(TransportTest, AskAsyncPendingThenReadyThenFreed) {
  make_pair();
  auto inbox = b->open_inbox("svc");
  auto ticket = a->ask_async(to("B", "svc", "q"), kLong);
  ASSERT_EQ(ticket.error, ErrorCode::None);
  EXPECT_EQ(a->check_inbox(ticket.id).state, AskState::Pending);
  auto in = inbox->pop(kLong);
  ASSERT_TRUE(in);
  EXPECT_EQ(in->envelope.id, ticket.id);
  ASSERT_EQ(b->respond(*in, bytes("answer")), ErrorCode::None);
  auto ready = a->check_inbox(ticket.id, kLong, false);
  ASSERT_EQ(ready.state, AskState::Ready);
  EXPECT_EQ(text(ready.reply.envelope.payload), "answer");
  EXPECT_EQ(a->check_inbox(ticket.id, 0ms, true).state, AskState::Ready);
  EXPECT_EQ(a->check_inbox(ticket.id).state, AskState::Unknown);
  EXPECT_EQ(a->check_inbox(MessageId{1, 2}).state, AskState::Unknown);
}

TEST_F(TransportTest, AskAsyncErrorReplyIsReady) {
  make_pair();
  auto ticket = a->ask_async(to("B", "nobody"), kLong);
  ASSERT_EQ(ticket.error, ErrorCode::None);
  auto r = a->check_inbox(ticket.id, kLong);
  ASSERT_EQ(r.state, AskState::Ready);
  EXPECT_EQ(r.reply.error, ErrorCode::TargetUnknown);
}

TEST_F(TransportTest, AskAsyncToSilentTargetExpiresThenIsFreed) {
  auto oa = options_for("A");
  oa.ask_retention = 300ms;
  make_pair(std::move(oa));
  auto inbox = b->open_inbox("svc");
  auto ticket = a->ask_async(to("B", "svc"), 200ms);
  ASSERT_EQ(ticket.error, ErrorCode::None);
  EXPECT_EQ(a->check_inbox(ticket.id).state, AskState::Pending);
  ASSERT_TRUE(eventually([&] { return a->check_inbox(ticket.id, 0ms, true).state == AskState::Expired; }));
  // remove=true does not free an Expired entry; the retention does.
  ASSERT_TRUE(eventually([&] { return a->check_inbox(ticket.id).state == AskState::Unknown; }));
  EXPECT_TRUE(eventually([&] { return a->stats().ask_entries == 0; }));
}

// The transport thread sleeps until the next thing due: what used to ride
// on a periodic wake-up must still happen, each at its own time, on a
// thread with nothing else to do.
TEST_F(TransportTest, DeadlinesAndRetentionsRunOutOnAnIdleThread) {
  auto oa = options_for("A");
  oa.ask_retention = 200ms;
  make_pair(std::move(oa));
  auto silent = a->open_inbox("silent");
  auto quick = a->open_inbox("quick", 0, echo_handler());
  // An ask answered at once by a quick handler: only its retention is left
  // to run out, and nothing but the sweep frees it (stats() does not).
  auto ticket = a->ask_async(to("", "quick", "q"), 50ms);
  ASSERT_EQ(ticket.error, ErrorCode::None);
  EXPECT_EQ(a->stats().ask_entries, 1u);
  EXPECT_TRUE(eventually([&] { return a->stats().ask_entries == 0; }));
  // A same-node request's deadline, longer than a poll cap would have
  // covered.
  std::promise<Reply> p;
  a->request_async(to("", "silent"), 300ms, [&p](Reply r) { p.set_value(std::move(r)); });
  auto future = p.get_future();
  ASSERT_EQ(future.wait_for(kLong), std::future_status::ready);
  EXPECT_EQ(future.get().error, ErrorCode::Timeout);
}

// ---------------------------------------------------------------- broadcast

TEST_F(TransportTest, BroadcastReportsPerAddress) {
  UndeliverableLog log;
  auto oa = options_for("A");
  log.attach(oa);
  make_pair(std::move(oa));
  auto remote = b->open_inbox("r");
  auto local = a->open_inbox("l");
  std::vector<Address> targets{{"B", "r"}, {"B", "gone"}, {"nowhere", "x"}, {"", "l"}, {"A", "missing"}};
  auto m = to("", "", "all");
  auto out = a->broadcast(targets, m);
  ASSERT_EQ(out.size(), 5u);
  EXPECT_EQ(out[0].error, ErrorCode::None);
  EXPECT_EQ(out[1].error, ErrorCode::None);  // accepted; refused later by B
  EXPECT_EQ(out[2].error, ErrorCode::PeerUnknown);
  EXPECT_EQ(out[3].error, ErrorCode::None);
  EXPECT_EQ(out[4].error, ErrorCode::TargetUnknown);
  EXPECT_EQ(out[2].to.node, "nowhere");
  ASSERT_TRUE(remote->pop(kLong));
  ASSERT_TRUE(local->pop(0ms));
  ASSERT_TRUE(eventually([&] { return log.size() == 1; }));
  EXPECT_EQ(log.items[0].target, "gone");
}

TEST_F(TransportTest, BroadcastWithFixedIdReachesTwoTargetsOnOneNode) {
  make_pair();
  auto x = b->open_inbox("x");
  auto y = b->open_inbox("y");
  auto m = to("", "", "same id");
  m.id = MessageId{5, 5};
  auto out = a->broadcast({{"B", "x"}, {"B", "y"}}, m);
  EXPECT_EQ(out[0].error, ErrorCode::None);
  EXPECT_EQ(out[1].error, ErrorCode::None);
  EXPECT_TRUE(x->pop(kLong));
  EXPECT_TRUE(y->pop(kLong));
  // Resent under the same id: each copy is a duplicate.
  a->broadcast({{"B", "x"}, {"B", "y"}}, m);
  EXPECT_TRUE(eventually([&] { return b->stats().deduplicated[0] == 2; }));
}

// ---------------------------------------------------------------- hostile frames

TEST_F(TransportTest, GarbageIsCountedAndReceiverStaysAlive) {
  make_pair();
  auto inbox = b->open_inbox("agent");
  ASSERT_EQ(a->send_raw_for_test("B", {0x01, 0x02, 0xff}), ErrorCode::None);
  ASSERT_EQ(a->send_raw_for_test("B", {}), ErrorCode::None);
  ASSERT_EQ(a->send_raw_for_test("B", {0xdc, 0xff, 0xff}), ErrorCode::None);  // array16 claiming 65535
  ASSERT_TRUE(eventually([&] { return b->stats().frames_malformed == 3; }));
  ASSERT_EQ(a->notify(to("B", "agent", "still here")), ErrorCode::None);
  auto got = inbox->pop(kLong);
  ASSERT_TRUE(got);
  EXPECT_EQ(text(got->envelope.payload), "still here");
}

Envelope request_envelope(const std::string& from, const std::string& target, MessageId id) {
  Envelope e;
  e.id = id;
  e.type = MessageType::Request;
  e.sender_agent = "tester";
  e.sender_node = from;
  e.target = target;
  return e;
}

TEST_F(TransportTest, BrokenButSalvageableRequestGetsAnErrorReply) {
  UndeliverableLog log;
  auto oa = options_for("A");
  log.attach(oa);
  make_pair(std::move(oa));
  auto inbox = b->open_inbox("svc");
  // Trailing bytes after the array: Malformed, but the type and id are readable.
  const MessageId malformed_id{0x1111, 1};
  auto frame = encode(request_envelope("A", "svc", malformed_id));
  frame.push_back(0xc0);
  ASSERT_EQ(a->send_raw_for_test("B", frame), ErrorCode::None);
  // Version 2: BadVersion.
  const MessageId version_id{0x1111, 2};
  auto frame2 = encode(request_envelope("A", "svc", version_id));
  ASSERT_EQ(frame2[1], 0x01);  // fixarray header, then version 1
  frame2[1] = 0x02;
  ASSERT_EQ(a->send_raw_for_test("B", frame2), ErrorCode::None);
  // No request of A's is waiting for these ids, so the Error replies
  // surface as refusals.
  ASSERT_TRUE(eventually([&] { return log.find(malformed_id) && log.find(version_id); }));
  EXPECT_EQ(log.find(malformed_id)->reason, ErrorCode::Malformed);
  EXPECT_EQ(log.find(version_id)->reason, ErrorCode::BadVersion);
  EXPECT_EQ(log.find(version_id)->node, "B");
  const auto s = b->stats();
  EXPECT_EQ(s.frames_malformed, 1u);
  EXPECT_EQ(s.frames_bad_version, 1u);
  EXPECT_EQ(s.refused[1], 2u);
  EXPECT_EQ(inbox->size(), 0u);
}

TEST_F(TransportTest, ExpiredRequestIsDroppedOnArrival) {
  make_pair();
  auto inbox = b->open_inbox("svc");
  auto e = request_envelope("A", "svc", MessageId{0x2222, 1});
  e.deadline_ms = 1;  // 1970
  ASSERT_EQ(a->send_raw_for_test("B", encode(e)), ErrorCode::None);
  ASSERT_TRUE(eventually([&] { return b->stats().expired_on_arrival == 1; }));
  EXPECT_EQ(inbox->size(), 0u);
}

TEST_F(TransportTest, OversizedFramesAreCountedAndOversizedRequestsAnswered) {
  auto ob = options_for("B");
  ob.max_frame_bytes = 2048;
  make_pair(options_for("A"), std::move(ob));
  auto inbox = b->open_inbox("svc");
  const std::string big(10000, 'x');
  ASSERT_EQ(a->notify(to("B", "svc", big)), ErrorCode::None);
  ASSERT_TRUE(eventually([&] { return b->stats().frames_oversized == 1; }));
  Reply r = a->request(to("B", "svc", big), kLong);
  EXPECT_EQ(r.error, ErrorCode::Oversized);
  EXPECT_EQ(b->stats().frames_oversized, 2u);
  EXPECT_EQ(inbox->size(), 0u);
  // The sender's own limit is checked before anything is queued.
  EXPECT_EQ(b->notify(to("A", "svc", big)), ErrorCode::Oversized);
}

// ---------------------------------------------------------------- request channels

// Blocking requests until one went over a request channel (the first on a
// new channel finds it still connecting and takes the transport thread).
bool warm_direct(Transport& a, const std::string& node, const std::string& target) {
  for (int i = 0; i < 200; ++i) {
    if (!a.request(to(node, target), kLong).ok()) return false;
    if (a.stats().requests_direct > 0) return true;
    std::this_thread::sleep_for(5ms);
  }
  return false;
}

TEST_F(TransportTest, BlockingRequestsGoOverRequestChannels) {
  make_pair();
  auto echo = b->open_inbox("echo", 0, echo_handler());
  ASSERT_TRUE(warm_direct(*a, "B", "echo"));
  const auto before = a->stats();
  for (int i = 0; i < 20; ++i) {
    Reply r = a->request(to("B", "echo", "n" + std::to_string(i)), kLong);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(text(r.envelope.payload), "n" + std::to_string(i));
  }
  const auto after = a->stats();
  EXPECT_EQ(after.requests_direct - before.requests_direct, 20u);
  EXPECT_EQ(after.pending_requests, 0u);
  // Errors come back the same way.
  EXPECT_EQ(a->request(to("B", "missing"), kLong).error, ErrorCode::TargetUnknown);
  // A mailbox responder answers a channel's routing id as well.
  auto svc = b->open_inbox("svc");
  std::thread responder([&] {
    auto in = svc->pop(kLong);
    if (in) b->respond(*in, bytes("mailbox"));
  });
  Reply r = a->request(to("B", "svc"), kLong);
  responder.join();
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(text(r.envelope.payload), "mailbox");
}

// A mailbox responder on its own thread that answers every request with
// its payload, until it goes out of scope.
class EchoResponder {
 public:
  EchoResponder(Transport& t, std::shared_ptr<Inbox> inbox)
      : thread_([this, &t, inbox = std::move(inbox)] {
          while (!stop_) {
            if (auto in = inbox->pop(10ms)) t.respond(*in, in->envelope.payload);
          }
        }) {}
  ~EchoResponder() {
    stop_ = true;
    thread_.join();
  }
  EchoResponder(const EchoResponder&) = delete;
  EchoResponder& operator=(const EchoResponder&) = delete;

 private:
  std::atomic<bool> stop_{false};  // before thread_, which reads it
  std::thread thread_;
};

// Runs `one(tag)` `each` times on each of `threads` threads at once (tag
// "thread:i"); the failures it reported, summed.
int run_in_threads(int threads, int each, const std::function<int(const std::string&)>& one) {
  std::atomic<int> failures{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      for (int i = 0; i < each; ++i) failures += one(std::to_string(t) + ":" + std::to_string(i));
    });
  }
  for (auto& th : pool) th.join();
  return failures.load();
}

TEST_F(TransportTest, ManyThreadsRequestAndNotifyAtOnce) {
  make_pair();
  auto echo = b->open_inbox("echo", 0, echo_handler());
  auto sink = b->open_inbox("sink", 100000);
  auto svc = b->open_inbox("svc");
  EchoResponder responder(*b, svc);
  constexpr int kThreads = 4;
  constexpr int kEach = 150;
  const int failures = run_in_threads(kThreads, kEach, [&](const std::string& tag) {
    int failed = 0;
    Reply q = a->request(to("B", "echo", tag), kLong);
    if (!q.ok() || text(q.envelope.payload) != tag) ++failed;
    auto f = a->request_future(to("B", "svc", tag), kLong);
    if (a->notify(to("B", "sink", tag)) != ErrorCode::None) ++failed;
    Reply r = f.get();
    if (!r.ok() || text(r.envelope.payload) != tag) ++failed;
    return failed;
  });
  EXPECT_EQ(failures, 0);
  EXPECT_TRUE(eventually([&] { return sink->size() == kThreads * kEach; }));
  const auto s = a->stats();
  EXPECT_EQ(s.pending_requests, 0u);
  EXPECT_EQ(s.outbound_queued, 0u);
}

TEST_F(TransportTest, RequestChannelsCanBeTurnedOff) {
  auto oa = options_for("A");
  oa.direct_requests = false;
  make_pair(std::move(oa));
  auto echo = b->open_inbox("echo", 0, echo_handler());
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(a->request(to("B", "echo"), kLong).ok());
  EXPECT_EQ(a->stats().requests_direct, 0u);
}

TEST_F(TransportTest, DirectRequestFailsFastWhenResponderDies) {
  make_pair();
  auto echo = b->open_inbox("echo", 0, echo_handler());
  auto svc = b->open_inbox("svc");
  ASSERT_TRUE(warm_direct(*a, "B", "echo"));
  const auto direct_before = a->stats().requests_direct;
  auto f = std::async(std::launch::async, [&] { return a->request(to("B", "svc"), 600s); });
  ASSERT_TRUE(eventually([&] { return svc->size() == 1; }));
  b.reset();
  ASSERT_EQ(f.wait_for(kLong), std::future_status::ready);
  EXPECT_EQ(f.get().error, ErrorCode::PeerUnreachable);
  EXPECT_EQ(a->stats().requests_direct, direct_before + 1);
}

TEST_F(TransportTest, DirectRequestFailsWithRemovalReason) {
  make_pair();
  auto echo = b->open_inbox("echo", 0, echo_handler());
  auto svc = b->open_inbox("svc");
  ASSERT_TRUE(warm_direct(*a, "B", "echo"));
  auto f = std::async(std::launch::async, [&] { return a->request(to("B", "svc"), 600s); });
  ASSERT_TRUE(eventually([&] { return svc->size() == 1; }));
  a->remove_peer("B", ErrorCode::PeerDead);
  ASSERT_EQ(f.wait_for(kLong), std::future_status::ready);
  EXPECT_EQ(f.get().error, ErrorCode::PeerDead);
}

TEST_F(TransportTest, DirectRequestTimesOutAndDropsTheLateReply) {
  make_pair();
  auto echo = b->open_inbox("echo", 0, echo_handler());
  auto svc = b->open_inbox("svc");
  ASSERT_TRUE(warm_direct(*a, "B", "echo"));
  EXPECT_EQ(a->request(to("B", "svc"), 100ms).error, ErrorCode::Timeout);
  auto in = svc->pop(kLong);
  ASSERT_TRUE(in);
  b->respond(*in, bytes("late"));
  // The late reply waits on the channel; the next requests must not take
  // it for theirs, and it is counted when it is read.
  for (int i = 0; i < 200 && a->stats().replies_unmatched == 0; ++i) {
    Reply r = a->request(to("B", "echo", "fresh"), kLong);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(text(r.envelope.payload), "fresh");
  }
  EXPECT_EQ(a->stats().replies_unmatched, 1u);
}

// ---------------------------------------------------------------- callback requests sent by their caller

// request_future until one went out on the peer's DEALER from the calling
// thread (the first ones find the peer still connecting and take the
// transport thread).
bool warm_async_direct(Transport& a, const std::string& node, const std::string& target) {
  for (int i = 0; i < 200; ++i) {
    if (!a.request_future(to(node, target), kLong).get().ok()) return false;
    if (a.stats().async_requests_direct > 0) return true;
    std::this_thread::sleep_for(5ms);
  }
  return false;
}

TEST_F(TransportTest, CallbackRequestsGoOutFromTheCallingThread) {
  make_pair();
  auto echo = b->open_inbox("echo", 0, echo_handler());
  ASSERT_TRUE(warm_async_direct(*a, "B", "echo"));
  const auto before = a->stats();
  std::vector<std::future<Reply>> futures;
  for (int i = 0; i < 20; ++i) futures.push_back(a->request_future(to("B", "echo", "n" + std::to_string(i)), kLong));
  for (int i = 0; i < 20; ++i) {
    Reply r = futures[static_cast<std::size_t>(i)].get();
    ASSERT_TRUE(r.ok()) << to_string(r.error);
    EXPECT_EQ(text(r.envelope.payload), "n" + std::to_string(i));
  }
  const auto after = a->stats();
  EXPECT_GT(after.async_requests_direct, before.async_requests_direct);
  EXPECT_EQ(after.sent[static_cast<int>(MessageType::Request)] - before.sent[static_cast<int>(MessageType::Request)],
            20u);
  EXPECT_EQ(after.pending_requests, 0u);
  EXPECT_EQ(after.outbound_queued, 0u);
  EXPECT_EQ(after.outbound_queued_bytes, 0u);
}

// Nobody answers: the deadline still ends it, although the transport
// thread never saw the request go out (its alarm wakes it).
TEST_F(TransportTest, CallbackRequestSentByItsCallerTimesOut) {
  make_pair();
  auto echo = b->open_inbox("echo", 0, echo_handler());
  auto svc = b->open_inbox("svc");
  ASSERT_TRUE(warm_async_direct(*a, "B", "echo"));
  int direct = 0;
  for (int attempt = 0; attempt < 20 && direct < 2; ++attempt) {
    const auto before = a->stats().async_requests_direct;
    auto f = a->request_future(to("B", "svc"), 150ms);
    ASSERT_EQ(f.wait_for(kLong), std::future_status::ready);
    EXPECT_EQ(f.get().error, ErrorCode::Timeout);
    if (a->stats().async_requests_direct > before) ++direct;
  }
  EXPECT_EQ(direct, 2);
  EXPECT_EQ(a->stats().pending_requests, 0u);
  // Answered late, the replies are counted and dropped (those that
  // arrived in time to be delivered at all).
  std::uint64_t answered = 0;
  while (auto in = svc->pop(0ms)) {
    if (b->respond(*in, bytes("late")) == ErrorCode::None) ++answered;
  }
  EXPECT_TRUE(eventually([&] { return a->stats().replies_unmatched >= answered; }));
}

TEST_F(TransportTest, CallbackRequestSentByItsCallerFailsWithItsPeer) {
  make_pair();
  auto echo = b->open_inbox("echo", 0, echo_handler());
  auto svc = b->open_inbox("svc");
  ASSERT_TRUE(warm_async_direct(*a, "B", "echo"));
  const auto before = a->stats().async_requests_direct;
  auto f = a->request_future(to("B", "svc"), 600s);
  ASSERT_TRUE(eventually([&] { return svc->size() == 1; }));
  a->remove_peer("B", ErrorCode::PeerDead);
  ASSERT_EQ(f.wait_for(kLong), std::future_status::ready);
  EXPECT_EQ(f.get().error, ErrorCode::PeerDead);
  // Whichever way it went out, it failed; say which for the record.
  RecordProperty("sent_directly", a->stats().async_requests_direct > before ? "yes" : "no");
}

TEST_F(TransportTest, CallbackRequestSentByItsCallerEndsWithShutdown) {
  make_pair();
  auto echo = b->open_inbox("echo", 0, echo_handler());
  auto svc = b->open_inbox("svc");
  ASSERT_TRUE(warm_async_direct(*a, "B", "echo"));
  auto f = a->request_future(to("B", "svc"), 600s);
  ASSERT_TRUE(eventually([&] { return svc->size() == 1; }));
  a.reset();
  ASSERT_EQ(f.wait_for(kLong), std::future_status::ready);
  EXPECT_EQ(f.get().error, ErrorCode::Shutdown);
}

TEST_F(TransportTest, CallbackRequestsByTheCallerCanBeTurnedOff) {
  auto oa = options_for("A");
  oa.direct_async_requests = false;
  make_pair(std::move(oa));
  auto echo = b->open_inbox("echo", 0, echo_handler());
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(a->request_future(to("B", "echo"), kLong).get().ok());
  EXPECT_EQ(a->stats().async_requests_direct, 0u);
}

// ---------------------------------------------------------------- answers from the answering thread

// A mailbox responder's answers leave on the ROUTER from its own thread
// (no hand-off to the transport thread) whenever the ROUTER is free; each
// one arrives, and the requests that come in meanwhile are still read.
TEST_F(TransportTest, MailboxAnswersLeaveFromTheAnsweringThread) {
  make_pair();
  auto svc = b->open_inbox("svc");
  constexpr int kThreads = 3;
  constexpr int kEach = 100;
  int failures = 0;
  {
    EchoResponder responder(*b, svc);
    failures = run_in_threads(kThreads, kEach, [&](const std::string& tag) {
      int failed = 0;
      // Blocking and callback requests both: two ways in, one way out.
      auto f = a->request_future(to("B", "svc", "f" + tag), kLong);
      Reply r = a->request(to("B", "svc", tag), kLong);
      if (!r.ok() || text(r.envelope.payload) != tag) ++failed;
      Reply g = f.get();
      if (!g.ok() || text(g.envelope.payload) != "f" + tag) ++failed;
      return failed;
    });
  }
  EXPECT_EQ(failures, 0);
  const auto s = b->stats();
  EXPECT_EQ(s.sent[static_cast<int>(MessageType::Response)], 2u * kThreads * kEach);
  // Most go directly; one finds the ROUTER busy now and then and is
  // handed over, which is the other path and also correct.
  EXPECT_GT(s.replies_direct, 0u);
  EXPECT_LE(s.replies_direct, 2u * kThreads * kEach);
  EXPECT_EQ(s.replies_unroutable, 0u);
  EXPECT_EQ(a->stats().pending_requests, 0u);
}

TEST_F(TransportTest, AnswersFromTheAnsweringThreadCanBeTurnedOff) {
  auto ob = options_for("B");
  ob.direct_replies = false;
  make_pair(options_for("A"), std::move(ob));
  auto svc = b->open_inbox("svc");
  std::thread responder([&] {
    for (int i = 0; i < 5; ++i) {
      if (auto in = svc->pop(kLong)) b->respond(*in, bytes("answer"));
    }
  });
  for (int i = 0; i < 5; ++i) {
    Reply r = a->request(to("B", "svc"), kLong);
    ASSERT_TRUE(r.ok()) << to_string(r.error);
    EXPECT_EQ(text(r.envelope.payload), "answer");
  }
  responder.join();
  EXPECT_EQ(b->stats().replies_direct, 0u);
  EXPECT_EQ(b->stats().sent[static_cast<int>(MessageType::Response)], 5u);
}

// Whichever thread sent it, an answer is kept for a resend of its request.
TEST_F(TransportTest, ResentRequestIsAnsweredFromTheCacheAfterAMailboxAnswer) {
  for (const bool direct : {true, false}) {
    SCOPED_TRACE(direct ? "direct" : "through the transport thread");
    auto ob = options_for("B");
    ob.direct_replies = direct;
    make_pair(options_for("A"), std::move(ob));
    auto svc = b->open_inbox("svc");
    std::thread responder([&] {
      if (auto in = svc->pop(kLong)) b->respond(*in, bytes("only once"));
    });
    auto m = to("B", "svc");
    m.id = MessageId{0x4444, 1};
    Reply first = a->request(m, kLong);
    responder.join();
    ASSERT_TRUE(first.ok()) << to_string(first.error);
    Reply again = a->request(m, kLong);
    ASSERT_TRUE(again.ok()) << to_string(again.error);
    EXPECT_EQ(text(again.envelope.payload), "only once");
    EXPECT_EQ(svc->size(), 0u);
    EXPECT_EQ(b->stats().requests_answered_again, 1u);
    a.reset();
    b.reset();
  }
}

TEST_F(TransportTest, ResentRequestIsAnsweredFromTheReplyCache) {
  make_pair();
  std::atomic<int> calls{0};
  auto quick = b->open_inbox("count", 0, [&calls](const EnvelopeView&, std::vector<std::uint8_t>& out) {
    out = bytes("answer " + std::to_string(++calls));
    return ErrorCode::None;
  });
  auto m = to("B", "count");
  m.id = MessageId{0x3333, 1};
  Reply first = a->request(m, kLong);
  Reply again = a->request(m, kLong);
  ASSERT_TRUE(first.ok());
  ASSERT_TRUE(again.ok()) << to_string(again.error);
  EXPECT_EQ(text(again.envelope.payload), "answer 1");
  EXPECT_EQ(calls.load(), 1);
  EXPECT_EQ(b->stats().requests_answered_again, 1u);
  EXPECT_EQ(b->stats().deduplicated[1], 1u);
  // Refusals are remembered too.
  auto missing = to("B", "nobody");
  missing.id = MessageId{0x3333, 2};
  EXPECT_EQ(a->request(missing, kLong).error, ErrorCode::TargetUnknown);
  EXPECT_EQ(a->request(missing, kLong).error, ErrorCode::TargetUnknown);
}

// A requester that stops reading its replies: they wait at the receiver
// (never dropped, never blocking it) and all arrive once it reads again.
TEST_F(TransportTest, RefusalsToASlowReaderAreDeferredNotLost) {
  // No heartbeats here: this test is about replies waiting for room, and
  // the reader below stalls on purpose. With heartbeats, a reader whose
  // I/O thread cannot take in B's traffic for longer than B's TTL drops
  // the connection itself, with the replies on their way (libzmq's
  // zmtp_engine: the TTL timer is cancelled only by a decoded message);
  // under load that happened here in about one run out of four.
  auto ob = options_for("B");
  ob.heartbeat_interval = std::chrono::milliseconds(0);
  b = std::make_unique<Transport>(ob);
  void* ctx = zmq_ctx_new();
  void* x = zmq_socket(ctx, ZMQ_DEALER);
  const int zero = 0;
  const int one = 1;
  const int small = 4096;
  zmq_setsockopt(x, ZMQ_LINGER, &zero, sizeof zero);
  zmq_setsockopt(x, ZMQ_RCVHWM, &one, sizeof one);
  zmq_setsockopt(x, ZMQ_RCVBUF, &small, sizeof small);
  zmq_setsockopt(x, ZMQ_ROUTING_ID, "X", 1);
  ASSERT_EQ(zmq_connect(x, ("tcp://127.0.0.1:" + std::to_string(b->bound_port())).c_str()), 0);
  MessageIdGenerator ids;
  std::vector<std::uint8_t> frame;
  // 100000 take about 2 s in a plain build, where most refusals have to
  // wait; a sanitizer build gets through fewer in the time it is given,
  // and the property checked (none lost) is the same.
  const std::size_t total = 100000;
  std::size_t sent = 0;
  std::size_t errors = 0;
  const auto stop_sending = std::chrono::steady_clock::now() + 15s;
  while (std::chrono::steady_clock::now() < stop_sending && (sent < total || errors < sent)) {
    // Send without reading while B keeps up; stop when B pushes back, or
    // after half a second in any case.
    const auto phase_start = std::chrono::steady_clock::now();
    auto last_progress = phase_start;
    while (sent < total && std::chrono::steady_clock::now() < stop_sending &&
           std::chrono::steady_clock::now() - last_progress < 200ms &&
           std::chrono::steady_clock::now() - phase_start < 500ms) {
      Envelope e;
      e.id = ids.next();
      e.type = MessageType::Notify;
      e.sender_node = "X";
      e.sender_agent = "x";
      e.target = "missing";
      encode(e, frame);
      if (zmq_send(x, frame.data(), frame.size(), ZMQ_DONTWAIT) >= 0) {
        ++sent;
        last_progress = std::chrono::steady_clock::now();
      } else {
        std::this_thread::sleep_for(1ms);
      }
    }
    // Then read everything that comes back.
    std::vector<std::uint8_t> buf(4096);
    for (;;) {
      zmq_pollitem_t item{x, 0, ZMQ_POLLIN, 0};
      if (zmq_poll(&item, 1, errors < sent ? 5000 : 0) <= 0) break;
      const int n = zmq_recv(x, buf.data(), buf.size(), ZMQ_DONTWAIT);
      if (n < 0) continue;
      auto r = decode({buf.data(), static_cast<std::size_t>(n)});
      ASSERT_TRUE(r.ok());
      EXPECT_EQ(r.view.error, ErrorCode::TargetUnknown);
      ++errors;
      if (errors == sent) break;
    }
  }
  // Whatever is still on its way after the sending time ran out.
  std::vector<std::uint8_t> rest(4096);
  while (errors < sent) {
    zmq_pollitem_t item{x, 0, ZMQ_POLLIN, 0};
    if (zmq_poll(&item, 1, 10000) <= 0) break;  // ten seconds without one: lost
    if (zmq_recv(x, rest.data(), rest.size(), ZMQ_DONTWAIT) >= 0) ++errors;
  }
  zmq_close(x);
  zmq_ctx_term(ctx);
  const auto s = b->stats();
  EXPECT_GT(sent, 0u);
  EXPECT_EQ(errors, sent) << "waiting " << s.replies_waiting << " deferred " << s.replies_deferred << " sent[Error] "
                          << s.sent[3] << " received[Notify] " << s.received[0];
  EXPECT_EQ(s.replies_unroutable, 0u);
  EXPECT_EQ(s.replies_dropped, 0u);
  EXPECT_EQ(s.refused[0], sent);
  std::printf("deferred replies: %llu of %zu\n", static_cast<unsigned long long>(s.replies_deferred), sent);
}

// ---------------------------------------------------------------- CURVE

TEST(TransportCurve, KeysHelpers) {
  auto kp = generate_curve_keypair();
  EXPECT_TRUE(is_valid_curve_key(kp.public_key));
  EXPECT_TRUE(is_valid_curve_key(kp.secret_key));
  EXPECT_EQ(curve_public_from_secret(kp.secret_key), kp.public_key);
  EXPECT_FALSE(is_valid_curve_key("short"));
  EXPECT_FALSE(is_valid_curve_key(std::string(40, ' ')));
  EXPECT_THROW(curve_public_from_secret("nonsense"), TransportError);
  auto o = options_for("A");
  o.curve = CurveKeyPair{kp.public_key, generate_curve_keypair().secret_key};
  EXPECT_THROW(Transport{o}, TransportError);
}

TEST(TransportCurve, KnownKeysTalkUnknownOnesDeliverNothing) {
  const auto ka = generate_curve_keypair();
  const auto kb = generate_curve_keypair();
  const auto kc = generate_curve_keypair();
  const auto ke = generate_curve_keypair();
  Transport a(with_curve("A", ka));
  Transport b(with_curve("B", kb));
  link(a, b, ka.public_key, kb.public_key);
  auto inbox = b.open_inbox("svc", 0, [](const EnvelopeView& req, std::vector<std::uint8_t>& out) {
    out.assign(req.payload.begin(), req.payload.end());
    return ErrorCode::None;
  });
  Reply r = a.request(to("B", "svc", "secret"), kLong);
  ASSERT_TRUE(r.ok()) << to_string(r.error);
  EXPECT_EQ(text(r.envelope.payload), "secret");

  auto refused = [&](Transport& t) {
    return eventually([&] { return t.request(to("B", "svc"), kLong).error == ErrorCode::PeerUnreachable; });
  };
  // C's key is not known to B: B's ZAP handler refuses it.
  Transport c(with_curve("C", kc));
  c.add_peer(address_of(b, kb.public_key));
  EXPECT_TRUE(refused(c));
  EXPECT_TRUE(eventually([&] { return b.stats().frames_unauthenticated >= 1; }));

  // D has no CURVE at all: the mechanisms do not match.
  Transport d(options_for("D"));
  d.add_peer(address_of(b));
  EXPECT_TRUE(refused(d));

  // E is known to B, but E holds a wrong key for B: B cannot read E's hello.
  Transport e(with_curve("E", ke));
  b.add_peer(address_of(e, ke.public_key));
  e.add_peer(address_of(b, kc.public_key));
  EXPECT_TRUE(refused(e));

  // A peer added without a key cannot be reached under CURVE.
  a.add_peer(PeerAddress{"keyless", "127.0.0.1", b.bound_port(), {}});
  EXPECT_EQ(a.notify(to("keyless", "svc")), ErrorCode::PeerUnreachable);

  EXPECT_EQ(b.stats().received[1], 1u);  // only A's request got through
  EXPECT_EQ(inbox->size(), 0u);
}

// A joined a moment ago: it knows B (its key and address), B has not heard
// of A yet, so B's ZAP handler refuses A's handshake. A's request waits
// instead of failing, A retries the handshake, and the request goes through
// as soon as B learns A's key.
TEST(TransportCurve, AKeyNotKnownYetIsWaitedForNotRefused) {
  const auto ka = generate_curve_keypair();
  const auto kb = generate_curve_keypair();
  Transport a(with_curve("A", ka));
  Transport b(with_curve("B", kb));
  auto inbox = b.open_inbox("svc", 0, [](const EnvelopeView& req, std::vector<std::uint8_t>& out) {
    out.assign(req.payload.begin(), req.payload.end());
    return ErrorCode::None;
  });
  a.add_peer(address_of(b, kb.public_key));
  auto f = a.request_future(to("B", "svc", "early"), kLong);
  ASSERT_TRUE(eventually([&] { return a.stats().handshakes_refused >= 2; }));  // refused, retried
  EXPECT_EQ(f.wait_for(0s), std::future_status::timeout) << "the request failed instead of waiting";
  EXPECT_EQ(a.notify(to("B", "svc", "queued")), ErrorCode::None);  // sends are queued meanwhile
  EXPECT_GE(b.stats().frames_unauthenticated, 2u);
  b.add_peer(address_of(a, ka.public_key));
  Reply r = f.get();
  ASSERT_TRUE(r.ok()) << to_string(r.error);
  EXPECT_EQ(text(r.envelope.payload), "early");
  EXPECT_TRUE(eventually([&] { return a.peer_connected("B"); }));
}

// The wait has an end: a peer that never learns our key is Unreachable
// after refused_handshake_wait, long before the request's own deadline.
TEST(TransportCurve, AKeyNeverLearntIsRefusedAfterTheWait) {
  const auto ka = generate_curve_keypair();
  const auto kb = generate_curve_keypair();
  auto oa = with_curve("A", ka);
  oa.refused_handshake_wait = 300ms;
  Transport a(oa);
  Transport b(with_curve("B", kb));
  a.add_peer(address_of(b, kb.public_key));
  const auto start = std::chrono::steady_clock::now();
  Reply r = a.request(to("B", "svc"), kLong);
  EXPECT_EQ(r.error, ErrorCode::PeerUnreachable);
  EXPECT_LT(std::chrono::steady_clock::now() - start, kLong / 2);
  EXPECT_GE(a.stats().handshakes_refused, 1u);
}

// ---------------------------------------------------------------- sender identity

Envelope notify_envelope(const std::string& from_node, const std::string& target, std::string_view payload) {
  static MessageIdGenerator ids;
  Envelope e;
  e.id = ids.next();
  e.type = MessageType::Notify;
  e.sender_agent = "tester";
  e.sender_node = from_node;
  e.target = target;
  e.payload = bytes(payload);
  return e;
}

// A node may only speak for itself: an envelope naming another sender node
// than its connection's is refused and counted, with CURVE or without.
void expect_forgery_refused(Transport& a, Transport& b) {
  auto inbox = b.open_inbox("svc");
  ASSERT_EQ(a.send_raw_for_test("B", encode(notify_envelope("C", "svc", "forged"))), ErrorCode::None);
  Envelope as_request = notify_envelope("C", "svc", "forged request");
  as_request.type = MessageType::Request;
  ASSERT_EQ(a.send_raw_for_test("B", encode(as_request)), ErrorCode::None);
  ASSERT_TRUE(eventually([&] { return b.stats().frames_forged == 2; })) << b.stats().frames_forged;
  // The genuine article still gets through, and only it.
  ASSERT_EQ(a.notify(to("B", "svc", "genuine")), ErrorCode::None);
  auto got = inbox->pop(kLong);
  ASSERT_TRUE(got);
  EXPECT_EQ(text(got->envelope.payload), "genuine");
  EXPECT_EQ(got->envelope.sender_node, "A");
  EXPECT_EQ(got->source, "A");
  EXPECT_EQ(inbox->size(), 0u);
}

TEST(TransportIdentity, PlainSenderNodeMustMatchTheConnection) {
  Transport a(options_for("A"));
  Transport b(options_for("B"));
  link(a, b);
  expect_forgery_refused(a, b);
}

TEST(TransportIdentity, CurveSenderNodeMustMatchTheKeysOwner) {
  const auto ka = generate_curve_keypair();
  const auto kb = generate_curve_keypair();
  Transport a(with_curve("A", ka));
  Transport b(with_curve("B", kb));
  link(a, b, ka.public_key, kb.public_key);
  expect_forgery_refused(a, b);
}

// Under CURVE a member's key is its identity: once B forgets A, or learns a
// new key for A, B closes A's connection (ZeroMQ would keep it open) and
// A's reconnects are refused at the handshake, so nothing A sends is
// delivered; given A's key back, B lets A in again.
TEST(TransportIdentity, ARevokedKeyClosesItsConnection) {
  const auto ka = generate_curve_keypair();
  const auto kb = generate_curve_keypair();
  Transport a(with_curve("A", ka));
  Transport b(with_curve("B", kb));
  link(a, b, ka.public_key, kb.public_key);
  auto inbox = b.open_inbox("svc");
  ASSERT_EQ(a.notify(to("B", "svc", "1")), ErrorCode::None);
  ASSERT_TRUE(inbox->pop(kLong));

  // remove_peer takes effect on B's transport thread: a notify may still
  // get in before it does. After it, A's connection is closed and A's
  // DEALER, reconnecting, is turned away by ZAP (A then finds B
  // unreachable: its notifies fail at once or wait in its queue).
  const auto refused_before = b.stats().frames_unauthenticated;
  b.remove_peer("A");
  ASSERT_TRUE(eventually([&] {
    (void)a.notify(to("B", "svc", "after removal"));
    const auto s = b.stats();
    return s.connections_revoked >= 1 && s.frames_unauthenticated > refused_before;
  })) << b.stats().connections_revoked << " " << b.stats().frames_unauthenticated;
  while (inbox->pop(std::chrono::milliseconds(0))) {
  }

  b.add_peer(address_of(a, generate_curve_keypair().public_key));  // re-keyed: not A's real key
  const auto refused = b.stats().frames_unauthenticated;
  (void)a.notify(to("B", "svc", "after re-key"));
  ASSERT_TRUE(eventually([&] { return b.stats().frames_unauthenticated > refused; }));
  EXPECT_EQ(inbox->size(), 0u);

  b.add_peer(address_of(a, ka.public_key));
  ASSERT_TRUE(eventually([&] {
    a.notify(to("B", "svc", "back"));
    return inbox->size() > 0;
  }));
  auto got = inbox->pop(kLong);
  ASSERT_TRUE(got);
  EXPECT_EQ(got->source, "A");
}

// A raw CURVE DEALER and the PAIR socket its monitor events arrive on.
struct MonitoredDealer {
  zmq::socket_t dealer;
  zmq::socket_t events;
};

MonitoredDealer monitored_dealer(zmq::context_t& ctx, const std::string& name, const CurveKeyPair& own,
                                 const std::string& server_key, int events) {
  MonitoredDealer m{zmq::socket_t(ctx, zmq::socket_type::dealer), zmq::socket_t(ctx, zmq::socket_type::pair)};
  m.dealer.set(zmq::sockopt::linger, 0);
  m.dealer.set(zmq::sockopt::curve_serverkey, server_key);
  m.dealer.set(zmq::sockopt::curve_publickey, own.public_key);
  m.dealer.set(zmq::sockopt::curve_secretkey, own.secret_key);
  const std::string endpoint = "inproc://" + name;
  EXPECT_EQ(zmq_socket_monitor(m.dealer.handle(), endpoint.c_str(), events), 0);
  m.events.connect(endpoint);
  return m;
}

// The next monitor event among `wanted` within `wait`, or 0. An event is
// two frames: 16-bit id and 32-bit value, then the endpoint.
int next_event(zmq::socket_t& events, int wanted, std::chrono::milliseconds wait) {
  const auto deadline = std::chrono::steady_clock::now() + wait;
  events.set(zmq::sockopt::rcvtimeo, 50);
  do {  // at least one look, even with no time to wait
    zmq::message_t event;
    if (!events.recv(event)) continue;
    int id = 0;
    if (event.size() >= 2) {
      const auto* b = static_cast<const std::uint8_t*>(event.data());
      id = b[0] | (b[1] << 8);
    }
    if (event.more()) (void)events.recv(event);  // the endpoint frame
    if ((id & wanted) != 0) return id;
  } while (std::chrono::steady_clock::now() < deadline);
  return 0;
}

// A connection whose key B stopped believing is closed when its next frame
// arrives too, whoever holds it: here a raw DEALER with A's key that B
// admitted while A was a member.
TEST(TransportIdentity, AFrameOverARevokedKeyClosesItsConnection) {
  const auto ka = generate_curve_keypair();
  const auto kb = generate_curve_keypair();
  Transport b(with_curve("B", kb));
  b.add_peer(PeerAddress{"A", "127.0.0.1", 1, ka.public_key});  // nobody listens there: B only knows A's key
  auto inbox = b.open_inbox("svc");

  // add_peer takes effect on B's transport thread, so a DEALER may reach
  // B's ZAP handler before B knows A's key; libzmq does not retry a
  // handshake that was refused. Such a DEALER is replaced by a new one.
  zmq::context_t ctx;
  std::optional<MonitoredDealer> admitted;
  constexpr int kHandshake = ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH;
  for (int attempt = 0; attempt < 10 && !admitted; ++attempt) {
    auto m = monitored_dealer(ctx, "revoked-dealer-" + std::to_string(attempt), ka, kb.public_key,
                              kHandshake | ZMQ_EVENT_DISCONNECTED);
    m.dealer.connect("tcp://127.0.0.1:" + std::to_string(b.bound_port()));
    const int event = next_event(m.events, kHandshake, kLong);
    if (event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
      admitted = std::move(m);
    } else {
      zmq_socket_monitor(m.dealer.handle(), nullptr, 0);
    }
  }
  ASSERT_TRUE(admitted) << "B never admitted A's key";
  zmq::socket_t& dealer = admitted->dealer;
  const auto frame = encode(notify_envelope("A", "svc", "while a member"));
  dealer.send(zmq::buffer(frame), zmq::send_flags::none);
  ASSERT_TRUE(inbox->pop(kLong));

  // B forgets A: the open connection is closed (seen by the DEALER as a
  // disconnect), and what the DEALER sends afterwards is never delivered.
  b.remove_peer("A");
  bool disconnected = false;
  ASSERT_TRUE(eventually([&] {
    dealer.send(zmq::buffer(frame), zmq::send_flags::dontwait);
    if (next_event(admitted->events, ZMQ_EVENT_DISCONNECTED, 0ms) != 0) disconnected = true;
    return disconnected && b.stats().connections_revoked >= 1;
  })) << b.stats().connections_revoked;
  EXPECT_EQ(inbox->size(), 0u);
  zmq_socket_monitor(dealer.handle(), nullptr, 0);
}

// A member cannot take another's place: C, whose key B knows, announces
// itself as A at B's ROUTER (a routing id is only a claim) and names A as
// the sender. Nothing it sends is delivered, and B's requests to A still
// get A's answers.
TEST(TransportIdentity, AMemberCannotSpeakForAnother) {
  const auto ka = generate_curve_keypair();
  const auto kb = generate_curve_keypair();
  const auto kc = generate_curve_keypair();
  Transport a(with_curve("A", ka));
  Transport b(with_curve("B", kb));
  Transport c(with_curve("C", kc));
  link(a, b, ka.public_key, kb.public_key);
  link(c, b, kc.public_key, kb.public_key);
  auto inbox = b.open_inbox("svc");
  auto echo = a.open_inbox("echo", 0, [](const EnvelopeView& req, std::vector<std::uint8_t>& out) {
    out.assign(req.payload.begin(), req.payload.end());
    return ErrorCode::None;
  });

  // A raw DEALER with C's key, claiming A's routing id.
  zmq::context_t ctx;
  zmq::socket_t dealer(ctx, zmq::socket_type::dealer);
  dealer.set(zmq::sockopt::linger, 0);
  dealer.set(zmq::sockopt::routing_id, "A");
  dealer.set(zmq::sockopt::curve_serverkey, kb.public_key);
  dealer.set(zmq::sockopt::curve_publickey, kc.public_key);
  dealer.set(zmq::sockopt::curve_secretkey, kc.secret_key);
  dealer.connect("tcp://127.0.0.1:" + std::to_string(b.bound_port()));
  const auto frame = encode(notify_envelope("A", "svc", "from A, honestly"));
  dealer.send(zmq::buffer(frame), zmq::send_flags::none);
  ASSERT_TRUE(eventually([&] { return b.stats().frames_forged >= 1; }));
  EXPECT_EQ(inbox->size(), 0u);

  Reply r = b.request(to("A", "echo", "still A"), kLong);
  ASSERT_TRUE(r.ok()) << to_string(r.error);
  EXPECT_EQ(text(r.envelope.payload), "still A");
  EXPECT_EQ(r.envelope.sender_node, "A");
  // A's own messages are still A's.
  ASSERT_EQ(a.notify(to("B", "svc", "really A")), ErrorCode::None);
  auto got = inbox->pop(kLong);
  ASSERT_TRUE(got);
  EXPECT_EQ(got->source, "A");
}

// ---------------------------------------------------------------- restart, ipc

TEST_F(TransportTest, RestartedPeerReceivesWithoutReAdd) {
  make_pair();
  const std::uint16_t port = b->bound_port();
  b.reset();
  auto ob = options_for("B");
  ob.port = port;
  b = std::make_unique<Transport>(std::move(ob));
  auto inbox = b->open_inbox("agent");
  b->add_peer(address_of(*a));
  // A keeps its peer entry; its DEALER reconnects (and the new B's DEALER
  // takes over the routing id "B" at A's ROUTER).
  bool delivered = eventually([&] {
    a->notify(to("B", "agent", "again"));
    return inbox->pop(50ms).has_value();
  });
  EXPECT_TRUE(delivered);
  EXPECT_TRUE(eventually([&] { return a->peer_connected("B"); }));
  auto svc = a->open_inbox("svc", 0, [](const EnvelopeView&, std::vector<std::uint8_t>& out) {
    out = bytes("from A");
    return ErrorCode::None;
  });
  Reply r = b->request(to("A", "svc"), kLong);
  ASSERT_TRUE(r.ok()) << to_string(r.error);
  EXPECT_EQ(text(r.envelope.payload), "from A");
}

TEST_F(TransportTest, IpcIsUsedForSameHostPeers) {
  char tmpl[] = "/tmp/mesh-ipc-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  {
    auto oa = options_for("A");
    auto ob = options_for("B");
    oa.ipc_dir = dir;
    ob.ipc_dir = dir;
    make_pair(std::move(oa), std::move(ob));
    EXPECT_TRUE(std::filesystem::exists(dir + "/A.zmq"));
    EXPECT_TRUE(std::filesystem::exists(dir + "/B.zmq"));
    auto inbox = b->open_inbox("agent");
    ASSERT_EQ(a->notify(to("B", "agent", "over ipc")), ErrorCode::None);
    auto got = inbox->pop(kLong);
    ASSERT_TRUE(got);
    EXPECT_EQ(text(got->envelope.payload), "over ipc");
    a.reset();
    b.reset();
  }
  std::filesystem::remove_all(dir);
}

// ---------------------------------------------------------------- idle

// ThreadSanitizer's runtime has a thread of its own that wakes every 100 ms.
#if defined(__SANITIZE_THREAD__)
constexpr bool kTsanRuntime = true;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
constexpr bool kTsanRuntime = true;
#else
constexpr bool kTsanRuntime = false;
#endif
#else
constexpr bool kTsanRuntime = false;
#endif

// An idle node sleeps: nothing in the transport wakes on a timer of its
// own. Two transports linked to each other are left alone for a while and
// their process's wake-ups counted (voluntary context switches of every
// thread, tests/support/wakeups.hpp). What must wake is ZeroMQ's
// heartbeating, on libzmq's I/O threads: each of the two connections (A's
// DEALER to B's ROUTER, and B's to A's) has both ends send a PING every
// heartbeat_interval and answer the other end's PING with a PONG, so per
// end and interval: its timer, the PING read and the PONG read, at most
// three wake-ups (measured: about one). The transport threads have nothing
// to do: no deadline is pending, and heartbeats never reach them.
// These are counts, not timings. With the 100 ms poll cap the loop used to
// have, this process woke 91-116 times in the window, 65-88 of them on the
// transport threads; without it, 27, none on the transport threads.
TEST_F(TransportTest, IdleNodesWakeOnlyForHeartbeats) {
  auto oa = options_for("A");
  auto ob = options_for("B");
  oa.heartbeat_interval = ob.heartbeat_interval = 1s;
  oa.heartbeat_timeout = ob.heartbeat_timeout = 3s;
  make_pair(std::move(oa), std::move(ob));
  // Used once each way, then left to settle (handshake events, the first
  // heartbeats).
  auto inbox_a = a->open_inbox("agent");
  auto inbox_b = b->open_inbox("agent");
  ASSERT_EQ(a->notify(to("B", "agent")), ErrorCode::None);
  ASSERT_EQ(b->notify(to("A", "agent")), ErrorCode::None);
  ASSERT_TRUE(inbox_b->pop(kLong));
  ASSERT_TRUE(inbox_a->pop(kLong));
  std::this_thread::sleep_for(1500ms);

  constexpr std::uint64_t kWindowSeconds = 5;
  const auto before = test::WakeupSnapshot::take();
  std::this_thread::sleep_for(std::chrono::seconds(kWindowSeconds));
  const auto woke = test::WakeupSnapshot::take().since(before);

  const std::uint64_t total = test::wakeups_total(woke);
  const std::uint64_t transport_threads = test::wakeups_of(woke, "mesh-transport");
  const std::uint64_t node_threads = transport_threads + test::wakeups_of(woke, "ZMQbg/");
  constexpr std::uint64_t kHeartbeatWakeups = 2 /* connections */ * 2 /* ends */ * 3 * kWindowSeconds;
  // The test's own thread sleeps once; the sanitizer's thread, if any.
  constexpr std::uint64_t kOthers = 5 + (kTsanRuntime ? 10 * kWindowSeconds + 5 : 0);
  std::printf("wake-ups over %llu s idle: %llu in the process, %llu on the node's threads, %llu of them "
              "on the transport threads (heartbeats: at most %llu)\n%s",
              static_cast<unsigned long long>(kWindowSeconds), static_cast<unsigned long long>(total),
              static_cast<unsigned long long>(node_threads), static_cast<unsigned long long>(transport_threads),
              static_cast<unsigned long long>(kHeartbeatWakeups), test::describe_wakeups(woke).c_str());
  // A wake-up a second between the two would be a tenth of the old cap's.
  EXPECT_LE(transport_threads, kWindowSeconds);
  EXPECT_LE(node_threads, kHeartbeatWakeups);
  EXPECT_LE(total, kHeartbeatWakeups + kOthers);
}

// A thread blocked in a direct request sleeps until its reply, its peer's
// failure or its deadline (the receive in 100 ms slices it replaced woke it
// ten times a second to look for failures).
TEST_F(TransportTest, AThreadWaitingOnARequestChannelSleeps) {
  make_pair();
  auto echo = b->open_inbox("echo", 0, echo_handler());
  auto svc = b->open_inbox("svc");
  ASSERT_TRUE(warm_direct(*a, "B", "echo"));
  const auto direct_before = a->stats().requests_direct;
  std::atomic<pid_t> tid{0};
  auto f = std::async(std::launch::async, [&] {
    tid = ::gettid();
    return a->request(to("B", "svc"), 600s);
  });
  auto in = svc->pop(kLong);
  ASSERT_TRUE(in);
  const auto before = test::WakeupSnapshot::take();
  std::this_thread::sleep_for(2s);
  const auto woke = test::WakeupSnapshot::take().since(before);
  const auto waiter = woke.find(std::to_string(tid.load()));
  ASSERT_NE(waiter, woke.end());
  std::printf("the waiting thread woke %llu times in 2 s\n", static_cast<unsigned long long>(waiter->second.count));
  EXPECT_LE(waiter->second.count, 2u) << test::describe_wakeups(woke);
  // And wakes for its reply.
  ASSERT_EQ(b->respond(*in, bytes("done")), ErrorCode::None);
  ASSERT_EQ(f.wait_for(kLong), std::future_status::ready);
  Reply r = f.get();
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(text(r.envelope.payload), "done");
  EXPECT_EQ(a->stats().requests_direct, direct_before + 1);
}

TEST(TransportOptionsTest, BadOptionsThrow) {
  EXPECT_THROW(Transport{options_for("")}, TransportError);
  EXPECT_THROW(Transport{options_for("a#1")}, TransportError);
  auto o = options_for("A");
  o.bind_address = "not-an-address";
  EXPECT_THROW(Transport{o}, TransportError);
  Transport first(options_for("A"));
  auto same_port = options_for("B");
  same_port.port = first.bound_port();
  EXPECT_THROW(Transport{same_port}, TransportError);
  EXPECT_NE(first.endpoint().find(std::to_string(first.bound_port())), std::string::npos);
}

}  // namespace
}  // namespace mesh::transport
