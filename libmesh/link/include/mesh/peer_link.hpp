// Keeps a Transport's peer table in step with SWIM membership, so that
// ZeroMQ connections follow the cluster: a member that is alive and
// advertises a ZeroMQ port in its tags becomes a transport peer; a member
// declared dead, or that left, is removed at once, which fails every
// request still pending to it (PeerDead) instead of letting it time out.
// A suspect member stays connected: suspicion is often refuted, and the
// transport's own heartbeats catch a connection that is really gone.
//
// Members without the tag (a Serf agent, a node with P2P off) are not
// transport peers. The owner feeds events from its Membership::on_event
// handler (which runs on the membership strand; every call here only
// queues work for the transport thread).
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "mesh/swim/membership.hpp"
#include "mesh/transport/transport.hpp"

namespace mesh {

// Serf tags a node puts in its meta for the transport.
inline constexpr char kZmqPortTag[] = "zmq";    // decimal ZeroMQ port
inline constexpr char kCurveKeyTag[] = "zkey";  // Z85 CURVE public key, when CURVE is on

// The transport address of a member: its advertised IP and the port in
// its "zmq" tag (and the CURVE key in "zkey"). nullopt when it has no
// valid tag.
std::optional<transport::PeerAddress> transport_address(const swim::Member& member,
                                                        const std::map<std::string, std::string>& tags);

// The IP literal of a SWIM address, without port or brackets.
std::string host_of(const swim::Address& address);

class PeerLink {
 public:
  explicit PeerLink(transport::Transport& transport) : transport_(transport) {}

  // One membership event: Joined / Updated / Recovered add (or update)
  // the peer, Dead and Left remove it with PeerDead.
  void on_member_event(const swim::MemberEvent& event);
  // Brings the peer table in line with a membership snapshot (at start,
  // or to repair after missed events).
  void sync(const std::vector<swim::MemberInfo>& members);

 private:
  void upsert(const swim::Member& member, const std::map<std::string, std::string>& tags);

  transport::Transport& transport_;
};

}  // namespace mesh
