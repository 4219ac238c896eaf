// mesh_swim: the SWIM core (node.hpp) on real sockets.
//
// One UDP socket and one TCP listener on the same port (memberlist's
// layout), driven by Boost.Asio on one strand: the core's packets go out
// on UDP, its streams on short-lived TCP connections, and one timer is
// armed at the core's next deadline. Optional AES-GCM encryption of
// packets and streams with a keyring, as memberlist's security.go.
//
// Thread-safety: every public call may be made from any thread. Calls that
// return state post to the strand and wait for the answer; called from the
// strand itself (an event callback, on_first_join) they run inline instead.
// leave() waits for the network and must not be called from the strand (it
// throws std::logic_error there). Waiting calls need the io_context to be
// running; once it has stopped they read the state directly, and a call
// already waiting when it stops does so within a second (Asio tells nobody
// about stop(), so a wait that lasts looks once a second).
//
// Lifetime: the io_context must outlive the Membership. shutdown() (and the
// destructor) closes the sockets and returns once no handler of ours is
// running; nothing is called back after it returns. Handlers still queued
// in the io_context keep the internals alive until they run (and do
// nothing) or the io_context is destroyed.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "mesh/swim/config.hpp"
#include "mesh/serf_tags.hpp"
#include "mesh/swim/node.hpp"

namespace boost::asio {
class io_context;
}

namespace mesh::swim {

// AES-GCM keys (16, 24 or 32 bytes). The first encrypts; all are tried to
// decrypt (memberlist keyring.go). AES-GCM is OpenSSL's libcrypto, loaded
// with dlopen when a ring first holds a key: a node without a gossip key
// never maps it.
class Keyring {
 public:
  Keyring() = default;
  // Throws std::invalid_argument on a key of the wrong size, and
  // std::runtime_error (naming the library) when there are keys and
  // libcrypto cannot be loaded.
  explicit Keyring(std::vector<Bytes> keys);
  // From standard base64 (Serf's -encrypt format); nullopt if malformed or
  // not 16, 24 or 32 bytes long.
  static std::optional<Bytes> decode_base64_key(std::string_view text);

  bool enabled() const { return !keys_.empty(); }
  const std::vector<Bytes>& keys() const { return keys_; }  // the primary first

  // Changed live, as `serf keys` does: install adds a key (kept where it
  // is when present), use makes an installed key the primary (the one
  // that encrypts; all of them decrypt), remove drops a key other than
  // the primary. Each returns why it could not (for install, also when
  // libcrypto cannot be loaded), or nullopt when done.
  std::optional<std::string> install(Bytes key);
  std::optional<std::string> use(const Bytes& key);
  std::optional<std::string> remove(const Bytes& key);

  // [vsn][12-byte nonce][ciphertext+tag]; vsn 1 unpadded, vsn 0 PKCS7.
  // The nonce comes from libsodium's randombytes. Empty on failure (no key, a
  // vsn above 1, no randomness). decrypt() accepts vsn 0 and 1, tries every
  // key, and returns nullopt when none authenticates.
  Bytes encrypt(ByteView plain, ByteView additional, std::uint8_t vsn = 1) const;
  std::optional<Bytes> decrypt(ByteView message, ByteView additional) const;
  // Bytes added to a packet by encryption (memberlist encryptOverhead).
  static std::size_t overhead(std::uint8_t vsn = 1);

 private:
  std::vector<Bytes> keys_;
};

struct NetOptions {
  std::string bind_host = "0.0.0.0";  // IPv4 or IPv6 literal
  std::uint16_t bind_port = 7946;      // 0: pick a free port (tests)
  // What peers are told; must be a concrete address (not 0.0.0.0 or ::).
  // Empty: the bind host when it is concrete, else the constructor throws.
  std::string advertise_host;
  std::uint16_t advertise_port = 0;    // 0: the bound port
  Keyring keyring;
  // TCP streams open at once. At the inbound limit a new connection
  // closes the inbound one that has been reading longest without sending
  // a whole request (idle or slow clients cannot lock out a join); only
  // when every inbound stream is being answered is the newcomer refused.
  std::size_t max_inbound_streams = 128;  // memberlist maxPushPullRequests
  std::size_t max_outbound_streams = 128;
  // Bytes all stream buffers may hold together, inbound and outbound. One
  // push/pull may be up to 21 MiB (memberlist's 20 MiB state limit plus
  // framing), so the default leaves room for three at once; a stream that
  // would grow past the budget is dropped and counted
  // (streams_dropped_budget), instead of 128 streams claiming 21 MiB each.
  std::size_t max_stream_buffer_bytes = 64u << 20;
};

// Counters of the driver on top of the core's NodeStats.
struct DriverStats {
  std::uint64_t packets_dropped_decrypt = 0;
  std::uint64_t packets_dropped_oversize = 0;
  std::uint64_t streams_dropped_decrypt = 0;
  std::uint64_t streams_refused_busy = 0;
  std::uint64_t streams_failed = 0;
  std::uint64_t send_errors = 0;
  // Added with the driver:
  std::uint64_t streams_dropped_oversize = 0;   // over DecodeLimits::max_stream
  std::uint64_t streams_dropped_malformed = 0;  // closed or framed before a whole message
  std::uint64_t streams_timed_out = 0;          // inbound tcp_timeout or outbound deadline
  std::uint64_t join_attempts = 0;              // rounds of join() over all seeds
  std::uint64_t streams_evicted = 0;            // inbound closed to make room (see NetOptions)
  std::uint64_t streams_dropped_budget = 0;     // over NetOptions::max_stream_buffer_bytes
  std::uint64_t stream_buffer_bytes = 0;        // held now by stream buffers (a gauge)
};

struct MemberInfo {
  Member member;
  std::map<std::string, std::string> tags;  // decoded from Serf's tag meta, when it is
};

// How a join retries (Consul's retry_interval and retry_max).
struct JoinRetry {
  std::chrono::milliseconds first_wait{1'000};  // doubling up to 30 s
  std::uint32_t max_attempts = 0;               // rounds over all seeds; 0: no limit
  // Called once (on the strand) with the last failure when the attempts
  // are spent; the join then stops.
  std::function<void(const std::string& why)> on_give_up;
};

class Membership {
 public:
  using EventHandler = std::function<void(const MemberEvent&)>;

  // Binds the sockets (throws std::runtime_error with a one-line reason if
  // it cannot: address in use, bad bind host, unusable advertise address).
  // `config.advertise` is filled in from `net`.
  Membership(boost::asio::io_context& io, Config config, NetOptions net, std::uint64_t seed);
  ~Membership();
  Membership(const Membership&) = delete;
  Membership& operator=(const Membership&) = delete;

  // Become alive with Serf-encoded tags as meta (0xFF + msgpack map), start
  // receiving, and queue Serf's join intent. Throws std::invalid_argument
  // when the encoded tags exceed 512 bytes. A second call does nothing.
  void start(const std::map<std::string, std::string>& tags);
  // Join through seeds ("host:port", "[v6]:port", "host" for our own port,
  // an optional "name/" prefix as memberlist allows; names are resolved
  // with the system resolver); retries with exponential backoff (`retry`:
  // 1 s doubling to 30 s by default) until one seed answers, then stops
  // retrying, or until its attempts are spent. `on_first_join` runs once
  // (on the strand). Before start() the join waits for start(); a new call
  // replaces a join still retrying.
  void join(std::vector<std::string> seeds, std::function<void()> on_first_join = {}, JoinRetry retry = {});
  // Serf's graceful leave: the leave intent (a Serf user message), sent
  // until its retransmit limit is reached (a few gossip rounds at most, 1 s
  // at the very most), then memberlist's dead-from-self; waits until that
  // broadcast went out the same way or `timeout`, then
  // shuts down. True if the broadcast went out (or there was nobody to
  // tell). Must not be called from the strand.
  bool leave(std::chrono::milliseconds timeout);
  // Stop everything and close the sockets (no leave: peers will find this
  // node dead). Idempotent.
  void shutdown();

  // Serf's force-leave (`serf force-leave NODE`): a member this node has
  // declared dead becomes left here at once, and Serf's leave intent about
  // it is broadcast, so that every member does the same (Serf agents too;
  // one of ours that still suspects it turns it left once it declares it
  // dead, within a few minutes). No more reconnect attempts go to it.
  enum class ForceLeave : std::uint8_t {
    Done,
    AlreadyLeft,
    Unknown,    // no member of that name (or this node itself)
    NotFailed,  // alive or suspect: it would refute; wait until it is dead
  };
  ForceLeave force_leave(const std::string& name);

  // New tags: a higher incarnation and an alive broadcast. False when the
  // encoded tags exceed 512 bytes or the node is not running.
  bool set_tags(const std::map<std::string, std::string>& tags);
  // The keyring, read and changed on the strand (Keyring::install, use,
  // remove); a node started without a keyring has none to change.
  enum class KeyOp : std::uint8_t { Install, Use, Remove };
  std::optional<std::string> change_keyring(KeyOp op, Bytes key);
  std::vector<Bytes> keyring() const;
  void on_event(EventHandler handler);  // called on the strand; exceptions are logged and dropped

  // Snapshots (post to the strand and wait).
  std::vector<MemberInfo> members() const;
  MemberInfo self() const;
  NodeStats node_stats() const;
  DriverStats driver_stats() const;
  int health_score() const;

  const Address& advertise() const;
  std::uint16_t bound_port() const;  // the real port when bind_port was 0
  const std::string& name() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

// Serf's tag encoding in node meta (mesh/serf_tags.hpp).
using mesh::decode_serf_tags;
using mesh::encode_serf_tags;

}  // namespace mesh::swim
