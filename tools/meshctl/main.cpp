// meshctl: a command-line client of a node's admin endpoint.
//
//   meshctl members [--admin host:port] [--json]
//   meshctl peers [--role R] [--capability C] [--json]
//   meshctl send <target> <json> [--context <json>] [--json]
//   meshctl request <target> <json> [--timeout-ms N] [--context <json>] [--json]
//   meshctl --version | -v
//
// Every node serves the same admin API (mesh/mesh_admin.hpp): mesh-node
// and any program that runs a Mesh with its admin endpoint on, so every
// command works against every node.
//
// Commands live in one table (name, summary, handler); each handler gets
// the options common to all commands and its own arguments (positional
// ones and its own --options), so that a command is one entry and one
// function.
//
// Exit codes: 0 success, 1 the node could not be reached or answered with
// an error (an unknown target, a request that failed or timed out), 2 bad
// usage (also a message or context that is not valid JSON).
#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdlib>
#include <initializer_list>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "mesh/admin_client.hpp"
#include "mesh/json_limits.hpp"
#include "mesh/text.hpp"
#include "mesh/version.hpp"

namespace mesh {
namespace {

struct Options {
  HostPort admin{"127.0.0.1", 9946};
  bool json = false;
};

struct UsageError {
  std::string message;
};

using CommandFn = int (*)(const Options&, const std::vector<std::string>& args);

struct Command {
  std::string_view name;
  std::string_view args;  // for the usage line
  std::string_view summary;
  CommandFn run;
};

int members(const Options& opt, const std::vector<std::string>& args);
int peers(const Options& opt, const std::vector<std::string>& args);
int send(const Options& opt, const std::vector<std::string>& args);
int request(const Options& opt, const std::vector<std::string>& args);

constexpr Command kCommands[] = {
    {"members", "", "list the members this node knows (like `serf members`)", members},
    {"peers", "[--role R] [--capability C]",
     "list the agents this node knows, local and remote", peers},
    {"send", "<target> <json> [--context <json>]",
     "send a notify to an agent (an agent_id, or a role)", send},
    {"request", "<target> <json> [--timeout-ms N] [--context <json>]",
     "send a request and print the response (default timeout 30000 ms)", request},
};

void usage(std::ostream& out) {
  out << "Usage: meshctl <command> [--admin host:port] [--json]\n"
         "       meshctl --version | -v\n\nCommands:\n";
  for (const auto& c : kCommands) {
    out << "  " << c.name << (c.args.empty() ? "" : " ") << c.args << "\n      " << c.summary
        << "\n";
  }
  out << "\nOptions:\n"
         "  --admin host:port   the node's admin endpoint (default 127.0.0.1:9946,\n"
         "                      or JC_ADMIN_HOST / JC_ADMIN_PORT, or JC_SWIM_PORT + 2000)\n"
         "  --json              print the node's JSON answer as it is\n";
}

// The admin endpoint a local mesh-node would use, from the same
// environment variables (see docs/mesh-node.md).
HostPort default_admin() {
  HostPort hp{"127.0.0.1", 9946};
  auto port_from = [](const char* name) -> std::optional<std::uint16_t> {
    const char* v = std::getenv(name);
    if (v == nullptr || *v == '\0') return std::nullopt;
    auto port = parse_port(v);
    if (!port) throw UsageError{std::string(name) + ": \"" + v + "\" is not a port (1-65535)"};
    return *port;
  };
  if (const char* h = std::getenv("JC_ADMIN_HOST"); h != nullptr && *h != '\0') {
    hp.host = h;
    // A node bound to every address is reachable on loopback.
    if (hp.host == "0.0.0.0") hp.host = "127.0.0.1";
    if (hp.host == "::") hp.host = "::1";
  }
  if (auto p = port_from("JC_ADMIN_PORT")) {
    hp.port = *p;
  } else if (auto s = port_from("JC_SWIM_PORT")) {
    if (*s > 65535 - 2000) throw UsageError{"JC_SWIM_PORT + 2000 is not a port; set JC_ADMIN_PORT"};
    hp.port = static_cast<std::uint16_t>(*s + 2000);
  }
  return hp;
}

std::string endpoint_text(const HostPort& hp) {
  const bool v6 = hp.host.find(':') != std::string::npos;
  return (v6 ? "[" + hp.host + "]" : hp.host) + ":" + std::to_string(hp.port);
}

// GET `target` (or POST `body` to it); on any failure prints one line and
// returns nullopt.
std::optional<std::string> call(const Options& opt, const std::string& target,
                                const std::string* body = nullptr,
                                std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
  const auto r = body == nullptr ? http_get(opt.admin.host, opt.admin.port, target, timeout)
                                 : http_post(opt.admin.host, opt.admin.port, target, *body, timeout);
  if (!r.ok) {
    std::cerr << "meshctl: cannot reach the node at " << endpoint_text(opt.admin) << " ("
              << r.error << ")\n";
    return std::nullopt;
  }
  if (r.status != 200) {
    std::string detail = r.body;
    try {
      detail = nlohmann::json::parse(r.body).at("error").get<std::string>();
    } catch (const std::exception&) {
    }
    std::cerr << "meshctl: " << (body == nullptr ? "GET " : "POST ") << target << ": HTTP "
              << r.status << " " << detail << "\n";
    return std::nullopt;
  }
  return r.body;
}

std::string pad(std::string s, std::size_t w) {
  if (s.size() < w) s.resize(w, ' ');
  return s;
}

int members(const Options& opt, const std::vector<std::string>& args) {
  if (!args.empty()) throw UsageError{"members: unexpected argument \"" + args[0] + "\""};
  const auto body = call(opt, "/v1/members");
  if (!body) return 1;
  if (opt.json) {
    std::cout << *body << "\n";
    return 0;
  }
  struct Row {
    std::string name, addr, state, tags;
  };
  std::vector<Row> rows;
  try {
    for (const auto& m : nlohmann::json::parse(*body)) {
      Row r;
      // Names and tags came from the network: one line each, whatever they hold.
      r.name = escape_text(m.at("name").get<std::string>());
      const auto ip = m.at("addr").get<std::string>();
      r.addr = endpoint_text({ip, m.at("port").get<std::uint16_t>()});
      r.state = m.at("state").get<std::string>();
      for (const auto& [k, v] : m.at("tags").items()) {
        if (!r.tags.empty()) r.tags += ",";
        r.tags += k + "=" + v.get<std::string>();
      }
      rows.push_back(std::move(r));
    }
  } catch (const std::exception& e) {
    std::cerr << "meshctl: unexpected answer from " << endpoint_text(opt.admin) << ": "
              << e.what() << "\n";
    return 1;
  }
  std::sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) { return a.name < b.name; });
  // serf members: name, address, status, tags; columns padded to the widest.
  std::size_t wn = 0, wa = 0, ws = 0;
  for (const auto& r : rows) {
    wn = std::max(wn, r.name.size());
    wa = std::max(wa, r.addr.size());
    ws = std::max(ws, r.state.size());
  }
  for (const auto& r : rows) {
    std::string line = pad(r.name, wn) + "  " + pad(r.addr, wa) + "  " + pad(r.state, ws) +
                       "  " + escape_text(r.tags);
    while (!line.empty() && line.back() == ' ') line.pop_back();
    std::cout << line << "\n";
  }
  return 0;
}

// A command's own arguments: positional ones, and --name value (or
// --name=value) for the names it takes.
struct CommandArgs {
  std::vector<std::string> positional;
  std::map<std::string, std::string> named;
};

CommandArgs parse_args(std::string_view command, const std::vector<std::string>& args,
                       std::initializer_list<std::string_view> names) {
  CommandArgs out;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a.rfind("--", 0) != 0) {
      out.positional.push_back(a);
      continue;
    }
    const auto eq = a.find('=');
    const std::string name = a.substr(0, eq);
    if (std::find(names.begin(), names.end(), name) == names.end()) {
      throw UsageError{std::string(command) + ": " + name + ": unknown option"};
    }
    if (eq != std::string::npos) {
      out.named[name] = a.substr(eq + 1);
    } else if (i + 1 < args.size()) {
      out.named[name] = args[++i];
    } else {
      throw UsageError{std::string(command) + ": " + name + ": missing value"};
    }
  }
  return out;
}

nlohmann::json parse_json_arg(std::string_view command, std::string_view what,
                              const std::string& text) {
  std::string why;
  auto j = mesh::parse_json_bounded(text, &why);
  if (!j) throw UsageError{std::string(command) + ": " + std::string(what) + ": " + why};
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
      line += (i + 1 < r.size()) ? pad(r[i], width[i]) + "  " : r[i];
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    std::cout << line << "\n";
  }
}

void unexpected_answer(const Options& opt, const std::exception& e) {
  std::cerr << "meshctl: unexpected answer from " << endpoint_text(opt.admin) << ": " << e.what()
            << "\n";
}

int peers(const Options& opt, const std::vector<std::string>& args) {
  const auto a = parse_args("peers", args, {"--role", "--capability"});
  if (!a.positional.empty()) {
    throw UsageError{"peers: unexpected argument \"" + a.positional[0] + "\""};
  }
  const auto role = a.named.find("--role");
  const auto capability = a.named.find("--capability");
  const auto body = call(opt, "/v1/agents");
  if (!body) return 1;
  nlohmann::json selected = nlohmann::json::array();
  std::vector<std::vector<std::string>> rows;
  try {
    for (const auto& p : nlohmann::json::parse(*body)) {
      const auto caps = p.at("capabilities").get<std::vector<std::string>>();
      if (role != a.named.end() && p.at("role").get<std::string>() != role->second) continue;
      if (capability != a.named.end() &&
          std::find(caps.begin(), caps.end(), capability->second) == caps.end()) {
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
int post_message(const Options& opt, std::string_view command, const std::vector<std::string>& args,
                 bool is_request) {
  const auto a = is_request ? parse_args(command, args, {"--context", "--timeout-ms"})
                            : parse_args(command, args, {"--context"});
  if (a.positional.size() != 2) {
    throw UsageError{std::string(command) + ": expected <target> <json>"};
  }
  nlohmann::json in{{"target", a.positional[0]},
                    {"message", parse_json_arg(command, "message", a.positional[1])}};
  if (auto c = a.named.find("--context"); c != a.named.end()) {
    auto ctx = parse_json_arg(command, "--context", c->second);
    if (!ctx.is_object()) throw UsageError{std::string(command) + ": --context must be a JSON object"};
    in["context"] = std::move(ctx);
  }
  std::chrono::milliseconds timeout{30'000};
  if (auto t = a.named.find("--timeout-ms"); t != a.named.end()) {
    std::uint64_t ms = 0;
    const auto* end = t->second.data() + t->second.size();
    auto [ptr, ec] = std::from_chars(t->second.data(), end, ms);
    if (ec != std::errc{} || ptr != end || ms == 0 || ms > 600'000) {
      throw UsageError{std::string(command) + ": --timeout-ms: \"" + t->second +
                       "\" is not a number of milliseconds from 1 to 600000"};
    }
    timeout = std::chrono::milliseconds(ms);
  }
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

int send(const Options& opt, const std::vector<std::string>& args) {
  return post_message(opt, "send", args, false);
}

int request(const Options& opt, const std::vector<std::string>& args) {
  return post_message(opt, "request", args, true);
}

int main_(int argc, char** argv) {
  // Before anything else reads the environment (a bad JC_ADMIN_PORT).
  for (int i = 1; i < argc; ++i) {
    if (is_version_flag(argv[i])) {
      std::cout << "meshctl " << kVersion << "\n";
      return 0;
    }
  }
  try {
    Options opt;
    opt.admin = default_admin();
    const Command* command = nullptr;
    std::vector<std::string> rest;
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      if (a == "--help" || a == "-h" || a == "help") {
        usage(std::cout);
        return 0;
      }
      if (a == "--json") {
        opt.json = true;
      } else if (a == "--admin" || a.rfind("--admin=", 0) == 0) {
        std::string v;
        if (a == "--admin") {
          if (i + 1 >= argc) throw UsageError{"--admin: missing value"};
          v = argv[++i];
        } else {
          v = a.substr(8);
        }
        auto hp = parse_host_port(v);
        if (!hp) throw UsageError{"--admin: \"" + v + "\" is not host:port"};
        opt.admin = *hp;
      } else if (command == nullptr && a.rfind("--", 0) != 0) {
        for (const auto& c : kCommands) {
          if (c.name == a) command = &c;
        }
        if (command == nullptr) throw UsageError{"unknown command \"" + a + "\""};
      } else if (a.rfind("--", 0) == 0 && command == nullptr) {
        throw UsageError{a + ": unknown option"};
      } else {
        // The command's own arguments and options: it checks them.
        rest.push_back(a);
      }
    }
    if (command == nullptr) {
      usage(std::cerr);
      return 2;
    }
    return command->run(opt, rest);
  } catch (const UsageError& e) {
    std::cerr << "meshctl: " << e.message << " (meshctl --help)\n";
    return 2;
  }
}

}  // namespace
}  // namespace mesh

int main(int argc, char** argv) { return mesh::main_(argc, argv); }
