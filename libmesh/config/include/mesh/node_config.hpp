// Configuration of a mesh node (the mesh-node daemon and the Mesh of
// libmesh): defaults < YAML file < environment < command-line flags.
//
// Every setting has a snake_case key (the struct member and the YAML key),
// an environment variable and a flag; docs/mesh-node.md has the table,
// conf/mesh.yaml documents every key and conf/.env.example every variable.
// The file is named by --config, or else by JC_CONFIG. Derived defaults
// (node_name, admin_port, zmq_port) are computed once all sources are
// applied, so `JC_SWIM_PORT=8000` alone moves the admin port to 10000.
//
// Loading happens once, at start-up, so bad configuration is an exception
// (ConfigError) that main catches and prints; its message is one line that
// names the setting, where the value came from, and the value (secrets are
// never echoed), e.g.
//   JC_SWIM_PORT: "70000" is not a port (1-65535)
//   config file /etc/mesh.yaml: profile: unknown profile "moon" (lan, wan, local)
//
// Durations are an integer and a unit (ms, s, m, h): "250ms", "30s". Sizes are
// bytes, or an integer with KiB or MiB: "65536", "64KiB", "4MiB".
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "mesh/swim/config.hpp"

namespace mesh {

// Bad configuration; what() is one line, ready to print after "mesh-node: ".
class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class LogLevel { Trace, Debug, Info, Warn, Error, Off };
std::optional<LogLevel> parse_log_level(std::string_view name);
std::string_view to_string(LogLevel level);

// Log lines as plain text, or (JsonLines, named "json") one JSON object
// per line.
enum class LogFormat { Text, JsonLines };
std::optional<LogFormat> parse_log_format(std::string_view name);  // "text", "json"
std::string_view to_string(LogFormat format);

// The process environment, or a hand-made one in tests.
using Environment = std::map<std::string, std::string>;

struct NodeConfig {
  // Unique name in the cluster. Default: "<hostname>-<swim_port>".
  std::string node_name;
  // Where the SWIM UDP socket and TCP listener bind (an IP literal).
  std::string swim_host = "0.0.0.0";
  std::uint16_t swim_port = 7946;
  // Seeds to join through, normalised to "host:port" or "[v6addr]:port".
  // Empty: start alone and wait to be joined.
  std::vector<std::string> seeds;
  // The start-up join's retries (Consul's retry_interval and retry_max):
  // the wait before the second attempt, doubling up to 30 s, and how many
  // attempts in all before the node gives up (0: never).
  std::chrono::milliseconds retry_join_interval{1'000};
  std::uint32_t retry_join_max = 0;
  // What peers are told (NAT, containers). Empty: the bind host when it is
  // concrete, else the node's first private IPv4 address (see
  // default_advertise_host). 0: the bound SWIM port.
  std::string advertise_host;
  std::uint16_t advertise_port = 0;
  // memberlist's timing profile.
  swim::Profile profile = swim::Profile::Lan;
  LogLevel log_level = LogLevel::Info;
  LogFormat log_format = LogFormat::Text;
  // The admin HTTP endpoint (/v1/members, /v1/self, /healthz, ...).
  // Loopback by default.
  std::string admin_host = "127.0.0.1";
  std::uint16_t admin_port = 9946;  // default: swim_port + 2000
  // The admin API's bearer token: POST routes need it, and with
  // admin_read_auth every route but /healthz (probes). Set directly, or
  // read from admin_token_file (trailing whitespace dropped) when the
  // configuration loads; never both. Without a token, POST routes are open
  // on a loopback admin_host and refused on any other. Never printed.
  std::string admin_token;
  std::string admin_token_file;
  bool admin_read_auth = false;
  // Serf-style tags carried in node meta (at most 512 bytes encoded).
  std::map<std::string, std::string> tags;
  // AES-GCM key (16, 24 or 32 bytes) as Serf's `-encrypt`; empty: cleartext.
  // Set directly (base64), or read from gossip_key_file (trailing
  // whitespace dropped) when the configuration loads; never both.
  std::vector<std::uint8_t> gossip_key;
  std::string gossip_key_file;
  // The ZeroMQ port, and whether agents talk over the network at all
  // (false: in memory, one process, no sockets). mesh-node runs
  // membership either way.
  std::uint16_t zmq_port = 8946;  // default: swim_port + 1000
  bool p2p_enabled = false;

  // ---- the Mesh (libmesh) ----
  // Default mailbox bound of each agent (AgentSpec::mailbox_limit wins); a
  // sender to a full mailbox gets MailboxFull.
  std::size_t mailbox_limit = 1000;
  // Threads running the agents (the Mesh's executor): 0, the default, is
  // one per hardware thread.
  std::size_t worker_threads = 0;
  // Each agent's PeerClient default strategy (set_default_strategy):
  // "first", "random", "round_robin" or "least_recent".
  std::string discovery_strategy = "first";
  // PeerClient::request's timeout when the caller gives none.
  std::chrono::milliseconds request_timeout{30'000};
  // Limits of a thread (a governed conversation, docs/conversations.md)
  // opened without its own; a message may only tighten them. 0: no limit.
  std::uint32_t thread_max_turns = 100;
  std::chrono::milliseconds thread_ttl{600'000};
  double thread_max_cost = 0;
  std::uint32_t thread_max_depth = 8;
  // The audit trail: every message this node sends or receives, appended
  // to hash-chained JSON lines in audit_dir (empty: no trail). The payload
  // itself is written only with audit_payloads (else its SHA-256); files
  // rotate at audit_rotate_bytes; audit_fsync: "never" (the kernel
  // decides), "interval" (once a second) or "always" (each line).
  std::string audit_dir;
  bool audit_payloads = false;
  std::size_t audit_rotate_bytes = 64u << 20;
  std::string audit_fsync = "never";
  // The largest message on the wire (the transport's max_frame_bytes); a
  // payload must leave 1 KiB of it for the envelope.
  std::size_t max_message_bytes = 4 * 1024 * 1024;
  // Bytes each agent's mailbox may hold beside its message bound
  // (mailbox_limit): a sender past either gets MailboxFull. 64 MiB holds
  // sixteen messages of the largest default size, or a full mailbox of
  // 1000 messages of 64 KiB; ten 4 MiB notifies can no longer cost a node
  // hundreds of MB per agent unasked.
  std::size_t mailbox_bytes = 64u << 20;
  // Non-empty (P2P on): also listen on ipc://<ipc_dir>/<node_name>.zmq and
  // reach peers of this host that way.
  std::string ipc_dir;
  // Bound of the graceful SWIM leave when the Mesh stops.
  std::chrono::milliseconds leave_timeout{3'000};
  // CURVE encryption and authentication of agent traffic (P2P on): this
  // node's keypair in Z85 (40 characters each), both or neither. The Mesh
  // publishes the public key in its "zkey" SWIM tag; peers without CURVE,
  // or whose key is not in the membership, cannot connect. The secret key
  // is never printed. Left empty while a gossip key is set, the Mesh uses
  // the pair kept in data_dir (made there at the first start), or, without
  // a data_dir, a pair drawn at each start (docs/security.md).
  std::string curve_secret_key;
  std::string curve_public_key;
  // Where the node keeps what must outlive a restart (its CURVE key pair,
  // in curve.key; its gossip keys once changed live, in keyring); empty:
  // nothing is kept.
  std::string data_dir;
  // Trust (docs/security.md): the policy file (empty: everyone may reach
  // everyone); the cluster trust key's public half, base64 (empty: no zone
  // claim is believed); this node's certificate, given or read from
  // node_cert_file when the configuration loads (never both).
  std::string policy_file;
  std::string trust_key;
  std::string node_cert;
  std::string node_cert_file;

  // The --config file that was read, if any.
  std::string config_file;
  // What the loader noticed but did not refuse, one line each (a JC_*
  // variable it does not know, with the likely one meant): the Mesh logs
  // them as warnings at construction.
  std::vector<std::string> warnings;
  // For each key that did not keep its built-in default, where its value
  // came from: "config file <path>", "JC_SWIM_PORT", "--swim-port", or
  // "derived from swim_port". Used by --check-config and error messages.
  std::map<std::string, std::string> sources;
};

// Loads the configuration. `args` are the command-line arguments after the
// program name, holding only configuration flags (`--key value` or
// `--key=value`); `env` is the environment. Throws ConfigError.
NodeConfig load_node_config(const std::vector<std::string>& args, const Environment& env);

// The environment of this process (environ), for load_node_config.
Environment current_environment();

// Every environment variable load_node_config reads ("JC_SWIM_PORT",
// "P2P_ENABLED", "JC_CONFIG", ...), in the order of the reference table.
// mesh-node --check-config uses it to reject unknown JC_* variables.
const std::vector<std::string>& config_environment_variables();

// One seed as JC_SEED_NODES takes it ("host:port", "[v6]:port", or a host
// alone for the default SWIM port), normalised for joining; throws
// ConfigError (one line, naming the seed) when it is not one. For seeds
// given later than the configuration (`meshctl join`).
std::string parse_seed_address(std::string_view text);

// gethostname(), or "localhost" if that fails.
std::string local_hostname();

// The effective configuration as pretty-printed JSON (--check-config). The
// gossip key, the CURVE secret key and the admin token are never printed,
// only whether one is set.
std::string to_json_string(const NodeConfig& config);

// The address to advertise when advertise_host is empty: the bind host if
// it is concrete, else the first private (RFC 1918 / RFC 6598) IPv4
// address of an interface that is up, as memberlist's GetPrivateIP, else
// the first non-loopback IPv4 address. nullopt when there is none (then
// advertise_host must be set).
std::optional<std::string> default_advertise_host(const NodeConfig& config);

}  // namespace mesh
