// What one node knows of the threads its messages belong to, and the
// checks a receiving node makes (docs/conversations.md, "Enforcement").
//
// Turns are counted like a Lamport clock per thread: a message's turn is
// one more than the highest turn its sender had seen, and a receiver takes
// max(the message's turn, its own highest + 1). Along any chain of
// messages the count only grows, every message of a fan-out counts, and a
// sender that under-reports its turns is still counted by each receiver's
// own record. Cost is summed from what responses report; a receiver takes
// the larger of the sender's figure and its own. Limits and expiry are the
// tightest this node has seen for the thread.
//
// Pure state: no clock (callers pass Unix milliseconds), no locks (the
// Mesh holds one around it), bounded (at `capacity` threads, the least
// recently active finished ones go first, then the least recently active).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "mesh/conversation.hpp"

namespace mesh {

// Why a receiving node refused a message of a thread.
enum class Refusal : std::uint8_t { None = 0, TurnLimit, Expired, BudgetExceeded, Loop };
inline constexpr std::size_t kRefusalKinds = 5;
std::string_view to_string(Refusal r);

// Open: in use. Closed: the request that opened it here was answered.
// Expired: its time-to-live passed. Refused: a message of it was refused
// (its last refusal says why).
enum class ThreadState : std::uint8_t { Open, Closed, Expired, Refused };
std::string_view to_string(ThreadState s);

struct ThreadRecord {
  ThreadId id;
  std::optional<ThreadId> parent;
  std::string origin_agent;
  std::string origin_node;
  std::string subject;
  std::uint32_t turns = 0;      // highest turn seen or sent here
  std::uint32_t max_depth_seen = 0;
  double spent = 0;             // cost this node knows of
  std::optional<std::uint32_t> max_turns;
  std::optional<std::int64_t> expires_ms;
  std::optional<double> max_cost;
  std::optional<std::uint32_t> max_depth;
  std::int64_t opened_ms = 0;   // first seen here
  std::int64_t last_ms = 0;     // last message here
  ThreadState state = ThreadState::Open;
  Refusal last_refusal = Refusal::None;
  std::uint64_t sent = 0;       // messages this node sent in it
  std::uint64_t received = 0;   // ...admitted
  std::uint64_t refused = 0;    // ...refused
  bool authority = false;       // an authority message went through here
  bool ended = false;           // counted as ended (closed, expired or evicted)
};

// Counters of the table's life (for metrics).
struct ThreadTableStats {
  std::uint64_t opened = 0;   // threads this node first saw or opened
  std::uint64_t closed = 0;
  std::uint64_t expired = 0;
  std::uint64_t evicted = 0;  // forgotten at capacity
  std::array<std::uint64_t, kRefusalKinds> refusals{};  // by Refusal
  // Threads that ended here (closed, expired or evicted), by their turns
  // and their cost: cumulative counts per upper bound of
  // kTurnBuckets / kCostBuckets, then one for the rest (+Inf).
  std::array<std::uint64_t, 8> turns_histogram{};
  std::array<std::uint64_t, 8> cost_histogram{};
  double cost_sum = 0;
  std::uint64_t turns_sum = 0;
};
inline constexpr std::array<double, 7> kTurnBuckets{1, 2, 5, 10, 20, 50, 100};
inline constexpr std::array<double, 7> kCostBuckets{0.01, 0.1, 0.5, 1, 5, 10, 100};

class ThreadTable {
 public:
  explicit ThreadTable(std::size_t capacity = 100'000);

  // The receiving side, for a message to the agent named `target`
  // ("agent@node"). Checks, in this order: expiry, turns, depth, cost and
  // (requests) the lineage. On None the message counts as a turn here and
  // `block` holds what its handler sees: the turn as counted, the thread's
  // cost as known, the tightest limits; a refusal is counted and kept as
  // the thread's state.
  Refusal admit(ThreadBlock& block, std::string_view target, bool is_request, std::int64_t now_ms);

  // The sending side. A new thread (its first message, `block` filled in
  // by the caller with turn 0) is recorded; a message of a known thread
  // gets its turn (the highest here + 1), the cost known here and the
  // tightest limits. False when the thread is not known here (continue
  // only a thread this node has seen) or has expired (then it is marked so).
  bool stamp(ThreadBlock& block, bool opens, std::int64_t now_ms);
  // For a message to an agent of this same node, which this node both sends
  // and receives: stamp without counting the turn (admit counts it, as the
  // receiver) and admit, with one lookup of the thread. nullopt where stamp
  // would return false.
  std::optional<Refusal> stamp_and_admit(ThreadBlock& block, bool opens, std::string_view target, bool is_request,
                                         std::int64_t now_ms);

  // A response's block came back: its turn and the cost it reports count
  // (the cost only with add_cost: an answer from this same node was counted
  // by response_block already).
  void on_response(const ThreadBlock& block, std::int64_t now_ms, bool add_cost = true);
  // The turn and cost a response from this node carries: `block` is the
  // request's, `cost` what answering it took.
  ThreadBlock response_block(const ThreadBlock& request, double cost, std::int64_t now_ms);
  // The request that opened the thread here was answered (or failed).
  void close(const ThreadId& id, std::int64_t now_ms);
  // A message this node sent in the thread was refused by its receiver.
  void note_refusal(const ThreadId& id, Refusal why, std::int64_t now_ms);

  // Marks threads past their expiry as expired (call now and then).
  void expire(std::int64_t now_ms);

  // What this node knows of `block`'s thread beside what the block says:
  // its limits where tighter, its cost where higher.
  void inform(ThreadBlock& block) const;
  const ThreadRecord* find(const ThreadId& id) const;
  std::vector<ThreadRecord> list() const;  // most recently active first
  std::size_t size() const { return records_.size(); }
  const ThreadTableStats& stats() const { return stats_; }

 private:
  struct IdHash {
    std::size_t operator()(const ThreadId& id) const noexcept {
      return static_cast<std::size_t>(id.hi * 0x9e3779b97f4a7c15ull ^ id.lo);
    }
  };
  ThreadRecord& record_of(const ThreadBlock& block, std::int64_t now_ms);
  ThreadRecord* stamped(ThreadBlock& block, bool opens, std::int64_t now_ms, bool count_turn);
  Refusal admit_to(ThreadRecord& r, ThreadBlock& block, std::string_view target, bool is_request,
                   std::int64_t now_ms);
  void tighten(ThreadRecord& r, const ThreadBlock& block);
  void finish(ThreadRecord& r, ThreadState state);  // counts it ended
  void observe_end(const ThreadRecord& r);
  void make_room();

  std::size_t capacity_;
  std::unordered_map<ThreadId, ThreadRecord, IdHash> records_;
  ThreadTableStats stats_;
};

}  // namespace mesh
