// A deterministic cluster of mesh::swim::Node state machines on virtual time.
//
// Every packet a node produces goes through the real bytes: the simulator
// hands exactly what drain_packets() returned (possibly cut at the MTU) to
// the receiver's on_packet(), so every run exercises the real codec. Streams
// (push/pull, join, stream ping, reliable user messages) are delivered whole
// to the server's on_stream() after a TCP-like delay, and its Reply comes back
// through on_stream_reply(); see network.hpp for the timing model.
//
// One binary heap of events ordered by (time, sequence number) drives
// everything. A node is woken only when its next_deadline() says so: after
// every input the simulator reads next_deadline() and schedules a wake-up
// only when it is earlier than the one already scheduled; a superseded
// wake-up is recognised by its token and ignored.
//
// Determinism: one master seed derives every node's seed (and every
// restart's) and the network's. Nothing reads a wall clock. The same seed
// gives the same trace_hash().
//
// A small DSL for tests, in the spirit of Tarantool's SWIM tests:
//
//   Cluster c(opts);
//   c.add_nodes(5);
//   c.join_all_through({0});
//   ASSERT_TRUE(c.wait_until([&] { return c.all_see_alive(); }, 30s));
//   c.crash(3);
//   ASSERT_TRUE(c.wait_until([&] { return c.everyone_sees(3, MemberState::Dead); }, 60s));
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "event_queue.hpp"
#include "mesh/swim/config.hpp"
#include "mesh/swim/node.hpp"
#include "network.hpp"

namespace mesh::sim {

using swim::EventKind;
using swim::MemberState;

struct ClusterOptions {
  std::uint64_t seed = 1;
  swim::Profile profile = swim::Profile::Lan;
  // Default: NetworkOptions::for_profile(profile).
  std::optional<NetworkOptions> net;
  // memberlist compresses streams by default; the simulator does not, since
  // LZW over 1000-member push/pulls dominates the run time and the codec has
  // its own tests. Turn it on to exercise the compressed path.
  bool compress_streams = false;
  // Last word on each node's Config (called for restarts too).
  std::function<void(NodeId, swim::Config&)> configure;
  // wait_until() checks its predicate every poll_step of virtual time.
  Duration poll_step = std::chrono::milliseconds(100);
  // join_all_through(): the k-th joiner starts at now + k x join_stagger, so
  // that 1000 joiners do not hit the seeds in the same millisecond.
  Duration join_stagger = Duration::zero();
  // A node none of whose seeds answered tries again after this long (what
  // Serf's retry_join does); zero: never.
  Duration retry_join_interval = Duration::zero();
  // A leaving node is shut down when leave_done() or after this long.
  Duration leave_timeout = std::chrono::seconds(5);
  // Keep every membership event in events() (off for long, large runs).
  bool record_events = true;
  // Fold every delivered byte into trace_hash() (cheap; on by default).
  bool hash_payloads = true;
  // When set, one line per simulator event (debugging a replayed seed).
  std::ostream* trace = nullptr;
  // When set, sees every datagram just before it is handed to on_packet()
  // (sender, receiver, bytes as delivered). For tests and debugging; it must
  // not change the cluster.
  std::function<void(Time, NodeId from, NodeId to, swim::ByteView)> packet_tap;
};

// A membership event as observed by one node, in node indices.
struct EventRecord {
  Time at{};
  NodeId observer = 0;
  NodeId subject = 0;
  EventKind kind = EventKind::Joined;
  std::uint32_t incarnation = 0;
};

enum class NodeStatus : std::uint8_t {
  Created,  // added, not started
  Running,
  Paused,   // SIGSTOP: no timers, inputs queue until resume()
  Crashed,  // gone; packets to it vanish, streams to it time out
  Left,     // left gracefully and shut down
};
std::string_view to_string(NodeStatus s);

// A crash watched for detection: when every live node knew.
struct KillRecord {
  NodeId subject = 0;
  Time at{};
  std::optional<Time> dead_everywhere;  // every live observer sees Dead/Left
};

struct ClusterCounters {
  std::uint64_t sim_events = 0;
  std::uint64_t wakeups = 0;
  std::uint64_t stale_wakeups = 0;
  std::uint64_t packets_sent = 0;
  std::uint64_t bytes_sent = 0;
  std::uint64_t packets_delivered = 0;
  std::uint64_t packets_to_down = 0;   // target crashed, left, not started or unknown
  std::uint64_t packets_oversize = 0;  // over udp_buffer_size + the 5-byte CRC header
  std::uint64_t packets_queued_paused = 0;
  std::uint64_t pause_buffer_drops = 0;
  std::uint64_t streams_opened = 0;
  std::uint64_t stream_bytes = 0;
  std::uint64_t streams_delivered = 0;
  std::uint64_t streams_replied = 0;        // reply handed to the initiator
  std::uint64_t streams_failed = 0;         // on_stream_failed called
  std::uint64_t stream_need_more = 0;       // a whole stream the server still found incomplete
  std::uint64_t stream_unknown_id = 0;      // a node drained two streams with the same id
  std::uint64_t deadline_not_advanced = 0;  // next_deadline() <= now right after on_timer(now)
  std::uint64_t joins = 0;
  std::uint64_t join_failures = 0;  // per seed
  std::uint64_t user_data = 0;
  std::uint64_t member_events[7] = {};  // by EventKind
  std::uint64_t false_deaths = 0;
};

class Cluster {
 public:
  explicit Cluster(ClusterOptions opts = {});
  ~Cluster();
  Cluster(const Cluster&) = delete;
  Cluster& operator=(const Cluster&) = delete;

  // --- membership of the simulation -----------------------------------------
  // Adds nodes (named "n<i>", at 10.x.y.z:7946), not started yet. Returns the
  // index of the first.
  NodeId add_nodes(std::size_t n);
  std::size_t size() const { return slots_.size(); }

  // Starts node i on its own (a first seed).
  void start(NodeId i);
  // Starts node i if needed and joins through `seeds` (itself skipped).
  void join(NodeId i, const std::vector<NodeId>& seeds);
  // Seeds start at once and join each other; every other node that is not
  // started yet joins through the seeds (staggered by join_stagger).
  void join_all_through(const std::vector<NodeId>& seeds);

  // --- faults -----------------------------------------------------------------
  void crash(NodeId i);
  void pause(NodeId i);
  void resume(NodeId i);
  // A fresh Node under the same name and address, a new seed, the last meta;
  // joins through `seeds`, or the seeds it joined through before, or the
  // cluster's seeds.
  void restart(NodeId i, std::vector<NodeId> seeds = {});
  void leave(NodeId i);
  bool set_meta(NodeId i, swim::Bytes meta);

  void partition(const std::vector<NodeId>& a, const std::vector<NodeId>& b) {
    partition_groups({a, b});
  }
  void partition_groups(const std::vector<std::vector<NodeId>>& groups);
  void heal();                         // partitions and blocks
  void block(NodeId from, NodeId to);  // one way
  void unblock(NodeId from, NodeId to);
  void block_both(NodeId a, NodeId b) {
    block(a, b);
    block(b, a);
  }
  void set_loss(double p) { net_.set_loss(p); }
  void set_node_loss(NodeId i, double send, double recv) { net_.set_node_loss(i, send, recv); }
  void set_duplicate(double p) { net_.set_duplicate(p); }
  void set_reorder(double p, Duration delay) { net_.set_reorder(p, delay); }
  void set_mtu(std::size_t mtu, MtuPolicy policy) { net_.set_mtu(mtu, policy); }
  // A datagram from outside the simulated members (an attacker), handed to
  // node i's on_packet() at now(); whatever is sent back to `from` vanishes.
  // Ignored unless node i is running.
  void inject_packet(NodeId to, const swim::Address& from, swim::ByteView bytes);

  // --- time -------------------------------------------------------------------
  Time now() const { return now_; }
  Time epoch() const { return epoch_; }
  Duration elapsed() const { return now_ - epoch_; }
  void run_for(Duration d) { run_until(now_ + d); }
  // Processes every event at or before t; now() == t afterwards.
  void run_until(Time t);
  // Runs until pred() holds (checked now and every poll_step), at most
  // `timeout`. Returns whether it held.
  bool wait_until(const std::function<bool()>& pred, Duration timeout);

  // --- observation --------------------------------------------------------------
  // What `observer`'s Node says about `subject` (nullopt: not a member, or
  // the observer is not running).
  std::optional<MemberState> state_of(NodeId subject, NodeId observer) const;
  // Every live observer other than `subject` sees it in state `s` (Dead also
  // accepts a reaped member, Left likewise).
  bool everyone_sees(NodeId subject, MemberState s) const;
  // Every live observer sees every other running or paused node Alive.
  bool all_see_alive() const;
  // Running (not paused, crashed, left or unstarted).
  bool is_live(NodeId i) const { return slots_[i].status == NodeStatus::Running; }
  NodeStatus status(NodeId i) const { return slots_[i].status; }
  std::size_t live_count() const;

  const std::string& name(NodeId i) const { return slots_[i].name; }
  const swim::Address& address(NodeId i) const { return slots_[i].addr; }
  // The current Node of slot i (must exist: not crashed, left or unstarted).
  swim::Node& node(NodeId i) { return *slots_[i].node; }
  const swim::Node& node(NodeId i) const { return *slots_[i].node; }
  bool has_node(NodeId i) const { return slots_[i].node != nullptr; }

  // Events as recorded (empty unless record_events).
  const std::vector<EventRecord>& events() const { return events_; }
  // Counts recorded events of `kind`, optionally about one subject, seen by
  // one observer, at or after `since`.
  std::size_t count_events(EventKind kind, std::optional<NodeId> subject = {},
                           std::optional<NodeId> observer = {}, Time since = Time::min()) const;
  // Called for every membership event (also without record_events).
  void on_event(std::function<void(const EventRecord&)> f) { listeners_.push_back(std::move(f)); }

  // False deaths: a Dead event (not Left) at any observer about a node that
  // was running at that moment and had not been paused, crashed or
  // restarted within false_death_window() before. Each (observer, event)
  // counts once.
  std::uint64_t false_deaths() const { return counters_.false_deaths; }
  const std::vector<EventRecord>& false_death_events() const { return false_death_events_; }
  Duration false_death_window() const;

  // Every crash(), with when its death was known everywhere.
  const std::vector<KillRecord>& kills() const { return kills_; }

  // Sum of every node's stats, including crashed and replaced ones.
  swim::NodeStats total_node_stats() const;
  const ClusterCounters& counters() const { return counters_; }
  const NetworkCounters& network_counters() const { return net_.counters(); }
  const Network& network() const { return net_; }
  // A hash of every event processed (time, kind, node, bytes): equal hashes
  // for equal runs.
  std::uint64_t trace_hash() const { return trace_hash_; }
  const ClusterOptions& options() const { return opts_; }

  // Compares the view kept from events with what each live Node reports;
  // returns the first difference as a sentence, or "" when they agree.
  // A difference means a state change without an event (or vice versa).
  std::string check_views_for_test() const;

  // The seed of node i's current Node.
  static std::uint64_t derive_seed(std::uint64_t master, std::uint64_t a, std::uint64_t b);

 private:
  struct PendingStream {
    Time deadline{};
  };
  struct Slot {
    std::unique_ptr<swim::Node> node;
    std::string name;
    swim::Address addr;
    NodeStatus status = NodeStatus::Created;
    bool leaving = false;
    std::uint32_t gen = 0;  // bumped when the Node is replaced or destroyed
    std::uint32_t restarts = 0;
    Time wake_at = Time::max();  // the valid wake-up, if any
    std::uint64_t wake_token = 0;
    std::vector<Event> inbox;  // while paused
    std::size_t inbox_bytes = 0;
    Time disturbed_at = Time::min();  // last resume / restart / crash
    std::unordered_map<std::uint64_t, PendingStream> streams;
    std::vector<NodeId> seeds;
    std::size_t join_pending = 0;
    bool join_any_ok = false;
    swim::Bytes meta;
  };

  swim::Config make_config(NodeId i) const;
  void boot(NodeId i);  // a fresh Node in slot i, started at now_
  void schedule(Time at, EvKind kind, NodeId node, std::uint32_t gen, std::uint64_t aux,
                std::uint32_t payload = kNoPayload);
  void dispatch(Event& ev);
  void deliver(NodeId i, Event& ev);
  void after_input(NodeId i, bool after_timer = false);
  void send_packet(NodeId from, swim::OutPacket&& p);
  void open_stream(NodeId from, swim::OutStream&& s);
  void serve_stream(NodeId to, Event& ev);
  void record_event(NodeId observer, const swim::MemberEvent& e);
  void check_kill(NodeId subject);
  void destroy(NodeId i, NodeStatus status);
  void do_join(NodeId i);
  std::optional<NodeId> node_at(const swim::Address& a) const;
  MemberState view(NodeId observer, NodeId subject, bool& known) const;
  void hash_event(const Event& ev, std::size_t size, const std::uint8_t* bytes);

  std::uint32_t alloc_payload();
  void free_payload(std::uint32_t idx);

  ClusterOptions opts_;
  Network net_;
  EventQueue queue_;
  Time epoch_;
  Time now_;
  std::vector<Slot> slots_;
  std::unordered_map<std::string, NodeId> by_name_;
  std::vector<NodeId> cluster_seeds_;
  // What each observer last heard about each subject, from its events:
  // view_[observer][subject], kUnknown when never heard.
  std::vector<std::vector<std::uint8_t>> view_;
  std::vector<Payload> payloads_;
  std::vector<std::uint32_t> free_payloads_;
  std::vector<EventRecord> events_;
  std::vector<EventRecord> false_death_events_;
  std::vector<std::function<void(const EventRecord&)>> listeners_;
  std::vector<KillRecord> kills_;
  std::unordered_map<NodeId, std::size_t> open_kills_;  // subject -> index in kills_
  swim::NodeStats retired_stats_;
  ClusterCounters counters_;
  std::uint64_t trace_hash_ = 1469598103934665603ull;
  std::uint64_t next_token_ = 0;
  std::uint64_t next_seq_ = 0;
  swim::Config base_config_;  // node 0's config: the cluster's timing parameters
};

}  // namespace mesh::sim
