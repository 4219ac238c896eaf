// Where values come from: the YAML file and the environment (flags:
// cli.cpp).
#include "config_internal.hpp"

#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

#include "mesh/text.hpp"

namespace mesh::config_detail {

[[noreturn]] void fail(const std::string& where, const std::string& problem) {
  throw ConfigError(where + ": " + problem);
}

void apply(NodeConfig& c, const Setting& s, std::string_view value, const std::string& where,
           const std::string& source) {
  if (auto p = s.apply(c, value)) fail(where, *p);
  c.sources[std::string(s.key)] = source;
}

// --- sources -------------------------------------------------------------

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

}  // namespace mesh::config_detail
