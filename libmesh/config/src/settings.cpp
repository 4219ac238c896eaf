// Every setting once: YAML key, environment variable, flag, help and setter.
#include "config_internal.hpp"

#include <algorithm>
#include <cstdlib>
#include <limits>

#include "mesh/agent_directory.hpp"
#include "mesh/text.hpp"

namespace mesh::config_detail {

const std::vector<Setting>& settings() {
  static const std::vector<Setting> table = {
      {"node_name", "JC_NODE_NAME", "--node-name", "NAME",
       "unique node name (default: <hostname>-<swim_port>)",
       [](NodeConfig& c, std::string_view v) -> Problem {
         v = trim(v);
         if (v.empty()) return "node name must not be empty";
         // The name travels in gossip: peers refuse what this refuses.
         if (auto bad = check_text("node name", v, kNodeNameMax)) return quote(v) + ": " + *bad;
         c.node_name = std::string(v);
         return std::nullopt;
       }},
      {"swim_host", "JC_SWIM_HOST", "--swim-host", "IP", "SWIM bind address (default 0.0.0.0)",
       [](NodeConfig& c, std::string_view v) { return set_bind_host(c.swim_host, v); }},
      {"swim_port", "JC_SWIM_PORT", "--swim-port", "PORT", "SWIM UDP+TCP port (default 7946)",
       [](NodeConfig& c, std::string_view v) { return set_port(c.swim_port, v); }},
      {"seeds", "JC_SEED_NODES", "--seeds", "LIST",
       "seeds to join, host:port,... ([addr]:port for IPv6)", set_seeds},
      {"advertise_host", "JC_ADVERTISE_HOST", "--advertise-host", "IP",
       "address told to peers (default: bind address, or a private IP)",
       [](NodeConfig& c, std::string_view v) -> Problem {
         if (trim(v).empty()) {
           c.advertise_host.clear();
           return std::nullopt;
         }
         auto ip = parse_ip(v);
         if (!ip) return quote(v) + " is not an IP address";
         if (is_unspecified(*ip)) return *ip + " cannot be advertised";
         c.advertise_host = *ip;
         return std::nullopt;
       }},
      {"advertise_port", "JC_ADVERTISE_PORT", "--advertise-port", "PORT",
       "port told to peers (default: the SWIM port)",
       [](NodeConfig& c, std::string_view v) { return set_port(c.advertise_port, v); }},
      {"profile", "JC_PROFILE", "--profile", "NAME", "timing profile: lan, wan, local (default lan)",
       [](NodeConfig& c, std::string_view v) -> Problem {
         auto p = swim::parse_profile(lower(trim(v)));
         if (!p) return "unknown profile " + quote(v) + " (lan, wan, local)";
         c.profile = *p;
         return std::nullopt;
       }},
      {"log_level", "JC_LOG_LEVEL", "--log-level", "LEVEL",
       "trace, debug, info, warn, error, off (default info)",
       [](NodeConfig& c, std::string_view v) -> Problem {
         auto l = parse_log_level(lower(trim(v)));
         if (!l) return "unknown log level " + quote(v) + " (trace, debug, info, warn, error, off)";
         c.log_level = *l;
         return std::nullopt;
       }},
      {"log_format", "JC_LOG_FORMAT", "--log-format", "FORMAT",
       "log lines: text, json (default text)",
       [](NodeConfig& c, std::string_view v) -> Problem {
         auto f = parse_log_format(lower(trim(v)));
         if (!f) return "unknown log format " + quote(v) + " (text, json)";
         c.log_format = *f;
         return std::nullopt;
       }},
      {"admin_host", "JC_ADMIN_HOST", "--admin-host", "IP",
       "admin HTTP bind address (default 127.0.0.1)",
       [](NodeConfig& c, std::string_view v) { return set_bind_host(c.admin_host, v); }},
      {"admin_port", "JC_ADMIN_PORT", "--admin-port", "PORT",
       "admin HTTP port (default: SWIM port + 2000)",
       [](NodeConfig& c, std::string_view v) { return set_port(c.admin_port, v); }},
      {"admin_token", "JC_ADMIN_TOKEN", "--admin-token", "TOKEN",
       "bearer token the admin API's POST routes require (16+ printable characters)",
       // A secret: messages never contain it.
       [](NodeConfig& c, std::string_view v) -> Problem {
         v = trim(v);
         if (!v.empty()) {
           if (auto bad = admin_token_problem(v)) return bad;
         }
         c.admin_token = std::string(v);
         return std::nullopt;
       }},
      {"admin_token_file", "JC_ADMIN_TOKEN_FILE", "--admin-token-file", "FILE",
       "file holding the admin token (instead of admin_token)",
       // Read once every source is in (node_config.cpp): a later source may
       // name another file, and only the one that wins must exist.
       [](NodeConfig& c, std::string_view v) { return set_file_path(c.admin_token_file, v); }},
      {"admin_read_auth", "JC_ADMIN_READ_AUTH", "--admin-read-auth", "BOOL",
       "the admin API's GET routes need the token too, all but /healthz (default false)",
       [](NodeConfig& c, std::string_view v) { return set_bool(c.admin_read_auth, v); }},
      {"tags", "JC_TAGS", "--tags", "LIST", "tags in node meta, k=v,...", set_tags},
      {"gossip_key", "JC_GOSSIP_KEY", "--gossip-key", "BASE64",
       "AES key, base64 of 16, 24 or 32 bytes (as serf keygen)",
       // The key is a secret: messages never contain it.
       [](NodeConfig& c, std::string_view v) { return set_gossip_key(c.gossip_key, v); }},
      {"gossip_key_file", "JC_GOSSIP_KEY_FILE", "--gossip-key-file", "FILE",
       "file holding the gossip key (instead of gossip_key)",
       // Read once every source is in, as admin_token_file.
       [](NodeConfig& c, std::string_view v) { return set_file_path(c.gossip_key_file, v); }},
      {"zmq_port", "JC_ZMQ_PORT", "--zmq-port", "PORT",
       "ZeroMQ port, for agents (default: SWIM port + 1000)",
       [](NodeConfig& c, std::string_view v) { return set_port(c.zmq_port, v); }},
      {"p2p_enabled", "P2P_ENABLED", "--p2p-enabled", "BOOL",
       "agents talk over the network (default false)",
       [](NodeConfig& c, std::string_view v) { return set_bool(c.p2p_enabled, v); }},
      {"mailbox_limit", "JC_MAILBOX_LIMIT", "--mailbox-limit", "N",
       "default mailbox bound of each agent (default 1000)",
       [](NodeConfig& c, std::string_view v) -> Problem {
         const auto n = parse_uint(trim(v));
         if (!n || *n < 1 || *n > kMaxMailboxLimit) {
           return quote(v) + " is not a mailbox size (1-" + std::to_string(kMaxMailboxLimit) + ")";
         }
         c.mailbox_limit = static_cast<std::size_t>(*n);
         return std::nullopt;
       }},
      {"worker_threads", "JC_WORKER_THREADS", "--worker-threads", "N",
       "threads running the agents (default 0: one per hardware thread)",
       [](NodeConfig& c, std::string_view v) -> Problem {
         const auto n = parse_uint(trim(v));
         if (!n || *n > 1024) return quote(v) + " is not a thread count (0-1024; 0: one per hardware thread)";
         c.worker_threads = static_cast<std::size_t>(*n);
         return std::nullopt;
       }},
      {"discovery_strategy", "JC_DISCOVERY_STRATEGY", "--discovery-strategy", "NAME",
       "default strategy: first, random, round_robin, least_recent (default first)",
       [](NodeConfig& c, std::string_view v) -> Problem {
         const std::string name = lower(trim(v));
         if (!parse_strategy(name)) {
           return "unknown strategy " + quote(v) + " (" + std::string(kStrategyNames) + ")";
         }
         c.discovery_strategy = name;
         return std::nullopt;
       }},
      {"request_timeout", "JC_REQUEST_TIMEOUT", "--request-timeout", "DURATION",
       "request timeout when the caller gives none (default 30s)",
       [](NodeConfig& c, std::string_view v) {
         return set_duration(c.request_timeout, v, std::chrono::milliseconds(1), std::chrono::hours(24));
       }},
      {"thread_max_turns", "JC_THREAD_MAX_TURNS", "--thread-max-turns", "N",
       "messages a thread may hold, when opened without its own limit (default 100; 0: none)",
       [](NodeConfig& c, std::string_view v) -> Problem {
         const auto n = parse_uint(trim(v));
         if (!n || *n > 1'000'000'000) return quote(v) + " is not a turn count (0-1000000000; 0: no limit)";
         c.thread_max_turns = static_cast<std::uint32_t>(*n);
         return std::nullopt;
       }},
      {"thread_ttl", "JC_THREAD_TTL", "--thread-ttl", "DURATION",
       "how long a thread lives, when opened without its own limit (default 10m; 0ms: forever)",
       [](NodeConfig& c, std::string_view v) {
         return set_duration(c.thread_ttl, v, std::chrono::milliseconds(0), std::chrono::hours(24 * 365));
       }},
      {"thread_max_cost", "JC_THREAD_MAX_COST", "--thread-max-cost", "AMOUNT",
       "cost a thread may spend, in the application's units, when opened without its own (default 0: none)",
       [](NodeConfig& c, std::string_view v) -> Problem {
         const std::string text(trim(v));
         char* end = nullptr;
         const double d = text.empty() ? -1 : std::strtod(text.c_str(), &end);
         if (text.empty() || end != text.c_str() + text.size() || !(d >= 0) || d > 1e15) {
           return quote(v) + " is not an amount (a number from 0 to 1e15; 0: no limit)";
         }
         c.thread_max_cost = d;
         return std::nullopt;
       }},
      {"thread_max_depth", "JC_THREAD_MAX_DEPTH", "--thread-max-depth", "N",
       "nested request hops a thread allows, when opened without its own limit (default 8; 0: none)",
       [](NodeConfig& c, std::string_view v) -> Problem {
         const auto n = parse_uint(trim(v));
         if (!n || *n > 1000) return quote(v) + " is not a depth (0-1000; 0: no limit)";
         c.thread_max_depth = static_cast<std::uint32_t>(*n);
         return std::nullopt;
       }},
      {"audit_dir", "JC_AUDIT_DIR", "--audit-dir", "DIR",
       "write the audit trail (hash-chained JSON lines) here (default: none)",
       [](NodeConfig& c, std::string_view v) { return set_directory(c.audit_dir, v); }},
      {"audit_payloads", "JC_AUDIT_PAYLOADS", "--audit-payloads", "BOOL",
       "the audit trail holds payloads, not only their SHA-256 (default false)",
       [](NodeConfig& c, std::string_view v) { return set_bool(c.audit_payloads, v); }},
      {"audit_rotate_bytes", "JC_AUDIT_ROTATE_BYTES", "--audit-rotate-bytes", "SIZE",
       "start a new audit file past this size (default 64MiB)",
       [](NodeConfig& c, std::string_view v) {
         return set_size(c.audit_rotate_bytes, v, std::size_t{64} << 10, std::size_t{1} << 40);
       }},
      {"audit_fsync", "JC_AUDIT_FSYNC", "--audit-fsync", "POLICY",
       "when audit lines reach the disk: never, interval (each second), always (default never)",
       [](NodeConfig& c, std::string_view v) -> Problem {
         const std::string p = lower(trim(v));
         if (p != "never" && p != "interval" && p != "always") {
           return "unknown fsync policy " + quote(v) + " (never, interval, always)";
         }
         c.audit_fsync = p;
         return std::nullopt;
       }},
      {"max_message_bytes", "JC_MAX_MESSAGE_BYTES", "--max-message-bytes", "SIZE",
       "largest message on the wire (default 4MiB)",
       [](NodeConfig& c, std::string_view v) {
         return set_size(c.max_message_bytes, v, kMinMessageBytes, kMaxMessageBytes);
       }},
      {"mailbox_bytes", "JC_MAILBOX_BYTES", "--mailbox-bytes", "SIZE",
       "bytes each agent's mailbox may hold (default 64MiB)",
       [](NodeConfig& c, std::string_view v) {
         return set_size(c.mailbox_bytes, v, kMinMessageBytes, kMaxMailboxBytes);
       }},
      {"ipc_dir", "JC_IPC_DIR", "--ipc-dir", "DIR",
       "also use ipc sockets in DIR for peers on this host (default: off)",
       [](NodeConfig& c, std::string_view v) { return set_directory(c.ipc_dir, v); }},
      {"data_dir", "JC_DATA_DIR", "--data-dir", "DIR",
       "where the node keeps its CURVE key pair and gossip keyring across restarts (default: none)",
       [](NodeConfig& c, std::string_view v) { return set_directory(c.data_dir, v); }},
      {"retry_join_interval", "JC_RETRY_JOIN_INTERVAL", "--retry-join-interval", "DURATION",
       "wait before the start-up join's second attempt, doubling up to 30s (default 1s)",
       [](NodeConfig& c, std::string_view v) {
         return set_duration(c.retry_join_interval, v, std::chrono::milliseconds(10), std::chrono::minutes(10));
       }},
      {"retry_join_max", "JC_RETRY_JOIN_MAX", "--retry-join-max", "N",
       "start-up join attempts before the node gives up (default 0: never)",
       [](NodeConfig& c, std::string_view v) -> Problem {
         const auto n = parse_uint(trim(v));
         if (!n || *n > 1'000'000) return quote(v) + " is not a number of attempts (0-1000000; 0: never give up)";
         c.retry_join_max = static_cast<std::uint32_t>(*n);
         return std::nullopt;
       }},
      {"leave_timeout", "JC_LEAVE_TIMEOUT", "--leave-timeout", "DURATION",
       "bound of the graceful leave at stop (default 3s)",
       [](NodeConfig& c, std::string_view v) {
         return set_duration(c.leave_timeout, v, std::chrono::milliseconds(0), std::chrono::minutes(10));
       }},
      {"policy_file", "JC_POLICY", "--policy", "FILE",
       "trust zones and who may reach whom, YAML (conf/policy.yaml; default: none, everyone may)",
       [](NodeConfig& c, std::string_view v) { return set_file_path(c.policy_file, v); }},
      {"trust_key", "JC_TRUST_KEY", "--trust-key", "BASE64",
       "public half of the cluster's trust key: node certificates it signed are believed",
       [](NodeConfig& c, std::string_view v) { return set_trust_key(c.trust_key, v); }},
      {"node_cert", "JC_NODE_CERT", "--node-cert", "CERT",
       "this node's certificate of its zones (meshctl certs issue)",
       [](NodeConfig& c, std::string_view v) { return set_node_cert(c.node_cert, v); }},
      {"node_cert_file", "JC_NODE_CERT_FILE", "--node-cert-file", "FILE",
       "file holding the node certificate (instead of node_cert)",
       // Read once every source is in, as admin_token_file.
       [](NodeConfig& c, std::string_view v) { return set_file_path(c.node_cert_file, v); }},
      {"curve_secret_key", "JC_CURVE_SECRET_KEY", "--curve-secret-key", "Z85",
       "CURVE secret key of agent traffic (with curve_public_key)",
       [](NodeConfig& c, std::string_view v) { return set_curve_key(c.curve_secret_key, v); }},
      {"curve_public_key", "JC_CURVE_PUBLIC_KEY", "--curve-public-key", "Z85",
       "CURVE public key of this node (with curve_secret_key)",
       [](NodeConfig& c, std::string_view v) { return set_curve_key(c.curve_public_key, v); }},
  };
  return table;
}

const Setting* find_by_key(std::string_view key) {
  for (const auto& s : settings()) {
    if (s.key == key) return &s;
  }
  return nullptr;
}

const Setting* find_by_flag(std::string_view flag) {
  for (const auto& s : settings()) {
    if (s.flag == flag) return &s;
  }
  return nullptr;
}

}  // namespace mesh::config_detail
