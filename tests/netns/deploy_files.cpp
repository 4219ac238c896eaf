#include "deploy_files.hpp"

#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "process.hpp"

namespace mesh::test::deploy {
namespace {

[[noreturn]] void fail(const std::string& what) { throw std::runtime_error(what); }

std::string scalar(const YAML::Node& n, const std::string& what) {
  if (!n || !n.IsScalar()) fail(what + ": expected a scalar");
  return n.as<std::string>();
}

std::vector<std::string> string_list(const YAML::Node& n, const std::string& what) {
  std::vector<std::string> out;
  if (!n) return out;
  if (n.IsScalar()) fail(what + ": write it as a list (exec form), not a shell string");
  if (!n.IsSequence()) fail(what + ": expected a list");
  for (const auto& e : n) out.push_back(scalar(e, what));
  return out;
}

// The kubelet's $(VAR) expansion: a reference to a variable defined
// earlier is replaced, $$ is a literal $, anything else stays as it is.
std::string expand(const std::string& value, const Env& defined) {
  std::string out;
  for (std::size_t i = 0; i < value.size(); ++i) {
    if (value[i] == '$' && i + 1 < value.size() && value[i + 1] == '$') {
      out += '$';
      ++i;
    } else if (value[i] == '$' && i + 1 < value.size() && value[i + 1] == '(') {
      const auto close = value.find(')', i + 2);
      if (close != std::string::npos) {
        const auto it = defined.find(value.substr(i + 2, close - i - 2));
        if (it != defined.end()) {
          out += it->second;
          i = close;
          continue;
        }
      }
      out += value[i];
    } else {
      out += value[i];
    }
  }
  return out;
}

YAML::Node only_container(const YAML::Node& statefulset) {
  const YAML::Node containers = statefulset["spec"]["template"]["spec"]["containers"];
  if (!containers || !containers.IsSequence() || containers.size() != 1) {
    fail("StatefulSet: expected exactly one container");
  }
  return containers[0];
}

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  const auto e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

}  // namespace

std::string deploy_path(const std::string& relative) {
  return std::string(MESH_SOURCE_DIR) + "/deploy/" + relative;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  if (!in) fail("cannot read " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<NodeSpec> compose_nodes(const YAML::Node& compose, const Env& secrets,
                                    const std::string& files_root) {
  const YAML::Node services = compose["services"];
  if (!services || !services.IsMap()) fail("compose: no services map");
  std::vector<NodeSpec> out;
  for (const auto& kv : services) {
    NodeSpec n;
    n.name = kv.first.as<std::string>();
    const YAML::Node s = kv.second;
    n.command = string_list(s["command"], n.name + ".command");
    if (s["healthcheck"]) fail(n.name + ".healthcheck: not understood (the image's HEALTHCHECK is what runs)");
    if (const YAML::Node deps = s["depends_on"]) {
      if (deps.IsSequence()) {
        for (const auto& d : string_list(deps, n.name + ".depends_on")) n.depends_on[d] = "service_started";
      } else if (deps.IsMap()) {
        for (const auto& d : deps) {
          const std::string dep = d.first.as<std::string>();
          n.depends_on[dep] = d.second["condition"] ? scalar(d.second["condition"], n.name + ".depends_on." + dep)
                                                    : "service_started";
        }
      } else {
        fail(n.name + ".depends_on: expected a list or a map");
      }
      for (const auto& [dep, condition] : n.depends_on) {
        if (!services[dep]) fail(n.name + ".depends_on: no service " + dep);
        if (condition != "service_started" && condition != "service_healthy") {
          fail(n.name + ".depends_on." + dep + ": condition " + condition + " is not understood");
        }
      }
    }
    const YAML::Node env = s["environment"];
    if (env && !env.IsMap()) fail(n.name + ".environment: use the map form");
    if (env) {
      for (const auto& e : env) {
        // Compose passes a null value through from the host: not used here.
        if (!e.second.IsScalar()) fail(n.name + ".environment." + e.first.as<std::string>() + ": no value");
        n.env[e.first.as<std::string>()] = e.second.as<std::string>();
      }
    }
    // Compose mounts each secret the service lists at /run/secrets/<name>.
    for (const auto& name : string_list(s["secrets"], n.name + ".secrets")) {
      const auto it = secrets.find(name);
      if (it == secrets.end()) fail(n.name + ": secret " + name + " not supplied");
      const std::string dir = files_root + "/" + n.name;
      std::filesystem::create_directories(dir);
      std::ofstream(dir + "/" + name) << it->second;
      for (auto& [key, value] : n.env) {
        if (value == "/run/secrets/" + name) value = dir + "/" + name;
      }
    }
    // Named volumes ("name:/path"): an empty directory of the test's per
    // service and volume, and env values at or under the path point there.
    for (const auto& v : string_list(s["volumes"], n.name + ".volumes")) {
      const auto colon = v.find(':');
      if (colon == std::string::npos || v.front() == '.' || v.front() == '/') {
        fail(n.name + ".volumes: \"" + v + "\": only named volumes (name:/path) are understood");
      }
      const std::string path = v.substr(colon + 1);
      const std::string dir = files_root + "/" + n.name + "/volume-" + v.substr(0, colon);
      std::filesystem::create_directories(dir);
      for (auto& [key, value] : n.env) {
        if (value == path || value.rfind(path + "/", 0) == 0) value = dir + value.substr(path.size());
      }
    }
    out.push_back(std::move(n));
  }
  return out;
}

std::vector<YAML::Node> load_all(const std::string& path) {
  std::vector<YAML::Node> docs;
  for (auto& d : YAML::LoadAllFromFile(path)) {
    if (d && !d.IsNull()) docs.push_back(d);
  }
  return docs;
}

YAML::Node find_kind(const std::vector<YAML::Node>& docs, const std::string& kind,
                     const std::string& name) {
  YAML::Node found;
  int count = 0;
  for (const auto& d : docs) {
    if (!d["kind"] || d["kind"].as<std::string>() != kind) continue;
    if (!name.empty() && (!d["metadata"]["name"] || d["metadata"]["name"].as<std::string>() != name)) {
      continue;
    }
    found.reset(d);
    ++count;
  }
  if (count != 1) {
    fail("expected one " + kind + (name.empty() ? "" : " " + name) + ", found " + std::to_string(count));
  }
  return found;
}

NodeSpec statefulset_node(const std::vector<YAML::Node>& docs, const YAML::Node& statefulset,
                          const Pod& pod) {
  const YAML::Node c = only_container(statefulset);
  NodeSpec n;
  n.name = pod.name;
  n.command = string_list(c["command"], "container.command");
  for (auto& a : string_list(c["args"], "container.args")) n.command.push_back(a);

  auto config_map_data = [&](const std::string& name) {
    const YAML::Node data = find_kind(docs, "ConfigMap", name)["data"];
    if (!data || !data.IsMap()) fail("ConfigMap " + name + ": no data");
    return data;
  };

  // ConfigMap volumes: each key becomes a file under the mount path.
  std::map<std::string, std::string> mounts;  // mountPath -> where the test put it
  const YAML::Node volumes = statefulset["spec"]["template"]["spec"]["volumes"];
  for (const auto& m : c["volumeMounts"]) {
    const std::string vol = scalar(m["name"], "volumeMounts.name");
    const std::string path = scalar(m["mountPath"], "volumeMounts.mountPath");
    YAML::Node source;
    for (const auto& v : volumes) {
      if (v["name"] && v["name"].as<std::string>() == vol) source.reset(v);
    }
    bool claimed = false;  // a volumeClaimTemplate: an empty directory of the pod's
    for (const auto& t : statefulset["spec"]["volumeClaimTemplates"]) {
      if (t["metadata"]["name"] && t["metadata"]["name"].as<std::string>() == vol) claimed = true;
    }
    if (!claimed && (!source || !(source["configMap"] || source["secret"]))) {
      fail("volume " + vol + ": only configMap, secret and volumeClaimTemplates volumes are understood");
    }
    const std::string dir = pod.files_root + path;
    std::filesystem::create_directories(dir);
    if (claimed) {
      // Nothing in it at first.
    } else if (source["configMap"]) {
      for (const auto& kv : config_map_data(scalar(source["configMap"]["name"], "configMap.name"))) {
        std::ofstream(dir + "/" + kv.first.as<std::string>()) << kv.second.as<std::string>();
      }
    } else {
      // Each key of the Secret becomes a file.
      const std::string secret = scalar(source["secret"]["secretName"], "secret.secretName");
      bool supplied = false;
      for (const auto& [ref, value] : pod.secrets) {
        if (ref.first != secret) continue;
        std::ofstream(dir + "/" + ref.second) << value;
        supplied = true;
      }
      const YAML::Node optional = source["secret"]["optional"];
      if (!supplied && !(optional && optional.as<bool>())) fail("volume " + vol + ": secret " + secret + " not supplied");
    }
    mounts[path] = dir;
  }

  for (const auto& e : c["env"]) {
    const std::string key = scalar(e["name"], "env.name");
    std::optional<std::string> value;
    if (e["value"]) {
      value = expand(e["value"].as<std::string>(), n.env);
    } else if (const YAML::Node from = e["valueFrom"]) {
      if (from["fieldRef"]) {
        const std::string field = scalar(from["fieldRef"]["fieldPath"], key + ".fieldPath");
        if (field == "metadata.name") {
          value = pod.name;
        } else if (field == "metadata.namespace") {
          value = pod.k8s_namespace;
        } else if (field == "status.podIP") {
          value = pod.ip;
        } else {
          fail(key + ": fieldRef " + field + " is not understood");
        }
      } else if (from["secretKeyRef"]) {
        const YAML::Node ref = from["secretKeyRef"];
        const auto it = pod.secrets.find({scalar(ref["name"], key), scalar(ref["key"], key)});
        if (it != pod.secrets.end()) {
          value = it->second;
        } else if (!(ref["optional"] && ref["optional"].as<bool>())) {
          fail(key + ": secret " + ref["name"].as<std::string>() + " not supplied");
        }
      } else if (from["configMapKeyRef"]) {
        const YAML::Node ref = from["configMapKeyRef"];
        value = scalar(config_map_data(scalar(ref["name"], key))[scalar(ref["key"], key)], key);
      } else {
        fail(key + ": valueFrom kind not understood");
      }
    } else {
      value = "";
    }
    if (!value) continue;
    for (const auto& [path, dir] : mounts) {
      if (*value == path || value->rfind(path + "/", 0) == 0) *value = dir + value->substr(path.size());
    }
    n.env[key] = *value;
  }
  return n;
}

HttpProbe http_probe(const YAML::Node& statefulset, const std::string& kind) {
  const YAML::Node c = only_container(statefulset);
  const YAML::Node get = c[kind]["httpGet"];
  if (!get) fail(kind + ": no httpGet");
  HttpProbe p;
  p.path = scalar(get["path"], kind + ".path");
  const std::string port = scalar(get["port"], kind + ".port");
  if (!port.empty() && port.find_first_not_of("0123456789") == std::string::npos) {
    p.port = std::stoi(port);
    return p;
  }
  for (const auto& cp : c["ports"]) {
    if (cp["name"] && cp["name"].as<std::string>() == port) p.port = cp["containerPort"].as<int>();
  }
  if (p.port == 0) fail(kind + ": no container port named " + port);
  return p;
}

std::string pod_dns_name(const std::string& pod, const std::string& service, const std::string& ns) {
  return pod + "." + service + "." + ns + ".svc.cluster.local";
}

std::vector<Instruction> dockerfile_instructions(const std::string& text) {
  std::vector<std::string> logical;
  std::string current;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    const std::string t = trim(line);
    if (t.empty() || t[0] == '#') continue;  // also comments inside continuations
    if (t.back() == '\\') {
      current += t.substr(0, t.size() - 1) + " ";
      continue;
    }
    current += t;
    logical.push_back(current);
    current.clear();
  }
  if (!current.empty()) logical.push_back(current);

  std::map<std::string, std::string> args;
  std::vector<Instruction> out;
  for (const auto& l : logical) {
    const auto sp = l.find_first_of(" \t");
    Instruction ins;
    ins.keyword = l.substr(0, sp);
    for (auto& ch : ins.keyword) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    ins.args = sp == std::string::npos ? "" : trim(l.substr(sp));
    for (const auto& [k, v] : args) {
      for (const auto& ref : {"${" + k + "}", "$" + k}) {
        for (auto pos = ins.args.find(ref); pos != std::string::npos; pos = ins.args.find(ref)) {
          ins.args.replace(pos, ref.size(), v);
        }
      }
    }
    if (ins.keyword == "ARG") {
      const auto eq = ins.args.find('=');
      if (eq != std::string::npos) args[ins.args.substr(0, eq)] = ins.args.substr(eq + 1);
    }
    out.push_back(std::move(ins));
  }
  return out;
}

std::vector<std::string> healthcheck_command(const std::vector<Instruction>& instructions) {
  std::string args;
  for (const auto& i : instructions) {
    if (i.keyword == "HEALTHCHECK") args = i.args;  // the last one counts
  }
  if (args.empty()) fail("Dockerfile: no HEALTHCHECK");
  // Options (--interval=... and the like) come before CMD.
  std::istringstream words(args);
  std::string w;
  while (words >> w) {
    if (w == "NONE") fail("Dockerfile: HEALTHCHECK NONE");
    if (w == "CMD") break;
    if (w.rfind("--", 0) != 0) fail("Dockerfile: HEALTHCHECK: expected an option or CMD, got " + w);
  }
  if (w != "CMD") fail("Dockerfile: HEALTHCHECK without CMD");
  const auto after = words.tellg();
  const std::string command = after < 0 ? "" : trim(args.substr(static_cast<std::size_t>(after)));
  if (command.empty()) fail("Dockerfile: HEALTHCHECK CMD without a command");
  if (command.front() != '[') return {"/bin/sh", "-c", command};
  const YAML::Node list = YAML::Load(command);  // a JSON list is YAML too
  return string_list(list, "HEALTHCHECK CMD");
}

Env environment_file(const std::string& text) {
  Env env;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    const std::string t = trim(line);
    if (t.empty() || t[0] == '#' || t[0] == ';') continue;
    const auto eq = t.find('=');
    if (eq == std::string::npos) fail("environment file: not KEY=value: " + t);
    env[trim(t.substr(0, eq))] = trim(t.substr(eq + 1));
  }
  return env;
}

CheckResult check_config(const Env& env) {
  const auto r = run_to_exit({MESH_NODE_BIN, "--check-config"}, env);
  return {r.exit_code, r.out, r.err};
}

}  // namespace mesh::test::deploy
