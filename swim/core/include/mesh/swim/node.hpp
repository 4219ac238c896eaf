// The SWIM protocol (with memberlist's Lifeguard extensions) as a pure state
// machine: no sockets, threads, clocks or global state.
//
// Why a state machine rather than callbacks (the shape of ScyllaDB's
// raft::fsm): the same object is driven by real sockets in the Asio driver
// and by a virtual network in the simulator, every input carries its own
// time, and a test can feed it packets and look at exactly what it wants to
// send. Inputs are the on_* calls; outputs accumulate until the caller
// drains them with the drain_* calls, and next_deadline() says when
// on_timer() must be called next.
//
// Streams (memberlist's TCP exchanges: push/pull, join, stream ping,
// reliable user messages) are modelled as request/response units:
//  - outgoing: drain_streams() yields OutStream{id, to, bytes}; the caller
//    connects, writes the bytes, reads the whole reply and calls
//    on_stream_reply(id, bytes) — or on_stream_failed(id) on any error or
//    timeout. A stream with expects_reply == false needs neither.
//  - incoming: the caller accumulates the bytes of an accepted connection
//    and calls on_stream(); while it answers NeedMore the caller keeps
//    reading; Reply carries the bytes to write back before closing.
//
// All inputs are untrusted: malformed data is counted in stats() and
// dropped, never thrown and never fatal.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mesh/swim/config.hpp"
#include "mesh/swim/messages.hpp"
#include "mesh/random.hpp"
#include "mesh/swim/types.hpp"

namespace mesh::swim {

// A member as this node sees it. The fields every gossip message reads
// (name, incarnation, state, versions, address) come first and fill 64
// bytes, so that the core's member record (64-byte aligned) answers the
// common "old news?" question from one cache line.
struct Member {
  std::string name;
  std::uint32_t incarnation = 0;
  MemberState state = MemberState::Alive;
  // It answered one of our pings (or is ourself). Until then a failed probe
  // of it says nothing about our own health, and it is probed and gossiped
  // to only beside verified members (swim/DESIGN.md, "Hostile gossip").
  bool verified = false;
  Vsn vsn{};
  Address addr;
  Bytes meta;
  Time state_change{};
};

enum class EventKind : std::uint8_t {
  Joined,     // new member, or one that was dead/left is alive again
  Updated,    // meta (or address of a reclaimed name) changed
  Suspect,    // member is suspected of having failed
  Recovered,  // a suspect member refuted the suspicion: alive again
  Dead,       // declared failed
  Left,       // left gracefully
  Conflict,   // another address claims a live member's name (ignored)
};
std::string_view to_string(EventKind k);

struct MemberEvent {
  EventKind kind;
  Member member;      // state after the event; for Conflict: the claimant
  Time at;
};

struct OutPacket {
  Address to;
  Bytes bytes;
};

enum class StreamKind : std::uint8_t { PushPull, Join, Ping, UserMsg };

struct OutStream {
  std::uint64_t id = 0;
  Address to;
  StreamKind kind = StreamKind::PushPull;
  Bytes bytes;
  Time deadline{};          // give up (on_stream_failed) at this time
  bool expects_reply = true;
};

// Outcome of an incoming stream's bytes so far.
struct StreamAnswer {
  enum class Status : std::uint8_t { NeedMore, Reply, Close };
  Status status = Status::Close;
  Bytes reply;  // for Reply
};

// A payload for the application (memberlist's Delegate.NotifyMsg and
// MergeRemoteState): user messages and the user part of push/pull.
struct UserData {
  enum class Kind : std::uint8_t { Message, RemoteState };
  Kind kind = Kind::Message;
  Bytes payload;
  bool join = false;  // RemoteState: whether it came with a join
};

// Outcome of one seed contacted by join().
struct JoinResult {
  Address seed;
  bool ok = false;
  std::string error;  // when !ok
};

// Counters. Every dropped input is counted under a reason.
struct NodeStats {
  std::uint64_t packets_received = 0;
  std::uint64_t bytes_received = 0;
  std::uint64_t packets_sent = 0;
  std::uint64_t bytes_sent = 0;
  std::uint64_t streams_sent = 0;
  std::uint64_t streams_received = 0;
  std::uint64_t decode_errors[static_cast<std::size_t>(DecodeError::Count_)] = {};
  std::uint64_t compound_truncated_parts = 0;
  std::uint64_t ping_wrong_node = 0;       // ping addressed to another name
  std::uint64_t unexpected_messages = 0;   // valid but out of place (e.g. pushPull in a packet)
  std::uint64_t probes = 0;
  std::uint64_t probes_failed = 0;
  std::uint64_t indirect_probes_sent = 0;
  std::uint64_t indirect_probes_served = 0;
  std::uint64_t nacks_sent = 0;
  std::uint64_t nacks_received = 0;
  std::uint64_t stream_pings_sent = 0;
  std::uint64_t suspicions_raised = 0;     // this node started a suspicion
  std::uint64_t refutations = 0;           // this node refuted a claim about itself
  std::uint64_t gossip_packets = 0;
  std::uint64_t push_pulls = 0;            // initiated
  std::uint64_t push_pulls_served = 0;
  std::uint64_t push_pull_rejected = 0;    // incompatible versions
  std::uint64_t conflicts = 0;
  std::uint64_t reconnects = 0;            // push/pulls to failed members
  std::uint64_t corrections_sent = 0;      // alive sent back to a stale accuser
  std::uint64_t last_calls = 0;            // a suspicion ran out: asked around before the death
  std::uint64_t last_calls_answered = 0;   // ... and a newer alive arrived in time
  std::uint64_t last_calls_unanswered = 0; // ... and the death was declared
  std::uint64_t broadcasts_queued = 0;
  std::uint64_t broadcasts_pruned = 0;     // dropped over the queue bound
  std::uint64_t broadcast_queue_peak = 0;  // most messages queued at once (a maximum, not a sum)
  // Hostile gossip (swim/DESIGN.md). Bad names count as decode errors.
  std::uint64_t members_rate_limited = 0;    // unknown member over the admission rate
  std::uint64_t members_over_unverified = 0; // unknown member over max_unverified_members
  std::uint64_t verify_pings_sent = 0;       // ping to a member just admitted
  std::uint64_t verify_failed = 0;           // ... unanswered: suspected
  std::uint64_t leave_notices_sent = 0;      // a relayed leave shown to its subject
  std::uint64_t decode_errors_total() const {
    std::uint64_t t = 0;
    for (auto v : decode_errors) t += v;
    return t;
  }
};

class Node {
 public:
  // The node owns its random engine; `seed` makes a run reproducible.
  Node(Config config, std::uint64_t seed);
  ~Node();
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;
  Node(Node&&) noexcept;
  Node& operator=(Node&&) noexcept;

  // --- inputs -------------------------------------------------------------
  // Become alive (incarnation 1) with `meta` (at most 512 bytes; longer is
  // cut to nothing and counted) and start the probe, gossip and push/pull
  // schedules, each with a random stagger as memberlist does.
  void start(Time now, Bytes meta = {});
  // Push/pull with Join=true to each seed; outcomes via drain_join_results().
  void join(Time now, const std::vector<Address>& seeds);
  // A datagram from `from`.
  void on_packet(Time now, const Address& from, ByteView bytes);
  // An incoming stream's bytes received so far (see the header comment).
  StreamAnswer on_stream(Time now, const Address& from, ByteView bytes);
  // The whole reply to an OutStream, or its failure.
  void on_stream_reply(Time now, std::uint64_t stream_id, ByteView bytes);
  void on_stream_failed(Time now, std::uint64_t stream_id);
  // Run everything due at or before `now`.
  void on_timer(Time now);
  // Graceful leave: broadcast our own death with From == our name; the node
  // keeps answering until leave_done() (the broadcast was sent out) or the
  // caller gives up, then it should be shut down.
  void leave(Time now);
  // New meta (at most 512 bytes): a higher incarnation and an alive
  // broadcast. Returns false (and changes nothing) when too large.
  bool set_meta(Time now, Bytes meta);

  // Application payloads riding on memberlist (the Delegate of Go).
  // Broadcast `payload` as a user message piggybacked on gossip; a message
  // with the same non-empty `name` replaces an older queued one.
  void queue_user_broadcast(Bytes payload, std::string name = {});
  // The same for a leave intent (Serf's): once it has been sent its last
  // time (its retransmit limit) or was replaced, leave_intent_sent() turns
  // true and the node leaves (as leave()) at once, within the gossip round
  // that sent it, not after a fixed wait (swim/DESIGN.md, graceful leave).
  void queue_leave_intent(Bytes payload, std::string name);
  // Serf's force-leave as each member applies it: a member this node has
  // declared dead becomes left (a Left event): no more reconnect attempts,
  // and it is reaped as a left member. Nothing is gossiped by the core;
  // Serf's leave intent carries the news. False (nothing changes) when the
  // member is unknown or not dead.
  bool force_left(Time now, std::string_view name);
  // Sent as the user state of every push/pull.
  void set_user_state(Bytes state);
  // Returned in the payload of every ack we send.
  void set_ack_payload(Bytes payload);
  // Config::shared_clock_offset, kept up to date by a caller whose shared
  // clock can be stepped (the driver: Unix time, after an NTP step).
  void set_shared_clock_offset(Duration offset);
  // Send `payload` as a user message: by packet, or by stream (reliable).
  void send_user(Time now, const Address& to, Bytes payload, bool reliable);

  // --- outputs ------------------------------------------------------------
  std::vector<OutPacket> drain_packets();
  std::vector<OutStream> drain_streams();
  std::vector<MemberEvent> drain_events();
  std::vector<UserData> drain_user_data();
  std::vector<JoinResult> drain_join_results();
  // When on_timer() must next be called; Time::max() when nothing is due.
  Time next_deadline() const;

  // --- state --------------------------------------------------------------
  const std::string& name() const;
  const Config& config() const;
  std::uint32_t incarnation() const;
  bool started() const;
  bool has_left() const;
  bool leave_done() const;
  bool leave_intent_sent() const;
  // Local health (Lifeguard awareness), 0 = healthy.
  int health_score() const;
  // Members known, including dead ones not yet reaped, and ourself.
  std::size_t num_members() const;
  const Member* member(std::string_view name) const;
  std::vector<Member> members() const;
  const NodeStats& stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mesh::swim
