// The CURVE key pair of a node's agent traffic: given in the configuration,
// kept in data_dir, or drawn for this run; and the one warning a node gives
// when its traffic is not authenticated at all.
#include "node_keys.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <vector>

#include "mesh/base64.hpp"
#include "mesh/swim/membership.hpp"
#include "mesh/transport/transport.hpp"

namespace mesh::detail {

namespace {

std::runtime_error key_file_error(const std::string& path, const std::string& what) {
  return std::runtime_error("data_dir: " + path + ": " + what);
}

// Reads the secret key kept at `path`: 40 Z85 characters, optionally
// followed by whitespace. nullopt when there is no such file.
std::optional<std::string> read_secret(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return std::nullopt;
  std::ifstream in(path);
  if (!in) throw key_file_error(path, std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  std::string secret = text.str();
  while (!secret.empty() && std::isspace(static_cast<unsigned char>(secret.back()))) secret.pop_back();
  // Something else in the key's place is a configuration problem (mesh-node
  // exits 2 on invalid_argument and systemd does not retry): no restart
  // mends it.
  if (!transport::is_valid_curve_key(secret)) {
    throw std::invalid_argument("data_dir: " + path + ": not a Z85 CURVE secret key");
  }
  return secret;
}

// Writes `secret` to `path` readable by its owner only, through a
// temporary file renamed into place: a crash leaves the old file or the
// new one, never half of one.
void write_secret(const std::string& dir, const std::string& path, const std::string& secret) {
  std::error_code ec;
  // A directory we make is the node's alone; one that exists keeps the
  // mode its owner gave it (it may be shared: only the key file is private).
  if (std::filesystem::create_directories(dir, ec)) ::chmod(dir.c_str(), 0700);
  if (ec) throw key_file_error(dir, "cannot create it: " + ec.message());
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) throw key_file_error(tmp, std::strerror(errno));
  const std::string text = secret + "\n";
  const bool written = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  const bool synced = written && ::fsync(fd) == 0;
  const int err = errno;
  ::close(fd);
  if (!synced || ::rename(tmp.c_str(), path.c_str()) != 0) {
    const int why = synced ? errno : err;
    ::unlink(tmp.c_str());
    throw key_file_error(path, std::strerror(why));
  }
}

}  // namespace

std::string curve_key_path(const NodeConfig& config) { return config.data_dir + "/curve.key"; }

std::string keyring_path(const NodeConfig& config) { return config.data_dir + "/keyring"; }

std::optional<std::vector<std::vector<std::uint8_t>>> read_keyring(const NodeConfig& config) {
  if (config.data_dir.empty()) return std::nullopt;
  const std::string path = keyring_path(config);
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return std::nullopt;
  std::ifstream in(path);
  if (!in) throw key_file_error(path, std::strerror(errno));
  std::vector<std::vector<std::uint8_t>> keys;
  std::string line;
  while (std::getline(in, line)) {
    while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back()))) line.pop_back();
    if (line.empty()) continue;
    auto key = swim::Keyring::decode_base64_key(line);
    if (!key) throw std::invalid_argument("data_dir: " + path + ": line " + std::to_string(keys.size() + 1) +
                                          " is not a base64 gossip key of 16, 24 or 32 bytes");
    keys.push_back(std::move(*key));
  }
  if (keys.empty()) throw std::invalid_argument("data_dir: " + path + ": holds no gossip key");
  return keys;
}

void write_keyring(const NodeConfig& config, const std::vector<std::vector<std::uint8_t>>& keys) {
  std::string text;
  for (const auto& k : keys) text += encode_base64(k) + "\n";
  if (!text.empty()) text.pop_back();  // write_secret ends the file with one
  write_secret(config.data_dir, keyring_path(config), text);
}

KeySource resolve_curve_keys(NodeConfig& config) {
  if (!config.p2p_enabled) return KeySource::None;
  if (!config.curve_secret_key.empty()) return KeySource::Configured;
  // Without a cluster secret the public key would travel in forgeable
  // gossip: CURVE would encrypt but could not say who is at the other end.
  if (config.gossip_key.empty()) return KeySource::None;
  if (config.data_dir.empty()) {
    const auto pair = transport::generate_curve_keypair();
    config.curve_secret_key = pair.secret_key;
    config.curve_public_key = pair.public_key;
    return KeySource::Drawn;
  }
  const std::string path = curve_key_path(config);
  KeySource source = KeySource::Kept;
  auto secret = read_secret(path);
  if (!secret) {
    secret = transport::generate_curve_keypair().secret_key;
    write_secret(config.data_dir, path, *secret);
    source = KeySource::Made;
  }
  config.curve_secret_key = *secret;
  config.curve_public_key = transport::curve_public_from_secret(*secret);
  return source;
}

std::optional<std::string> insecure_warning(const NodeConfig& config, std::uint16_t swim_port,
                                            std::uint16_t zmq_port) {
  if (!config.p2p_enabled) return std::nullopt;
  const std::string where = config.swim_host + " port " + std::to_string(swim_port) + " (SWIM) or " +
                            std::to_string(zmq_port) + " (agents)";
  if (config.gossip_key.empty() && config.curve_secret_key.empty()) {
    return "traffic is NOT authenticated: no gossip key (JC_GOSSIP_KEY) is set, so any process that "
           "reaches " + where + " can join the cluster and send agents messages as any node. "
           "Fine for development; set a gossip key everywhere else.";
  }
  if (config.gossip_key.empty()) {
    return "gossip is NOT authenticated: no gossip key (JC_GOSSIP_KEY) is set, so membership and the "
           "CURVE keys it carries can be forged by any process that reaches " + where +
           ". Set a gossip key.";
  }
  return std::nullopt;
}

}  // namespace mesh::detail
