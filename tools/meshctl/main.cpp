// meshctl: a command-line client of a node's admin endpoint.
//
//   meshctl members [--admin host:port] [--json]
//
// Commands live in one table (name, summary, handler); each handler gets
// the options common to all commands and its own arguments, so that later
// commands (peers, send, request) are one entry and one function each.
//
// Exit codes: 0 success, 1 the node could not be reached or answered with
// an error, 2 bad usage.
#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mesh/admin_client.hpp"

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

constexpr Command kCommands[] = {
    {"members", "", "list the members this node knows (like `serf members`)", members},
};

void usage(std::ostream& out) {
  out << "Usage: meshctl <command> [--admin host:port] [--json]\n\nCommands:\n";
  for (const auto& c : kCommands) {
    std::string left = "  " + std::string(c.name) + " " + std::string(c.args);
    left.resize(std::max<std::size_t>(left.size() + 1, 22), ' ');
    out << left << c.summary << "\n";
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
    auto parsed = parse_host_port(std::string("x:") + v);
    if (!parsed) throw UsageError{std::string(name) + ": \"" + v + "\" is not a port (1-65535)"};
    return parsed->port;
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

// GET `target`; on any failure prints one line and returns nullopt.
std::optional<std::string> get(const Options& opt, const std::string& target) {
  const auto r = http_get(opt.admin.host, opt.admin.port, target);
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
    std::cerr << "meshctl: GET " << target << ": HTTP " << r.status << " " << detail << "\n";
    return std::nullopt;
  }
  return r.body;
}

int members(const Options& opt, const std::vector<std::string>& args) {
  if (!args.empty()) throw UsageError{"members: unexpected argument \"" + args[0] + "\""};
  const auto body = get(opt, "/v1/members");
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
      r.name = m.at("name").get<std::string>();
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
  auto pad = [](std::string s, std::size_t w) {
    s.resize(w, ' ');
    return s;
  };
  for (const auto& r : rows) {
    std::string line = pad(r.name, wn) + "  " + pad(r.addr, wa) + "  " + pad(r.state, ws) +
                       "  " + r.tags;
    while (!line.empty() && line.back() == ' ') line.pop_back();
    std::cout << line << "\n";
  }
  return 0;
}

int main_(int argc, char** argv) {
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
      } else if (a.rfind("--", 0) == 0) {
        throw UsageError{a + ": unknown option"};
      } else {
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
