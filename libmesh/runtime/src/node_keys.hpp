// A node's CURVE key pair and its security warning at start (node_keys.cpp).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "mesh/node_config.hpp"

namespace mesh::detail {

enum class KeySource {
  None,        // no CURVE: P2P off, or no gossip key and no configured pair
  Configured,  // curve_secret_key / curve_public_key were given
  Kept,        // read from <data_dir>/curve.key
  Made,        // drawn and saved to <data_dir>/curve.key (first start)
  Drawn,       // drawn for this run only (no data_dir)
};

// <data_dir>/curve.key
std::string curve_key_path(const NodeConfig& config);

// With P2P on and a gossip key set, CURVE needs no configuration: fills
// config.curve_secret_key / curve_public_key from data_dir (making the
// pair there the first time) or with a pair drawn for this run. Leaves a
// configured pair alone. Throws, naming the file, std::invalid_argument
// when data_dir holds something else than a key, std::runtime_error when
// it cannot be read or written.
KeySource resolve_curve_keys(NodeConfig& config);

// <data_dir>/keyring: the gossip keys in use, one base64 key a line, the
// primary first. Written at every live change (Mesh::keys_async), read at
// start in place of the configured gossip key, which may have been
// rotated out meanwhile.
std::string keyring_path(const NodeConfig& config);
// nullopt when data_dir is unset or holds no keyring; throws
// std::invalid_argument, naming the file, when it holds something else.
std::optional<std::vector<std::vector<std::uint8_t>>> read_keyring(const NodeConfig& config);
// Throws std::runtime_error, naming the file, when it cannot be written.
void write_keyring(const NodeConfig& config, const std::vector<std::vector<std::uint8_t>>& keys);

// The warning a node with P2P on gives once at start when its traffic is
// not authenticated (no gossip key); nullopt when there is nothing to say.
// The ports are the ones bound.
std::optional<std::string> insecure_warning(const NodeConfig& config, std::uint16_t swim_port,
                                            std::uint16_t zmq_port);

}  // namespace mesh::detail
