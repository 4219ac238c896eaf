// Parsing a policy file and answering "may A do this to B" (mesh/policy.hpp).
#include "mesh/policy.hpp"

#include <fnmatch.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace mesh {
namespace {

constexpr std::uint8_t bit(PolicyAction a) { return static_cast<std::uint8_t>(1U << static_cast<unsigned>(a)); }

struct Bad : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

[[noreturn]] void fail(const std::string& source, const YAML::Node& at, const std::string& what) {
  const auto mark = at.Mark();
  std::string where = source;
  if (mark.line >= 0) where += ":" + std::to_string(mark.line + 1);
  throw Bad("policy: " + where + ": " + what);
}

std::vector<std::string> strings(const std::string& source, const YAML::Node& node, const std::string& what) {
  std::vector<std::string> out;
  if (!node.IsSequence()) fail(source, node, what + " must be a list of strings");
  for (const auto& item : node) {
    if (!item.IsScalar() || item.Scalar().empty()) fail(source, item, what + " must hold non-empty strings");
    out.push_back(item.Scalar());
  }
  return out;
}

bool glob(const std::string& pattern, std::string_view text) {
  return ::fnmatch(pattern.c_str(), std::string(text).c_str(), 0) == 0;
}

}  // namespace

std::string_view to_string(PolicyAction action) {
  switch (action) {
    case PolicyAction::Notify: return "notify";
    case PolicyAction::Request: return "request";
    case PolicyAction::Broadcast: return "broadcast";
    case PolicyAction::Authority: return "authority";
  }
  return "?";
}

Policy Policy::parse(const std::string& yaml_text, const std::string& source) {
  YAML::Node doc;
  try {
    doc = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    throw Bad("policy: " + source + ":" + std::to_string(e.mark.line + 1) + ": not YAML: " + e.msg);
  }
  try {
    return from_yaml(doc, source);
  } catch (const YAML::Exception& e) {
    // Something of the wrong kind where a name belongs (a list as a key, ...).
    throw Bad("policy: " + source + ":" + std::to_string(e.mark.line + 1) + ": " + e.msg);
  }
}

Policy Policy::from_yaml(const YAML::Node& doc, const std::string& source) {
  if (!doc.IsMap()) fail(source, doc, "the policy must be a map with zones, rules and default");
  Policy p;
  p.default_allow_ = false;  // a policy file denies what it does not allow
  for (const auto& entry : doc) {
    const std::string key = entry.first.as<std::string>();
    if (key != "zones" && key != "rules" && key != "default") {
      fail(source, entry.first, "unknown key \"" + key + "\" (zones, rules, default)");
    }
  }
  if (const auto zones = doc["zones"]) {
    if (!zones.IsMap()) fail(source, zones, "zones must map zone names to selectors");
    for (const auto& z : zones) {
      Zone zone;
      zone.name = z.first.as<std::string>();
      if (zone.name.empty() || zone.name == "*") fail(source, z.first, "a zone needs a name other than \"*\"");
      if (!z.second.IsMap()) fail(source, z.second, "zone " + zone.name + ": give nodes, claims and/or roles");
      for (const auto& sel : z.second) {
        const std::string what = sel.first.as<std::string>();
        if (what == "nodes") {
          zone.nodes = strings(source, sel.second, "zone " + zone.name + ": nodes");
        } else if (what == "claims") {
          zone.claims = strings(source, sel.second, "zone " + zone.name + ": claims");
        } else if (what == "roles") {
          zone.roles = strings(source, sel.second, "zone " + zone.name + ": roles");
        } else {
          fail(source, sel.first, "zone " + zone.name + ": unknown selector \"" + what + "\" (nodes, claims, roles)");
        }
      }
      if (zone.nodes.empty() && zone.claims.empty() && zone.roles.empty()) {
        fail(source, z.second, "zone " + zone.name + " selects nothing");
      }
      if (p.zones_.size() == kMaxZones) fail(source, z.first, "more than " + std::to_string(kMaxZones) + " zones");
      p.zones_.push_back(std::move(zone));
    }
  }
  auto bit_of = [&p](const std::string& zone) -> ZoneMask {
    if (zone == "*") return ~ZoneMask{0};
    for (std::size_t i = 0; i < p.zones_.size(); ++i) {
      if (p.zones_[i].name == zone) return ZoneMask{1} << i;
    }
    return 0;
  };
  if (const auto rules = doc["rules"]) {
    if (!rules.IsSequence()) fail(source, rules, "rules must be a list");
    for (const auto& r : rules) {
      if (!r.IsMap()) fail(source, r, "a rule is a map: from, to, allow");
      Rule rule;
      for (const auto& field : r) {
        const std::string key = field.first.as<std::string>();
        if (key == "from" || key == "to") {
          if (!field.second.IsScalar()) fail(source, field.second, key + " must name a zone or \"*\"");
          const ZoneMask zone_bit = bit_of(field.second.Scalar());
          if (zone_bit == 0) fail(source, field.second, "no zone named \"" + field.second.Scalar() + "\"");
          (key == "from" ? rule.from : rule.to) = zone_bit;
        } else if (key == "allow") {
          for (const auto& a : strings(source, field.second, "allow")) {
            if (a == "notify") {
              rule.actions |= bit(PolicyAction::Notify);
            } else if (a == "request") {
              rule.actions |= bit(PolicyAction::Request);
            } else if (a == "broadcast") {
              rule.actions |= bit(PolicyAction::Broadcast);
            } else if (a == "authority") {
              rule.actions |= bit(PolicyAction::Authority);
            } else {
              fail(source, field.second, "unknown action \"" + a + "\" (notify, request, broadcast, authority)");
            }
          }
        } else {
          fail(source, field.first, "unknown rule key \"" + key + "\" (from, to, allow)");
        }
      }
      if (rule.from == 0 || rule.to == 0 || rule.actions == 0) {
        fail(source, r, "a rule needs from, to and a non-empty allow");
      }
      p.rules_.push_back(std::move(rule));
    }
  }
  if (const auto d = doc["default"]) {
    if (!d.IsScalar() || (d.Scalar() != "allow" && d.Scalar() != "deny")) {
      fail(source, d, "default must be allow or deny");
    }
    p.default_allow_ = d.Scalar() == "allow";
  }
  return p;
}

Policy Policy::load(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Bad("policy: " + path + ": cannot read it");
  std::ostringstream text;
  text << in.rdbuf();
  return parse(text.str(), path);
}

bool Policy::in_zone(const Zone& zone, const PolicySubject& who) const {
  for (const auto& g : zone.nodes) {
    if (glob(g, who.node)) return true;
  }
  if (who.claims) {
    for (const auto& c : zone.claims) {
      if (std::find(who.claims->begin(), who.claims->end(), c) != who.claims->end()) return true;
    }
  }
  if (!who.role.empty()) {
    for (const auto& r : zone.roles) {
      if (r == who.role) return true;
    }
  }
  return false;
}

Policy::ZoneMask Policy::mask_of(const PolicySubject& who) const {
  ZoneMask m = 0;
  for (std::size_t i = 0; i < zones_.size(); ++i) {
    if (in_zone(zones_[i], who)) m |= ZoneMask{1} << i;
  }
  return m;
}

// A rule's "*" is every bit, so that it matches a subject in no zone too.
bool Policy::allows(ZoneMask from, ZoneMask to, PolicyAction action) const {
  for (const auto& r : rules_) {
    if ((r.actions & bit(action)) == 0) continue;
    const bool from_ok = r.from == ~ZoneMask{0} || (r.from & from) != 0;
    const bool to_ok = r.to == ~ZoneMask{0} || (r.to & to) != 0;
    if (from_ok && to_ok) return true;
  }
  return default_allow_;
}

bool Policy::allows(const PolicySubject& from, const PolicySubject& to, PolicyAction action) const {
  return allows(mask_of(from), mask_of(to), action);
}

std::vector<std::string> Policy::zones_of(const PolicySubject& who) const {
  std::vector<std::string> out;
  for (const auto& z : zones_) {
    if (in_zone(z, who)) out.push_back(z.name);
  }
  return out;
}

}  // namespace mesh
