// Following membership: nodes joining and leaving, and fetching the agent
// registries they advertise.
#include "mesh_core.hpp"

#include <spdlog/spdlog.h>

#include "mesh/swim/membership.hpp"
#include "mesh/text.hpp"

namespace mesh::detail {

void MeshCore::on_member_event(const swim::MemberEvent& event) {
  if (link) link->on_member_event(event);
  const auto& m = event.member;
  if (m.name == node_name) return;
  // Another node joined this one: in a cluster, whether or not our own
  // seeds have answered (Mesh::readiness).
  if (event.kind == swim::EventKind::Joined || event.kind == swim::EventKind::Recovered) joined.store(true);
  const auto tags = swim::decode_serf_tags(m.meta);
  const bool is_mesh = tags && tags->contains(kMeshTag) && tags->contains(kZmqPortTag);
  switch (event.kind) {
    case swim::EventKind::Joined:
    case swim::EventKind::Updated:
    case swim::EventKind::Recovered: {
      if (!is_mesh) {
        // A member that dropped its mesh tags (or never had them).
        if (directory.remove_node(m.name)) publish(PeerEvent{PeerEventKind::NodeLeft, m.name, {}, false});
        return;
      }
      {
        std::lock_guard lock(fetch_mu);
        if (auto k = tags->find(kSigningKeyTag); k != tags->end()) {
          signing_keys[m.name] = k->second;
        } else {
          signing_keys.erase(m.name);
        }
        if (auto k = tags->find(kCurveKeyTag); k != tags->end()) {
          curve_keys[m.name] = k->second;
        } else {
          curve_keys.erase(m.name);
        }
      }
      const bool known = directory.known_version(m.name).has_value();
      // Announce before fetching: a node removed as dead is accepted again.
      directory.set_node_health(
          m.name, m.state == swim::MemberState::Suspect ? NodeHealth::Suspect : NodeHealth::Alive);
      if (event.kind == swim::EventKind::Joined || !known) {
        publish(PeerEvent{PeerEventKind::NodeJoined, m.name, {}, false});
      }
      follow_registry(m.name, *tags);
      break;
    }
    case swim::EventKind::Suspect:
      if (is_mesh) directory.set_node_health(m.name, NodeHealth::Suspect);
      break;
    case swim::EventKind::Dead:
    case swim::EventKind::Left:
      {
        std::lock_guard lock(fetch_mu);
        fetch_backoff.erase(m.name);  // so they hold live members only
        held_fetches.erase(m.name);
        signing_keys.erase(m.name);
        curve_keys.erase(m.name);
      }
      {
        std::lock_guard lock(claims_mu);
        node_claims.erase(m.name);
      }
      forget_zones();
      if (directory.remove_node(m.name) || is_mesh) {
        publish(PeerEvent{event.kind == swim::EventKind::Dead ? PeerEventKind::NodeDead : PeerEventKind::NodeLeft,
                          m.name, {}, false});
      }
      break;
    case swim::EventKind::Conflict:
      break;
  }
}

void MeshCore::follow_registry(const std::string& node, const std::map<std::string, std::string>& tags) {
  const auto it = tags.find(kRegistryVersionTag);
  if (it == tags.end()) return;
  const auto rv = parse_u64(it->second);
  if (!rv) return;
  const auto empty = tags.find(kRegistryEmptyTag);
  if (empty == tags.end() || empty->second != "1" || tags.contains(kSigningKeyTag)) {
    want_registry(node, *rv);
    return;
  }
  // Nothing to fetch. Taken on the control strand, where fetched
  // registries are taken too.
  post([this, node, version = *rv] {
    const auto known = directory.known_version(node);
    if (known && *known >= version) return;
    take_certificate(node, std::nullopt);
    if (directory.apply_remote(NodeRegistry{node, version, {}})) stats.registry_from_tags.fetch_add(1);
  });
}

void MeshCore::want_registry(const std::string& node, std::uint64_t version) {
  const auto known = directory.known_version(node);
  if (known && *known >= version) return;
  post([this, node, version] { start_fetch(node, version); });
}

void MeshCore::start_fetch(const std::string& node, std::uint64_t version) {
  {
    std::lock_guard lock(fetch_mu);
    if (fetching.contains(node)) {
      auto& wanted = fetch_again[node];
      wanted = std::max(wanted, version);
      return;
    }
    // After a failure, wait: the repair round asks again later.
    if (auto b = fetch_backoff.find(node); b != fetch_backoff.end() && steady_ms() < b->second.at) return;
    fetching.insert(node);
  }
  send_fetch(node);
}

void MeshCore::refresh_registry(const std::string& node) {
  {
    std::lock_guard lock(fetch_mu);
    held_fetches.try_emplace(node, 0);
    if (fetching.contains(node)) {
      // The answer on the way may predate the agent: ask once more after it.
      refetch.insert(node);
      return;
    }
    // No backoff here: the backoff spares phantom members a stranger
    // announced, and this node just spoke to us over its own connection.
    // A fetch that failed a moment ago (it ran before that node knew our
    // key, as happens right after a join) must not get its agent's first
    // message refused. One fetch per node is in flight at a time.
    fetching.insert(node);
  }
  post([this, node] { send_fetch(node); });
}

bool MeshCore::fetch_in_progress(const std::string& node) {
  std::lock_guard lock(fetch_mu);
  return fetching.contains(node);
}

// The caller has put `node` in `fetching`.
void MeshCore::send_fetch(const std::string& node) {
  auto t = get_transport();
  if (!t) {
    fetch_done(node, true);
    return;
  }
  stats.registry_fetches.fetch_add(1);
  transport::OutMessage m;
  m.to = {node, kRegistryInbox};
  m.sender_agent = "$mesh";
  t->request_async(std::move(m), options.registry_fetch_timeout, [this, node](transport::Reply reply) {
    // The answer is taken in on the control strand, as the fetch was sent.
    post([this, node, r = std::make_shared<transport::Reply>(std::move(reply))] { take_registry(node, *r); });
  });
}

// On the control strand: check the signature, decode and apply; the
// directory refuses a registry of a node declared dead since.
void MeshCore::take_registry(const std::string& node, const transport::Reply& reply) {
  bool ok = false;
  if (reply.ok()) {
    std::optional<std::string> key;
    {
      std::lock_guard lock(fetch_mu);
      if (auto k = signing_keys.find(node); k != signing_keys.end()) key = k->second;
    }
    RegistryTrust trust{};
    std::optional<std::string> cert;
    auto reg = open_registry(reply.envelope.payload, key, trust, &cert);
    if (trust == RegistryTrust::BadSignature) {
      stats.registry_bad_signatures.fetch_add(1);
      spdlog::warn("{}: the agent registry served by {} is not signed by its key: none of its cards is taken",
                   node_name, escape_text(node));
    }
    if (reg && reg->node == node) {
      ok = true;
      // Its zones first: the policy may be asked about its agents as soon
      // as they are in the directory.
      take_certificate(node, cert);
      if (directory.apply_remote(std::move(*reg))) {
        stats.registry_applied.fetch_add(1);
      } else {
        stats.registry_unchanged.fetch_add(1);
      }
    }
  }
  if (!ok) stats.registry_failures.fetch_add(1);
  {
    std::lock_guard lock(fetch_mu);
    if (ok) {
      fetch_backoff.erase(node);
    } else {
      auto& b = fetch_backoff[node];
      b.wait = std::clamp(b.wait * 2, kFetchBackoffMin, kFetchBackoffMax);
      b.at = steady_ms() + b.wait;
    }
  }
  fetch_done(node, !ok);
}

void MeshCore::fetch_done(const std::string& node, bool failed) {
  std::optional<std::uint64_t> wanted;
  bool again = false;
  std::optional<std::chrono::milliseconds> retry_in;
  {
    std::lock_guard lock(fetch_mu);
    if (auto h = held_fetches.find(node); failed && h != held_fetches.end() && h->second < kHeldFetchRetries) {
      // Messages wait on this registry: it stays "fetching" (they stay
      // held) until the retry has answered.
      retry_in = kHeldFetchRetryFirst * (1 << h->second);
      ++h->second;
    }
  }
  if (retry_in) {
    auto timer = std::make_unique<boost::asio::steady_timer>(*control, *retry_in);
    auto& waiting = *timer;
    held_fetch_timers[node] = std::move(timer);
    waiting.async_wait([this, node](const boost::system::error_code& ec) {
      if (ec || control_stop.load()) return;
      held_fetch_timers.erase(node);
      send_fetch(node);
    });
    return;
  }
  {
    std::lock_guard lock(fetch_mu);
    fetching.erase(node);
    if (auto it = fetch_again.find(node); it != fetch_again.end()) {
      wanted = it->second;
      fetch_again.erase(it);
    }
    again = refetch.erase(node) > 0;
  }
  if (again) {
    start_fetch(node, 0);
  } else if (wanted) {
    // The fetch that just ended may already have brought that version.
    const auto known = directory.known_version(node);
    if (!known || *known < *wanted) start_fetch(node, *wanted);
  }
  // Messages held for this registry are decided now, unless another
  // fetch is on the way: they wait for its answer.
  if (!fetch_in_progress(node)) {
    {
      std::lock_guard lock(fetch_mu);
      held_fetches.erase(node);
    }
    if (auto t = get_transport()) t->readmit(node);
  }
}

transport::TransportOptions::Admission MeshCore::admit(const transport::EnvelopeView& message, std::string_view node,
                                                       bool second_look) {
  using Admission = transport::TransportOptions::Admission;
  // '$' names are the nodes' own: a reserved inbox judges its callers
  // itself, and a '$' sender is the sending node speaking for itself (the
  // policy sees it as its node, without a role).
  if (message.target.starts_with('$')) return {};
  if (message.sender_agent.starts_with('$') || directory.holds(node, message.sender_agent)) {
    // Who it is is settled: may it do this to that agent?
    const auto action = message.type == transport::MessageType::Request ? PolicyAction::Request
                        : (message.flags & transport::kFlagBroadcast) != 0 ? PolicyAction::Broadcast
                                                                            : PolicyAction::Notify;
    if (!may_receive(node, message.sender_agent, message.target, action)) {
      return {Admission::Refuse, transport::ErrorCode::PermissionDenied};
    }
    // And its conversation: the thread's limits, class and path.
    if (const auto e = admit_thread(message, node); e != transport::ErrorCode::None) return {Admission::Refuse, e};
    return {};
  }
  const std::string name(node);
  if (!second_look) {
    refresh_registry(name);
    return {Admission::Hold, {}};
  }
  if (fetch_in_progress(name)) return {Admission::Hold, {}};
  spdlog::debug("{}: refused a {} from {}/{}: that node does not hold that agent", node_name,
                transport::to_string(message.type), node, message.sender_agent);
  return {Admission::Refuse, transport::ErrorCode::Unauthenticated};
}

}  // namespace mesh::detail
