// The timer heap. memberlist waits in goroutines (for an ack, for nacks,
// for a stream); here each wait is an entry in one heap ordered by time.
// Nothing is removed when its reason goes away: an entry is checked when it
// surfaces, and one that no longer applies (the probe was answered, the
// suspicion refuted, the stream replied) is skipped.
#include <cstdint>
#include <utility>

#include "node_impl.hpp"

namespace mesh::swim {

bool Node::Impl::timer_valid(const TimerEntry& e) const {
  switch (e.kind) {
    case TimerKind::ProbeTick: return e.arg == probe_gen;
    case TimerKind::GossipTick: return e.arg == gossip_gen;
    case TimerKind::PushPullTick: return e.arg == push_pull_gen;
    case TimerKind::ProbeTimeout:
      return probe.active && probe.seq == e.arg && !probe.indirect_sent;
    case TimerKind::ProbeDeadline: return probe.active && probe.seq == e.arg;
    case TimerKind::IndirectExpire: {
      auto it = ack_handlers.find(static_cast<std::uint32_t>(e.arg));
      return it != ack_handlers.end() && it->second.kind == AckHandler::Kind::Forward;
    }
    case TimerKind::Suspicion: {
      auto it = node_timers.find(e.name);
      if (it == node_timers.end() || it->second.gen != e.arg) return false;
      return suspicion_due(it->second) == e.at;
    }
    case TimerKind::StreamDeadline: return pending_streams.count(e.arg) != 0;
    case TimerKind::ReconnectTick: return true;
    case TimerKind::VerifySend: return true;
    case TimerKind::VerifyExpire: {
      auto it = ack_handlers.find(static_cast<std::uint32_t>(e.arg));
      return it != ack_handlers.end() && it->second.kind == AckHandler::Kind::Verify;
    }
  }
  return false;
}

void Node::on_timer(Time now) {
  Impl& m = *impl_;
  while (!m.timers.empty() && m.timers.top().at <= now) {
    TimerEntry e = m.timers.top();
    m.timers.pop();
    if (!m.timer_valid(e)) continue;
    switch (e.kind) {
      case TimerKind::ProbeTick: m.probe_tick(now); break;
      case TimerKind::ProbeTimeout: m.probe_timeout(now); break;
      case TimerKind::ProbeDeadline: m.probe_deadline(now); break;
      case TimerKind::GossipTick: m.gossip_tick(now); break;
      case TimerKind::PushPullTick: m.push_pull_tick(now); break;
      case TimerKind::IndirectExpire: {
        auto it = m.ack_handlers.find(static_cast<std::uint32_t>(e.arg));
        Impl::AckHandler h = std::move(it->second);
        m.ack_handlers.erase(it);
        if (h.nack) {
          ++m.stats.nacks_sent;
          m.send_msg(h.requester, encode(Nack{h.orig_seq}), m.find(h.requester_name));
        }
        break;
      }
      case TimerKind::Suspicion: m.suspicion_fired(e.name, now); break;
      case TimerKind::StreamDeadline: on_stream_failed(now, e.arg); break;
      case TimerKind::ReconnectTick: m.reconnect_tick(now); break;
      case TimerKind::VerifySend: m.verify_due(e.name, now); break;
      case TimerKind::VerifyExpire: m.verify_expired(static_cast<std::uint32_t>(e.arg), now); break;
    }
  }
  m.leave_if_intent_sent(now);
}

Time Node::next_deadline() const {
  Impl& m = *impl_;
  while (!m.timers.empty() && !m.timer_valid(m.timers.top())) m.timers.pop();
  return m.timers.empty() ? Time::max() : m.timers.top().at;
}

}  // namespace mesh::swim
