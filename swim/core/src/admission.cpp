// Members we did not know before (swim/DESIGN.md, "Hostile gossip"):
// whether one may be added at all (the budgets of admission.hpp), and the
// ping that checks that an added member exists.
#include <string>
#include <utility>

#include "node_impl.hpp"

namespace mesh::swim {

// Whether an unknown member may be added (admission.hpp). The cap on
// unverified members holds for every source; the rate only for
// unsolicited ones.
bool Node::Impl::admit_new_member(const Address* from, Time now) {
  if (unverified >= config.max_unverified_members) {
    ++stats.members_over_unverified;
    return false;
  }
  if (from != nullptr && !admission.admit(*from, now)) {
    ++stats.members_rate_limited;
    return false;
  }
  return true;
}

// One ping to a member after it is admitted (or moves address). An answer
// verifies it; none, not even through helpers (verify_expired), makes us
// suspect it without touching our health score: announced members that
// do not exist go the way of failed ones (suspect, dead, reaped) within
// bounded time, and a real member that missed the ping refutes the
// suspicion. Sent bare (no piggybacked gossip): the address may lead
// nowhere.
//
// The ping waits two to three probe intervals (and is not sent if the
// member pinged us meanwhile): every ack carries gossip, and
// a newcomer answering the pings of everyone who just learned of it would
// spend the few retransmissions of its fresh news on nodes that already
// have it (a join of 8 nodes took five times as long when pinged at once).
void Node::Impl::schedule_verify(const NodeState& s, Time now) {
  // Spread by a hash of the name, not by the random engine: drawing from
  // it here would reshuffle every later random choice of the node.
  const auto spread = static_cast<std::uint64_t>(std::max<Duration::rep>(1, config.probe_interval.count()));
  const auto jitter = static_cast<Duration::rep>(std::hash<std::string>{}(s.m.name) % spread);
  schedule(now + 2 * config.probe_interval + Duration(jitter), TimerKind::VerifySend, 0, s.m.name);
}

void Node::Impl::verify_due(const std::string& name, Time now) {
  NodeState* s = find(name);
  if (s != nullptr && !s->m.verified && s->m.state == MemberState::Alive) send_verify_ping(*s, now);
}

void Node::Impl::send_verify_ping(NodeState& s, Time now) {
  const std::uint32_t seq = ++seq_no;
  AckHandler h;
  h.kind = AckHandler::Kind::Verify;
  h.expires = now + config.probe_interval;
  h.requester = s.m.addr;
  h.requester_name = s.m.name;
  ack_handlers[seq] = std::move(h);
  schedule(now + config.probe_interval, TimerKind::VerifyExpire, seq);
  ++stats.verify_pings_sent;
  send_raw(s.m.addr, encode(make_ping(seq, s.m.name)), &s);
}

void Node::Impl::mark_verified(NodeState& s) {
  if (s.m.verified) return;
  s.m.verified = true;
  ring_dirty = true;
  if (unverified > 0) --unverified;
}

// No answer to the verification ping: ask verified members to try, as a
// probe would (a blocked path must not make us suspect a real member);
// no answer to that either: suspect it.
void Node::Impl::verify_expired(std::uint32_t seq, Time now) {
  auto it = ack_handlers.find(seq);
  NodeState* s = find(it->second.requester_name);
  if (s == nullptr || s->m.verified || s->m.addr != it->second.requester ||
      s->m.state != MemberState::Alive) {
    ack_handlers.erase(it);
    return;
  }
  if (!it->second.verify_indirect) {
    it->second.verify_indirect = true;
    it->second.expires = now + config.probe_interval;
    auto helpers = k_random_nodes(config.indirect_checks, [&](const NodeState& h) {
      return h.m.verified && h.m.state == MemberState::Alive && h.m.name != config.name && &h != s;
    });
    if (!helpers.empty()) {
      const IndirectPing ind = indirect_ping(seq, s->m);
      for (NodeState* h : helpers) {
        ++stats.indirect_probes_sent;
        send_msg(h->m.addr, encode(ind), h);
      }
      schedule(now + config.probe_interval, TimerKind::VerifyExpire, seq);
      return;
    }
  }
  ack_handlers.erase(it);
  ++stats.verify_failed;
  suspect_node(Suspect{s->m.incarnation, s->m.name, config.name}, now, true);
}

}  // namespace mesh::swim
