// TCP streams: memberlist's push/pull, join, stream ping and reliable user
// messages, one short connection each.
//
// Outbound (the core's OutStream): connect, write, read the whole reply,
// on_stream_reply; any error, a close before the reply is complete, or the
// stream's deadline means on_stream_failed. Inbound: accept (at most
// max_inbound_streams at once; more are closed at once and counted), read
// within Config::tcp_timeout, hand the bytes to on_stream until it answers
// Reply or Close, write the reply, close.
//
// Where a message ends: an encrypted stream says so in its frame
// ([10][u32 length], see stream_frame.hpp); a plain one is complete when
// decode_stream stops answering Incomplete. Checking costs a scan of what
// has arrived, so it is done only when the socket has nothing more to give
// right now, or when the buffer has doubled since the last check: a large
// push/pull is scanned a logarithmic number of times, not once per read.
#include <boost/asio/write.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "driver.hpp"
#include "endpoint.hpp"
#include "stream_frame.hpp"

namespace mesh::swim {

namespace ip = asio::ip;
using boost::system::error_code;

namespace {
constexpr std::size_t kReadChunk = 16 * 1024;
constexpr auto kAcceptRetry = std::chrono::milliseconds(100);
}  // namespace

std::size_t Membership::Impl::stream_limit() const {
  return limits_.max_stream + detail::kStreamHeaderSize;
}

std::shared_ptr<StreamConn> Membership::Impl::track(ip::tcp::socket sock, bool inbound,
                                                    SteadyTime deadline) {
  auto c = std::make_shared<StreamConn>(std::move(sock), strand_);
  c->key = ++next_conn_key_;
  c->inbound = inbound;
  conns_.emplace(c->key, c);
  if (inbound) ++inbound_active_;
  else ++outbound_active_;
  c->timer.expires_at(deadline);
  c->timer.async_wait([self = shared_from_this(), c](const error_code& ec) {
    if (ec || self->stopped_ || c->done) return;
    ++self->dstats_.streams_timed_out;
    spdlog::debug("swim {}: {} stream with {} timed out", self->name_,
                  c->inbound ? "inbound" : "outbound", c->peer.to_string());
    if (c->inbound) {
      self->close_conn(c);
    } else {
      self->fail_outbound(c, "no answer in time");
    }
  });
  return c;
}

void Membership::Impl::close_conn(const std::shared_ptr<StreamConn>& c) {
  if (c->done) return;
  c->done = true;
  error_code ec;
  c->timer.cancel();
  c->sock.close(ec);
  // The buffer itself goes with the last handler that holds `c` (callers
  // may still read what it holds); its bytes leave the budget now.
  stream_bytes_ -= c->budgeted;
  c->budgeted = 0;
  conns_.erase(c->key);
  if (c->inbound) --inbound_active_;
  else --outbound_active_;
}

void Membership::Impl::fail_outbound(const std::shared_ptr<StreamConn>& c, std::string_view why) {
  if (c->done) return;
  close_conn(c);
  if (join_active_ && !why.empty()) join_failures_.insert_or_assign(c->peer.to_string(), std::string(why));
  if (!c->expects_reply) return;
  ++dstats_.streams_failed;
  node_->on_stream_failed(now(), c->stream_id);
  pump();
}

bool Membership::Impl::ready_to_scan(const std::shared_ptr<StreamConn>& c) {
  error_code ec;
  const std::size_t pending = c->sock.available(ec);
  if (ec || pending == 0 || c->used >= 2 * c->scanned) {
    c->scanned = c->used;
    return true;
  }
  return false;
}

bool Membership::Impl::grow_buffer(const std::shared_ptr<StreamConn>& c, std::size_t new_size) {
  if (new_size <= c->budgeted) {
    c->buf.resize(new_size);
    return true;
  }
  const std::size_t more = new_size - c->budgeted;
  if (stream_bytes_ + more > net_.max_stream_buffer_bytes) return false;
  c->buf.resize(new_size);
  stream_bytes_ += more;
  c->budgeted = new_size;
  return true;
}

bool Membership::Impl::evict_slowest_inbound() {
  std::shared_ptr<StreamConn> victim;
  for (const auto& [key, weak] : conns_) {
    auto c = weak.lock();
    if (!c || !c->inbound || c->done || c->answering) continue;
    if (!victim || c->opened < victim->opened) victim = std::move(c);
  }
  if (!victim) return false;
  ++dstats_.streams_evicted;
  close_conn(victim);
  return true;
}

void Membership::Impl::read_more(const std::shared_ptr<StreamConn>& c) {
  const std::size_t limit = stream_limit() + 1;  // one over: to notice oversize
  if (c->buf.size() - c->used < kReadChunk / 2) {
    const std::size_t grow = std::max(kReadChunk, c->used / 2);
    if (!grow_buffer(c, std::min(limit, c->used + grow))) {
      ++dstats_.streams_dropped_budget;
      spdlog::debug("swim {}: {} stream with {} over the stream byte budget", name_,
                    c->inbound ? "inbound" : "outbound", c->peer.to_string());
      if (c->inbound) close_conn(c);
      else fail_outbound(c, "its answer is over the stream byte budget");
      return;
    }
  }
  c->sock.async_read_some(
      asio::buffer(c->buf.data() + c->used, c->buf.size() - c->used),
      [self = shared_from_this(), c](const error_code& ec, std::size_t n) { self->on_read(c, ec, n); });
}

void Membership::Impl::on_read(const std::shared_ptr<StreamConn>& c, const error_code& ec,
                               std::size_t n) {
  if (stopped_ || c->done) return;
  c->used += n;
  const bool eof = static_cast<bool>(ec);
  if (ec && ec != asio::error::eof)
    spdlog::debug("swim {}: stream read from {}: {}", name_, c->peer.to_string(), ec.message());
  if (c->inbound) inbound_bytes(c, eof);
  else outbound_bytes(c, eof);
}

void Membership::Impl::write_then(const std::shared_ptr<StreamConn>& c, bool read_after) {
  asio::async_write(c->sock, asio::buffer(c->out),
                    [self = shared_from_this(), c, read_after](const error_code& ec, std::size_t) {
                      if (self->stopped_ || c->done) return;
                      if (ec) {
                        spdlog::debug("swim {}: stream write to {}: {}", self->name_,
                                      c->peer.to_string(), ec.message());
                        if (c->inbound) self->close_conn(c);
                        else self->fail_outbound(c, "write: " + ec.message());
                        return;
                      }
                      if (read_after) {
                        self->read_more(c);
                        return;
                      }
                      // Sent: an inbound answer, or a one-way user message.
                      error_code ignored;
                      c->sock.shutdown(ip::tcp::socket::shutdown_send, ignored);
                      self->close_conn(c);
                    });
}

// --- outbound --------------------------------------------------------------------

void Membership::Impl::open_stream(OutStream s) {
  if (outbound_active_ >= net_.max_outbound_streams || !s.to.valid() || s.to.port == 0) {
    ++dstats_.streams_failed;
    if (s.expects_reply) node_->on_stream_failed(now(), s.id);
    return;
  }
  auto c = track(ip::tcp::socket(strand_), false, to_steady(s.deadline));
  c->peer = s.to;
  c->stream_id = s.id;
  c->expects_reply = s.expects_reply;
  if (net_.keyring.enabled()) {
    c->out = detail::seal_stream(net_.keyring, s.bytes, enc_vsn_);
    if (c->out.empty()) {
      ++dstats_.send_errors;
      fail_outbound(c);
      return;
    }
  } else {
    c->out = std::move(s.bytes);
  }
  c->sock.async_connect(ip::tcp::endpoint(detail::to_ip(s.to), s.to.port),
                        [self = shared_from_this(), c](const error_code& ec) {
                          if (self->stopped_ || c->done) return;
                          if (ec) {
                            spdlog::debug("swim {}: connect to {}: {}", self->name_,
                                          c->peer.to_string(), ec.message());
                            self->fail_outbound(c, "connect: " + ec.message());
                            return;
                          }
                          self->write_then(c, c->expects_reply);
                        });
}

// An encrypted stream frame, [10][u32 BE length][vsn][nonce][ciphertext],
// from the bytes received so far. With a keyring every stream must be one
// (GossipVerifyIncoming): plaintext, an oversized length or a frame no key
// opens is refused and counted.
Membership::Impl::FrameState Membership::Impl::open_frame(ByteView got, Bytes& plain) {
  if (got.empty()) return FrameState::NeedMore;
  if (got[0] != detail::kEncryptMsgType) {
    ++dstats_.streams_dropped_decrypt;
    return FrameState::Refused;
  }
  if (got.size() < detail::kStreamHeaderSize) return FrameState::NeedMore;
  const std::size_t len = detail::stream_body_length(got);
  if (len > limits_.max_stream) {
    ++dstats_.streams_dropped_oversize;
    return FrameState::Refused;
  }
  if (got.size() < detail::kStreamHeaderSize + len) return FrameState::NeedMore;
  auto opened = net_.keyring.decrypt(got.subspan(detail::kStreamHeaderSize, len),
                                     got.first(detail::kStreamHeaderSize));
  if (!opened) {
    ++dstats_.streams_dropped_decrypt;
    return FrameState::Refused;
  }
  plain = std::move(*opened);
  return FrameState::Ready;
}

void Membership::Impl::outbound_bytes(const std::shared_ptr<StreamConn>& c, bool eof) {
  const ByteView got(c->buf.data(), c->used);
  if (net_.keyring.enabled()) {
    Bytes plain;
    switch (open_frame(got, plain)) {
      case FrameState::NeedMore: break;
      case FrameState::Refused:  // a plaintext, oversized or undecryptable reply
        fail_outbound(c, "its answer was not sealed with a gossip key of ours (another key, or none?)");
        return;
      case FrameState::Ready:
        close_conn(c);
        node_->on_stream_reply(now(), c->stream_id, plain);
        pump();
        return;
    }
  } else if (!got.empty() && (eof || ready_to_scan(c))) {
    auto decoded = decode_stream(got, limits_);
    if (decoded || decoded.error().code != DecodeError::Incomplete) {
      // Complete, or wrong beyond repair: either way the core judges it
      // (and counts what is wrong with it).
      close_conn(c);
      node_->on_stream_reply(now(), c->stream_id, got);
      pump();
      return;
    }
  }
  if (eof) {
    fail_outbound(c, "it closed the connection without a whole answer");
    return;
  }
  if (c->used > stream_limit()) {
    ++dstats_.streams_dropped_oversize;
    fail_outbound(c, "its answer is over the stream size limit");
    return;
  }
  read_more(c);
}

// --- inbound --------------------------------------------------------------------------

void Membership::Impl::accept() {
  acceptor_.async_accept([self = shared_from_this()](const error_code& ec, ip::tcp::socket sock) {
    self->on_accept(ec, std::move(sock));
  });
}

void Membership::Impl::on_accept(const error_code& ec, ip::tcp::socket sock) {
  if (stopped_) return;
  if (ec) {
    if (ec == asio::error::operation_aborted) return;
    // Out of descriptors and the like: back off instead of spinning.
    spdlog::warn("swim {}: accept failed: {}", name_, ec.message());
    accept_timer_.expires_after(kAcceptRetry);
    accept_timer_.async_wait([self = shared_from_this()](const error_code& tec) {
      if (!tec && !self->stopped_) self->accept();
    });
    return;
  }
  accept();
  error_code pec;
  const auto remote = sock.remote_endpoint(pec);
  if (pec) return;  // already gone
  if (inbound_active_ >= net_.max_inbound_streams && !evict_slowest_inbound()) {
    ++dstats_.streams_refused_busy;
    sock.close(pec);
    return;
  }
  const Duration timeout = node_->config().tcp_timeout;
  auto c = track(std::move(sock), true, std::chrono::steady_clock::now() +
                                            std::chrono::duration_cast<std::chrono::steady_clock::duration>(timeout));
  c->peer = detail::to_address(remote.address(), remote.port());
  c->opened = std::chrono::steady_clock::now();
  read_more(c);
}

void Membership::Impl::inbound_bytes(const std::shared_ptr<StreamConn>& c, bool eof) {
  const ByteView got(c->buf.data(), c->used);
  if (net_.keyring.enabled()) {
    Bytes plain;
    switch (open_frame(got, plain)) {
      case FrameState::NeedMore: break;
      case FrameState::Refused:
        close_conn(c);
        return;
      case FrameState::Ready:
        answer_inbound(c, plain);
        return;
    }
  } else if (!got.empty() && (eof || ready_to_scan(c))) {
    StreamAnswer a = node_->on_stream(now(), c->peer, got);
    if (a.status != StreamAnswer::Status::NeedMore) {
      if (a.status == StreamAnswer::Status::Reply) {
        c->answering = true;
        c->out = std::move(a.reply);
        write_then(c, false);
      } else {
        close_conn(c);
      }
      pump();
      return;
    }
  }
  if (eof) {
    if (c->used > 0) ++dstats_.streams_dropped_malformed;  // ended before a whole message
    close_conn(c);
    return;
  }
  if (c->used > stream_limit()) {
    ++dstats_.streams_dropped_oversize;
    close_conn(c);
    return;
  }
  read_more(c);
}

void Membership::Impl::answer_inbound(const std::shared_ptr<StreamConn>& c, ByteView request) {
  const StreamAnswer a = node_->on_stream(now(), c->peer, request);
  switch (a.status) {
    case StreamAnswer::Status::NeedMore:
      // The frame held all there is: the message inside is cut short.
      ++dstats_.streams_dropped_malformed;
      close_conn(c);
      break;
    case StreamAnswer::Status::Close: close_conn(c); break;
    case StreamAnswer::Status::Reply:
      c->answering = true;
      c->out = detail::seal_stream(net_.keyring, a.reply, enc_vsn_);
      if (c->out.empty()) {
        ++dstats_.send_errors;
        close_conn(c);
      } else {
        write_then(c, false);
      }
      break;
  }
  pump();
}

}  // namespace mesh::swim
