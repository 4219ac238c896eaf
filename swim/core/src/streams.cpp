// Stream exchanges, memberlist's TCP side: the requests we open (push/pull,
// join, stream ping, reliable user message) with their replies and
// failures, and the answers to streams that other nodes open to us.
#include <optional>
#include <string>
#include <utility>
#include <variant>

#include "node_impl.hpp"

namespace mesh::swim {

std::uint64_t Node::Impl::open_stream(const Address& to, StreamKind kind, Bytes bytes,
                                      Time deadline, bool expects_reply, std::uint32_t probe_seq) {
  const std::uint64_t id = ++next_stream_id;
  ++stats.streams_sent;
  out_streams.push_back({id, to, kind, std::move(bytes), deadline, expects_reply});
  if (expects_reply) {
    pending_streams[id] = PendingStream{kind, to, probe_seq};
    schedule(deadline, TimerKind::StreamDeadline, id);
  }
  return id;
}

void Node::Impl::stream_done(const PendingStream& ps, ByteView bytes, bool failed, Time now) {
  if (failed) {
    if (ps.kind == StreamKind::Join)
      join_results.push_back({ps.to, false, "stream failed or timed out"});
    return;
  }
  Bytes inflated;
  auto decoded = decode_stream_view(bytes, inflated, config.limits);
  if (!decoded) {
    count_error(decoded.error());
    if (ps.kind == StreamKind::Join)
      join_results.push_back({ps.to, false, "bad reply: " + decoded.error().reason});
    return;
  }
  const StreamMessageView& msg = decoded->message;
  switch (ps.kind) {
    case StreamKind::Ping:
      if (const auto* ack = std::get_if<Ack>(&msg))
        if (probe.active && probe.seq == ps.probe_seq && ack->seq_no == ps.probe_seq)
          probe_succeeded(now);
      return;
    case StreamKind::PushPull:
    case StreamKind::Join: {
      std::optional<std::string> error;
      if (const auto* pp = std::get_if<PushPullView>(&msg)) {
        error = merge_remote(*pp, now, nullptr);
      } else {
        ++stats.unexpected_messages;
        const auto* err = std::get_if<ErrResp>(&msg);
        error = err != nullptr ? "remote error: " + err->error : std::string("unexpected reply");
      }
      if (ps.kind == StreamKind::Join)
        join_results.push_back({ps.to, !error.has_value(), error.value_or("")});
      return;
    }
    case StreamKind::UserMsg: return;
  }
}

StreamAnswer Node::on_stream(Time now, const Address& from, ByteView bytes) {
  Impl& m = *impl_;
  Bytes inflated;
  auto decoded = decode_stream_view(bytes, inflated, m.config.limits);
  if (!decoded) {
    if (decoded.error().code == DecodeError::Incomplete) return {StreamAnswer::Status::NeedMore, {}};
    m.count_error(decoded.error());
    return {StreamAnswer::Status::Close, {}};
  }
  ++m.stats.streams_received;
  if (!m.started) return {StreamAnswer::Status::Close, {}};
  StreamMessageView& msg = decoded->message;
  if (auto* pp = std::get_if<PushPullView>(&msg)) {
    ++m.stats.push_pulls_served;
    // As memberlist: answer with our state as it was, then merge theirs.
    Bytes reply = m.local_state_stream(pp->join);
    (void)m.merge_remote(*pp, now, &from);
    return {StreamAnswer::Status::Reply, std::move(reply)};
  }
  if (auto* ping = std::get_if<Ping>(&msg)) {
    if (!ping->node.empty() && ping->node != m.config.name) {
      ++m.stats.ping_wrong_node;
      return {StreamAnswer::Status::Close, {}};
    }
    return {StreamAnswer::Status::Reply,
            encode_stream(StreamMessage{Ack{ping->seq_no, {}}}, m.config.compress_streams)};
  }
  if (auto* user = std::get_if<UserMsg>(&msg)) {
    m.user_data.push_back({UserData::Kind::Message, std::move(user->payload), false});
    return {StreamAnswer::Status::Close, {}};
  }
  ++m.stats.unexpected_messages;
  return {StreamAnswer::Status::Close, {}};
}

void Node::on_stream_reply(Time now, std::uint64_t stream_id, ByteView bytes) {
  Impl& m = *impl_;
  auto it = m.pending_streams.find(stream_id);
  if (it == m.pending_streams.end()) return;
  const Impl::PendingStream ps = it->second;
  m.pending_streams.erase(it);
  m.stream_done(ps, bytes, false, now);
}

void Node::on_stream_failed(Time now, std::uint64_t stream_id) {
  Impl& m = *impl_;
  auto it = m.pending_streams.find(stream_id);
  if (it == m.pending_streams.end()) return;
  const Impl::PendingStream ps = it->second;
  m.pending_streams.erase(it);
  m.stream_done(ps, {}, true, now);
}

}  // namespace mesh::swim
