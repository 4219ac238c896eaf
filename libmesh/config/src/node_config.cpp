#include "mesh/node_config.hpp"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <variant>
#include <nlohmann/json.hpp>
#include <yaml-cpp/yaml.h>

#include "mesh/agent_directory.hpp"
#include "mesh/base64.hpp"
#include "mesh/host_port.hpp"
#include "mesh/text.hpp"

extern char** environ;  // NOLINT: POSIX, declared by no standard header

namespace mesh {
namespace {

// memberlist's MetaMaxSize: node meta (our Serf-encoded tags) must fit.
constexpr std::size_t kMetaMax = 512;
// Longer names are legal in memberlist but travel in every message about
// the node; 128 bytes is far beyond any real hostname-port.
// The core refuses longer member names in gossip (mesh/swim/types.hpp).
constexpr std::size_t kNodeNameMax = swim::kMemberNameMax;
constexpr std::uint16_t kDefaultSwimPort = 7946;
constexpr int kAdminPortOffset = 2000;
constexpr int kZmqPortOffset = 1000;
constexpr std::uint64_t kMaxMailboxLimit = 10'000'000;
// The Mesh keeps 1 KiB of a frame for the envelope; below 4 KiB a payload
// has hardly any room. Above 256 MiB one message would be a memory risk.
constexpr std::size_t kMinMessageBytes = 4 * 1024;
constexpr std::size_t kMaxMessageBytes = 256 * 1024 * 1024;
constexpr std::size_t kMaxMailboxBytes = std::size_t{64} << 30;
// sockaddr_un's sun_path: 108 bytes with the terminating NUL.
constexpr std::size_t kIpcPathMax = 107;

// A problem with a value, without the "where from" part; empty = fine.
using Problem = std::optional<std::string>;

// A value for an error message: quoted, control bytes escaped (so that the
// message stays on one line), and cut short when long.
std::string quote(std::string_view v) {
  constexpr std::size_t kMax = 80;
  // escape_text: control characters, backslashes and bytes that are not
  // UTF-8 as \xNN, so the message is one printable line whatever came in.
  std::string out = "\"";
  for (const char c : escape_text(v.substr(0, kMax))) {
    if (c == '"') out += '\\';
    out += c;
  }
  if (v.size() > kMax) out += "...";
  out += '"';
  return out;
}

// A file path in a message: not quoted (it reads better), but still one line.
std::string printable_path(std::string_view p) {
  std::string q = quote(p);
  return q.substr(1, q.size() - 2);
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  std::size_t start = 0;
  while (true) {
    const auto pos = s.find(sep, start);
    out.push_back(s.substr(start, pos == std::string_view::npos ? std::string_view::npos
                                                               : pos - start));
    if (pos == std::string_view::npos) break;
    start = pos + 1;
  }
  return out;
}

std::optional<std::uint16_t> parse_port(std::string_view text) {
  return mesh::parse_port(trim(text));
}

Problem port_problem(std::string_view text) {
  return quote(text) + " is not a port (1-65535)";
}

bool is_ipv4(const std::string& s) {
  in_addr a{};
  return inet_pton(AF_INET, s.c_str(), &a) == 1;
}

bool is_ipv6(const std::string& s) {
  in6_addr a{};
  return inet_pton(AF_INET6, s.c_str(), &a) == 1;
}

// An IP literal, IPv6 with or without brackets; returned without them.
std::optional<std::string> parse_ip(std::string_view text) {
  text = trim(text);
  if (text.size() >= 2 && text.front() == '[' && text.back() == ']') {
    text = text.substr(1, text.size() - 2);
  }
  std::string s(text);
  if (is_ipv4(s) || is_ipv6(s)) return s;
  return std::nullopt;
}

bool is_unspecified(const std::string& ip) {
  if (is_ipv4(ip)) {
    in_addr a{};
    inet_pton(AF_INET, ip.c_str(), &a);
    return a.s_addr == 0;
  }
  in6_addr a{};
  if (inet_pton(AF_INET6, ip.c_str(), &a) != 1) return false;
  return IN6_IS_ADDR_UNSPECIFIED(&a);
}

// A DNS name as RFC 1123 allows (plus '_', which real networks use).
bool is_hostname(std::string_view s) {
  if (s.empty() || s.size() > 253) return false;
  for (auto label : split(s, '.')) {
    if (label.empty() || label.size() > 63) return false;
    if (label.front() == '-' || label.back() == '-') return false;
    for (char c : label) {
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') return false;
    }
  }
  return true;
}

// One seed: host:port, [v6]:port, or a host alone (memberlist's default
// port, as `serf join` accepts). Normalised for Membership::join.
std::variant<std::string, Problem> parse_seed(std::string_view text) {
  const std::string_view t = trim(text);
  auto split = split_host_port(t, {.default_port = kDefaultSwimPort, .bare_ipv6 = false});
  if (auto* e = std::get_if<HostPortError>(&split)) {
    switch (e->kind) {
      case HostPortError::MissingBracket: return Problem(quote(t) + ": missing ']' after IPv6 address");
      case HostPortError::AfterBracket: return Problem(quote(t) + ": expected :port after ']'");
      case HostPortError::EmptyPort: return Problem(quote(t) + ": missing port after ':'");
      case HostPortError::BadPort:
        return Problem(quote(t) + ": " + quote(e->text) + " is not a port (1-65535)");
      case HostPortError::Ambiguous: return Problem(quote(t) + ": write an IPv6 seed as [address]:port");
      case HostPortError::NoPort: break;  // there is a default
    }
    return Problem(quote(t) + ": not a host:port");
  }
  const auto& hp = std::get<HostPort>(split);
  if (hp.bracketed && !is_ipv6(hp.host)) return Problem(quote(t) + ": not an IPv6 address inside [ ]");
  if (!hp.bracketed && !is_ipv4(hp.host) && !is_hostname(hp.host)) {
    return Problem(quote(t) + ": not a host:port");
  }
  return (hp.bracketed ? "[" + hp.host + "]" : hp.host) + ":" + std::to_string(hp.port);
}

// Size of the tags as Serf encodes them in node meta: 0xFF, then a msgpack
// map of raw strings (go-msgpack: fixraw < 32 bytes, raw16, raw32). An
// encoder that uses str8 writes one byte less per mid-sized string, so this
// is an upper bound.
std::size_t encoded_tags_size(const std::map<std::string, std::string>& tags) {
  auto str = [](std::size_t n) { return n + (n < 32 ? 1 : n < 65536 ? 3 : 5); };
  std::size_t size = 1 + (tags.size() < 16 ? 1 : tags.size() < 65536 ? 3 : 5);
  for (const auto& [k, v] : tags) size += str(k.size()) + str(v.size());
  return size;
}

Problem check_tag(std::string_view key, std::string_view value,
                  const std::map<std::string, std::string>& so_far) {
  if (key.empty()) return "empty tag name in " + quote(std::string(key) + "=" + std::string(value));
  // Lengths are checked with the whole node meta (at most 512 bytes).
  constexpr std::size_t kAnyLength = std::numeric_limits<std::size_t>::max();
  if (auto bad = check_text("tag name", key, kAnyLength)) return quote(key) + ": " + *bad;
  if (auto bad = check_text("tag value", value, kAnyLength, /*allow_empty=*/true)) {
    return "tag " + quote(key) + ": " + *bad;
  }
  if (so_far.count(std::string(key)) != 0) return "tag " + quote(key) + " given twice";
  return std::nullopt;
}

// An unsigned decimal integer, nothing else (no sign, no spaces inside).
std::optional<std::uint64_t> parse_uint(std::string_view text) {
  if (text.empty() || text.size() > 19) return std::nullopt;
  std::uint64_t value = 0;
  const auto* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (ec != std::errc{} || ptr != end) return std::nullopt;
  return value;
}

// "250ms", "30s", "2m", "1h": an integer and a unit, which is required (a
// bare "30" could mean seconds or milliseconds).
std::variant<std::chrono::milliseconds, Problem> parse_duration(std::string_view text) {
  const std::string_view t = trim(text);
  std::size_t digits = 0;
  while (digits < t.size() && std::isdigit(static_cast<unsigned char>(t[digits]))) ++digits;
  const auto number = parse_uint(t.substr(0, digits));
  const std::string_view unit = t.substr(digits);
  const char* const syntax = " is not a duration (an integer and ms, s, m or h: 250ms, 30s, 2m)";
  if (!number || *number > 1'000'000'000) return Problem(quote(text) + syntax);
  if (unit == "ms") return std::chrono::milliseconds(*number);
  if (unit == "s") return std::chrono::milliseconds(*number * 1000);
  if (unit == "m") return std::chrono::milliseconds(*number * 60'000);
  if (unit == "h") return std::chrono::milliseconds(*number * 3'600'000);
  return Problem(quote(text) + syntax);
}

std::string format_duration(std::chrono::milliseconds d) {
  const auto ms = d.count();
  if (ms != 0 && ms % 3'600'000 == 0) return std::to_string(ms / 3'600'000) + "h";
  if (ms != 0 && ms % 60'000 == 0) return std::to_string(ms / 60'000) + "m";
  if (ms != 0 && ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

Problem set_duration(std::chrono::milliseconds& out, std::string_view text,
                     std::chrono::milliseconds min, std::chrono::milliseconds max) {
  auto r = parse_duration(text);
  if (auto* p = std::get_if<Problem>(&r)) return *p;
  const auto d = std::get<std::chrono::milliseconds>(r);
  if (d < min || d > max) {
    return quote(text) + " is out of range (" + format_duration(min) + " to " + format_duration(max) +
           ")";
  }
  out = d;
  return std::nullopt;
}

// "65536", "64KiB", "4MiB".
Problem set_size(std::size_t& out, std::string_view text, std::size_t min, std::size_t max) {
  const std::string_view t = trim(text);
  std::size_t digits = 0;
  while (digits < t.size() && std::isdigit(static_cast<unsigned char>(t[digits]))) ++digits;
  const auto number = parse_uint(t.substr(0, digits));
  const std::string_view unit = t.substr(digits);
  std::uint64_t scale = 0;
  if (unit.empty()) scale = 1;
  if (unit == "KiB") scale = 1024;
  if (unit == "MiB") scale = 1024 * 1024;
  if (!number || scale == 0 || *number > (1ull << 40)) {
    return quote(text) + " is not a size (bytes, or an integer and KiB or MiB: 65536, 64KiB, 4MiB)";
  }
  const std::uint64_t bytes = *number * scale;
  auto show = [](std::size_t b) {
    if (b % (1024 * 1024) == 0) return std::to_string(b / (1024 * 1024)) + "MiB";
    if (b % 1024 == 0) return std::to_string(b / 1024) + "KiB";
    return std::to_string(b);
  };
  if (bytes < min || bytes > max) {
    return quote(text) + " is out of range (" + show(min) + " to " + show(max) + ")";
  }
  out = static_cast<std::size_t>(bytes);
  return std::nullopt;
}

// A Z85 CURVE key (ZeroMQ's RFC 32 alphabet), 40 characters = 32 bytes.
// The problem never contains the text: it may be a secret key.
Problem set_curve_key(std::string& out, std::string_view text) {
  constexpr std::string_view kZ85 =
      "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";
  const std::string_view t = trim(text);
  if (t.empty()) {
    out.clear();
    return std::nullopt;
  }
  if (t.size() != 40) {
    return "key is " + std::to_string(t.size()) + " characters, a Z85 CURVE key has 40";
  }
  for (std::size_t i = 0; i < t.size(); ++i) {
    if (kZ85.find(t[i]) == std::string_view::npos) {
      return "key has a character outside the Z85 alphabet at position " + std::to_string(i + 1);
    }
  }
  out = std::string(t);
  return std::nullopt;
}

// --- the settings --------------------------------------------------------

using Apply = std::function<Problem(NodeConfig&, std::string_view)>;

struct Setting {
  std::string_view key;   // struct member, YAML key
  std::string_view env;   // environment variable
  std::string_view flag;  // command-line flag ("" when none)
  std::string_view meta;  // placeholder in --help
  std::string_view help;
  Apply apply;
};

Problem set_port(std::uint16_t& out, std::string_view text) {
  auto p = parse_port(text);
  if (!p) return port_problem(text);
  out = *p;
  return std::nullopt;
}

Problem set_bind_host(std::string& out, std::string_view text) {
  auto ip = parse_ip(text);
  if (!ip) return quote(text) + " is not an IP address";
  out = *ip;
  return std::nullopt;
}

Problem set_bool(bool& out, std::string_view text) {
  const std::string v = lower(trim(text));
  if (v == "true" || v == "1" || v == "yes") {
    out = true;
  } else if (v == "false" || v == "0" || v == "no") {
    out = false;
  } else {
    return quote(text) + " is not a boolean (true, false, 1, 0, yes, no)";
  }
  return std::nullopt;
}

Problem set_seeds(NodeConfig& c, std::string_view text) {
  std::vector<std::string> seeds;
  for (auto part : split(text, ',')) {
    if (trim(part).empty()) continue;  // "a:1," and "" mean what they look like
    auto r = parse_seed(part);
    if (auto* p = std::get_if<Problem>(&r)) return *p;
    seeds.push_back(std::get<std::string>(std::move(r)));
  }
  c.seeds = std::move(seeds);
  return std::nullopt;
}

Problem set_tags(NodeConfig& c, std::string_view text) {
  std::map<std::string, std::string> tags;
  for (auto part : split(text, ',')) {
    part = trim(part);
    if (part.empty()) continue;
    const auto eq = part.find('=');
    if (eq == std::string_view::npos) return quote(part) + " is not key=value";
    const auto key = trim(part.substr(0, eq));
    const auto value = trim(part.substr(eq + 1));
    if (auto p = check_tag(key, value, tags)) return p;
    tags.emplace(key, value);
  }
  c.tags = std::move(tags);
  return std::nullopt;
}

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
      {"tags", "JC_TAGS", "--tags", "LIST", "tags in node meta, k=v,...", set_tags},
      {"gossip_key", "JC_GOSSIP_KEY", "--gossip-key", "BASE64",
       "AES key, base64 of 16, 24 or 32 bytes (as serf keygen)",
       // The key is a secret: messages never contain it.
       [](NodeConfig& c, std::string_view v) -> Problem {
         v = trim(v);
         if (v.empty()) {
           c.gossip_key.clear();
           return std::nullopt;
         }
         auto key = mesh::decode_base64(v);
         if (!key) return "key is not valid base64";
         if (key->size() != 16 && key->size() != 24 && key->size() != 32) {
           return "key is " + std::to_string(key->size()) + " bytes, must be 16, 24 or 32";
         }
         c.gossip_key = std::move(*key);
         return std::nullopt;
       }},
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
       [](NodeConfig& c, std::string_view v) -> Problem {
         v = trim(v);
         while (v.size() > 1 && v.back() == '/') v.remove_suffix(1);
         if (v.empty()) {
           c.ipc_dir.clear();
           return std::nullopt;
         }
         if (v.front() != '/') return quote(v) + " is not an absolute path";
         for (char ch : v) {
           const auto u = static_cast<unsigned char>(ch);
           if (u < 0x20 || u == 0x7f) return quote(v) + " contains a control character";
         }
         c.ipc_dir = std::string(v);
         return std::nullopt;
       }},
      {"leave_timeout", "JC_LEAVE_TIMEOUT", "--leave-timeout", "DURATION",
       "bound of the graceful leave at stop (default 3s)",
       [](NodeConfig& c, std::string_view v) {
         return set_duration(c.leave_timeout, v, std::chrono::milliseconds(0), std::chrono::minutes(10));
       }},
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

[[noreturn]] void fail(const std::string& where, const std::string& problem) {
  throw ConfigError(where + ": " + problem);
}

void apply(NodeConfig& c, const Setting& s, std::string_view value, const std::string& where,
           const std::string& source) {
  if (auto p = s.apply(c, value)) fail(where, *p);
  c.sources[std::string(s.key)] = source;
}

// --- sources -------------------------------------------------------------

struct FlagValue {
  std::string flag;
  std::string value;
};

// Splits argv into (flag, value) pairs and finds --config; checks syntax
// before anything else is read, so a typo in a flag is the error reported.
std::vector<FlagValue> parse_args(const std::vector<std::string>& args, std::string& config_file) {
  std::vector<FlagValue> out;
  bool have_config = false;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg.size() < 3 || arg.compare(0, 2, "--") != 0) {
      throw ConfigError(quote(arg) + ": unexpected argument (flags are --name value)");
    }
    std::string flag = arg;
    std::optional<std::string> value;
    if (const auto eq = arg.find('='); eq != std::string::npos) {
      flag = arg.substr(0, eq);
      value = arg.substr(eq + 1);
    }
    const bool known = flag == "--config" || find_by_flag(flag) != nullptr;
    if (!known) throw ConfigError(printable_path(flag) + ": unknown option");
    if (!value) {
      // A following flag is not a value: `--node-name --swim-port 1` is a
      // forgotten value, not a node called "--swim-port".
      if (i + 1 >= args.size() || args[i + 1].compare(0, 2, "--") == 0) {
        throw ConfigError(flag + ": missing value");
      }
      value = args[++i];
    }
    if (flag == "--config") {
      if (have_config) throw ConfigError("--config: given twice");
      if (value->empty()) throw ConfigError("--config: missing value");
      have_config = true;
      config_file = *value;
      continue;
    }
    out.push_back({flag, *value});
  }
  return out;
}

std::string read_file(const std::string& path, const std::string& where) {
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!f) throw ConfigError(where + ": cannot read (" + std::strerror(errno) + ")");
  std::string text;
  std::array<char, 4096> buf{};
  while (true) {
    const std::size_t n = std::fread(buf.data(), 1, buf.size(), f.get());
    text.append(buf.data(), n);
    if (n < buf.size()) break;
    if (text.size() > (1u << 20)) throw ConfigError(where + ": larger than 1 MiB");
  }
  if (std::ferror(f.get())) {
    throw ConfigError(where + ": cannot read (" + std::strerror(errno) + ")");
  }
  return text;
}

// One YAML value as the text the string parsers take. Sequences (seeds) and
// maps (tags) are accepted where they make sense.
void apply_yaml(NodeConfig& c, const Setting& s, const YAML::Node& value, const std::string& file) {
  const std::string where = file + ": " + std::string(s.key);
  if (value.IsNull()) return;  // `key:` or `key: ~` keeps the default
  if (value.IsScalar()) {
    apply(c, s, value.Scalar(), where, file);
    return;
  }
  if (s.key == "seeds" && value.IsSequence()) {
    std::string joined;
    for (const auto& item : value) {
      if (!item.IsScalar()) fail(where, "each seed must be a host:port string");
      if (item.Scalar().find(',') != std::string::npos) {
        fail(where, quote(item.Scalar()) + ": one seed per list item");
      }
      joined += item.Scalar() + ",";
    }
    apply(c, s, joined, where, file);
    return;
  }
  if (s.key == "tags" && value.IsMap()) {
    std::map<std::string, std::string> tags;
    for (const auto& kv : value) {
      if (!kv.first.IsScalar() || !(kv.second.IsScalar() || kv.second.IsNull())) {
        fail(where, "tags must map names to strings");
      }
      const std::string k = kv.first.Scalar();
      const std::string v = kv.second.IsNull() ? "" : kv.second.Scalar();
      if (auto p = check_tag(k, v, tags)) fail(where, *p);
      tags.emplace(k, v);
    }
    c.tags = std::move(tags);
    c.sources["tags"] = file;
    return;
  }
  fail(where, std::string("expected a single value") +
                  (s.key == "seeds" ? " or a list" : s.key == "tags" ? " or a map" : ""));
}

void apply_file(NodeConfig& c, const std::string& path) {
  const std::string file = "config file " + printable_path(path);
  const std::string text = read_file(path, file);
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    // yaml-cpp counts lines and columns from 0. Some versions append the
    // alias name to this message: it could be part of an unquoted key.
    std::string msg = e.msg;
    if (msg.rfind("the referenced anchor is not defined", 0) == 0) {
      msg = "the referenced anchor is not defined (quote values that start with * or &)";
    }
    fail(file, "line " + std::to_string(e.mark.line + 1) + ", column " +
                   std::to_string(e.mark.column + 1) + ": " + msg);
  }
  c.config_file = path;
  if (root.IsNull()) return;  // an empty file (or only comments) sets nothing
  if (!root.IsMap()) fail(file, "expected a map of settings at the top level");
  for (const auto& kv : root) {
    const std::string key = kv.first.IsScalar() ? kv.first.Scalar() : std::string("?");
    const Setting* s = find_by_key(key);
    if (s == nullptr) fail(file, "unknown key " + quote(key));
    apply_yaml(c, *s, kv.second, file);
  }
}

void apply_env(NodeConfig& c, const Environment& env) {
  for (const auto& s : settings()) {
    auto it = env.find(std::string(s.env));
    // Empty counts as unset: `JC_SEED_NODES=` in a compose file, or an
    // unset ${VAR} expanded by a shell, means "no value", not "bad value".
    if (it == env.end() || it->second.empty()) continue;
    apply(c, s, it->second, std::string(s.env), std::string(s.env));
  }
}

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

// Checks that involve more than one setting.
void cross_check(const NodeConfig& c) {
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
  if (encoded_tags_size(c.tags) > kMetaMax) {
    fail(source_of(c, "tags"), "tags take " + std::to_string(encoded_tags_size(c.tags)) +
                                   " bytes in node meta, at most " + std::to_string(kMetaMax));
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

NodeConfig load_node_config(const std::vector<std::string>& args, const Environment& env) {
  std::string config_file;
  const auto flags = parse_args(args, config_file);
  // --config wins over JC_CONFIG (flags over environment, as for the rest).
  if (config_file.empty()) {
    if (auto it = env.find("JC_CONFIG"); it != env.end()) config_file = it->second;
  }
  NodeConfig c;
  if (!config_file.empty()) apply_file(c, config_file);
  apply_env(c, env);
  for (const auto& f : flags) apply(c, *find_by_flag(f.flag), f.value, f.flag, f.flag);
  derive(c);
  cross_check(c);
  return c;
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
  j["tags"] = c.tags;
  j["gossip_key"] = or_null(c.gossip_key.empty(),
                            "(" + std::to_string(c.gossip_key.size()) + "-byte key, not shown)");
  j["zmq_port"] = c.zmq_port;
  j["p2p_enabled"] = c.p2p_enabled;
  j["mailbox_limit"] = c.mailbox_limit;
  j["discovery_strategy"] = c.discovery_strategy;
  j["request_timeout"] = format_duration(c.request_timeout);
  j["max_message_bytes"] = c.max_message_bytes;
  j["mailbox_bytes"] = c.mailbox_bytes;
  j["ipc_dir"] = or_null(c.ipc_dir.empty(), c.ipc_dir);
  j["leave_timeout"] = format_duration(c.leave_timeout);
  j["curve_secret_key"] = or_null(c.curve_secret_key.empty(), "(set, not shown)");
  j["curve_public_key"] = or_null(c.curve_public_key.empty(), c.curve_public_key);
  j["config_file"] = or_null(c.config_file.empty(), c.config_file);
  j["sources"] = c.sources;
  return j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string config_usage() {
  std::string out =
      "Configuration (defaults < --config file < environment < flags):\n"
      "  --config FILE            YAML file with the keys below in snake_case  [JC_CONFIG]\n";
  for (const auto& s : settings()) {
    std::string left = "  " + std::string(s.flag) + " " + std::string(s.meta);
    left.resize(std::max<std::size_t>(left.size() + 1, 27), ' ');
    out += left + std::string(s.help) + "  [" + std::string(s.env) + "]\n";
  }
  return out;
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
