// Private to mesh_config: what its source files share. The public API is
// mesh/node_config.hpp and mesh/cli.hpp.
//
//   values.cpp       one value's parsing and checking (ports, hosts, seeds,
//                    tags, durations, sizes, keys), with messages that quote
//                    the value safely
//   settings.cpp     the table of settings: key, variable, flag, help, setter
//   sources.cpp      the YAML file and the environment, each value
//                    remembering where it came from
//   cli.cpp          the command line (CLI11): flags, --help, --version,
//                    errors in our wording; loading in order
//   node_config.cpp  derived defaults, cross-checks, the rest of the public
//                    API, and the host facts it needs (hostname, addresses)
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "mesh/node_config.hpp"
#include "mesh/swim/types.hpp"

namespace YAML {
class Node;
}

namespace mesh::config_detail {

// Longer names are legal in memberlist but travel in every message about
// the node; 128 bytes is far beyond any real hostname-port.
// The core refuses longer member names in gossip (mesh/swim/types.hpp).
inline constexpr std::size_t kNodeNameMax = swim::kMemberNameMax;
inline constexpr std::uint16_t kDefaultSwimPort = 7946;
inline constexpr int kAdminPortOffset = 2000;
inline constexpr int kZmqPortOffset = 1000;
inline constexpr std::uint64_t kMaxMailboxLimit = 10'000'000;
// The Mesh keeps 1 KiB of a frame for the envelope; below 4 KiB a payload
// has hardly any room. Above 256 MiB one message would be a memory risk.
inline constexpr std::size_t kMinMessageBytes = 4 * 1024;
inline constexpr std::size_t kMaxMessageBytes = 256 * 1024 * 1024;
inline constexpr std::size_t kMaxMailboxBytes = std::size_t{64} << 30;
// sockaddr_un's sun_path: 108 bytes with the terminating NUL.
inline constexpr std::size_t kIpcPathMax = 107;
// An admin token shorter than this is guessable; a longer one than the
// maximum would crowd the admin server's 8 KiB request header.
inline constexpr std::size_t kAdminTokenMin = 16;
inline constexpr std::size_t kAdminTokenMax = 1024;

// A problem with a value, without the "where from" part; empty = fine.
using Problem = std::optional<std::string>;

// --- values (values.cpp) ---------------------------------------------------

// A value for an error message: quoted, control bytes escaped (so that the
// message stays on one line), and cut short when long.
std::string quote(std::string_view v);

// A file path in a message: not quoted (it reads better), but still one line.
std::string printable_path(std::string_view p);

std::string_view trim(std::string_view s);

std::string lower(std::string_view s);

std::vector<std::string_view> split(std::string_view s, char sep);

std::optional<std::uint16_t> parse_port(std::string_view text);

Problem port_problem(std::string_view text);

bool is_ipv4(const std::string& s);

bool is_ipv6(const std::string& s);

// An IP literal, IPv6 with or without brackets; returned without them.
std::optional<std::string> parse_ip(std::string_view text);

bool is_unspecified(const std::string& ip);

// A DNS name as RFC 1123 allows (plus '_', which real networks use).
bool is_hostname(std::string_view s);

// One seed: host:port, [v6]:port, or a host alone (memberlist's default
// port, as `serf join` accepts). Normalised for Membership::join.
std::variant<std::string, Problem> parse_seed(std::string_view text);

Problem check_tag(std::string_view key, std::string_view value,
                  const std::map<std::string, std::string>& so_far);

// An unsigned decimal integer, nothing else (no sign, no spaces inside).
std::optional<std::uint64_t> parse_uint(std::string_view text);

// "250ms", "30s", "2m", "1h": an integer and a unit, which is required (a
// bare "30" could mean seconds or milliseconds).
std::variant<std::chrono::milliseconds, Problem> parse_duration(std::string_view text);

std::string format_duration(std::chrono::milliseconds d);

Problem set_duration(std::chrono::milliseconds& out, std::string_view text,
                     std::chrono::milliseconds min, std::chrono::milliseconds max);

// "65536", "64KiB", "4MiB".
Problem set_size(std::size_t& out, std::string_view text, std::size_t min, std::size_t max);

// A Z85 CURVE key (ZeroMQ's RFC 32 alphabet), 40 characters = 32 bytes.
// The problem never contains the text: it may be a secret key.
Problem set_curve_key(std::string& out, std::string_view text);

// An admin API bearer token: kAdminTokenMin to kAdminTokenMax printable
// ASCII characters, no spaces. The problem never contains the text.
Problem admin_token_problem(std::string_view token);

Problem set_port(std::uint16_t& out, std::string_view text);

// A gossip key: standard base64 of 16, 24 or 32 bytes; empty = none. The
// problem never contains the text: it is a secret.
Problem set_gossip_key(std::vector<std::uint8_t>& out, std::string_view text);

// An absolute directory path without control characters; trailing
// slashes dropped; empty = none.
Problem set_directory(std::string& out, std::string_view text);
// Any path without control characters (empty: unset).
Problem set_file_path(std::string& out, std::string_view text);
// Base64 of 32 bytes, kept as given; the Mesh checks certificates with it.
Problem set_trust_key(std::string& out, std::string_view text);
// "meshcert1." and base64, one line; its signature is the Mesh's to check.
Problem set_node_cert(std::string& out, std::string_view text);

Problem set_bind_host(std::string& out, std::string_view text);

Problem set_bool(bool& out, std::string_view text);

Problem set_seeds(NodeConfig& c, std::string_view text);

Problem set_tags(NodeConfig& c, std::string_view text);

// --- the settings (settings.cpp) -------------------------------------------

using Apply = std::function<Problem(NodeConfig&, std::string_view)>;

struct Setting {
  std::string_view key;   // struct member, YAML key
  std::string_view env;   // environment variable
  std::string_view flag;  // command-line flag ("" when none)
  std::string_view meta;  // placeholder in --help
  std::string_view help;
  Apply apply;
};

const std::vector<Setting>& settings();

const Setting* find_by_key(std::string_view key);

const Setting* find_by_flag(std::string_view flag);

// --- sources (sources.cpp) -------------------------------------------------

[[noreturn]] void fail(const std::string& where, const std::string& problem);

void apply(NodeConfig& c, const Setting& s, std::string_view value, const std::string& where,
           const std::string& source);

std::string read_file(const std::string& path, const std::string& where);

// One YAML value as the text the string parsers take. Sequences (seeds) and
// maps (tags) are accepted where they make sense.
void apply_yaml(NodeConfig& c, const Setting& s, const YAML::Node& value, const std::string& file);

void apply_file(NodeConfig& c, const std::string& path);

void apply_env(NodeConfig& c, const Environment& env);

// Derived defaults (ports from swim_port, the node name) and the checks
// that involve more than one setting, once every source is in
// (node_config.cpp).
void finish(NodeConfig& c);

}  // namespace mesh::config_detail
