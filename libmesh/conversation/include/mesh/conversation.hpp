// Governed conversations: the thread every agent message belongs to, the
// limits the mesh holds it to, and the block of it each message carries
// (docs/conversations.md tells the whole story).
//
// A thread is opened when an agent starts a conversation and inherited by
// every message sent while handling one of its messages. It has limits
// that can only be tightened once set: max_turns (messages in it), a
// time-to-live, max_cost (units the application picks; handlers report what
// they spent with their answers) and max_depth (hops of nested requests).
// The node that receives a message checks them against what the message
// says and what the node itself has seen of the thread (ThreadTable), and
// refuses the message before any handler runs when it is over one.
//
// The thread block on the wire (the envelope's `thread` element): one
// MessagePack map with these keys, any order; unknown keys are skipped so
// that a later revision may add some.
//
//   key  type              meaning
//   id   bin 16            the thread's id (required)
//   pa   bin 16            the parent thread's (a sub-conversation)
//   oa   str  <= 255 B     the agent that opened it
//   on   str  <= 255 B     its node
//   su   str  <= 256 B     subject
//   tn   uint <= 2^32-1    this message's turn (see ThreadTable::admit)
//   dp   uint <= 2^32-1    its depth: 1 for a thread's first message, +1
//                          for each request sent while handling one
//   sp   float or int >= 0 the thread's cost as its sender knows it
//   co   float or int >= 0 a response's cost: what answering took
//   mt   uint              max_turns      (absent: no limit)
//   ex   int               expiry, Unix ms (absent: none)
//   mc   float or int >= 0 max_cost       (absent: no limit)
//   md   uint              max_depth      (absent: no limit)
//   cl   uint 0 | 1        MessageClass
//   ln   array <= 64 of str <= 511 B, "agent@node": the requests' path
//                          waiting on this one, its sender last
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace mesh {

// What a message may do. Advisory (the default): a question, an answer, a
// status; a receiver may weigh it, never act on it as a decision of
// record. Authority: a directive or a decision of record, which the
// policy must allow (the "authority" action) from the sender's zone to the
// receiver's. A message sent while handling an advisory one can only be
// advisory: an answer cannot be turned into an order on its way through.
enum class MessageClass : std::uint8_t { Advisory = 0, Authority = 1 };
std::string_view to_string(MessageClass c);

// Limits of a thread; unset is "no limit". Tightening takes the smaller of
// each pair, so a later message can lower a limit and never raise it.
struct ThreadLimits {
  // Default member initializers, so that designated initializers may leave
  // fields out without -Wmissing-field-initializers.
  std::optional<std::uint32_t> max_turns{};
  std::optional<std::chrono::milliseconds> ttl{};
  std::optional<double> max_cost{};
  std::optional<std::uint32_t> max_depth{};

  ThreadLimits tightened_by(const ThreadLimits& other) const;
};

// One limit tightened by another: the smaller of the two, unset being no
// limit. Every place a limit meets another uses this.
template <class T>
void tighten_limit(std::optional<T>& mine, const std::optional<T>& theirs) {
  if (theirs && (!mine || *theirs < *mine)) mine = theirs;
}

// A thread id: 128 bits, drawn like message ids. Shown as 32 hex digits.
struct ThreadId {
  std::uint64_t hi = 0;
  std::uint64_t lo = 0;

  bool empty() const { return hi == 0 && lo == 0; }
  friend bool operator==(const ThreadId&, const ThreadId&) = default;
  friend auto operator<=>(const ThreadId&, const ThreadId&) = default;
  std::string to_string() const;
  static std::optional<ThreadId> parse(std::string_view hex);
};

// One message's view of its thread (the wire block, decoded).
struct ThreadBlock {
  ThreadId id;
  std::optional<ThreadId> parent;
  std::string origin_agent;
  std::string origin_node;
  std::string subject;
  std::uint32_t turn = 0;
  std::uint32_t depth = 0;
  double spent = 0;
  double cost = 0;  // responses only
  std::optional<std::uint32_t> max_turns;
  std::optional<std::int64_t> expires_ms;
  std::optional<double> max_cost;
  std::optional<std::uint32_t> max_depth;
  MessageClass message_class = MessageClass::Advisory;
  std::vector<std::string> lineage;
};

inline constexpr std::size_t kMaxSubjectBytes = 256;
inline constexpr std::size_t kMaxOriginBytes = 255;
inline constexpr std::size_t kMaxLineage = 64;
inline constexpr std::size_t kMaxLineageEntryBytes = 511;

std::vector<std::uint8_t> encode_thread_block(const ThreadBlock& block);
// nullopt, with `why` set when given, for anything that is not a block as
// the table above says: never throws, whatever the bytes.
std::optional<ThreadBlock> decode_thread_block(std::span<const std::uint8_t> bytes, std::string* why = nullptr);

// "agent@node", as lineage entries name a requester.
std::string lineage_entry(std::string_view agent, std::string_view node);

}  // namespace mesh
