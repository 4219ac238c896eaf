// Full state exchange (memberlist's pushPull, verifyProtocol and
// mergeRemoteState): the periodic push/pull, the reconnect attempts to
// failed members, and the merge of the member list a peer sends us.
#include <iterator>
#include <optional>
#include <string>
#include <vector>

#include "node_impl.hpp"

namespace mesh::swim {

// Our push/pull message ([6][header][states][user state]), encoded
// straight from the members: views into them, no copy of each state.
Bytes Node::Impl::local_state_stream(bool join) const {
  std::vector<PushNodeStateView> states;
  states.reserve(nodes.size());
  for (const auto& s : nodes) {
    states.push_back(PushNodeStateView{s->m.name, s->m.addr.ip_bytes(), s->m.addr.port, s->m.meta,
                                       s->m.incarnation, s->m.state,
                                       ByteView(s->m.vsn.data(), s->m.vsn.size())});
  }
  return encode_push_pull_stream(join, states, user_state, config.compress_streams);
}

void Node::Impl::push_pull_tick(Time now) {
  const std::uint64_t gen = ++push_pull_gen;
  schedule(now + push_pull_scale(config.push_pull_interval, nodes.size()),
           TimerKind::PushPullTick, gen);
  auto peer = pick_peers(1, [&](const NodeState& s) {
    return s.m.name != config.name && s.m.state == MemberState::Alive;
  });
  if (peer.empty()) return;
  ++stats.push_pulls;
  open_stream(peer[0]->m.addr, StreamKind::PushPull,
              local_state_stream(false),
              now + config.tcp_timeout, true);
}

// Serf's reconnect (serf.go): try one failed member now and then, more
// eagerly the larger the failed share of the cluster.
void Node::Impl::reconnect_tick(Time now) {
  schedule(now + config.reconnect_interval, TimerKind::ReconnectTick, 0);
  for (auto it = failed_members.begin(); it != failed_members.end();) {
    if (now - it->second.since > config.reconnect_timeout) it = failed_members.erase(it);
    else ++it;
  }
  if (failed_members.empty() || left) return;
  std::size_t alive = 0;
  for (const auto& s : nodes)
    if (s->m.state == MemberState::Alive) ++alive;
  const double prob = static_cast<double>(failed_members.size()) / static_cast<double>(std::max<std::size_t>(alive, 1));
  if (rng.unit() > prob) return;
  auto it = std::next(failed_members.begin(), static_cast<std::ptrdiff_t>(rng.below(failed_members.size())));
  ++stats.reconnects;
  open_stream(it->second.addr, StreamKind::PushPull,
              local_state_stream(true),
              now + config.tcp_timeout, true);
}

// verifyProtocol: every alive node's current versions must lie inside the
// range that all alive nodes (theirs and ours) understand.
std::optional<std::string> Node::Impl::verify_protocol(
    const std::vector<PushNodeStateView>& remote) const {
  std::uint8_t max_pmin = 0, min_pmax = 255, max_dmin = 0, min_dmax = 255;
  auto widen = [&](const Vsn& v) {
    max_pmin = std::max(max_pmin, v[0]);
    min_pmax = std::min(min_pmax, v[1]);
    max_dmin = std::max(max_dmin, v[3]);
    min_dmax = std::min(min_dmax, v[4]);
  };
  for (const auto& r : remote)
    if (r.state == MemberState::Alive && r.vsn.size() == 6) widen(vsn_from(r.vsn));
  for (const auto& s : nodes)
    if (s->m.state == MemberState::Alive) widen(s->m.vsn);
  // The name is only copied into an error message, never per entry.
  auto check = [&](std::string_view name, std::uint8_t pcur,
                   std::uint8_t dcur) -> std::optional<std::string> {
    if (pcur < max_pmin || pcur > min_pmax)
      return "node " + quoted(name) + " protocol version " + std::to_string(pcur) + " is incompatible";
    if (dcur < max_dmin || dcur > min_dmax)
      return "node " + quoted(name) + " delegate version " + std::to_string(dcur) + " is incompatible";
    return std::nullopt;
  };
  for (const auto& r : remote) {
    const Vsn v = vsn_from(r.vsn);
    if (auto e = check(r.name, v[2], v[5])) return e;
  }
  for (const auto& s : nodes)
    if (auto e = check(s->m.name, s->m.vsn[2], s->m.vsn[5])) return e;
  return std::nullopt;
}

// mergeRemoteState + mergeState. A remote "dead" is only a suspicion here:
// we give the node the chance to refute it.
// `from`: the peer of a push/pull it opened to us; nullptr when we opened it.
std::optional<std::string> Node::Impl::merge_remote(const PushPullView& pp, Time now,
                                                    const Address* from) {
  for (const auto& r : pp.nodes)
    if (!r.vsn.empty() && r.vsn.size() != 6) {
      ++stats.decode_errors[static_cast<std::size_t>(DecodeError::Malformed)];
      return "node " + quoted(r.name) + " has a malformed version vector";
    }
  if (auto err = verify_protocol(pp.nodes)) {
    ++stats.push_pull_rejected;
    return err;
  }
  for (const auto& r : pp.nodes) {
    // A bad name costs only its own entry, not the whole exchange. An
    // alive entry is checked by alive_node() if it is new (known names
    // passed when they were added); the others here.
    if (r.state != MemberState::Alive && !valid_member_name(r.name)) {
      count_bad_name();
      continue;
    }
    switch (r.state) {
      case MemberState::Alive: {
        // Most entries of a push/pull are old news: skip them before
        // copying anything (alive_node would ignore them too).
        if (const NodeState* known = find(r.name);
            known != nullptr && r.incarnation <= known->m.incarnation &&
            r.name != config.name && known->m.addr.port == r.port &&
            std::equal(r.addr.begin(), r.addr.end(), known->m.addr.ip_bytes().begin(),
                       known->m.addr.ip_bytes().end()))
          break;
        alive_node(AliveView{r.incarnation, r.name, r.addr, r.port, r.meta, r.vsn}, false, now, from);
        break;
      }
      case MemberState::Left:
        dead_node(Dead{r.incarnation, std::string(r.name), std::string(r.name)}, now);
        break;
      case MemberState::Dead:
      case MemberState::Suspect:
        suspect_node(Suspect{r.incarnation, std::string(r.name), config.name}, now);
        break;
    }
  }
  if (!pp.user_state.empty())
    user_data.push_back(
        {UserData::Kind::RemoteState, Bytes(pp.user_state.begin(), pp.user_state.end()), pp.join});
  return std::nullopt;
}

// A remote name for an error text: quoted only when it is a valid name,
// so that a hostile one never reaches a log line.
// Built by appending rather than as "'" + std::string(name) + "'": in a
// file of its own that expression makes GCC 12 at -O3 report a bogus
// -Wrestrict (as in tests/fuzz/swim_node_fuzz.cpp), which -Werror turns
// into a failed Release build. The string is the same.
std::string Node::Impl::quoted(std::string_view name) {
  if (!valid_member_name(name)) return std::string("(invalid name)");
  std::string q;
  q.reserve(name.size() + 2);
  q += '\'';
  q += name;
  q += '\'';
  return q;
}

}  // namespace mesh::swim
