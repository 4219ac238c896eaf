// meshctl: a command-line client of a node's admin endpoint.
//
//   meshctl members [--detailed] [--status S]... [--tag K=V]... [--json]   (cluster.hpp)
//   meshctl health [--live]
//   meshctl peers [--role R] [--capability C] [--json]
//   meshctl send <target> <json> [--context <json>] [--json]
//   meshctl request <target> <json> [--timeout-ms N] [--context <json>] [--json]
//   meshctl keys list | install KEY | use KEY | remove KEY [--json]
//   meshctl join SEED... [--timeout-ms N]
//   meshctl leave
//   meshctl reload
//   meshctl force-leave NODE | query ... | broadcast ... | monitor ...   (cluster.hpp)
//   meshctl certs keygen --out PATH
//   meshctl certs issue --trust-key-file PATH --name NODE --public-key Z85 --zone Z... [--valid-days N]
//   meshctl audit verify DIR [--allow-pruned] [--json]
//   meshctl threads [--json]
//   meshctl thread ID [--audit DIR ...] [--replay] [--json]   (threads.hpp)
//   meshctl --version | -v
//
// Every node serves the same admin API (mesh/mesh_admin.hpp): mesh-node
// and any program that runs a Mesh with its admin endpoint on, so every
// command works against every node.
//
// Each command is a CLI11 subcommand (mesh/cli.hpp: the parser and the
// error wording every program shares) and one function, which gets the
// options common to all commands and its own.
//
// The admin token (mesh/mesh_admin.hpp, "Authentication") is sent with
// every request when there is one: from --token-file, else the file named
// by JC_ADMIN_TOKEN_FILE, else JC_ADMIN_TOKEN, as the node reads it.
//
// Exit codes: 0 success, 1 the node could not be reached or answered with
// an error (an unknown target, a request that failed or timed out, a
// missing or wrong token), 2 bad usage (also a message or context that is
// not valid JSON, an unreadable token file). `audit verify` works on files,
// without a node: 1 when a chain does not verify, 2 when the directory or
// a file cannot be read or the directory holds no audit files.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "mesh/admin_client.hpp"
#include "mesh/audit_verify.hpp"
#include "mesh/base64.hpp"
#include "mesh/ed25519.hpp"
#include "mesh/node_cert.hpp"
#include "mesh/cli.hpp"
#include "mesh/json_limits.hpp"
#include "mesh/text.hpp"
#include "cluster.hpp"
#include "format.hpp"
#include "threads.hpp"

namespace mesh {
namespace {

struct Options {
  HostPort admin{"127.0.0.1", 9946};
  std::string token;  // empty: none
  bool json = false;
};

struct PeersArgs {
  std::string role;        // empty: any
  std::string capability;  // empty: any
};

// send and request
struct MessageArgs {
  std::string target;
  std::string message;  // JSON text
  std::string context;  // JSON text of an object, empty when not given
  std::uint64_t timeout_ms = 30'000;
};

// A node bound to every address is reachable on loopback.
std::string reachable_host(std::string host) {
  if (host == "0.0.0.0") return "127.0.0.1";
  if (host == "::") return "::1";
  return host;
}

// The admin endpoint a local mesh-node would use, from the same
// environment variables (see docs/mesh-node.md). With JC_CONFIG, the
// node's whole configuration is read as the node reads it (file, then
// environment), so a port set in the file is found too; unknown JC_*
// variables do not matter here.
HostPort default_admin() {
  if (const char* file = std::getenv("JC_CONFIG"); file != nullptr && *file != '\0') {
    try {
      const NodeConfig config = load_node_config(std::vector<std::string>{}, current_environment());
      return {reachable_host(config.admin_host), config.admin_port};
    } catch (const ConfigError& e) {
      throw UsageError(std::string("cannot tell the admin endpoint from the node's configuration: ") + e.what() +
                       "; give --admin HOST:PORT");
    }
  }
  HostPort hp{"127.0.0.1", 9946};
  auto port_from = [](const char* name) -> std::optional<std::uint16_t> {
    const char* v = std::getenv(name);
    if (v == nullptr || *v == '\0') return std::nullopt;
    auto port = parse_port(v);
    if (!port) throw UsageError(std::string(name) + ": \"" + v + "\" is not a port (1-65535)");
    return *port;
  };
  if (const char* h = std::getenv("JC_ADMIN_HOST"); h != nullptr && *h != '\0') {
    hp.host = reachable_host(h);
  }
  if (auto p = port_from("JC_ADMIN_PORT")) {
    hp.port = *p;
  } else if (auto s = port_from("JC_SWIM_PORT")) {
    if (*s > 65535 - 2000) throw UsageError("JC_SWIM_PORT + 2000 is not a port; set JC_ADMIN_PORT");
    hp.port = static_cast<std::uint16_t>(*s + 2000);
  }
  return hp;
}

std::string endpoint_text(const HostPort& hp) { return meshctl::endpoint_text(hp.host, hp.port); }

// GET `target` (or POST `body` to it); on any failure prints one line and
// returns nullopt.
// `partial`: a 502 that carries per-member "results" (/v1/keys) is an
// answer too.
std::optional<std::string> call(const Options& opt, const std::string& target,
                                const std::string* body = nullptr,
                                std::chrono::milliseconds timeout = std::chrono::seconds(5),
                                bool partial = false) {
  const HttpHeaders headers = bearer(opt.token);
  const auto r = body == nullptr
                     ? http_get(opt.admin.host, opt.admin.port, target, timeout, headers)
                     : http_post(opt.admin.host, opt.admin.port, target, *body, timeout, headers);
  if (!r.ok) {
    std::cerr << "meshctl: cannot reach the node at " << endpoint_text(opt.admin) << " ("
              << r.error << ")\n";
    return std::nullopt;
  }
  if (partial && r.status == 502) {
    const auto j = nlohmann::json::parse(r.body, nullptr, false);
    if (j.is_object() && j.contains("results")) return r.body;
  }
  if (r.status < 200 || r.status > 299) {
    std::string detail = r.body;
    try {
      detail = nlohmann::json::parse(r.body).at("error").get<std::string>();
    } catch (const std::exception&) {
    }
    // The node's reason already names what it wants; say where meshctl
    // looks for a token when it had none.
    const bool no_token = r.status == 401 && opt.token.empty();
    std::cerr << "meshctl: " << (body == nullptr ? "GET " : "POST ") << target << ": HTTP "
              << r.status << " " << detail
              << (no_token ? " (meshctl sends none: give --token-file, JC_ADMIN_TOKEN_FILE or JC_ADMIN_TOKEN)"
                           : "")
              << "\n";
    return std::nullopt;
  }
  return r.body;
}

nlohmann::json parse_json_arg(std::string_view command, std::string_view what,
                              const std::string& text) {
  std::string why;
  auto j = mesh::parse_json_bounded(text, &why);
  if (!j) throw UsageError(std::string(command) + ": " + std::string(what) + ": " + why);
  return std::move(*j);
}


// Rows of columns, each padded to its widest; trailing blanks trimmed.
// Cells are escaped (escape_text): they came from the network.
void print_table(std::vector<std::vector<std::string>> rows) {
  for (auto& r : rows) {
    for (auto& cell : r) cell = escape_text(cell);
  }
  std::vector<std::size_t> width;
  for (const auto& r : rows) {
    width.resize(std::max(width.size(), r.size()), 0);
    for (std::size_t i = 0; i < r.size(); ++i) width[i] = std::max(width[i], r[i].size());
  }
  for (const auto& r : rows) {
    std::string line;
    for (std::size_t i = 0; i < r.size(); ++i) {
      line += (i + 1 < r.size()) ? meshctl::pad(r[i], width[i]) + "  " : r[i];
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    std::cout << line << "\n";
  }
}

void unexpected_answer(const Options& opt, const std::exception& e) {
  std::cerr << "meshctl: unexpected answer from " << endpoint_text(opt.admin) << ": " << e.what()
            << "\n";
}

int peers(const Options& opt, const PeersArgs& a) {
  const auto body = call(opt, "/v1/agents");
  if (!body) return 1;
  nlohmann::json selected = nlohmann::json::array();
  std::vector<std::vector<std::string>> rows;
  try {
    for (const auto& p : nlohmann::json::parse(*body)) {
      const auto caps = p.at("capabilities").get<std::vector<std::string>>();
      if (!a.role.empty() && p.at("role").get<std::string>() != a.role) continue;
      if (!a.capability.empty() &&
          std::find(caps.begin(), caps.end(), a.capability) == caps.end()) {
        continue;
      }
      selected.push_back(p);
      std::string status = p.at("status").get<std::string>();
      if (p.value("node_health", std::string("alive")) != "alive") {
        status += " (node " + p.at("node_health").get<std::string>() + ")";
      }
      std::string cap_text;
      for (const auto& c : caps) cap_text += (cap_text.empty() ? "" : ",") + c;
      rows.push_back({p.at("agent_id").get<std::string>(), p.at("role").get<std::string>(),
                      p.at("node").get<std::string>(), p.at("location").get<std::string>(),
                      status, cap_text});
    }
  } catch (const std::exception& e) {
    unexpected_answer(opt, e);
    return 1;
  }
  if (opt.json) {
    std::cout << selected.dump() << "\n";
    return 0;
  }
  // The node's order (local agents first, then remote nodes by name).
  print_table(std::move(rows));
  return 0;
}

// send and request: {target, message, context[, timeout_ms]} to `path`.
int post_message(const Options& opt, std::string_view command, const MessageArgs& a,
                 bool is_request) {
  nlohmann::json in{{"target", a.target},
                    {"message", parse_json_arg(command, "message", a.message)}};
  if (!a.context.empty()) {
    auto ctx = parse_json_arg(command, "--context", a.context);
    if (!ctx.is_object()) throw UsageError(std::string(command) + ": --context must be a JSON object");
    in["context"] = std::move(ctx);
  }
  const std::chrono::milliseconds timeout(a.timeout_ms);
  if (is_request) in["timeout_ms"] = timeout.count();
  const std::string text = in.dump();
  // The node answers a request within its timeout; allow for the way there
  // and back on top.
  const auto body = call(opt, is_request ? "/v1/request" : "/v1/send", &text,
                         is_request ? timeout + std::chrono::seconds(5) : std::chrono::seconds(5));
  if (!body) return 1;
  if (opt.json) {
    std::cout << *body << "\n";
    return 0;
  }
  try {
    const auto out = nlohmann::json::parse(*body);
    if (is_request) {
      std::cout << out.at("response").dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
                << "\n";
    } else {
      std::cout << "sent to " << out.at("agent_id").get<std::string>() << " on "
                << out.at("node").get<std::string>() << "\n";
    }
  } catch (const std::exception& e) {
    unexpected_answer(opt, e);
    return 1;
  }
  return 0;
}

struct CertArgs {
  std::string out;             // keygen: where the trust secret goes
  std::string trust_key_file;  // issue: the trust secret
  std::string name;
  std::string public_key;      // Z85 CURVE public key of the node
  std::vector<std::string> zones;
  std::uint64_t valid_days = 365;
};

// certs keygen: a trust key pair. The secret (base64 of the Ed25519 seed)
// goes to a new file readable by its owner only; the public half, which
// every node gets as JC_TRUST_KEY, is printed.
int certs_keygen(const CertArgs& a) {
  const auto seed = ed25519::random_seed();
  const auto pub = seed ? ed25519::public_key(*seed) : std::nullopt;
  if (!pub) {
    std::cerr << "meshctl: certs keygen: no random source (libsodium could not start)\n";
    return 1;
  }
  const int fd = ::open(a.out.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    throw UsageError("certs keygen: --out " + escape_text(a.out) + ": " + std::strerror(errno) +
                     (errno == EEXIST ? " (it is never overwritten)" : ""));
  }
  const std::string text = encode_base64(std::vector<std::uint8_t>(seed->begin(), seed->end())) + "\n";
  const bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) && ::fsync(fd) == 0;
  ::close(fd);
  if (!ok) {
    std::cerr << "meshctl: certs keygen: cannot write " << escape_text(a.out) << "\n";
    return 1;
  }
  std::cout << "JC_TRUST_KEY=" << encode_base64(std::vector<std::uint8_t>(pub->begin(), pub->end())) << "\n";
  return 0;
}

// certs issue: a node certificate, printed (give it to the node as
// JC_NODE_CERT, or in the file JC_NODE_CERT_FILE names).
int certs_issue(const CertArgs& a) {
  std::ifstream in(a.trust_key_file);
  std::string text;
  if (!(in >> text)) {
    throw UsageError("certs issue: --trust-key-file " + escape_text(a.trust_key_file) + ": cannot read it");
  }
  const auto seed = parse_trust_seed(text);
  if (!seed) {
    throw UsageError("certs issue: --trust-key-file " + escape_text(a.trust_key_file) +
                     ": not a trust secret (meshctl certs keygen makes one)");
  }
  if (a.public_key.size() != 40) throw UsageError("certs issue: --public-key: a Z85 CURVE public key is 40 characters");
  NodeCert cert;
  cert.name = a.name;
  cert.public_key = a.public_key;
  cert.zones = a.zones;
  const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::system_clock::now().time_since_epoch()).count();
  cert.expires_unix = now + static_cast<std::int64_t>(a.valid_days) * 86400;
  std::cout << issue_cert(cert, *seed) << "\n";
  return 0;
}

struct AuditArgs {
  std::string dir;
  bool allow_pruned = false;
};

std::string issue_text(const AuditIssue& issue) {
  std::string where = escape_text(issue.file);
  if (issue.line > 0) where += ":" + std::to_string(issue.line);
  return where + ": " + issue.reason;
}

// audit verify: every node's chain in the directory. A line per chain on
// stdout (or the result as JSON); failures and warnings on stderr, one
// line each, naming file:line.
int audit_verify(const AuditArgs& a, bool json) {
  const AuditVerifyResult r = verify_audit_dir(a.dir, {.allow_pruned_start = a.allow_pruned});
  if (json) std::cout << r.to_json().dump() << "\n";
  if (r.failure && r.failure->problem == AuditProblem::Unreadable && r.chains.empty()) {
    std::cerr << "meshctl: audit verify: " << issue_text(*r.failure) << "\n";
    return 2;
  }
  if (r.chains.empty()) {
    std::cerr << "meshctl: audit verify: " << escape_text(a.dir)
              << ": no audit files (audit-<node>-<index>.jsonl) in it\n";
    return 2;
  }
  bool tampered = false, unreadable = false;
  for (const auto& c : r.chains) {
    for (const auto& w : c.warnings) std::cerr << "meshctl: audit verify: warning: " << issue_text(w) << "\n";
    if (c.failure) {
      std::cerr << "meshctl: audit verify: " << issue_text(*c.failure) << "\n";
      (c.failure->problem == AuditProblem::Unreadable ? unreadable : tampered) = true;
      continue;
    }
    if (json) continue;
    std::cout << c.node << ": ok, " << c.records << (c.records == 1 ? " record in " : " records in ") << c.files
              << (c.files == 1 ? " file" : " files");
    if (c.records > 0) std::cout << ", seq " << c.first_seq << " to " << c.last_seq << ", last hash " << c.last_hash;
    std::cout << "\n";
  }
  return tampered ? 1 : unreadable ? 2 : 0;
}

struct KeysArgs {
  std::string op;   // list, install, use, remove
  std::string key;  // base64; not for list
};

// serf keys: one operation on every member, and how each did.
int keys(const Options& opt, const KeysArgs& a) {
  if (a.op != "list" && a.key.empty()) throw UsageError("keys " + a.op + ": give the key (base64)");
  if (a.op == "list" && !a.key.empty()) throw UsageError("keys list takes no key");
  nlohmann::json in{{"op", a.op}};
  if (!a.key.empty()) in["key"] = a.key;
  const std::string text = in.dump();
  // Each member has 5 s to answer; allow for the way there and back.
  const auto body = call(opt, "/v1/keys", &text, std::chrono::seconds(15), true);
  if (!body) return 1;
  std::size_t failed = 0;
  try {
    const auto out = nlohmann::json::parse(*body);
    failed = out.at("failed").get<std::size_t>();
    if (opt.json) {
      std::cout << *body << "\n";
      return failed == 0 ? 0 : 1;
    }
    const auto members = out.at("members").get<std::size_t>();
    std::cout << a.op << ": " << (members - failed) << " of " << members << " members done\n";
    std::vector<std::vector<std::string>> rows;
    for (const auto& r : out.at("results")) {
      if (r.at("ok").get<bool>()) continue;
      rows.push_back({"  " + r.at("node").get<std::string>(), "failed: " + r.at("error").get<std::string>()});
    }
    if (a.op == "list") {
      for (const auto& k : out.at("keys")) {
        const auto installed = k.at("installed").get<std::size_t>();
        const auto primary = k.at("primary").get<std::size_t>();
        std::string where = "on " + std::to_string(installed) + "/" + std::to_string(members - failed);
        if (primary > 0) where += ", primary on " + std::to_string(primary);
        rows.push_back({"  " + k.at("key").get<std::string>(), where});
      }
    }
    print_table(std::move(rows));
  } catch (const std::exception& e) {
    unexpected_answer(opt, e);
    return 1;
  }
  return failed == 0 ? 0 : 1;
}

struct JoinArgs {
  std::vector<std::string> seeds;
  std::uint64_t timeout_ms = 10'000;
};

// serf join: through the given seeds; done once one answered.
int join(const Options& opt, const JoinArgs& a) {
  const std::string text = nlohmann::json{{"seeds", a.seeds}, {"timeout_ms", a.timeout_ms}}.dump();
  const auto body = call(opt, "/v1/join", &text, std::chrono::milliseconds(a.timeout_ms) + std::chrono::seconds(5));
  if (!body) return 1;
  if (opt.json) {
    std::cout << *body << "\n";
  } else {
    std::cout << "joined the cluster through " << (a.seeds.size() == 1 ? "the seed" : "one of the seeds") << "\n";
  }
  return 0;
}

// serf leave: the node leaves gracefully and stops; answered before it is
// gone.
int leave(const Options& opt) {
  const std::string text = "{}";
  const auto body = call(opt, "/v1/leave", &text);
  if (!body) return 1;
  if (opt.json) {
    std::cout << *body << "\n";
  } else {
    std::cout << "the node at " << endpoint_text(opt.admin) << " is leaving the cluster\n";
  }
  return 0;
}

// serf reload: the node reads its policy file again.
int reload(const Options& opt) {
  const std::string text = "{}";
  const auto body = call(opt, "/v1/reload", &text);
  if (!body) return 1;
  if (opt.json) {
    std::cout << *body << "\n";
    return 0;
  }
  try {
    const auto out = nlohmann::json::parse(*body).at("reloaded");
    if (out.empty()) {
      std::cout << "nothing to reload (the node has no policy file)\n";
    } else {
      std::string what;
      for (const auto& r : out) what += (what.empty() ? "" : ", ") + r.get<std::string>();
      std::cout << "reloaded: " << what << "\n";
    }
  } catch (const std::exception& e) {
    unexpected_answer(opt, e);
    return 1;
  }
  return 0;
}

// For scripts and probes: GET /readyz (/livez with `live`). Exit 0 when
// the node answers 200, 1 for any other answer, 2 when nothing answers.
int health(const Options& opt, bool live) {
  const std::string target = live ? "/livez" : "/readyz";
  const auto r = http_get(opt.admin.host, opt.admin.port, target, std::chrono::seconds(5), bearer(opt.token));
  if (!r.ok) {
    std::cerr << "meshctl: cannot reach the node at " << endpoint_text(opt.admin) << " (" << r.error << ")\n";
    return 2;
  }
  if (opt.json) {
    std::cout << r.body << "\n";
    return r.status == 200 ? 0 : 1;
  }
  std::string status = "HTTP " + std::to_string(r.status);
  std::string reason;
  const auto j = nlohmann::json::parse(r.body, nullptr, false);
  if (j.is_object()) {
    status = escape_text(j.value("status", status));
    reason = escape_text(j.value("reason", std::string()));
  }
  std::cout << endpoint_text(opt.admin) << ": " << status << (reason.empty() ? "" : " (" + reason + ")") << "\n";
  return r.status == 200 ? 0 : 1;
}

// The admin endpoint: --admin, else the environment (default_admin).
HostPort admin_endpoint(const std::string& text) {
  if (text.empty()) return default_admin();
  auto hp = parse_host_port(text);
  if (!hp) throw UsageError("--admin: \"" + escape_text(text) + "\" is not host:port");
  return *hp;
}

// The admin token: --token-file, else JC_ADMIN_TOKEN_FILE, else
// JC_ADMIN_TOKEN (the node's own settings); empty when none is set.
std::string admin_token(const std::string& token_file) {
  std::string where = "--token-file";
  std::string path = token_file;
  if (path.empty()) {
    const char* file = std::getenv("JC_ADMIN_TOKEN_FILE");
    if (file == nullptr || *file == '\0') {
      const char* token = std::getenv("JC_ADMIN_TOKEN");
      return token == nullptr ? std::string() : std::string(token);
    }
    where = "JC_ADMIN_TOKEN_FILE";
    path = file;
  }
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  if (in) text << in.rdbuf();
  if (!in || in.bad()) {
    throw UsageError(where + ": " + escape_text(path) + ": cannot read (" + std::strerror(errno) + ")");
  }
  std::string token = text.str();
  // As the node reads it: `echo token > file` leaves a newline.
  while (!token.empty() && std::isspace(static_cast<unsigned char>(token.back()))) token.pop_back();
  if (token.empty()) throw UsageError(where + ": " + escape_text(path) + ": the file is empty");
  return token;
}

int main_(int argc, char** argv) {
  CLI::App app(
      "A client of a node's admin endpoint: mesh-node, or any program that runs a Mesh\n"
      "with its admin endpoint on.");
  cli::setup(app, "meshctl");
  std::string admin_text;
  Options opt;
  app.add_option("--admin", admin_text,
                 "the node's admin endpoint (default 127.0.0.1:9946, or JC_ADMIN_HOST / "
                 "JC_ADMIN_PORT, or JC_SWIM_PORT + 2000)")
      ->type_name("HOST:PORT");
  std::string token_file;
  app.add_option("--token-file", token_file,
                 "file holding the node's admin token (default: JC_ADMIN_TOKEN_FILE, or "
                 "JC_ADMIN_TOKEN)")
      ->type_name("PATH");
  app.add_flag("--json", opt.json, "print JSON: the node's answer as it is, or audit verify's result");
  app.require_subcommand(0, 1);

  meshctl::MembersArgs members_args;
  auto* members_cmd = app.add_subcommand("members", "list the members this node knows (like `serf members`)");
  members_cmd->add_flag("-d,--detailed", members_args.detailed,
                        "show the mesh's own tags, incarnations and protocol versions too");
  members_cmd->add_option("--status", members_args.statuses, "only members in this state (repeat for more)")
      ->type_name("alive|suspect|dead|left")
      ->check(CLI::IsMember({"alive", "suspect", "dead", "left"}));
  members_cmd->add_option("--tag", members_args.tags, "only members with this tag and value (repeat: all of them)")
      ->type_name("KEY=VALUE");
  bool health_live = false;
  auto* health_cmd = app.add_subcommand(
      "health", "is the node ready (GET /readyz)? exit 0 ready, 1 not ready, 2 not reachable; for scripts and probes");
  health_cmd->add_flag("--live", health_live, "ask only whether the process answers (GET /livez)");

  PeersArgs peers_args;
  auto* peers_cmd = app.add_subcommand("peers", "list the agents this node knows, local and remote");
  peers_cmd->add_option("--role", peers_args.role, "only agents of this role")->type_name("ROLE");
  peers_cmd->add_option("--capability", peers_args.capability, "only agents with this capability")
      ->type_name("CAPABILITY");

  MessageArgs send_args;
  auto* send_cmd = app.add_subcommand("send", "send a notify to an agent (an agent_id, or a role)");
  MessageArgs request_args;
  auto* request_cmd =
      app.add_subcommand("request", "send a request and print the response (default timeout 30000 ms)");
  for (auto [cmd, a] : {std::pair{send_cmd, &send_args}, std::pair{request_cmd, &request_args}}) {
    cmd->add_option("target", a->target, "an agent_id, or a role")->required();
    cmd->add_option("json", a->message, "the message, a JSON value")->required();
    cmd->add_option("--context", a->context, "a JSON object passed along with the message")
        ->type_name("JSON");
  }
  request_cmd->add_option("--timeout-ms", request_args.timeout_ms, "how long to wait for the answer")
      ->type_name("N")
      ->transform(cli::whole_number(1, 600'000));
  KeysArgs keys_args;
  auto* keys_cmd = app.add_subcommand(
      "keys", "the cluster's gossip keys, on every member (like `serf keys`): list, install KEY, use KEY, remove KEY");
  keys_cmd->add_option("op", keys_args.op, "list, install, use or remove")
      ->required()
      ->check(CLI::IsMember({"list", "install", "use", "remove"}));
  keys_cmd->add_option("key", keys_args.key, "the key, base64 (16, 24 or 32 bytes, as `serf keygen` makes)");
  JoinArgs join_args;
  auto* join_cmd = app.add_subcommand("join", "join the node to a cluster through seeds (like `serf join`)");
  join_cmd->add_option("seed", join_args.seeds, "host:port, [v6]:port, or a host (port 7946)")->required();
  join_cmd->add_option("--timeout-ms", join_args.timeout_ms, "how long to wait for a seed (default 10000)")
      ->type_name("N")
      ->transform(cli::whole_number(1, 120'000));
  auto* leave_cmd =
      app.add_subcommand("leave", "make the node leave the cluster gracefully and stop (like `serf leave`)");
  auto* reload_cmd =
      app.add_subcommand("reload", "make the node read its policy file again (like `serf reload`; SIGHUP)");
  std::string force_leave_node;
  auto* force_leave_cmd = app.add_subcommand(
      "force-leave", "make a failed member left on every member at once (like `serf force-leave`)");
  force_leave_cmd->add_option("node", force_leave_node, "the failed member's name")->required();
  meshctl::QueryArgs query_args;
  auto* query_cmd = app.add_subcommand(
      "query", "ask every agent of a role (or with --capability) and gather the answers (like `serf query`)");
  query_cmd->add_option("args", query_args.words, "ROLE MESSAGE, or MESSAGE with --capability (a JSON value)")
      ->required()
      ->expected(1, 2);
  query_cmd->add_option("--capability", query_args.capability, "ask the agents with this capability")
      ->type_name("CAPABILITY");
  query_cmd->add_option("--policy", query_args.policy,
                        "all (every answer), first:K (the first K) or quorum (a majority); default all")
      ->type_name("POLICY");
  query_cmd->add_option("--timeout-ms", query_args.timeout_ms, "how long to wait for answers (default 30000)")
      ->type_name("N")
      ->transform(cli::whole_number(1, 600'000));
  query_cmd->add_option("--context", query_args.context, "a JSON object passed along with the message")
      ->type_name("JSON");
  meshctl::BroadcastArgs broadcast_args;
  auto* broadcast_cmd = app.add_subcommand("broadcast", "send a notify to every agent (or every one of a role)");
  broadcast_cmd->add_option("message", broadcast_args.message, "the message, a JSON value")->required();
  broadcast_cmd->add_option("--role", broadcast_args.role, "only agents of this role")->type_name("ROLE");
  broadcast_cmd->add_option("--capability", broadcast_args.capability, "only agents with this capability")
      ->type_name("CAPABILITY");
  broadcast_cmd->add_option("--context", broadcast_args.context, "a JSON object passed along with the message")
      ->type_name("JSON");
  meshctl::MonitorArgs monitor_args;
  auto* monitor_cmd = app.add_subcommand(
      "monitor", "show what the node sees happen, as it happens: nodes and agents coming and going (like `serf monitor`)");
  monitor_cmd->add_option("--count", monitor_args.count, "stop after N events (default: until Ctrl-C)")
      ->type_name("N")
      ->transform(cli::whole_number(1, 1'000'000'000));
  CertArgs cert_args;
  auto* certs_cmd = app.add_subcommand("certs", "node certificates that vouch for zone claims (docs/security.md)");
  certs_cmd->require_subcommand(1);
  auto* keygen_cmd = certs_cmd->add_subcommand(
      "keygen", "make the cluster's trust key: the secret to --out (owner-only), JC_TRUST_KEY printed");
  keygen_cmd->add_option("--out", cert_args.out, "the new file for the trust secret")->required()->type_name("PATH");
  auto* issue_cmd = certs_cmd->add_subcommand("issue", "print a certificate for a node (JC_NODE_CERT)");
  issue_cmd->add_option("--trust-key-file", cert_args.trust_key_file, "the trust secret (certs keygen)")
      ->required()
      ->type_name("PATH");
  issue_cmd->add_option("--name", cert_args.name, "the node's name")->required();
  issue_cmd->add_option("--public-key", cert_args.public_key, "the node's CURVE public key (Z85; its zkey tag)")
      ->required()
      ->type_name("Z85");
  issue_cmd->add_option("--zone", cert_args.zones, "a zone it may claim (repeat for more)")->required();
  issue_cmd->add_option("--valid-days", cert_args.valid_days, "how long it holds (default 365)")
      ->type_name("N")
      ->transform(cli::whole_number(1, 36500));
  AuditArgs audit_args;
  auto* audit_cmd = app.add_subcommand("audit", "a node's audit log files (docs/operations.md, \"Audit log\")");
  audit_cmd->require_subcommand(1);
  auto* audit_verify_cmd = audit_cmd->add_subcommand(
      "verify", "check every node's hash chain in DIR: exit 0 if all hold, 1 if one does not, 2 if DIR cannot be read");
  audit_verify_cmd->add_option("dir", audit_args.dir, "the audit directory")->required()->type_name("DIR");
  audit_verify_cmd->add_flag("--allow-pruned", audit_args.allow_pruned,
                             "accept chains whose oldest files were archived or deleted on purpose");
  auto* threads_cmd = app.add_subcommand("threads", "list the conversation threads this node knows");
  meshctl::ThreadArgs thread_args;
  auto* thread_cmd = app.add_subcommand(
      "thread", "one thread: the node's record; with --audit, its messages from every node's trail and per-hop latency");
  thread_cmd->add_option("id", thread_args.id, "the thread's id, 32 hex digits")->required();
  thread_cmd->add_option("--audit", thread_args.audit_dirs, "an audit directory to read (repeat for more nodes')")
      ->type_name("DIR");
  thread_cmd->add_flag("--replay", thread_args.replay,
                       "send the thread's opening message again, to the same role with the same limits, and show "
                       "the new thread beside the old one");
  // --admin, --token-file and --json may follow the command too.
  for (auto* cmd : {members_cmd, health_cmd, peers_cmd, send_cmd, request_cmd, keys_cmd, join_cmd, leave_cmd, reload_cmd,
                    force_leave_cmd, query_cmd, broadcast_cmd, monitor_cmd,
                    audit_cmd, audit_verify_cmd, threads_cmd, thread_cmd}) {
    cmd->fallthrough();
  }

  try {
    // Serf spells it -detailed; CLI11 takes long names with two dashes.
    std::vector<char*> args(argv, argv + argc);
    static char detailed[] = "--detailed";
    for (auto& a : args) {
      if (std::string_view(a) == "-detailed") a = detailed;
    }
    if (auto done = cli::parse(app, argc, args.data())) return *done;
    if (app.get_subcommands().empty()) {
      std::cerr << app.help();
      return 2;
    }
    // Certificates are made, and audit files checked, here, without a node.
    if (keygen_cmd->parsed()) return certs_keygen(cert_args);
    if (issue_cmd->parsed()) return certs_issue(cert_args);
    if (audit_verify_cmd->parsed()) return audit_verify(audit_args, opt.json);
    opt.admin = admin_endpoint(admin_text);
    opt.token = admin_token(token_file);
    const meshctl::Call node_call = [&opt](const std::string& target, const std::string* body,
                                           std::chrono::milliseconds timeout) {
      return call(opt, target, body, timeout);
    };
    if (members_cmd->parsed()) return meshctl::members(node_call, members_args, opt.json, endpoint_text(opt.admin));
    if (health_cmd->parsed()) return health(opt, health_live);
    if (peers_cmd->parsed()) return peers(opt, peers_args);
    if (send_cmd->parsed()) return post_message(opt, "send", send_args, false);
    if (keys_cmd->parsed()) return keys(opt, keys_args);
    if (join_cmd->parsed()) return join(opt, join_args);
    if (leave_cmd->parsed()) return leave(opt);
    if (reload_cmd->parsed()) return reload(opt);
    const std::string where = endpoint_text(opt.admin);
    if (force_leave_cmd->parsed()) return meshctl::force_leave(node_call, force_leave_node, opt.json);
    if (query_cmd->parsed()) return meshctl::query(node_call, query_args, opt.json, where);
    if (broadcast_cmd->parsed()) return meshctl::broadcast(node_call, broadcast_args, opt.json, where);
    if (monitor_cmd->parsed()) return meshctl::monitor(node_call, monitor_args, opt.json, where);
    if (threads_cmd->parsed()) return meshctl::threads(node_call, opt.json);
    if (thread_cmd->parsed()) return meshctl::thread(node_call, thread_args, opt.json);
    return post_message(opt, "request", request_args, true);
  } catch (const UsageError& e) {
    std::cerr << "meshctl: " << e.what() << " (meshctl --help)\n";
    return 2;
  }
}

}  // namespace
}  // namespace mesh

int main(int argc, char** argv) { return mesh::main_(argc, argv); }
