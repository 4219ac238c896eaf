// TransportOptions checked before anything is built from them.
#include "options_validation.hpp"

#include <string>

namespace mesh::transport::detail {

void validate(const TransportOptions& o) {
  if (o.node_name.empty() || o.node_name.size() > 255) {
    throw TransportError("node_name must be 1..255 bytes");
  }
  if (o.node_name.front() == '\0') throw TransportError("node_name must not start with a NUL byte");
  // '#' separates the node name from the channel's random suffix in the
  // routing ids of request channels ("<node>#<hex>"); a node named like
  // one of those would steal its connection (ROUTER_HANDOVER), and the
  // receiver keys its duplicate window by the part before the '#'.
  if (o.node_name.find('#') != std::string::npos) throw TransportError("node_name must not contain '#'");
  if (o.max_frame_bytes == 0) throw TransportError("max_frame_bytes must be positive");
  if (o.peer_queue_limit == 0) throw TransportError("peer_queue_limit must be positive");
  if (o.inbox_limit == 0) throw TransportError("inbox_limit must be positive");
  if (o.peer_queue_bytes == 0 || o.inbox_bytes == 0 || o.reply_deferral_bytes == 0 || o.ask_bytes == 0 ||
      o.ask_limit == 0) {
    throw TransportError("byte budgets and ask_limit must be positive");
  }
  if (!(o.inbox_peer_share > 0.0 && o.inbox_peer_share <= 1.0) ||
      !(o.reply_deferral_share > 0.0 && o.reply_deferral_share <= 1.0)) {
    throw TransportError("inbox_peer_share and reply_deferral_share must be in (0, 1]");
  }
  if (o.heartbeat_interval.count() < 0 || o.heartbeat_timeout.count() < 0 ||
      o.reconnect_interval.count() < 0 || o.reconnect_interval_max.count() < 0 || o.idle_spare.count() < 0 ||
      o.refused_handshake_wait.count() < 0) {
    throw TransportError("negative interval in TransportOptions");
  }
  if (o.curve) {
    if (!is_valid_curve_key(o.curve->public_key) || !is_valid_curve_key(o.curve->secret_key)) {
      throw TransportError("malformed CURVE key pair");
    }
    if (curve_public_from_secret(o.curve->secret_key) != o.curve->public_key) {
      throw TransportError("CURVE public key does not belong to the secret key");
    }
  }
}

}  // namespace mesh::transport::detail
