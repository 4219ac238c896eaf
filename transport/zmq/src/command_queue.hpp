// How callers reach the transport thread: the commands, the frames they
// carry, and the queue they wait in.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <variant>
#include <vector>

#include "mesh/transport/envelope.hpp"
#include "mesh/transport/transport.hpp"
#include "peer_shared.hpp"
#include "pending_call.hpp"

namespace mesh::transport::detail {

// A frame waiting in a peer's outbound queue.
struct OutFrame {
  std::vector<std::uint8_t> bytes;
  MessageType type = MessageType::Notify;
  Priority priority = Priority::Normal;
  MessageId id;
  std::string target;
  std::string sender_agent;            // notifies: whom a failure is reported to
  bool raw = false;                    // send_raw_for_test: not an envelope
  std::shared_ptr<PendingCall> call;   // requests only
};

struct CmdAddPeer {
  std::shared_ptr<PeerShared> peer;
  PeerAddress address;
};
struct CmdRemovePeer {
  std::shared_ptr<PeerShared> peer;
  ErrorCode reason = ErrorCode::PeerDead;
};
struct CmdSend {
  std::shared_ptr<PeerShared> peer;
  OutFrame frame;
};
struct CmdReply {
  std::string identity;
  std::string node;  // the requester's node (Incoming::source), for the reply cache
  std::vector<std::uint8_t> bytes;
  MessageType type = MessageType::Response;
  MessageId request;  // the request it answers (for the reply cache)
};
// Nothing to do but wake up and wait anew: a same-node request's deadline
// (LocalDeadlines) or an ask entry's retention (AskTable) is now the first
// to run out.
struct CmdWake {};
// Transport::readmit.
struct CmdReadmit {
  std::string node;
};
struct CmdStop {};
using Command = std::variant<CmdAddPeer, CmdRemovePeer, CmdSend, CmdReply, CmdWake, CmdReadmit, CmdStop>;

// Many producers, one consumer (the transport thread). Producers append
// under a mutex; the consumer swaps the whole vector out. An eventfd that
// the transport thread polls beside its sockets wakes it.
class CommandQueue {
 public:
  CommandQueue();  // throws TransportError if no eventfd
  ~CommandQueue();
  CommandQueue(const CommandQueue&) = delete;
  CommandQueue& operator=(const CommandQueue&) = delete;

  // Wakes the thread, unless it was woken already since its last take.
  void push(Command&& command);
  // Consumer: clears the eventfd (when `readable`), then takes everything.
  void take(std::vector<Command>& out, bool readable);
  int fd() const { return fd_; }

 private:
  std::mutex mu_;
  std::vector<Command> items_;
  bool signaled_ = false;  // an eventfd write since the last take
  int fd_ = -1;
};

// A wake-up callers ask for "soon" rather than now: a timerfd the
// transport thread polls beside the queue's eventfd. It is set at most
// once until the thread has woken from it, so any number of callers
// asking within one delay cost one syscall and one wake-up between them.
class DelayedWake {
 public:
  explicit DelayedWake(std::int64_t delay_ms);  // throws TransportError if no timerfd
  ~DelayedWake();
  DelayedWake(const DelayedWake&) = delete;
  DelayedWake& operator=(const DelayedWake&) = delete;

  // Caller: the fd turns readable `delay_ms` from now, or sooner if it was
  // set already.
  void arm();
  // Transport thread, once the fd polled readable: reads it and lets the
  // next arm() set it again. Called before the thread looks at what the
  // callers flagged, so that a flag raised after that look sets it anew.
  void clear();
  int fd() const { return fd_; }

 private:
  std::atomic<bool> armed_{false};
  const std::int64_t delay_ms_;
  int fd_ = -1;
};

}  // namespace mesh::transport::detail
