#include "mesh/peer_link.hpp"

#include <charconv>

namespace mesh {

std::string host_of(const swim::Address& address) {
  std::string text = address.to_string();  // "a.b.c.d:port" or "[v6]:port"
  const auto colon = text.rfind(':');
  if (colon != std::string::npos) text.resize(colon);
  if (text.size() >= 2 && text.front() == '[' && text.back() == ']') {
    text = text.substr(1, text.size() - 2);
  }
  return text;
}

std::optional<transport::PeerAddress> transport_address(
    const swim::Member& member, const std::map<std::string, std::string>& tags) {
  const auto it = tags.find(kZmqPortTag);
  if (it == tags.end() || member.addr.ip_len == 0) return std::nullopt;
  unsigned port = 0;
  const auto& text = it->second;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), port);
  if (ec != std::errc{} || end != text.data() + text.size() || port == 0 || port > 65535) {
    return std::nullopt;
  }
  transport::PeerAddress peer;
  peer.name = member.name;
  peer.host = host_of(member.addr);
  peer.port = static_cast<std::uint16_t>(port);
  if (const auto key = tags.find(kCurveKeyTag); key != tags.end()) peer.curve_public_key = key->second;
  return peer;
}

void PeerLink::upsert(const swim::Member& member, const std::map<std::string, std::string>& tags) {
  if (member.name == transport_.node_name()) return;
  if (auto peer = transport_address(member, tags)) {
    transport_.add_peer(std::move(*peer));
  } else {
    // The member dropped its transport tag (P2P turned off): no peer.
    transport_.remove_peer(member.name, transport::ErrorCode::PeerUnknown);
  }
}

void PeerLink::on_member_event(const swim::MemberEvent& event) {
  const auto& member = event.member;
  switch (event.kind) {
    case swim::EventKind::Joined:
    case swim::EventKind::Updated:
    case swim::EventKind::Recovered: {
      const auto tags = swim::decode_serf_tags(member.meta);
      upsert(member, tags ? *tags : std::map<std::string, std::string>{});
      break;
    }
    case swim::EventKind::Dead:
    case swim::EventKind::Left:
      if (member.name != transport_.node_name()) {
        transport_.remove_peer(member.name, transport::ErrorCode::PeerDead);
      }
      break;
    case swim::EventKind::Suspect:
    case swim::EventKind::Conflict:
      break;
  }
}

void PeerLink::sync(const std::vector<swim::MemberInfo>& members) {
  for (const auto& info : members) {
    const auto state = info.member.state;
    if (state == swim::MemberState::Alive || state == swim::MemberState::Suspect) {
      upsert(info.member, info.tags);
    } else if (info.member.name != transport_.node_name()) {
      transport_.remove_peer(info.member.name, transport::ErrorCode::PeerDead);
    }
  }
}

}  // namespace mesh
