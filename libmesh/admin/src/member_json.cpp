#include "mesh/member_json.hpp"

#include <cstddef>

namespace mesh {

std::string ip_string(const swim::Address& addr) {
  // Address::to_string already knows the v4-mapped and bracket rules;
  // take its host part rather than format addresses a second way.
  std::string s = addr.to_string();
  const auto colon = s.rfind(':');
  if (colon != std::string::npos) s.resize(colon);
  if (s.size() >= 2 && s.front() == '[' && s.back() == ']') s = s.substr(1, s.size() - 2);
  return s;
}

nlohmann::json member_json(const swim::MemberInfo& info) {
  const auto& m = info.member;
  const auto& v = m.vsn;  // [pmin, pmax, pcur, dmin, dmax, dcur]
  nlohmann::json j;
  j["name"] = m.name;
  j["addr"] = ip_string(m.addr);
  j["port"] = m.addr.port;
  j["state"] = std::string(swim::to_string(m.state));
  j["incarnation"] = m.incarnation;
  j["tags"] = nlohmann::json::object();
  for (const auto& [k, val] : info.tags) j["tags"][k] = val;
  j["protocol"] = {{"min", v[0]}, {"max", v[1]}, {"cur", v[2]}};
  j["delegate"] = {{"min", v[3]}, {"max", v[4]}, {"cur", v[5]}};
  return j;
}

nlohmann::json self_json(const swim::MemberInfo& self, int health_score,
                         const swim::NodeStats& n, const swim::DriverStats& d) {
  nlohmann::json j = member_json(self);
  j["health_score"] = health_score;
  nlohmann::json decode = nlohmann::json::object();
  for (std::size_t i = 0; i < static_cast<std::size_t>(swim::DecodeError::Count_); ++i) {
    decode[std::string(swim::to_string(static_cast<swim::DecodeError>(i)))] = n.decode_errors[i];
  }
  j["stats"] = {
      {"packets_received", n.packets_received},
      {"bytes_received", n.bytes_received},
      {"packets_sent", n.packets_sent},
      {"bytes_sent", n.bytes_sent},
      {"streams_sent", n.streams_sent},
      {"streams_received", n.streams_received},
      {"decode_errors", decode},
      {"decode_errors_total", n.decode_errors_total()},
      {"compound_truncated_parts", n.compound_truncated_parts},
      {"ping_wrong_node", n.ping_wrong_node},
      {"unexpected_messages", n.unexpected_messages},
      {"probes", n.probes},
      {"probes_failed", n.probes_failed},
      {"indirect_probes_sent", n.indirect_probes_sent},
      {"indirect_probes_served", n.indirect_probes_served},
      {"nacks_sent", n.nacks_sent},
      {"nacks_received", n.nacks_received},
      {"stream_pings_sent", n.stream_pings_sent},
      {"suspicions_raised", n.suspicions_raised},
      {"refutations", n.refutations},
      {"gossip_packets", n.gossip_packets},
      {"push_pulls", n.push_pulls},
      {"push_pulls_served", n.push_pulls_served},
      {"push_pull_rejected", n.push_pull_rejected},
      {"conflicts", n.conflicts},
      {"reconnects", n.reconnects},
      {"broadcasts_queued", n.broadcasts_queued},
      {"packets_dropped_decrypt", d.packets_dropped_decrypt},
      {"packets_dropped_oversize", d.packets_dropped_oversize},
      {"streams_dropped_decrypt", d.streams_dropped_decrypt},
      {"streams_refused_busy", d.streams_refused_busy},
      {"streams_failed", d.streams_failed},
      {"send_errors", d.send_errors},
  };
  return j;
}

}  // namespace mesh
