// Membership::Impl's UDP: receiving and sending the core's packets, sealed
// with the keyring when there is one (memberlist's encryptionVersion and
// GossipVerifyIncoming), and which address family the socket can reach.
#include <spdlog/spdlog.h>

#include <cstddef>

#include "driver.hpp"
#include "endpoint.hpp"

namespace mesh::swim {

namespace ip = asio::ip;
using boost::system::error_code;

void Membership::Impl::receive() {
  udp_.async_receive_from(asio::buffer(rx_.get(), kUdpReceiveMax), rx_from_,
                          [self = shared_from_this()](const error_code& ec, std::size_t n) {
                            self->on_receive(ec, n);
                          });
}

void Membership::Impl::on_receive(const error_code& ec, std::size_t n) {
  if (stopped_) return;
  if (ec) {
    if (ec == asio::error::operation_aborted) return;
    spdlog::debug("swim {}: UDP receive error: {}", name_, ec.message());
    receive();
    return;
  }
  if (n >= kUdpReceiveMax || n > limits_.max_packet) {
    ++dstats_.packets_dropped_oversize;
  } else if (n > 0) {
    const Address from = detail::to_address(rx_from_.address(), rx_from_.port());
    const ByteView data(rx_.get(), n);
    if (net_.keyring.enabled()) {
      // GossipVerifyIncoming: with a keyring, plaintext is refused too.
      if (auto plain = net_.keyring.decrypt(data, {})) {
        node_->on_packet(now(), from, *plain);
        pump();
      } else {
        ++dstats_.packets_dropped_decrypt;
        spdlog::debug("swim {}: undecryptable packet from {}", name_, from.to_string());
      }
    } else {
      node_->on_packet(now(), from, data);
      pump();
    }
  }
  if (!stopped_) receive();
}

bool Membership::Impl::reachable(const Address& a) const {
  if (a.ip_len == 4) return !udp_v6_ || dual_stack_;
  if (a.ip_len == 16) return udp_v6_;
  return false;
}

ip::address Membership::Impl::socket_ip(const Address& a) const {
  const ip::address addr = detail::to_ip(a);
  if (udp_v6_ && addr.is_v4()) return ip::make_address_v6(ip::v4_mapped, addr.to_v4());
  return addr;
}

void Membership::Impl::send_packet(const OutPacket& p) {
  if (!reachable(p.to) || p.to.port == 0) {
    ++dstats_.send_errors;
    return;
  }
  ByteView data = p.bytes;
  Bytes sealed;
  if (net_.keyring.enabled()) {
    sealed = net_.keyring.encrypt(p.bytes, {}, enc_vsn_);
    if (sealed.empty()) {
      ++dstats_.send_errors;
      return;
    }
    data = sealed;
  }
  error_code ec;
  udp_.send_to(asio::buffer(data.data(), data.size()), ip::udp::endpoint(socket_ip(p.to), p.to.port),
               0, ec);
  if (ec) {
    ++dstats_.send_errors;
    spdlog::debug("swim {}: UDP send to {} failed: {}", name_, p.to.to_string(), ec.message());
  }
}

}  // namespace mesh::swim
