// Node::Impl: the state the parts of the SWIM state machine share, and the
// declarations of what each part does with it. Private to mesh_swim_core.
//
// Behaviour follows memberlist 0.2.2 unless swim/DESIGN.md lists a
// deviation; comments cite the Go function a piece of logic corresponds to.
// One concept per source file:
//   node.cpp       the public Node: start, join, leave, meta, user data, queries
//   timers.cpp     the timer heap: which entries are still live, dispatch
//   probe.cpp      probing: direct, indirect, stream ping, awareness, round reshuffle
//   state.cpp      alive / suspect / dead / left, refutation, name reclaim
//   admission.cpp  unknown members: admission budget, verification ping
//   gossip.cpp     sending: piggybacked broadcasts, the gossip round
//   push_pull.cpp  full state sync: periodic, reconnect, merge
//   streams.cpp    stream requests and replies, incoming streams
//   packets.cpp    incoming packets and one handler per message type
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <queue>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "admission.hpp"
#include "broadcast_queue.hpp"
#include "member_table.hpp"
#include "mesh/swim/codec.hpp"
#include "mesh/swim/node.hpp"
#include "suspicion.hpp"

namespace mesh::swim {

constexpr std::size_t kCompoundHeaderOverhead = 2;
constexpr std::size_t kCompoundOverhead = 2;  // per part
constexpr std::uint64_t kLeaveNotify = 1;
constexpr std::uint64_t kLeaveIntentNotify = 2;

enum class TimerKind : std::uint8_t {
  ProbeTick,
  ProbeTimeout,    // direct ping unanswered: go indirect
  ProbeDeadline,   // whole probe unanswered: suspect
  GossipTick,
  PushPullTick,
  IndirectExpire,  // a ping we forwarded for someone went unanswered
  Suspicion,
  StreamDeadline,
  ReconnectTick,
  VerifySend,      // time to ping a newly admitted member
  VerifyExpire,    // the ping to a newly admitted member went unanswered
};

struct TimerEntry {
  Time at;
  std::uint64_t seq;
  TimerKind kind;
  std::uint64_t arg;
  std::string name;  // Suspicion only
  bool operator>(const TimerEntry& o) const {
    return at != o.at ? at > o.at : seq > o.seq;
  }
};

inline Vsn vsn_from(ByteView b) {
  Vsn v{};
  if (b.size() >= 6) std::copy_n(b.begin(), 6, v.begin());
  return v;
}

inline Bytes vsn_bytes(const Vsn& v) { return Bytes(v.begin(), v.end()); }

inline bool dead_or_left(MemberState s) { return s == MemberState::Dead || s == MemberState::Left; }

struct Node::Impl {
  Impl(Config c, std::uint64_t seed)
      : config(std::move(c)),
        rng(seed),
        admission(config.new_member_rate, config.new_member_burst,
                  config.new_member_rate_per_source, config.new_member_burst_per_source) {}

  struct AckHandler {
    // Verify: the first ping to a newly admitted member (requester and
    // requester_name then hold the member's address and name).
    enum class Kind : std::uint8_t { Probe, Forward, Verify } kind = Kind::Probe;
    Time expires{};
    // Forward: the ack goes back to whoever asked us to ping.
    std::uint32_t orig_seq = 0;
    Address requester;
    std::string requester_name;
    bool nack = false;
    bool verify_indirect = false;  // Verify: the indirect round was sent
  };

  struct SuspicionTimer {
    Suspicion suspicion;
    std::uint64_t gen;
    Time state_change;
    // Whether the suspicion is told around before it runs out (last_call):
    // for members that had answered us when it began.
    bool call = false;
    // When that was done; Time::max() until then.
    Time called = Time::max();
  };

  struct Probe {
    bool active = false;
    std::uint32_t seq = 0;
    std::string target;
    std::uint32_t target_incarnation = 0;
    bool target_verified = false;
    bool indirect_sent = false;
    int expected_nacks = 0;
    int nacks = 0;
  };

  struct PendingStream {
    StreamKind kind;
    Address to;
    std::uint32_t probe_seq = 0;
  };

  Config config;
  Rng rng;
  Admission admission;
  // Members other than ourself with !verified, and the second probe lane
  // that walks them (probe_select).
  std::size_t unverified = 0;
  std::size_t unverified_index = 0;
  bool unverified_turn = false;
  // A probe tick came while a probe was still waiting (probe_tick).
  bool probe_tick_pending = false;
  Time next_probe_tick = Time::max();
  bool started = false;
  bool left = false;
  bool leave_done = false;
  bool leave_intent_sent = false;
  bool leave_after_intent = false;  // queue_leave_intent: leave once it is out
  std::uint32_t incarnation = 0;
  std::uint32_t seq_no = 0;
  std::uint64_t next_stream_id = 0;
  std::uint64_t timer_seq = 0;
  std::uint64_t suspicion_gen = 0;
  int awareness = 0;

  std::vector<std::unique_ptr<NodeState>> nodes;  // probe order
  NameIndex node_map;
  std::size_t probe_index = 0;
  // aligned_probes: this node and the verified live members by name
  // (rebuilt when ring_dirty), our place in it, the round of our last
  // aligned probe, and aligned probes since the last reap of the dead.
  std::vector<NodeState*> ring;
  std::size_t ring_self = 0;
  bool ring_dirty = true;
  std::int64_t last_round = -1;
  std::size_t probes_since_reset = 0;
  std::unordered_map<std::string, SuspicionTimer> node_timers;
  std::unordered_map<std::uint32_t, AckHandler> ack_handlers;
  std::unordered_map<std::uint64_t, PendingStream> pending_streams;
  Probe probe;
  std::uint64_t probe_gen = 0, gossip_gen = 0, push_pull_gen = 0;
  struct Failed {
    Address addr;
    Time since;
    bool verified = false;
  };
  static constexpr std::size_t kMaxUnverifiedFailed = 256;
  std::map<std::string, Failed> failed_members;  // for reconnect; ordered: a random pick must not depend on hashing

  BroadcastQueue broadcasts;
  BroadcastQueue user_broadcasts;
  Bytes user_state;
  Bytes ack_payload;
  // Reused by send_msg and gossip_tick: no allocation per packet for the
  // list of piggybacked messages.
  std::vector<const Bytes*> scratch_msgs;
  std::vector<ByteView> scratch_parts;

  mutable std::priority_queue<TimerEntry, std::vector<TimerEntry>, std::greater<>> timers;

  std::vector<OutPacket> out_packets;
  std::vector<OutStream> out_streams;
  std::vector<MemberEvent> events;
  std::vector<UserData> user_data;
  std::vector<JoinResult> join_results;
  NodeStats stats;

  // --- helpers ------------------------------------------------------------
  NodeState* find(std::string_view name) const { return node_map.find(name); }
  NodeState* self() { return find(config.name); }

  Duration scaled(Duration d) const { return d * (awareness + 1); }
  void apply_awareness(int delta) {
    awareness = std::clamp(awareness + delta, 0, config.awareness_max_multiplier - 1);
  }

  void schedule(Time at, TimerKind kind, std::uint64_t arg, std::string name = {}) {
    timers.push(TimerEntry{at, ++timer_seq, kind, arg, std::move(name)});
  }

  void emit(EventKind kind, const Member& m, Time now) { events.push_back({kind, m, now}); }

  Address self_addr() const { return config.advertise; }

  void count_error(const Error& e) { ++stats.decode_errors[static_cast<std::size_t>(e.code)]; }
  void count_bad_name() { ++stats.decode_errors[static_cast<std::size_t>(DecodeError::BadName)]; }

  // Random peers (defined below, after the class).
  template <class Keep>
  std::vector<NodeState*> k_random_nodes(int k, Keep keep);
  template <class Keep>
  std::vector<NodeState*> pick_peers(int k, Keep keep);

  // --- timers (timers.cpp) -------------------------------------------------
  bool timer_valid(const TimerEntry& e) const;

  // --- sending and gossip (gossip.cpp) -------------------------------------
  void send_raw(const Address& to, Bytes msg, const NodeState* target);
  void send_parts(const Address& to, std::span<const ByteView> parts, const NodeState* target);
  void get_broadcasts(std::size_t overhead, std::size_t limit, std::vector<const Bytes*>& out);
  void send_msg(const Address& to, Bytes msg, const NodeState* target);
  void broadcast(const std::string& node, Bytes msg, std::uint64_t notify = 0);
  std::size_t broadcast_queue_bound() const;
  void check_leave_notify();
  void leave(Time now);
  void leave_if_intent_sent(Time now);
  void gossip_tick(Time now);

  // --- streams (streams.cpp) -----------------------------------------------
  std::uint64_t open_stream(const Address& to, StreamKind kind, Bytes bytes, Time deadline,
                            bool expects_reply, std::uint32_t probe_seq = 0);
  void stream_done(const PendingStream& ps, ByteView bytes, bool failed, Time now);

  // --- probing and awareness (probe.cpp) -----------------------------------
  Ping make_ping(std::uint32_t seq, const std::string& target) const;
  IndirectPing indirect_ping(std::uint32_t seq, const Member& target) const;
  void probe_tick(Time now);
  void probe_select(Time now);
  bool probe_next_verified(Time now);
  bool probe_next_unverified(Time now);
  bool probe_next_aligned(Time now);
  void rebuild_ring();
  void probe_node(NodeState& node, Time now);
  void probe_timeout(Time now);
  void probe_succeeded(Time now);
  void probe_finished(Time now);
  void probe_deadline(Time now);
  void reset_nodes(Time now);

  // --- state transitions (state.cpp) ---------------------------------------
  Alive alive_of(const NodeState& s) const;
  static AliveView view_of(const Alive& a);
  void refute(NodeState& me, std::uint32_t accused);
  void alive_node(const AliveView& a, bool bootstrap, Time now, const Address* from = nullptr);
  bool may_reclaim(const NodeState& state, Time now) const;
  void suspect_node(const Suspect& s, Time now, bool unverified_failed = false);
  void dead_node(const Dead& d, Time now);
  void suspicion_fired(const std::string& name, Time now);
  void last_call(NodeState& state, SuspicionTimer& timer, Time now);
  Time suspicion_due(const SuspicionTimer& timer) const;

  // --- admission of unknown members (admission.cpp) ------------------------
  bool admit_new_member(const Address* from, Time now);
  void schedule_verify(const NodeState& s, Time now);
  void verify_due(const std::string& name, Time now);
  void send_verify_ping(NodeState& s, Time now);
  void mark_verified(NodeState& s);
  void verify_expired(std::uint32_t seq, Time now);

  // --- push/pull (push_pull.cpp) -------------------------------------------
  Bytes local_state_stream(bool join) const;
  void push_pull_tick(Time now);
  void reconnect_tick(Time now);
  std::optional<std::string> verify_protocol(const std::vector<PushNodeStateView>& remote) const;
  std::optional<std::string> merge_remote(const PushPullView& pp, Time now, const Address* from);
  static std::string quoted(std::string_view name);

  // --- packet handlers (packets.cpp) ---------------------------------------
  void handle(const PacketMessage& msg, const Address& from, Time now);
  static Address reply_address(const Bytes& source_addr, std::uint16_t source_port,
                               const Address& from);
  void handle_one(const Ping& p, const Address& from, Time);
  void handle_one(const IndirectPing& ind, const Address& from, Time now);
  void handle_one(const Ack& ack, const Address&, Time now);
  void handle_one(const Nack& nack, const Address&, Time);
  void handle_one(const Suspect& s, const Address& from, Time now);
  void handle_one(const Alive& a, const Address& from, Time now);
  void handle_one(const Dead& d, const Address& from, Time now);
  void handle_one(const UserMsg& u, const Address&, Time);
  void handle_one(const ErrResp&, const Address&, Time);
  void correct_stale(const std::string& node, std::uint32_t claimed, const Address& from);
  void notify_leave(const Dead& d, const Address& from);
};

// kRandomNodes: up to k distinct random members passing `keep`.
// memberlist tries 3n random picks and may return fewer than k even when
// k are eligible (likely at small n); when the picks come up short we
// finish with a scan from a random start, so k eligible means k chosen.
template <class Keep>
std::vector<NodeState*> Node::Impl::k_random_nodes(int k, Keep keep) {
  std::vector<NodeState*> out;
  const std::size_t want = static_cast<std::size_t>(std::max(k, 0));
  const std::size_t n = nodes.size();
  auto take = [&](NodeState* s) {
    if (keep(*s) && std::find(out.begin(), out.end(), s) == out.end()) out.push_back(s);
  };
  for (std::size_t i = 0; i < 3 * n && out.size() < want; ++i)
    take(nodes[static_cast<std::size_t>(rng.below(n))].get());
  if (out.size() < want && n > 0) {
    const auto start = static_cast<std::size_t>(rng.below(n));
    for (std::size_t i = 0; i < n && out.size() < want; ++i) take(nodes[(start + i) % n].get());
  }
  return out;
}

// Verified members first, unverified ones only to make up the number:
// members announced by someone else that do not exist would otherwise
// take most picks of gossip targets and indirect-probe helpers.
template <class Keep>
std::vector<NodeState*> Node::Impl::pick_peers(int k, Keep keep) {
  auto out = k_random_nodes(k, [&](const NodeState& s) { return s.m.verified && keep(s); });
  if (static_cast<int>(out.size()) < k && unverified > 0) {
    auto more = k_random_nodes(k - static_cast<int>(out.size()),
                               [&](const NodeState& s) { return !s.m.verified && keep(s); });
    out.insert(out.end(), more.begin(), more.end());
  }
  return out;
}

}  // namespace mesh::swim
