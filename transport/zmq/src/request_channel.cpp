#include "request_channel.hpp"

#include <poll.h>
#include <zmq.hpp>

#include <algorithm>
#include <cerrno>
#include <limits>

#include "clock.hpp"
#include "core.hpp"
#include "zmq_io.hpp"
#include "zmq_options.hpp"

namespace mesh::transport::detail {

namespace {

// Sends refused in a row (the channel's own connection is not up) before
// a channel is dropped rather than returned to the pool: a channel whose
// handshake failed on a protocol error is never reconnected by libzmq.
constexpr int kMaxMisses = 8;

std::unique_ptr<Channel> make_channel(Core& core, const std::string& endpoint,
                                      const std::string& server_key, std::uint64_t generation) {
  const TransportOptions& o = core.options;
  // "<node>#" and 128 unpredictable bits: a serial number here let anyone
  // who saw one channel's id connect as the next one (ROUTER_HANDOVER
  // hands the connection over) and read its replies.
  const std::string routing_id = o.node_name + "#" + core.ids.next().to_string();
  if (routing_id.size() > 255) return nullptr;
  auto ch = std::make_unique<Channel>();
  ch->generation = generation;
  try {
    ch->dealer = zmq::socket_t(*core.zmq_context, zmq::socket_type::dealer);
    if (!configure_dealer(ch->dealer, o, routing_id, server_key, endpoint.starts_with("tcp://["))) return nullptr;
    ch->dealer.connect(endpoint);
  } catch (const zmq::error_t&) {
    return nullptr;
  }
  ch->fd = socket_fd(ch->dealer);
  if (ch->fd < 0) return nullptr;
  return ch;
}

void drain(zmq::socket_ref socket) {
  for (;;) {
    zmq::message_t m;
    if (!recv_now(socket, m)) return;
  }
}

// Why pending requests to `peer` were failed since `epoch`, if they were.
std::optional<ErrorCode> failure_since(Core& core, PeerShared& peer, std::uint64_t epoch) {
  if (core.stopping.load(std::memory_order_acquire)) return ErrorCode::Shutdown;
  const ErrorCode removed = peer.removed.load(std::memory_order_acquire);
  if (removed != ErrorCode::None) return removed;
  if (peer.failures.load(std::memory_order_acquire) != epoch) return ErrorCode::PeerUnreachable;
  return std::nullopt;
}

}  // namespace

Channel::~Channel() = default;

ChannelPool::~ChannelPool() = default;

void ChannelPool::set_target(const std::string& endpoint, const std::string& server_key) {
  std::vector<std::unique_ptr<Channel>> stale;
  {
    std::lock_guard lock(mu_);
    if (endpoint == endpoint_ && server_key == server_key_) return;
    endpoint_ = endpoint;
    server_key_ = server_key;
    ++generation_;
    made_ -= free_.size();
    stale.swap(free_);
  }
}

std::unique_ptr<Channel> ChannelPool::checkout(Core& core) {
  std::string endpoint;
  std::string key;
  std::uint64_t generation = 0;
  {
    std::lock_guard lock(mu_);
    if (closed_ || endpoint_.empty()) return nullptr;
    if (!free_.empty()) {
      auto ch = std::move(free_.back());
      free_.pop_back();
      ++out_;
      return ch;
    }
    if (made_ >= kMaxChannels) return nullptr;
    ++made_;
    ++out_;
    endpoint = endpoint_;
    key = server_key_;
    generation = generation_;
  }
  // Sockets are made outside the lock; the lock taken again in checkin()
  // is the barrier when the channel later moves to another thread.
  auto ch = make_channel(core, endpoint, key, generation);
  if (!ch) checkin(nullptr, false);
  return ch;
}

void ChannelPool::checkin(std::unique_ptr<Channel> channel, bool keep) {
  std::unique_ptr<Channel> to_close;
  {
    std::lock_guard lock(mu_);
    --out_;
    if (channel && keep && !closed_ && channel->generation == generation_) {
      free_.push_back(std::move(channel));
    } else {
      --made_;
      to_close = std::move(channel);
    }
    if (out_ == 0) idle_.notify_all();
  }
}

void ChannelPool::drop_free() {
  std::vector<std::unique_ptr<Channel>> to_close;
  std::lock_guard lock(mu_);
  made_ -= free_.size();
  to_close.swap(free_);
}

void ChannelPool::close() {
  std::vector<std::unique_ptr<Channel>> to_close;
  std::lock_guard lock(mu_);
  closed_ = true;
  made_ -= free_.size();
  to_close.swap(free_);
}

void ChannelPool::wait_idle() {
  std::unique_lock lock(mu_);
  idle_.wait(lock, [this] { return out_ == 0; });
}

std::optional<Reply> direct_request(Core& core, PeerShared& peer, const MessageId& id,
                                    const std::vector<std::uint8_t>& frame, std::chrono::milliseconds timeout) {
  auto ch = peer.channels->checkout(core);
  if (!ch) return std::nullopt;
  // Checked after the epoch was read: a failure from here on changes it,
  // and fires the signal.
  const PeerShared::FailureWatch watch = peer.watch_failures();
  const std::uint64_t epoch = watch.epoch;
  if (!watch.signal || peer.state.load(std::memory_order_acquire) != PeerState::Connected ||
      failure_since(core, peer, epoch)) {
    peer.channels->checkin(std::move(ch), true);
    return std::nullopt;
  }
  auto& counters = core.counters;
  bump(counters.sent[type_index(MessageType::Request)]);
  if (!send_now(ch->dealer, zmq::buffer(frame))) {
    // Its connection is not up (new channel, or reconnecting): normal path.
    drop(counters.sent[type_index(MessageType::Request)]);
    const bool keep = ++ch->misses < kMaxMisses;
    peer.channels->checkin(std::move(ch), keep);
    return std::nullopt;
  }
  ch->misses = 0;
  bump(counters.requests_direct);
  bump(counters.pending_requests);

  const std::int64_t deadline = steady_now_ms() + timeout.count();
  std::optional<Reply> result;
  bool healthy = true;  // the channel may be reused afterwards
  // One received frame: the reply, or something stale to count and drop.
  auto take = [&](const zmq::message_t& m) {
    const bool more = m.more();
    const std::span<const std::uint8_t> bytes = bytes_of(m);
    DecodeResult r;
    if (more) {  // one frame per message, always
      r.error = DecodeError::Malformed;
      drain(ch->dealer);
    } else {
      r = decode(bytes, core.options.max_frame_bytes);
    }
    if (!r.ok()) {
      switch (r.error) {
        case DecodeError::Oversized: bump(counters.frames_oversized); break;
        case DecodeError::BadVersion: bump(counters.frames_bad_version); break;
        default: bump(counters.frames_malformed); break;
      }
      return;
    }
    const EnvelopeView& v = r.view;
    bump(counters.received[type_index(v.type)]);
    if (v.sender_node != peer.name) {  // only the node we asked answers here
      bump(counters.frames_forged);
      return;
    }
    const bool reply = v.type == MessageType::Response || v.type == MessageType::Error;
    if (reply && v.correlation == id && !result) {
      Reply out;
      if (v.type == MessageType::Error) out.error = v.error == ErrorCode::None ? ErrorCode::Rejected : v.error;
      out.envelope = v.to_owned();
      result = std::move(out);
    } else {
      bump(counters.replies_unmatched);  // a late reply to an earlier request on this channel
    }
  };
  while (!result) {
    if (auto failed = failure_since(core, peer, epoch)) {
      result = Reply{*failed, {}};
      bump(counters.requests_failed_fast);
      break;
    }
    const std::int64_t left = deadline - steady_now_ms();
    if (left <= 0) {
      result = Reply{ErrorCode::Timeout, {}};
      bump(counters.requests_timed_out);
      break;
    }
    zmq::message_t m;
    try {
      if (ch->dealer.recv(m, zmq::recv_flags::dontwait)) {
        take(m);
        continue;
      }
    } catch (const zmq::error_t& e) {
      if (e.num() == ETERM) {  // the context is going away
        result = Reply{ErrorCode::Shutdown, {}};
        bump(counters.requests_failed_fast);
        healthy = false;
      }
      continue;  // EINTR: look again
    }
    // Nothing to read. ZMQ_FD is edge-like (it signals commands, not
    // messages), but the receive that answered EAGAIN processed the
    // socket's commands and left its pipe armed, so the next reply makes
    // the fd readable: only now is it safe to sleep on. The failure signal
    // stays readable once fired, so one fired since the watch began ends
    // the sleep at once.
    pollfd fds[2] = {{ch->fd, POLLIN, 0}, {watch.signal->fd(), POLLIN, 0}};
    // A timeout or EINTR: the loop looks at the deadline again.
    ::poll(fds, 2, static_cast<int>(std::min<std::int64_t>(left, std::numeric_limits<int>::max())));
  }
  drop(counters.pending_requests);
  peer.channels->checkin(std::move(ch), healthy);
  return result;
}

}  // namespace mesh::transport::detail
