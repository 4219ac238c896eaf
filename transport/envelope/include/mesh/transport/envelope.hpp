// The transport's unit of exchange: one envelope per ZeroMQ frame.
//
// Wire format (version 1): one MessagePack array, in this order.
//
//   +-----+----------------+---------------------------------------------+
//   | idx | field          | msgpack type                                |
//   +-----+----------------+---------------------------------------------+
//   |  0  | version        | positive int, == kEnvelopeVersion           |
//   |  1  | type           | positive int, MessageType                   |
//   |  2  | priority       | positive int, Priority (0-3)                |
//   |  3  | id             | bin 16 (big-endian hi, then lo)             |
//   |  4  | correlation    | bin 16, or nil when absent                  |
//   |  5  | sender_agent   | str                                         |
//   |  6  | sender_node    | str                                         |
//   |  7  | target         | str (an agent id; "" = the node itself)     |
//   |  8  | created_ms     | int, Unix time in milliseconds              |
//   |  9  | deadline_ms    | int, Unix time in milliseconds, 0 = none    |
//   | 10  | error          | positive int, ErrorCode (None unless Error) |
//   | 11  | context        | bin: a msgpack map, or empty for {}         |
//   | 12  | payload        | bin: opaque (msgpack by convention)         |
//   | 13  | flags          | positive int < 256, kFlag* bits; optional:  |
//   |     |                | sent only when not 0 or when 14 follows     |
//   | 14  | thread         | bin: the conversation the message belongs   |
//   |     |                | to, opaque here (libmesh's thread block);   |
//   |     |                | optional: sent only when not empty          |
//   +-----+----------------+---------------------------------------------+
//
// Version 1 readers accept arrays longer than 13 elements and ignore what
// they do not know, so a later minor revision may append fields. flags
// was the first: a reader that predates it takes a broadcast copy for a
// notify; an element 13 that is not a byte-sized int is skipped like any
// unknown field. thread came second; an element 14 that is not a bin is
// skipped too. Any other version is rejected as BadVersion. Context,
// payload and thread are bin so that a reader can hand them on as byte
// spans without walking or copying them.
//
// Priorities were Normal (0) and High (1) before the thread revision; they
// are now four, 0-3, and a reader older than it refuses 2 and 3.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace mesh::transport {

inline constexpr std::uint64_t kEnvelopeVersion = 1;

// Envelope::flags. A notify that is one copy of a broadcast (a receiver's
// policy may allow broadcasts from a sender it does not take notifies from).
inline constexpr std::uint8_t kFlagBroadcast = 0x01;
inline constexpr std::size_t kDefaultMaxFrameBytes = 4u * 1024u * 1024u;

// 128 bits, unique per message and unpredictable: see MessageIdGenerator.
struct MessageId {
  std::uint64_t hi = 0;
  std::uint64_t lo = 0;

  bool empty() const { return hi == 0 && lo == 0; }
  friend bool operator==(const MessageId&, const MessageId&) = default;
  // 32 lowercase hex digits.
  std::string to_string() const;
  // The same into `out`, over what it held (no allocation once it has room).
  void write_to(std::string& out) const;
  static std::optional<MessageId> parse(std::string_view hex);
};

struct MessageIdHash {
  std::size_t operator()(const MessageId& id) const noexcept {
    return static_cast<std::size_t>(id.hi * 0x9e3779b97f4a7c15ull ^ id.lo);
  }
};

// Thread-safe source of unique, unpredictable ids: each id is a keyed
// 128-bit hash (SipHash-2-4, a pseudo-random function) of a counter, under
// a key drawn at random when the generator is made. Without the key,
// seeing any number of ids tells nothing about the next one; two ids of
// one generator meet with probability n^2 / 2^129 among n ids
// (message_id.cpp). Each thread hashes a block of counters at a time and
// hands them out from a thread-local cache, so an id costs a few
// nanoseconds (docs/transport.md, "Message ids").
class MessageIdGenerator {
 public:
  MessageIdGenerator();  // key from the operating system's CSPRNG
  // A fixed key derived from `seed`: reproducible ids for tests only.
  explicit MessageIdGenerator(std::uint64_t seed);
  ~MessageIdGenerator();
  // A copy would hand out the same ids again.
  MessageIdGenerator(const MessageIdGenerator&) = delete;
  MessageIdGenerator& operator=(const MessageIdGenerator&) = delete;
  MessageId next();

 private:
  // Fills `out` with the ids of the next out.size() counters.
  void hash_block(std::span<MessageId> out);

  std::uint64_t serial_;       // tells the thread caches generators apart
  std::mutex mu_;              // guards counter_
  std::array<std::uint8_t, 16> key_{};  // SipHash key; read-only after construction
  std::uint64_t counter_ = 0;  // next counter to encrypt
};

enum class MessageType : std::uint8_t { Notify = 0, Request = 1, Response = 2, Error = 3, Control = 4 };
// A message overtakes those of lower priority still queued by the
// transport (outbound per peer, inbound per target); among equals the
// order is kept, and ZeroMQ's own pipes stay FIFO.
enum class Priority : std::uint8_t { Low = 0, Normal = 1, Urgent = 2, Critical = 3 };
inline constexpr std::size_t kPriorityLevels = 4;

// Outcomes of a send and the reasons carried by Error envelopes.
enum class ErrorCode : std::uint8_t {
  None = 0,
  Timeout = 1,          // no response before the deadline
  PeerDead = 2,         // membership declared the node dead or left
  PeerUnknown = 3,      // no such node in the peer table
  PeerUnreachable = 4,  // connecting to the node failed
  MailboxFull = 5,      // a bounded queue on the way is full (would block)
  Rejected = 6,         // the receiver refused it (handler error, answered twice, CURVE)
  TargetUnknown = 7,    // no inbox with that name on the receiving node
  Malformed = 8,        // the receiver could not decode the frame
  Oversized = 9,        // larger than the configured maximum
  BadVersion = 10,      // envelope version not understood
  Shutdown = 11,        // the transport is stopping
  // The receiver could not tie the message to its sender: the envelope
  // names another node than its connection's, or the connection's CURVE
  // key belongs to no member (any more).
  Unauthenticated = 12,
  // The receiver's policy does not let this sender reach that target.
  PermissionDenied = 13,
  // Refusals of a governed conversation (libmesh's threads), decided by
  // the receiving node: the thread has had its turns, its time-to-live
  // passed, its cost or depth budget is spent, or the request would
  // re-enter an agent already waiting on the request's path.
  TurnLimit = 14,
  Expired = 15,
  BudgetExceeded = 16,
  Loop = 17,
};
std::string_view to_string(MessageType);
std::string_view to_string(Priority);
std::string_view to_string(ErrorCode);

// An owning envelope, for building messages and for keeping received ones.
struct Envelope {
  MessageId id;
  MessageType type = MessageType::Notify;
  Priority priority = Priority::Normal;
  std::optional<MessageId> correlation;
  std::string sender_agent;
  std::string sender_node;
  std::string target;
  std::int64_t created_ms = 0;
  std::int64_t deadline_ms = 0;
  ErrorCode error = ErrorCode::None;
  std::vector<std::uint8_t> context;  // msgpack map bytes; empty means {}
  std::vector<std::uint8_t> payload;
  std::uint8_t flags = 0;  // kFlag* bits
  std::vector<std::uint8_t> thread;  // opaque here; empty: none
};

// A decoded envelope whose strings and byte fields point into the frame it
// was decoded from: valid only as long as that frame's bytes are.
struct EnvelopeView {
  MessageId id;
  MessageType type = MessageType::Notify;
  Priority priority = Priority::Normal;
  std::optional<MessageId> correlation;
  std::string_view sender_agent;
  std::string_view sender_node;
  std::string_view target;
  std::int64_t created_ms = 0;
  std::int64_t deadline_ms = 0;
  ErrorCode error = ErrorCode::None;
  std::span<const std::uint8_t> context;
  std::span<const std::uint8_t> payload;
  std::uint8_t flags = 0;
  std::span<const std::uint8_t> thread;

  Envelope to_owned() const;
};

enum class DecodeError : std::uint8_t { None = 0, Malformed, Oversized, BadVersion };
std::string_view to_string(DecodeError);

struct DecodeResult {
  DecodeError error = DecodeError::None;
  EnvelopeView view;  // meaningful only when error == None
  // Whenever the type and id could be read (also when a later field is
  // broken, the version is unknown, or, from the frame's first bytes, it
  // is oversized), they are here, so that a broken request can get an
  // error response.
  std::optional<MessageType> salvaged_type;
  std::optional<MessageId> salvaged_id;

  bool ok() const { return error == DecodeError::None; }
};

// Serialises into `out` (cleared first), reusing its capacity.
void encode(const Envelope& envelope, std::vector<std::uint8_t>& out);
std::vector<std::uint8_t> encode(const Envelope& envelope);

// Never throws and never allocates on the heap for a well-formed frame:
// strings and bins are referenced in place. Rejects frames larger than
// `max_frame_bytes` before parsing, unknown versions, unknown types,
// priorities or error codes, wrong field types, a context that is not a
// msgpack map, and trailing bytes after the array.
DecodeResult decode(std::span<const std::uint8_t> frame,
                    std::size_t max_frame_bytes = kDefaultMaxFrameBytes);

}  // namespace mesh::transport
