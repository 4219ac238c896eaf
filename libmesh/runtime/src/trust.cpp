// The trust policy at work (mesh/policy.hpp): checked when an agent sends
// (fail fast), enforced when a message from another node arrives
// (MeshCore::admit), and applied to discovery; and the node certificates
// whose zones the policy believes (mesh/node_cert.hpp).
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <stdexcept>

#include "mesh/text.hpp"
#include "mesh_core.hpp"

namespace mesh::detail {
namespace {

std::int64_t unix_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

std::vector<std::string> MeshCore::claims_of(std::string_view node) const {
  if (node == node_name) return own_claims;
  std::lock_guard lock(claims_mu);
  const auto it = node_claims.find(node);
  return it == node_claims.end() ? std::vector<std::string>() : it->second;
}

Policy::ZoneMask MeshCore::zones_of(const Policy& p, std::string_view node, std::string_view role) const {
  std::string key;
  key.reserve(node.size() + role.size() + 1);
  key.append(node).append(1, '\n').append(role);
  {
    std::lock_guard lock(zone_cache_mu);
    if (policy.get() == &p) {
      if (const auto it = zone_cache.find(key); it != zone_cache.end()) return it->second;
    }
  }
  const auto claims = claims_of(node);
  const auto mask = p.mask_of(PolicySubject{node, role, &claims});
  std::lock_guard lock(zone_cache_mu);
  if (policy.get() != &p) return mask;  // reloaded meanwhile: the cache is the new policy's
  if (zone_cache.size() >= kZoneCacheMax) zone_cache.clear();
  zone_cache.emplace(std::move(key), mask);
  return mask;
}

void MeshCore::forget_zones() {
  std::lock_guard lock(zone_cache_mu);
  zone_cache.clear();
}

std::shared_ptr<const Policy> MeshCore::policy_now() const {
  std::lock_guard lock(zone_cache_mu);
  return policy;
}

std::optional<std::string> MeshCore::reload_policy() {
  if (!policy_on) throw std::logic_error("reload: this node runs without a policy (policy_file, JC_POLICY)");
  std::lock_guard one(reload_mu);
  std::shared_ptr<const Policy> next;
  try {
    next = std::make_shared<const Policy>(Policy::load(config.policy_file));
  } catch (const std::invalid_argument& e) {
    spdlog::warn("{}: the policy was not reloaded, the one in force stays: {}", node_name, e.what());
    return e.what();
  }
  {
    std::lock_guard lock(zone_cache_mu);
    policy = std::move(next);
    zone_cache.clear();
  }
  spdlog::info("{}: policy reloaded from {}", node_name, config.policy_file);
  return std::nullopt;
}

bool MeshCore::allows_send(std::string_view from_role, TargetView peer, PolicyAction action) const {
  if (!policy_on) return true;
  const auto p = policy_now();
  return p->allows(zones_of(*p, node_name, from_role), zones_of(*p, peer.node, peer.role), action);
}

bool MeshCore::may_send(std::string_view from_agent, std::string_view from_role, TargetView peer,
                        PolicyAction action) {
  if (allows_send(from_role, peer, action)) return true;
  stats.policy_denied_sent.fetch_add(1);
  audit_denied("sender", node_name + "/" + std::string(from_agent),
               std::string(peer.node) + "/" + std::string(peer.agent_id), action);
  return false;
}

void MeshCore::keep_reachable(std::vector<PeerInfo>& peers, std::string_view from_role) const {
  if (!policy_on) return;
  const auto now = policy_now();
  const auto from = zones_of(*now, node_name, from_role);
  std::erase_if(peers, [&](const PeerInfo& p) {
    const auto to = zones_of(*now, p.card.node, p.card.role);
    for (auto a : {PolicyAction::Notify, PolicyAction::Request, PolicyAction::Broadcast}) {
      if (now->allows(from, to, a)) return false;
    }
    return true;
  });
}

bool MeshCore::may_receive(std::string_view node, std::string_view sender, std::string_view target,
                           PolicyAction action) {
  if (!policy_on) return true;
  // The sender's role as its node advertises it ('$' senders have none);
  // admit() checked before that the node holds that agent.
  const std::string sender_role = sender.starts_with('$') ? std::string() : directory.role_of(sender).value_or("");
  const std::string target_role = directory.role_of(target).value_or("");
  const auto p = policy_now();
  if (p->allows(zones_of(*p, node, sender_role), zones_of(*p, node_name, target_role), action)) return true;
  stats.policy_denied_received.fetch_add(1);
  audit_denied("receiver", std::string(node) + "/" + std::string(sender), node_name + "/" + std::string(target),
               action);
  return false;
}

void MeshCore::take_certificate(const std::string& node, const std::optional<std::string>& cert) {
  std::optional<std::vector<std::string>> zones;
  if (cert && trust_key) {
    std::string curve_key;
    {
      std::lock_guard lock(fetch_mu);
      if (auto k = curve_keys.find(node); k != curve_keys.end()) curve_key = k->second;
    }
    CertCheck check{};
    auto c = open_cert(*cert, *trust_key, node, curve_key, unix_seconds(), check);
    if (check == CertCheck::Ok && c) {
      zones = std::move(c->zones);
    } else {
      stats.certificates_refused.fetch_add(1);
      spdlog::warn("{}: the certificate of {} is {}: its zone claims are ignored", node_name, escape_text(node),
                   to_string(check));
    }
  }
  {
    std::lock_guard lock(claims_mu);
    if (zones) {
      node_claims[node] = std::move(*zones);
    } else {
      node_claims.erase(node);
    }
  }
  forget_zones();
}

// One line a second at most: a flood of refused messages must not become
// a flood of log lines.
void MeshCore::audit_denied(std::string_view side, std::string_view from, std::string_view to, PolicyAction action) {
  std::uint64_t suppressed = 0;
  {
    std::lock_guard lock(audit_mu);
    const auto now = steady_ms();
    if (now - audit_last_ms < 1000) {
      ++audit_suppressed;
      return;
    }
    audit_last_ms = now;
    suppressed = std::exchange(audit_suppressed, 0);
  }
  spdlog::warn("{}: policy denied a {} from {} to {} (at the {}){}", node_name, to_string(action), escape_text(from),
               escape_text(to), side,
               suppressed ? " (and " + std::to_string(suppressed) + " more denials since the last line)" : "");
}

}  // namespace mesh::detail
