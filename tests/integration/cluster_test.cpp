// Real clusters of Membership instances on loopback, with the local profile.
// Every wait is a bounded poll with a generous deadline; nothing asserts on
// how long a step took.
#include <gtest/gtest.h>

#include <boost/asio/ip/address.hpp>
#include <boost/asio/post.hpp>

#include <cstdio>
#include <future>

#include "harness.hpp"
#include "wakeups.hpp"

namespace mesh::swim::test {
namespace {

bool all_alive(const Membership& m, std::initializer_list<const char*> names) {
  for (const char* n : names)
    if (!sees(m, n, MemberState::Alive)) return false;
  return true;
}

// S1 is the seed; S2 and S3 join through it. All see all alive. S3 is shut
// down without a word: S1 and S2 declare it dead. S2 leaves gracefully: S1
// sees it left. S3 comes back under the same name on a new port and is
// alive again at S1.
TEST(DriverCluster, FormDetectLeaveRestart) {
  TestNode s1(local_config("s1"), loopback(), 1, {{"role", "seed"}});
  auto s2 = std::make_unique<TestNode>(local_config("s2"), loopback(), 2);
  auto s3 = std::make_unique<TestNode>(local_config("s3"), loopback(), 3);
  std::atomic<int> first_joins{0};
  s2->m->join({seed_of(*s1.m)}, [&] { ++first_joins; });
  s3->m->join({seed_of(*s1.m)}, [&] { ++first_joins; });

  ASSERT_TRUE(eventually([&] {
    return all_alive(*s1.m, {"s1", "s2", "s3"}) && all_alive(*s2->m, {"s1", "s2", "s3"}) &&
           all_alive(*s3->m, {"s1", "s2", "s3"});
  })) << "the three nodes never all saw each other alive";
  EXPECT_EQ(first_joins.load(), 2);
  // Tags travel as Serf-encoded meta.
  for (const auto& i : s3->m->members())
    if (i.member.name == "s1") {
      EXPECT_EQ(i.tags.at("role"), "seed");
    }
  EXPECT_TRUE(s1.events.has(EventKind::Joined, "s2"));
  EXPECT_TRUE(s1.events.has(EventKind::Joined, "s3"));

  // S3 vanishes without leaving.
  const std::uint16_t old_port = s3->m->bound_port();
  s3.reset();
  ASSERT_TRUE(eventually([&] {
    return sees(*s1.m, "s3", MemberState::Dead) && sees(*s2->m, "s3", MemberState::Dead);
  })) << "s3's failure was not detected";
  EXPECT_TRUE(s1.events.has(EventKind::Dead, "s3"));

  // S2 leaves gracefully.
  EXPECT_TRUE(s2->m->leave(5s));
  ASSERT_TRUE(eventually([&] { return sees(*s1.m, "s2", MemberState::Left); }))
      << "s1 did not see s2 leave";
  EXPECT_TRUE(s1.events.has(EventKind::Left, "s2"));
  EXPECT_FALSE(s1.events.has(EventKind::Dead, "s2"));
  s2.reset();

  // S3 restarts under the same name on another port. Until S1 reaps the
  // dead S3 (GossipToTheDeadTime) the new address is a conflict; then a
  // push/pull between them (S3's periodic one, or S1's reconnect) brings
  // it back.
  auto s3b = std::make_unique<TestNode>(local_config("s3"), loopback(), 33);
  ASSERT_NE(s3b->m->bound_port(), old_port);
  s3b->m->join({seed_of(*s1.m)});
  ASSERT_TRUE(eventually([&] { return sees(*s1.m, "s3", MemberState::Alive); }, 90s))
      << "the restarted s3 never became alive at s1";
  EXPECT_TRUE(eventually([&] { return sees(*s3b->m, "s1", MemberState::Alive); }));
  for (const auto& i : s1.m->members())
    if (i.member.name == "s3") {
      EXPECT_EQ(i.member.addr.port, s3b->m->bound_port());
    }
}

// Several nodes on one io_context run by two threads: the strand keeps each
// node's handlers serial while the threads share the work.
TEST(DriverCluster, SharedIoContextTwoThreads) {
  IoThreads io(2);
  std::vector<std::unique_ptr<Membership>> nodes;
  for (int i = 0; i < 4; ++i) {
    nodes.push_back(std::make_unique<Membership>(io.io(), local_config("n" + std::to_string(i)),
                                                 loopback(), 100 + i));
    nodes.back()->start({{"i", std::to_string(i)}});
  }
  for (int i = 1; i < 4; ++i) nodes[i]->join({seed_of(*nodes[0])});
  ASSERT_TRUE(eventually([&] {
    for (const auto& n : nodes)
      if (!all_alive(*n, {"n0", "n1", "n2", "n3"})) return false;
    return true;
  }));
  // Snapshots from many threads at once.
  std::vector<std::thread> readers;
  std::atomic<int> ok{0};
  for (int t = 0; t < 4; ++t)
    readers.emplace_back([&, t] {
      for (int k = 0; k < 50; ++k) {
        // Stable once converged: four members known (whatever their state).
        if (nodes[t]->members().size() == 4) ++ok;
        (void)nodes[t]->node_stats();
        (void)nodes[t]->driver_stats();
        (void)nodes[t]->health_score();
      }
    });
  for (auto& r : readers) r.join();
  EXPECT_EQ(ok.load(), 200);
  EXPECT_TRUE(nodes[3]->set_tags({{"i", "three"}}));
  EXPECT_TRUE(eventually([&] {
    for (const auto& i : nodes[0]->members())
      if (i.member.name == "n3") return i.tags.count("i") != 0 && i.tags.at("i") == "three";
    return false;
  }));
  nodes.clear();
}

// A seed that is not there yet: join() keeps retrying with backoff and
// succeeds once the seed appears.
TEST(DriverCluster, JoinRetriesUntilSeedAppears) {
  const std::uint16_t port = free_port();
  TestNode late(local_config("late"), loopback(), 7);
  std::atomic<bool> joined{false};
  late.m->join({"127.0.0.1:" + std::to_string(port)}, [&] { joined = true; });
  ASSERT_TRUE(eventually([&] { return late.m->driver_stats().join_attempts >= 2; }));
  EXPECT_FALSE(joined.load());
  NetOptions n = loopback();
  n.bind_port = port;
  TestNode seed(local_config("seed"), n, 8);
  ASSERT_TRUE(eventually([&] { return joined.load(); }, 60s));
  EXPECT_TRUE(eventually([&] { return sees(*seed.m, "late", MemberState::Alive); }));
}

TEST(DriverCluster, ResolvesNamesAndRejectsBadSeeds) {
  TestNode a(local_config("a"), loopback(), 11);
  TestNode b(local_config("b"), loopback(), 12);
  std::atomic<bool> joined{false};
  b.m->join({"not a seed", "localhost:" + std::to_string(a.m->bound_port())}, [&] { joined = true; });
  ASSERT_TRUE(eventually([&] { return joined.load(); }));
  EXPECT_TRUE(eventually([&] { return sees(*a.m, "b", MemberState::Alive); }));
}

TEST(DriverCluster, ConstructionErrorsAreOneLine) {
  IoThreads io;
  NetOptions any;
  any.bind_host = "0.0.0.0";
  any.bind_port = 0;
  EXPECT_THROW(Membership(io.io(), local_config("x"), any, 1), std::runtime_error);  // no advertise
  NetOptions bad = loopback("not-an-ip");
  EXPECT_THROW(Membership(io.io(), local_config("x"), bad, 1), std::runtime_error);
  EXPECT_THROW(Membership(io.io(), local_config(""), loopback(), 1), std::runtime_error);
  // The port is taken: binding it again fails.
  Membership first(io.io(), local_config("first"), loopback(), 1);
  NetOptions same = loopback();
  same.bind_port = first.bound_port();
  EXPECT_THROW(Membership(io.io(), local_config("second"), same, 1), std::runtime_error);
  // Wildcard bind with an explicit advertise address is fine.
  any.advertise_host = "127.0.0.1";
  Membership ok(io.io(), local_config("ok"), any, 1);
  EXPECT_EQ(ok.advertise().to_string(), "127.0.0.1:" + std::to_string(ok.bound_port()));
  // Tags over 512 bytes are refused at start.
  EXPECT_THROW(ok.start({{"big", std::string(600, 'x')}}), std::invalid_argument);
}

// Event callbacks run on the strand and may call back: snapshots run inline,
// leave() refuses (it would wait on its own strand), shutdown() works.
TEST(DriverCluster, CallbacksMayCallBack) {
  TestNode a(local_config("cb-a"), loopback(), 91);
  std::atomic<std::size_t> seen_members{0};
  std::atomic<bool> leave_refused{false}, shut{false};
  Membership* am = a.m.get();
  a.m->on_event([&, am](const MemberEvent& e) {
    if (e.member.name != "cb-b") return;
    if (e.kind == EventKind::Joined) {
      seen_members = am->members().size();
      try {
        am->leave(1s);
      } catch (const std::logic_error&) {
        leave_refused = true;
      }
    }
    if (e.kind == EventKind::Left) {
      am->shutdown();
      shut = true;
    }
  });
  TestNode b(local_config("cb-b"), loopback(), 92);
  std::atomic<bool> first{false};
  b.m->join({seed_of(*a.m)}, [&, bm = b.m.get()] { first = bm->members().size() == 2; });
  ASSERT_TRUE(eventually([&] { return seen_members.load() == 2; }));
  EXPECT_TRUE(leave_refused.load());
  EXPECT_TRUE(eventually([&] { return first.load(); }));
  EXPECT_TRUE(b.m->leave(5s));
  ASSERT_TRUE(eventually([&] { return shut.load(); }));
  // Shut down, the state is still there to read.
  EXPECT_EQ(state_of(*a.m, "cb-b"), MemberState::Left);
}

// A call waiting on the strand returns when the io_context is stopped
// under it with the call's handler still queued (Asio keeps it for the
// next run()): the call then runs inline, and the handler, if a later
// run() gets to it, does nothing. A handler of the test's own keeps the
// io_context's thread busy while the calls queue up behind it.
TEST(DriverCluster, CallsReturnWhenTheIoContextStopsUnderThem) {
  asio::io_context io;
  auto guard = asio::make_work_guard(io);
  Membership m(io, local_config("stopped"), loopback(), 93);
  m.start({});
  std::promise<void> busy;
  std::promise<void> release;
  auto released = release.get_future();
  asio::post(io, [&] {
    busy.set_value();
    released.wait();
  });
  std::thread runner([&] { io.run(); });
  busy.get_future().wait();
  auto members = std::async(std::launch::async, [&] { return m.members(); });
  auto left = std::async(std::launch::async, [&] { return m.leave(30s); });
  std::this_thread::sleep_for(200ms);  // most likely both wait by now; either way they must return
  io.stop();
  release.set_value();
  runner.join();
  ASSERT_EQ(members.wait_for(30s), std::future_status::ready);
  const auto seen = members.get();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].member.name, "stopped");
  ASSERT_EQ(left.wait_for(30s), std::future_status::ready);
  EXPECT_FALSE(left.get());
  io.restart();
  io.poll();  // the queued handlers, claimed already: nothing happens
  io.stop();  // nothing runs the io_context any more: m shuts down inline
}

// A lone idle member wakes for SWIM's protocol timers and nothing else:
// its gossip, probe and push-pull ticks (the local profile's 100 ms, 1 s
// and 15 s). Counted as in tests/transport: voluntary context switches of
// every thread of the process over a window of idleness.
TEST(DriverIdle, ALoneMemberWakesOnlyForItsTimers) {
  const Config c = local_config("idle");
  TestNode a(c, loopback(), 94);
  ASSERT_TRUE(eventually([&] { return sees(*a.m, "idle", MemberState::Alive); }));
  std::this_thread::sleep_for(1s);
  constexpr auto kWindow = 5s;
  const auto before = mesh::test::WakeupSnapshot::take();
  std::this_thread::sleep_for(kWindow);
  const auto woke = mesh::test::WakeupSnapshot::take().since(before);
  const std::uint64_t total = mesh::test::wakeups_total(woke);
  auto ticks = [&](Duration every) { return static_cast<std::uint64_t>(kWindow / every) + 1; };
  const std::uint64_t timers = ticks(c.gossip_interval) + ticks(c.probe_interval) + ticks(c.push_pull_interval);
  std::printf("wake-ups over 5 s idle: %llu (protocol timers: %llu)\n%s", static_cast<unsigned long long>(total),
              static_cast<unsigned long long>(timers), mesh::test::describe_wakeups(woke).c_str());
  // The timers, the test's own thread, and a sanitizer's thread if any
  // (ThreadSanitizer's wakes every 100 ms).
  EXPECT_LE(total, 2 * timers + 10);
}

// The IPv6 loopback, if this machine has it.
TEST(DriverIpv6, TwoNodesOnLoopback) {
  {
    IoThreads probe;
    try {
      Membership m(probe.io(), local_config("probe"), loopback("::1"), 1);
    } catch (const std::exception& e) {
      GTEST_SKIP() << "no IPv6 loopback here: " << e.what();
    }
  }
  TestNode a(local_config("v6a"), loopback("::1"), 21, {{"family", "v6"}});
  TestNode b(local_config("v6b"), loopback("::1"), 22);
  EXPECT_EQ(a.m->advertise().ip_len, 16);
  b.m->join({seed_of(*a.m)});
  ASSERT_TRUE(eventually([&] {
    return all_alive(*a.m, {"v6a", "v6b"}) && all_alive(*b.m, {"v6a", "v6b"});
  }));
  for (const auto& i : b.m->members()) {
    EXPECT_EQ(i.member.addr.ip_len, 16);
    if (i.member.name == "v6a") {
      EXPECT_EQ(i.tags.at("family"), "v6");
    }
  }
  EXPECT_TRUE(b.m->leave(5s));
  EXPECT_TRUE(eventually([&] { return sees(*a.m, "v6b", MemberState::Left); }));
}

}  // namespace
}  // namespace mesh::swim::test
