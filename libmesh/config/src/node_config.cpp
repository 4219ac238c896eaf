#include "mesh/node_config.hpp"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <nlohmann/json.hpp>

#include "config_internal.hpp"
#include "mesh/serf_tags.hpp"
#include "mesh/text.hpp"

extern char** environ;  // NOLINT: POSIX, declared by no standard header

namespace mesh {
using namespace config_detail;
namespace {

// Derived defaults, computed once every source is in.
void derive(NodeConfig& c) {
  auto derive_port = [&](std::string_view key, std::uint16_t& port, int offset,
                         const Setting& s) {
    if (c.sources.count(std::string(key)) != 0) return;
    const int value = c.swim_port + offset;
    if (value > 65535) {
      fail(std::string(key),
           "swim_port " + std::to_string(c.swim_port) + " + " + std::to_string(offset) + " = " +
               std::to_string(value) + " is not a port (1-65535); set " + std::string(s.env) +
               " or " + std::string(s.flag));
    }
    port = static_cast<std::uint16_t>(value);
    if (c.swim_port != kDefaultSwimPort) c.sources[std::string(key)] = "derived from swim_port";
  };
  derive_port("admin_port", c.admin_port, kAdminPortOffset, *find_by_key("admin_port"));
  derive_port("zmq_port", c.zmq_port, kZmqPortOffset, *find_by_key("zmq_port"));
  if (c.node_name.empty()) {
    c.node_name = local_hostname() + "-" + std::to_string(c.swim_port);
    c.sources["node_name"] = "derived from hostname and swim_port";
  }
}

std::string source_of(const NodeConfig& c, std::string_view key) {
  auto it = c.sources.find(std::string(key));
  if (it == c.sources.end()) return std::string(key) + " (default)";
  const std::string& src = it->second;
  if (src.rfind("config file ", 0) == 0) return src + ": " + std::string(key);
  if (src.rfind("derived", 0) == 0) return std::string(key) + " (" + src + ")";
  return src;  // the variable or flag name
}

// A secret read from the file that setting `file_key` names, once every
// source is in: its text without trailing whitespace (`echo secret > file`
// and editors leave a newline), and `parse` to check and store it. Fails
// when `value_key` is set as well, or the file is unreadable or empty; a
// problem never quotes the secret.
template <class Parse>
void read_secret_file(NodeConfig& c, std::string_view file_key, const std::string& path,
                      std::string_view value_key, bool value_set, Parse parse) {
  if (path.empty()) return;
  const std::string where = source_of(c, file_key);
  if (value_set) fail(where, "set, and " + std::string(value_key) + " too (set one or the other)");
  const std::string file = printable_path(path);
  std::string text = read_file(path, where + ": " + file);
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
  if (text.empty()) fail(where, file + ": the file is empty");
  if (Problem bad = parse(std::move(text))) fail(where, file + ": " + *bad);
}

void read_secret_files(NodeConfig& c) {
  read_secret_file(c, "admin_token_file", c.admin_token_file, "admin_token", !c.admin_token.empty(),
                   [&c](std::string text) -> Problem {
                     if (auto bad = admin_token_problem(text)) return bad;
                     c.admin_token = std::move(text);
                     return std::nullopt;
                   });
  read_secret_file(c, "gossip_key_file", c.gossip_key_file, "gossip_key", !c.gossip_key.empty(),
                   [&c](const std::string& text) { return set_gossip_key(c.gossip_key, text); });
  read_secret_file(c, "node_cert_file", c.node_cert_file, "node_cert", !c.node_cert.empty(),
                   [&c](const std::string& text) { return set_node_cert(c.node_cert, text); });
}

// Checks that involve more than one setting.
void cross_check(const NodeConfig& c) {
  if (c.admin_read_auth && c.admin_token.empty()) {
    fail(source_of(c, "admin_read_auth"), "true, but there is no admin_token or admin_token_file");
  }
  if (c.curve_secret_key.empty() != c.curve_public_key.empty()) {
    const bool secret = !c.curve_secret_key.empty();
    fail(source_of(c, secret ? "curve_secret_key" : "curve_public_key"),
         std::string("set, but ") + (secret ? "curve_public_key" : "curve_secret_key") +
             " is not (set both or neither)");
  }
  if (!c.ipc_dir.empty()) {
    // The transport listens on <ipc_dir>/<node_name>.zmq.
    const std::size_t path = c.ipc_dir.size() + 1 + c.node_name.size() + 4;
    if (path > kIpcPathMax) {
      fail(source_of(c, "ipc_dir"), "the socket path <ipc_dir>/<node_name>.zmq is " +
                                        std::to_string(path) + " bytes, at most " +
                                        std::to_string(kIpcPathMax));
    }
  }
  // Exactly what the node will gossip: Serf's encoding in node meta.
  if (const auto size = encode_serf_tags(c.tags).size(); size > kSerfMetaMax) {
    fail(source_of(c, "tags"), "tags take " + std::to_string(size) +
                                   " bytes in node meta, at most " + std::to_string(kSerfMetaMax));
  }
  // SWIM uses its port for both UDP and TCP; the admin endpoint and ZeroMQ
  // listen on TCP. On the same machine they must differ.
  struct Port {
    std::string_view key;
    std::uint16_t port;
  };
  const std::array<Port, 3> ports = {{{"swim_port", c.swim_port},
                                      {"admin_port", c.admin_port},
                                      {"zmq_port", c.zmq_port}}};
  for (std::size_t i = 1; i < ports.size(); ++i) {
    for (std::size_t j = 0; j < i; ++j) {
      if (ports[i].port == ports[j].port) {
        // Blame the one that was set explicitly (or later in the list).
        const bool i_set = c.sources.count(std::string(ports[i].key)) != 0;
        const auto& blamed = i_set ? ports[i] : ports[j];
        const auto& other = i_set ? ports[j] : ports[i];
        fail(source_of(c, blamed.key), std::to_string(blamed.port) + " is also the " +
                                           std::string(other.key));
      }
    }
  }
}

}  // namespace

void config_detail::finish(NodeConfig& c) {
  derive(c);
  read_secret_files(c);
  cross_check(c);
}

std::optional<LogLevel> parse_log_level(std::string_view name) {
  if (name == "trace") return LogLevel::Trace;
  if (name == "debug") return LogLevel::Debug;
  if (name == "info") return LogLevel::Info;
  if (name == "warn" || name == "warning") return LogLevel::Warn;
  if (name == "error") return LogLevel::Error;
  if (name == "off") return LogLevel::Off;
  return std::nullopt;
}

std::optional<LogFormat> parse_log_format(std::string_view name) {
  if (name == "text") return LogFormat::Text;
  if (name == "json") return LogFormat::JsonLines;
  return std::nullopt;
}

std::string_view to_string(LogFormat format) {
  return format == LogFormat::JsonLines ? "json" : "text";
}

std::string_view to_string(LogLevel level) {
  switch (level) {
    case LogLevel::Trace: return "trace";
    case LogLevel::Debug: return "debug";
    case LogLevel::Info: return "info";
    case LogLevel::Warn: return "warn";
    case LogLevel::Error: return "error";
    case LogLevel::Off: return "off";
  }
  return "?";
}

Environment current_environment() {
  Environment env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string_view kv(*e);
    const auto eq = kv.find('=');
    if (eq == std::string_view::npos) continue;
    env.emplace(kv.substr(0, eq), kv.substr(eq + 1));
  }
  return env;
}

const std::vector<std::string>& config_environment_variables() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> out;
    out.emplace_back("JC_CONFIG");
    for (const auto& s : settings()) out.emplace_back(s.env);
    return out;
  }();
  return names;
}

std::string local_hostname() {
  std::array<char, 256> buf{};
  if (gethostname(buf.data(), buf.size() - 1) != 0 || buf[0] == '\0') return "localhost";
  return buf.data();
}

std::string to_json_string(const NodeConfig& c) {
  using Json = nlohmann::ordered_json;
  // Unset optional settings print as null rather than "" or 0.
  auto or_null = [](bool unset, Json v) { return unset ? Json() : std::move(v); };
  Json j;
  j["node_name"] = c.node_name;
  j["swim_host"] = c.swim_host;
  j["swim_port"] = c.swim_port;
  j["seeds"] = c.seeds;
  j["advertise_host"] = or_null(c.advertise_host.empty(), c.advertise_host);
  j["advertise_port"] = or_null(c.advertise_port == 0, c.advertise_port);
  j["profile"] = std::string(swim::to_string(c.profile));
  j["log_level"] = std::string(to_string(c.log_level));
  j["log_format"] = std::string(to_string(c.log_format));
  j["admin_host"] = c.admin_host;
  j["admin_port"] = c.admin_port;
  j["admin_token"] = or_null(c.admin_token.empty(), "(set, not shown)");
  j["admin_token_file"] = or_null(c.admin_token_file.empty(), c.admin_token_file);
  j["admin_read_auth"] = c.admin_read_auth;
  j["tags"] = c.tags;
  j["gossip_key"] = or_null(c.gossip_key.empty(),
                            "(" + std::to_string(c.gossip_key.size()) + "-byte key, not shown)");
  j["gossip_key_file"] = or_null(c.gossip_key_file.empty(), c.gossip_key_file);
  j["zmq_port"] = c.zmq_port;
  j["p2p_enabled"] = c.p2p_enabled;
  j["mailbox_limit"] = c.mailbox_limit;
  j["worker_threads"] = c.worker_threads;
  j["discovery_strategy"] = c.discovery_strategy;
  j["request_timeout"] = format_duration(c.request_timeout);
  j["thread_max_turns"] = c.thread_max_turns;
  j["thread_ttl"] = format_duration(c.thread_ttl);
  j["thread_max_cost"] = c.thread_max_cost;
  j["thread_max_depth"] = c.thread_max_depth;
  j["audit_dir"] = or_null(c.audit_dir.empty(), c.audit_dir);
  j["audit_payloads"] = c.audit_payloads;
  j["audit_rotate_bytes"] = c.audit_rotate_bytes;
  j["audit_fsync"] = c.audit_fsync;
  j["max_message_bytes"] = c.max_message_bytes;
  j["mailbox_bytes"] = c.mailbox_bytes;
  j["ipc_dir"] = or_null(c.ipc_dir.empty(), c.ipc_dir);
  j["retry_join_interval"] = format_duration(c.retry_join_interval);
  j["retry_join_max"] = c.retry_join_max;
  j["leave_timeout"] = format_duration(c.leave_timeout);
  j["curve_secret_key"] = or_null(c.curve_secret_key.empty(), "(set, not shown)");
  j["curve_public_key"] = or_null(c.curve_public_key.empty(), c.curve_public_key);
  j["data_dir"] = or_null(c.data_dir.empty(), c.data_dir);
  j["policy_file"] = or_null(c.policy_file.empty(), c.policy_file);
  j["trust_key"] = or_null(c.trust_key.empty(), c.trust_key);
  j["node_cert"] = or_null(c.node_cert.empty(), "(set)");
  j["node_cert_file"] = or_null(c.node_cert_file.empty(), c.node_cert_file);
  j["config_file"] = or_null(c.config_file.empty(), c.config_file);
  j["sources"] = c.sources;
  return j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::optional<std::string> default_advertise_host(const NodeConfig& c) {
  if (!is_unspecified(c.swim_host)) return c.swim_host;
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return std::nullopt;
  std::unique_ptr<ifaddrs, void (*)(ifaddrs*)> guard(list, &freeifaddrs);
  std::optional<std::string> first_public;
  for (ifaddrs* a = list; a != nullptr; a = a->ifa_next) {
    if (a->ifa_addr == nullptr || a->ifa_addr->sa_family != AF_INET) continue;
    if ((a->ifa_flags & IFF_UP) == 0 || (a->ifa_flags & IFF_LOOPBACK) != 0) continue;
    in_addr in{};
    std::memcpy(&in, &reinterpret_cast<const sockaddr_in*>(a->ifa_addr)->sin_addr, sizeof in);
    const std::uint32_t ip = ntohl(in.s_addr);
    std::array<char, INET_ADDRSTRLEN> text{};
    inet_ntop(AF_INET, &in, text.data(), text.size());
    // memberlist's GetPrivateIP: RFC 1918 and RFC 6598 (carrier-grade NAT).
    const bool is_private = (ip >> 24) == 10 || (ip >> 20) == (172u << 4 | 1u) ||
                            (ip >> 16) == (192u << 8 | 168u) || (ip >> 22) == (100u << 2 | 1u);
    if (is_private) return std::string(text.data());
    if (!first_public && (ip >> 24) != 127) first_public = text.data();
  }
  return first_public;
}

}  // namespace mesh
