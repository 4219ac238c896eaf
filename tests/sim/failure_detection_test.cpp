// Failure detection scenarios: crashes, pauses, blocked links, restarts,
// graceful leaves and meta updates, each for several seeds.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <iostream>

#include "sim_test_util.hpp"

namespace mesh::sim::test {
namespace {

// S4 crashes. Someone's probe of S4 fails, S4 is suspected, nobody refutes,
// and after the suspicion timeout S4 is dead in every live member's eyes.
// Nobody else was ever suspected.
TEST(SimFailureDetection, CrashedNodeIsDeadEverywhere) {
  for (auto seed : test_seeds()) {
    MESH_SEED_TRACE(seed);
    Cluster c(options_for(seed));
    ASSERT_TRUE(form_cluster(c, 5, 10s));
    c.run_for(5s);
    c.crash(3);
    // N = 5: suspicion 4 s .. 24 s, plus a few probe rounds to notice.
    EXPECT_TRUE(c.wait_until([&] { return c.everyone_sees(3, MemberState::Dead); }, 40s));
    ASSERT_EQ(c.kills().size(), 1u);
    EXPECT_TRUE(c.kills()[0].dead_everywhere.has_value());
    for (NodeId x : {0, 1, 2, 4}) {
      EXPECT_EQ(c.count_events(EventKind::Suspect, x), 0u) << c.name(x) << " was suspected";
      EXPECT_EQ(c.count_events(EventKind::Dead, x), 0u);
    }
    EXPECT_EQ(c.false_deaths(), 0u);
    EXPECT_EQ(c.check_views_for_test(), "");
  }
}

// S3 stops (SIGSTOP) for 3 s, less than the shortest suspicion timeout
// (4 s at N = 5). Its probers fail to reach it and suspect it; when it
// continues it reads the suspicion (piggybacked on the pings that wait in its
// socket buffer) and refutes with a higher incarnation. It is alive again
// everywhere and was never declared dead.
TEST(SimFailureDetection, ShortPauseIsSuspectedThenRefutedNeverDead) {
  for (auto seed : test_seeds()) {
    MESH_SEED_TRACE(seed);
    Cluster c(options_for(seed));
    ASSERT_TRUE(form_cluster(c, 5, 10s));
    c.run_for(5s);
    const auto inc = c.node(2).incarnation();
    const Time paused_at = c.now();
    c.pause(2);
    c.run_for(3s);
    c.resume(2);
    EXPECT_TRUE(c.wait_until([&] { return c.all_see_alive(); }, 20s));
    c.run_for(30s);
    EXPECT_GT(c.count_events(EventKind::Suspect, 2, std::nullopt, paused_at), 0u)
        << "a 3 s pause went unnoticed";
    EXPECT_EQ(c.count_events(EventKind::Dead, 2), 0u);
    EXPECT_GT(c.node(2).incarnation(), inc) << "S3 did not refute";
    EXPECT_GT(c.node(2).stats().refutations, 0u);
    EXPECT_TRUE(c.all_see_alive());
    EXPECT_EQ(c.false_deaths(), 0u);
  }
}

// S3 stops for 60 s, longer than the longest suspicion timeout (24 s): it is
// declared dead everywhere, legitimately. When it continues, it learns of
// its own death (from gossip to the dead waiting in its buffer, or from
// push/pull) and refutes; it is alive again everywhere.
TEST(SimFailureDetection, LongPauseIsDeadThenRefutedOnResume) {
  for (auto seed : test_seeds()) {
    MESH_SEED_TRACE(seed);
    Cluster c(options_for(seed));
    ASSERT_TRUE(form_cluster(c, 5, 10s));
    c.run_for(5s);
    const auto inc = c.node(2).incarnation();
    c.pause(2);
    EXPECT_TRUE(c.wait_until([&] { return c.everyone_sees(2, MemberState::Dead); }, 60s));
    c.run_until(c.now() + 1s);
    c.resume(2);
    EXPECT_TRUE(c.wait_until([&] { return c.all_see_alive(); }, 90s))
        << "S3 did not come back after its pause";
    EXPECT_GT(c.node(2).incarnation(), inc);
    for (NodeId o : {0, 1, 3, 4}) {
      const swim::Member* m = c.node(o).member(c.name(2));
      ASSERT_NE(m, nullptr);
      EXPECT_GT(m->incarnation, inc) << c.name(o);
    }
    EXPECT_EQ(c.false_deaths(), 0u);
  }
}

// S1 cannot send to S2 (one-way block), so neither S1's pings reach S2 nor
// S2's acks reach S1 when S2 probes S1. S3, S4 and S5 vouch: indirect probes
// through them succeed, so S2 is never even suspected by S1, nor S1 by S2,
// for the whole run.
TEST(SimFailureDetection, OneWayBlockIsBridgedByIndirectProbes) {
  for (auto seed : test_seeds()) {
    MESH_SEED_TRACE(seed);
    Cluster c(options_for(seed));
    ASSERT_TRUE(form_cluster(c, 5, 10s));
    const Time from = c.now();
    c.block(0, 1);
    c.run_for(180s);
    EXPECT_EQ(c.count_events(EventKind::Suspect, 1, 0, from), 0u) << "S1 suspected S2";
    EXPECT_EQ(c.count_events(EventKind::Suspect, 0, 1, from), 0u) << "S2 suspected S1";
    EXPECT_EQ(c.count_events(EventKind::Suspect, std::nullopt, std::nullopt, from), 0u);
    EXPECT_GT(c.total_node_stats().indirect_probes_served, 0u);
    EXPECT_TRUE(c.all_see_alive());
  }
}

// The same with both directions blocked between S1 and S2.
TEST(SimFailureDetection, TwoWayBlockIsBridgedByIndirectProbes) {
  for (auto seed : test_seeds()) {
    MESH_SEED_TRACE(seed);
    Cluster c(options_for(seed));
    ASSERT_TRUE(form_cluster(c, 5, 10s));
    const Time from = c.now();
    c.block_both(0, 1);
    c.run_for(180s);
    EXPECT_EQ(c.count_events(EventKind::Suspect, 1, 0, from), 0u) << "S1 suspected S2";
    EXPECT_EQ(c.count_events(EventKind::Suspect, 0, 1, from), 0u) << "S2 suspected S1";
    EXPECT_EQ(c.count_events(EventKind::Suspect, std::nullopt, std::nullopt, from), 0u);
    EXPECT_TRUE(c.all_see_alive());
  }
}

// S5 crashes and is declared dead; a new process comes up under S5's name
// and address (a fresh Node, a new seed, incarnation 1) and joins through
// S1. The push/pull tells it that S5 is dead at a higher incarnation, so it
// refutes: S5 is alive everywhere with an incarnation above the dead one.
TEST(SimFailureDetection, RestartedNodeRefutesItsOldDeath) {
  for (auto seed : test_seeds()) {
    MESH_SEED_TRACE(seed);
    Cluster c(options_for(seed));
    ASSERT_TRUE(form_cluster(c, 5, 10s));
    c.run_for(3s);
    c.crash(4);
    ASSERT_TRUE(c.wait_until([&] { return c.everyone_sees(4, MemberState::Dead); }, 40s));
    const swim::Member* dead = c.node(0).member(c.name(4));
    ASSERT_NE(dead, nullptr);
    const auto dead_inc = dead->incarnation;
    c.run_for(2s);
    c.restart(4);
    EXPECT_TRUE(c.wait_until([&] { return c.all_see_alive(); }, 30s));
    EXPECT_GT(c.node(4).incarnation(), dead_inc);
    for (NodeId o : {0, 1, 2, 3}) {
      const swim::Member* m = c.node(o).member(c.name(4));
      ASSERT_NE(m, nullptr);
      EXPECT_EQ(m->state, MemberState::Alive);
      EXPECT_GT(m->incarnation, dead_inc) << c.name(o);
    }
    c.run_for(30s);
    EXPECT_TRUE(c.all_see_alive());
    EXPECT_EQ(c.false_deaths(), 0u);
  }
}

// S5 is killed and restarted at once, before anyone noticed: nobody ever
// declares it dead and the new process simply takes over.
TEST(SimFailureDetection, QuickRestartIsNeverDead) {
  for (auto seed : test_seeds()) {
    MESH_SEED_TRACE(seed);
    Cluster c(options_for(seed));
    ASSERT_TRUE(form_cluster(c, 5, 10s));
    c.run_for(3s);
    c.restart(4);
    c.run_for(60s);
    EXPECT_EQ(c.count_events(EventKind::Dead, 4), 0u);
    EXPECT_TRUE(c.all_see_alive());
  }
}

// S3 leaves gracefully: every other member sees it Left, never Dead.
TEST(SimFailureDetection, GracefulLeaveIsSeenAsLeftEverywhere) {
  for (auto seed : test_seeds()) {
    MESH_SEED_TRACE(seed);
    Cluster c(options_for(seed));
    ASSERT_TRUE(form_cluster(c, 5, 10s));
    c.run_for(2s);
    c.leave(2);
    EXPECT_TRUE(c.wait_until([&] { return c.everyone_sees(2, MemberState::Left); }, 10s));
    c.run_for(30s);
    EXPECT_EQ(c.status(2), NodeStatus::Left);
    EXPECT_EQ(c.count_events(EventKind::Dead, 2), 0u);
    EXPECT_EQ(c.count_events(EventKind::Suspect, 2), 0u);
    for (NodeId o : {0, 1, 3, 4}) EXPECT_EQ(c.count_events(EventKind::Left, 2, o), 1u);
    EXPECT_TRUE(c.all_see_alive());  // the others, among themselves
  }
}

// S2 changes its meta; the alive broadcast with the new meta reaches
// everyone.
TEST(SimFailureDetection, MetaUpdateReachesEveryone) {
  for (auto seed : test_seeds()) {
    MESH_SEED_TRACE(seed);
    Cluster c(options_for(seed));
    ASSERT_TRUE(form_cluster(c, 8, 10s));
    const swim::Bytes meta{'r', 'o', 'l', 'e', '=', 'd', 'b'};
    ASSERT_TRUE(c.set_meta(1, meta));
    auto everyone_has_it = [&] {
      for (NodeId o = 0; o < c.size(); ++o) {
        if (o == 1) continue;
        const swim::Member* m = c.node(o).member(c.name(1));
        if (m == nullptr || m->meta != meta) return false;
      }
      return true;
    };
    EXPECT_TRUE(c.wait_until(everyone_has_it, 10s));
    EXPECT_GT(c.count_events(EventKind::Updated, 1), 0u);
    // Too large is refused and changes nothing.
    EXPECT_FALSE(c.set_meta(1, swim::Bytes(513, 'x')));
    c.run_for(5s);
    EXPECT_TRUE(everyone_has_it());
  }
}

// S4's network card drops half of what it receives (and nothing it sends).
// Its probes keep failing, so it suspects healthy members again and again;
// Lifeguard is what keeps that from killing them: S4's own health score
// rises (it probes more slowly and waits longer), a suspicion raised by one
// node alone runs to the maximum timeout, and the accused hear it and
// refute. Over 5 minutes nobody but S4 is ever declared dead.
TEST(SimFailureDetection, NodeWithReceiveLossDoesNotKillOthers) {
  for (auto seed : test_seeds()) {
    MESH_SEED_TRACE(seed);
    Cluster c(options_for(seed));
    ASSERT_TRUE(form_cluster(c, 10, 10s));
    c.set_node_loss(3, 0.0, 0.5);
    int worst_health = 0;
    for (int k = 0; k < 300; ++k) {
      c.run_for(1s);
      worst_health = std::max(worst_health, c.node(3).health_score());
    }
    EXPECT_GT(c.node(3).stats().suspicions_raised, 0u);
    EXPECT_GT(worst_health, 0) << "S4 never noticed its own trouble";
    for (const auto& e : c.false_death_events()) {
      EXPECT_EQ(e.subject, 3u) << c.name(e.observer) << " declared " << c.name(e.subject)
                               << " dead";
    }
    c.set_node_loss(3, 0.0, 0.0);
    EXPECT_TRUE(c.wait_until([&] { return c.all_see_alive(); }, 120s));
  }
}

// In 100 nodes a crash is known everywhere within
//
//   T = (D + 1) x ProbeInterval + S_max + ProbeTimeout
//       + c x ceil(log2 N) x GossipInterval
//
// counted from the crash: within D = 5 probe rounds some member probes the
// dead node (each of the N-1 members probes it once per N rounds at a random
// phase, so all miss it for D rounds with probability about e^-D); that probe
// fails at the end of its round (+1); the suspicion runs at most S_max =
// suspicion_timeout(4, N, 1 s) x 6 (= 48 s at N = 100; confirmations only
// shorten it), and a last call that a late confirmation made late one
// ProbeTimeout more (swim/DESIGN.md);
// then the dead message reaches everyone within c = 3 x log2 N gossip
// rounds (epidemic spread takes about log2 N rounds, c covers the loss of
// fan-out to already-informed members). LAN: T = 6 + 48 + 0.5 + 3 x 7 x
// 0.2 = 58.7 s.
TEST(SimFailureDetection, DeathInHundredNodesIsKnownWithinTheBound) {
  constexpr std::size_t kN = 100;
  constexpr int kD = 5;
  constexpr int kC = 3;
  const swim::Config cfg = swim::Config::lan();
  const Duration s_max = swim::suspicion_timeout(cfg.suspicion_mult, kN, cfg.probe_interval) *
                         cfg.suspicion_max_timeout_mult;
  const auto rounds = static_cast<int>(std::ceil(std::log2(static_cast<double>(kN))));
  const Duration bound = (kD + 1) * cfg.probe_interval + s_max + cfg.probe_timeout +
                         kC * rounds * cfg.gossip_interval;
  for (auto seed : test_seeds()) {
    MESH_SEED_TRACE(seed);
    Cluster c(options_for(seed));
    ASSERT_TRUE(form_cluster(c, kN, 120s));
    c.run_for(10s);
    const NodeId victim = 10 + static_cast<NodeId>(seed % 90);
    c.crash(victim);
    EXPECT_TRUE(c.wait_until([&] { return c.everyone_sees(victim, MemberState::Dead); }, bound))
        << "not dead everywhere within " << secs(bound) << " s";
    ASSERT_TRUE(c.kills()[0].dead_everywhere.has_value());
    const double took = secs(*c.kills()[0].dead_everywhere - c.kills()[0].at);
    std::cout << "[ seed " << seed << " ] N=" << kN << " dead everywhere after " << took
              << " s (bound " << secs(bound) << " s)\n";
    EXPECT_LE(took, secs(bound));
    EXPECT_EQ(c.false_deaths(), 0u);
  }
}

// The aligned probe order (Config::aligned_probes): once every node has
// verified every member, their views agree, and in each probe round every
// member gets exactly one probe, so the gap between two probes of a member
// stays under two rounds. memberlist's shuffled walk gives the same mean
// (one per round) with Poisson counts: in 30 rounds a member gets 30 +- 5.5
// and gaps over two rounds are common. The first suspicion of a crashed
// member therefore comes within two rounds plus the probe's own interval.
TEST(SimFailureDetection, AlignedProbesReachEveryMemberOncePerRound) {
  constexpr std::size_t kN = 20;
  constexpr int kRounds = 30;
  for (auto seed : test_seeds()) {
    MESH_SEED_TRACE(seed);
    ClusterOptions o = options_for(seed);
    std::vector<std::vector<Time>> pinged(kN);  // direct pings each node received
    bool tapping = false;
    o.packet_tap = [&](Time at, NodeId, NodeId to, swim::ByteView bytes) {
      if (!tapping) return;
      auto p = swim::decode_packet(bytes);
      if (!p.ok()) return;
      for (const auto& m : p->messages)
        if (std::holds_alternative<swim::Ping>(m)) pinged[to].push_back(at);
    };
    Cluster c(o);
    ASSERT_TRUE(form_cluster(c, kN, 30s));
    ASSERT_TRUE(c.wait_until(
        [&] {
          for (NodeId x = 0; x < kN; ++x)
            for (NodeId y = 0; y < kN; ++y)
              if (x != y && !c.node(x).member(c.name(y))->verified) return false;
          return true;
        },
        120s));
    const Duration interval = c.node(0).config().probe_interval;
    c.run_for(3 * interval);  // probes started before the last verification
    tapping = true;
    c.run_for(kRounds * interval);
    tapping = false;
    for (NodeId x = 0; x < kN; ++x) {
      const auto& t = pinged[x];
      EXPECT_GE(t.size(), static_cast<std::size_t>(kRounds - 1)) << c.name(x);
      EXPECT_LE(t.size(), static_cast<std::size_t>(kRounds + 1)) << c.name(x);
      for (std::size_t i = 1; i < t.size(); ++i)
        EXPECT_LT(t[i] - t[i - 1], 2 * interval) << c.name(x) << " went unprobed";
    }
    EXPECT_EQ(c.total_node_stats().probes_failed, 0u);

    const NodeId victim = 3 + static_cast<NodeId>(seed % (kN - 3));
    const Time crashed = c.now();
    c.crash(victim);
    ASSERT_TRUE(c.wait_until([&] { return c.count_events(EventKind::Suspect, victim) > 0; }, 10s));
    Time first = Time::max();
    for (const auto& e : c.events())
      if (e.kind == EventKind::Suspect && e.subject == victim) first = std::min(first, e.at);
    std::cout << "[ seed " << seed << " ] first suspicion " << secs(first - crashed) << " s after the crash\n";
    EXPECT_LE(first - crashed, 3 * interval + 50ms);
  }
}

}  // namespace
}  // namespace mesh::sim::test
