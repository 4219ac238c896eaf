// Trust zones and who may reach whom: the policy a node enforces on the
// messages its agents receive (and checks early for those they send).
//
// A policy file (JC_POLICY, YAML; conf/policy.yaml is a commented example):
//
//   zones:
//     finance:
//       nodes: ["fin-*"]        # node names, globs (* and ?)
//       claims: ["finance"]     # zones a node's certificate vouches for
//       roles: ["accountant"]   # agent roles, on any node
//     public:
//       nodes: ["*"]
//   rules:
//     - from: public            # a zone, or "*" for anyone
//       to: finance
//       allow: [request]        # notify, request, broadcast, authority
//   default: deny               # when no rule allows it (deny unless set)
//
// An agent is in every zone one of whose selectors matches it: its node's
// name, a zone claim of its node's certificate (only certified claims count:
// the caller passes what it verified), or its role. A message of one action
// from A to B is allowed when a rule's `from` names a zone of A (or "*"),
// its `to` a zone of B (or "*"), and its `allow` lists the action; else
// `default` decides. A node's own sender ($node, $mesh) has no role: only
// its node's zones count.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace YAML {
class Node;
}

namespace mesh {

enum class PolicyAction : std::uint8_t { Notify, Request, Broadcast, Authority };
std::string_view to_string(PolicyAction action);

// Who a sender or receiver is, as the policy sees it.
struct PolicySubject {
  std::string_view node;
  std::string_view role;                       // empty: the node itself
  const std::vector<std::string>* claims = nullptr;  // certified zone claims of its node
};

class Policy {
 public:
  // Everything allowed: the policy of a node without a policy file.
  Policy() = default;
  // Throws std::invalid_argument with one line naming `source`, the line
  // and what is wrong.
  static Policy parse(const std::string& yaml_text, const std::string& source);
  // parse() of the file's text; an unreadable file is an invalid_argument too.
  static Policy load(const std::string& path);

  bool allows(const PolicySubject& from, const PolicySubject& to, PolicyAction action) const;
  // The zones `who` is in, in the file's order.
  std::vector<std::string> zones_of(const PolicySubject& who) const;
  bool empty() const { return zones_.empty() && rules_.empty() && default_allow_; }

  // The same answers in two steps, for a caller that keeps each subject's
  // zones (a bit per zone, in the file's order; at most kMaxZones) and asks
  // per message.
  using ZoneMask = std::uint64_t;
  static constexpr std::size_t kMaxZones = 64;
  ZoneMask mask_of(const PolicySubject& who) const;
  bool allows(ZoneMask from, ZoneMask to, PolicyAction action) const;

 private:
  static Policy from_yaml(const YAML::Node& doc, const std::string& source);

  struct Zone {
    std::string name;
    std::vector<std::string> nodes;
    std::vector<std::string> claims;
    std::vector<std::string> roles;
  };
  struct Rule {
    ZoneMask from = 0;  // the zone's bit, or every bit for "*"
    ZoneMask to = 0;
    std::uint8_t actions = 0;  // bit per PolicyAction
  };
  bool in_zone(const Zone& zone, const PolicySubject& who) const;

  std::vector<Zone> zones_;
  std::vector<Rule> rules_;
  bool default_allow_ = true;
};

}  // namespace mesh
