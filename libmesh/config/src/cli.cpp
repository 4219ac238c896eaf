// Command lines: CLI11 plus our wording (mesh/cli.hpp).
#include "mesh/cli.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <iomanip>
#include <sstream>
#include <iostream>

#include "config_internal.hpp"
#include "mesh/text.hpp"
#include "mesh/version.hpp"

namespace mesh {
using namespace config_detail;

namespace {

// Levenshtein distance, one row at a time.
std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diag = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

// CLI11 takes the word after an option as its value even when it looks
// like another option; `--node-name --swim-port 1` is a forgotten value,
// not a node called "--swim-port". (An empty value is a value: it resets
// a setting such as --advertise-host.)
const CLI::Validator kNotAFlag(
    [](std::string& value) -> std::string {
      return value.rfind("--", 0) == 0 ? "missing value" : "";
    },
    "", "value");

const CLI::Validator kNotEmpty(
    [](std::string& value) -> std::string { return value.empty() ? "missing value" : ""; }, "",
    "nonempty");

// Every long option name of `app` and of its subcommands, for hints.
void option_names(const CLI::App& app, std::vector<std::string>& out) {
  for (const CLI::Option* o : app.get_options()) {
    for (const auto& n : o->get_lnames()) out.push_back("--" + n);
  }
  for (const CLI::App* sub : app.get_subcommands({})) option_names(*sub, out);
}

// CLI11's errors in our wording; the option's name comes first in its
// messages ("--swim-port: 1 required TEXT missing").
std::string describe(const CLI::ParseError& e) {
  const std::string what = e.what();
  const std::string name = what.substr(0, what.find(": "));
  if (e.get_name() == "ArgumentMismatch" && name != what) {
    if (what.find("At Most") != std::string::npos) return name + ": given twice";
    return name + ": missing value";
  }
  return what;
}

}  // namespace

void add_config_flags(CLI::App& app, ConfigFlags& out) {
  const std::string group = "Configuration (defaults < --config file < environment < flags)";
  app.add_option_function<std::string>(
         "--config", [&out](const std::string& v) { out.config_file = v; },
         "YAML file with the keys below in snake_case [JC_CONFIG]")
      ->type_name("FILE")
      ->check(kNotAFlag)
      ->check(kNotEmpty)
      ->multi_option_policy(CLI::MultiOptionPolicy::Throw)
      ->group(group);
  for (const Setting& s : settings()) {
    const std::string flag(s.flag);
    app.add_option_function<std::string>(
           flag, [&out, flag](const std::string& v) { out.values.emplace_back(flag, v); },
           std::string(s.help) + " [" + std::string(s.env) + "]")
        ->type_name(std::string(s.meta))
        ->check(kNotAFlag)
        ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast)
        ->group(group);
  }
}

NodeConfig load_node_config(const ConfigFlags& flags, const Environment& env) {
  std::string config_file = flags.config_file;
  // --config wins over JC_CONFIG (flags over environment, as for the rest).
  if (config_file.empty()) {
    if (auto it = env.find("JC_CONFIG"); it != env.end()) config_file = it->second;
  }
  NodeConfig c;
  if (!config_file.empty()) apply_file(c, config_file);
  apply_env(c, env);
  for (const auto& [flag, value] : flags.values) apply(c, *find_by_flag(flag), value, flag, flag);
  finish(c);
  c.warnings = unknown_variables(env);
  return c;
}

NodeConfig load_node_config(const std::vector<std::string>& args, const Environment& env) {
  CLI::App app;
  app.set_help_flag();
  app.allow_extras();
  ConfigFlags flags;
  add_config_flags(app, flags);
  cli::parse(app, args);
  return load_node_config(flags, env);
}

std::vector<std::string> unknown_variables(const Environment& env) {
  const auto& known = config_environment_variables();
  std::vector<std::string> out;
  for (const auto& [name, value] : env) {
    if (name.rfind("JC_", 0) != 0) continue;
    if (std::find(known.begin(), known.end(), name) != known.end()) continue;
    const auto hint = cli::closest(name, known);
    out.push_back(printable_path(name) + ": unknown configuration variable" +
                  (hint ? " (did you mean " + *hint + "?)" : std::string(" (mesh-node --help lists them)")));
  }
  return out;
}

void reject_unknown_variables(const Environment& env) {
  const auto unknown = unknown_variables(env);
  if (!unknown.empty()) throw ConfigError(unknown.front());
}

namespace cli {

void setup(CLI::App& app, std::string_view program) {
  app.name(std::string(program));
  app.set_help_flag("-h,--help", "print this help and exit");
  app.set_version_flag("-v,--version", std::string(program) + " " + std::string(kVersion),
                       "print the version and exit");
  // Unknown words are reported by parse(), with a hint.
  app.allow_extras();
}

std::optional<int> parse(CLI::App& app, std::vector<std::string> args) {
  // `--key=` is `--key ''` (an empty value), which CLI11 would read as a
  // missing one.
  for (std::size_t i = 0; i < args.size(); ++i) {
    if (args[i].size() > 3 && args[i].rfind("--", 0) == 0 && args[i].back() == '=' &&
        args[i].find('=') == args[i].size() - 1) {
      args[i].pop_back();
      args.insert(args.begin() + static_cast<std::ptrdiff_t>(i) + 1, std::string());
      ++i;
    }
  }
  std::reverse(args.begin(), args.end());  // CLI11 takes them last first
  try {
    app.parse(args);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    // "send: target is required" rather than "target is required".
    std::string where;
    for (const CLI::App* sub : app.get_subcommands()) where += sub->get_name() + ": ";
    throw UsageError(where + describe(e));
  }
  const auto extra = app.remaining(true);
  if (!extra.empty()) {
    const std::string& word = extra.front();
    const auto commands = app.get_subcommands({});
    if (!commands.empty() && app.get_subcommands().empty() && word[0] != '-') {
      std::vector<std::string> names;
      for (const CLI::App* sub : commands) names.push_back(sub->get_name());
      const auto hint = closest(word, names);
      throw UsageError(quote(word) + ": unknown command" +
                       (hint ? " (did you mean " + *hint + "?)" : std::string()));
    }
    if (word.size() > 1 && word[0] == '-') {
      const std::string name = word.substr(0, word.find('='));
      std::vector<std::string> names;
      option_names(app, names);
      const auto hint = closest(name, names);
      throw UsageError(printable_path(name) + ": unknown option" +
                       (hint ? " (did you mean " + *hint + "?)" : std::string()));
    }
    throw UsageError(quote(word) + ": unexpected argument");
  }
  return std::nullopt;
}

std::optional<int> parse(CLI::App& app, int argc, const char* const* argv) {
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) args.emplace_back(argv[i]);
  return parse(app, std::move(args));
}

CLI::Validator whole_number(std::uint64_t min, std::uint64_t max) {
  return CLI::Validator(
      [min, max](std::string& text) -> std::string {
        std::uint64_t v = 0;
        const char* end = text.data() + text.size();
        const auto [ptr, ec] = std::from_chars(text.data(), end, v);
        if (text.empty() || ec != std::errc{} || ptr != end || v < min || v > max) {
          return quote(text) + " is not a whole number " +
                 (max == UINT64_MAX ? "(" + std::to_string(min) + " or more)"
                                    : "from " + std::to_string(min) + " to " + std::to_string(max));
        }
        text = std::to_string(v);
        return "";
      },
      "");
}

CLI::Validator number(double min, double max, std::string unit) {
  return CLI::Validator(
      [min, max, unit](std::string& text) -> std::string {
        try {
          std::size_t used = 0;
          const double v = std::stod(text, &used);
          if (used == text.size() && std::isfinite(v) && v >= min && v <= max) return "";
        } catch (const std::exception&) {
        }
        std::ostringstream range;
        range << std::setprecision(15) << min << " to " << max;  // 1000000, not 1e+06
        return quote(text) + " is not a number" + (unit.empty() ? "" : " of " + unit) + " from " +
               range.str();
      },
      "");
}

std::optional<std::string> closest(std::string_view word,
                                   const std::vector<std::string>& candidates) {
  std::optional<std::string> best;
  // A near miss only: at most a third of the word, and at most three edits.
  std::size_t best_distance = std::min<std::size_t>(3, std::max<std::size_t>(1, word.size() / 3)) + 1;
  for (const auto& c : candidates) {
    const std::size_t d = edit_distance(word, c);
    if (d < best_distance) {
      best_distance = d;
      best = c;
    }
  }
  return best;
}

}  // namespace cli
}  // namespace mesh
