// The JSON shapes of the admin API (docs/mesh-node.md, "Admin API"), made
// from membership snapshots. Kept apart from the server so that meshctl,
// tests and later endpoints agree on one spelling.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "mesh/swim/membership.hpp"

namespace mesh {

// The IP of an address as text, without port or brackets ("10.0.0.1",
// "::1"); IPv4-mapped IPv6 is shown dotted, as memberlist logs it.
std::string ip_string(const swim::Address& addr);

// {name, addr, port, state, incarnation, tags, protocol: {min, max, cur},
//  delegate: {min, max, cur}}
nlohmann::json member_json(const swim::MemberInfo& info);

// member_json(self) plus health_score and stats: the core's counters
// (decode errors by reason) and the driver's.
nlohmann::json self_json(const swim::MemberInfo& self, int health_score,
                         const swim::NodeStats& node, const swim::DriverStats& driver);

}  // namespace mesh
