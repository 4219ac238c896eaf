#include "peer_shared.hpp"

#include "request_channel.hpp"

namespace mesh::transport::detail {

PeerShared::PeerShared(std::string peer_name)
    : name(std::move(peer_name)), channels(std::make_shared<ChannelPool>()) {}
PeerShared::~PeerShared() = default;

}  // namespace mesh::transport::detail
