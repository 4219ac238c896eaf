// One value at a time: parse, check, and say what is wrong in one line.
#include "config_internal.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <limits>

#include "mesh/base64.hpp"
#include "mesh/host_port.hpp"
#include "mesh/text.hpp"

namespace mesh::config_detail {

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

Problem admin_token_problem(std::string_view token) {
  if (token.size() < kAdminTokenMin || token.size() > kAdminTokenMax) {
    return "token is " + std::to_string(token.size()) + " characters, must be " +
           std::to_string(kAdminTokenMin) + " to " + std::to_string(kAdminTokenMax);
  }
  for (std::size_t i = 0; i < token.size(); ++i) {
    const auto u = static_cast<unsigned char>(token[i]);
    if (u <= 0x20 || u >= 0x7f) {
      return "token has a space or a character that is not printable ASCII at position " +
             std::to_string(i + 1);
    }
  }
  return std::nullopt;
}

Problem set_gossip_key(std::vector<std::uint8_t>& out, std::string_view text) {
  text = trim(text);
  if (text.empty()) {
    out.clear();
    return std::nullopt;
  }
  auto key = mesh::decode_base64(text);
  if (!key) return "key is not valid base64";
  if (key->size() != 16 && key->size() != 24 && key->size() != 32) {
    return "key is " + std::to_string(key->size()) + " bytes, must be 16, 24 or 32";
  }
  out = std::move(*key);
  return std::nullopt;
}

namespace {

bool has_control_character(std::string_view text) {
  return std::any_of(text.begin(), text.end(), [](char ch) {
    const auto u = static_cast<unsigned char>(ch);
    return u < 0x20 || u == 0x7f;
  });
}

}  // namespace

Problem set_file_path(std::string& out, std::string_view text) {
  text = trim(text);
  if (has_control_character(text)) return quote(text) + " contains a control character";
  out = std::string(text);
  return std::nullopt;
}

Problem set_trust_key(std::string& out, std::string_view text) {
  text = trim(text);
  if (text.empty()) {
    out.clear();
    return std::nullopt;
  }
  const auto key = mesh::decode_base64(text);
  if (!key || key->size() != 32) return "not base64 of a 32-byte Ed25519 public key (meshctl certs keygen prints it)";
  out = std::string(text);
  return std::nullopt;
}

Problem set_node_cert(std::string& out, std::string_view text) {
  text = trim(text);
  if (text.empty()) {
    out.clear();
    return std::nullopt;
  }
  if (!text.starts_with("meshcert1.") || text.size() > 32 * 1024) {
    return "not a node certificate (meshctl certs issue prints one: meshcert1....)";
  }
  for (char ch : text) {
    const auto u = static_cast<unsigned char>(ch);
    if (u <= 0x20 || u >= 0x7f) return "a node certificate is one line of base64";
  }
  out = std::string(text);
  return std::nullopt;
}

Problem set_directory(std::string& out, std::string_view text) {
  text = trim(text);
  while (text.size() > 1 && text.back() == '/') text.remove_suffix(1);
  if (text.empty()) {
    out.clear();
    return std::nullopt;
  }
  if (text.front() != '/') return quote(text) + " is not an absolute path";
  if (has_control_character(text)) return quote(text) + " contains a control character";
  out = std::string(text);
  return std::nullopt;
}

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

}  // namespace mesh::config_detail

namespace mesh {

std::string parse_seed_address(std::string_view text) {
  auto r = config_detail::parse_seed(text);
  if (auto* p = std::get_if<config_detail::Problem>(&r)) throw ConfigError("seed " + **p);
  return std::get<std::string>(std::move(r));
}

}  // namespace mesh
