// Command lines, parsed the same way in every program (mesh-node, meshctl,
// mesh-agents, swim-sim and user programs): CLI11 (header-only) does the
// parsing; this header adds what all our programs share:
//
//   - every configuration setting as a flag (--swim-port, --config, ...),
//     collected so that load_node_config can record each value's source;
//   - --help/-h and --version/-v;
//   - errors as one line in one wording: "--swim-prot: unknown option (did
//     you mean --swim-port?)", "--swim-port: missing value",
//     "\"stray\": unexpected argument".
//
// A program builds its CLI::App, calls cli::setup, adds its own options and
// add_config_flags, then cli::parse. Including this header needs CLI11's
// headers (Debian libcli11-dev); the rest of the library does not.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "mesh/node_config.hpp"

namespace mesh {

// A command line that cannot be used as it is; what() is one line.
class UsageError : public ConfigError {
 public:
  using ConfigError::ConfigError;
};

// The configuration flags as a command line gave them.
struct ConfigFlags {
  std::string config_file;  // --config, empty when not given
  // (flag, value) for every setting given; the last one when a flag is
  // given more than once.
  std::vector<std::pair<std::string, std::string>> values;
};

// Adds --config and every setting's flag (the table in docs/mesh-node.md)
// to `app`, in the option group "Configuration"; cli::parse fills `out`.
// `out` must outlive the parse.
void add_config_flags(CLI::App& app, ConfigFlags& out);

// defaults < --config file (or JC_CONFIG) < environment < `flags`.
NodeConfig load_node_config(const ConfigFlags& flags, const Environment& env);

// A JC_* variable the loader does not read, in a line each ("JC_SWIM_PROT:
// unknown configuration variable (did you mean JC_SWIM_PORT?)"): a typo
// would otherwise be ignored in silence. load_node_config puts them in
// NodeConfig::warnings; with --check-config the first is an error
// (reject_unknown_variables throws ConfigError).
std::vector<std::string> unknown_variables(const Environment& env);
void reject_unknown_variables(const Environment& env);

namespace cli {

// --help/-h, and --version/-v printing "<program> <version>".
void setup(CLI::App& app, std::string_view program);

// Parses `args` (without the program name). nullopt: go on; a number: the
// program is done and should exit with it (0 after --help or --version,
// which print to stdout). Throws UsageError for anything else that is
// wrong, in the wording above.
std::optional<int> parse(CLI::App& app, std::vector<std::string> args);
std::optional<int> parse(CLI::App& app, int argc, const char* const* argv);

// Transforms for numeric options (option->transform(...)), which check the
// text before CLI11 converts it, with our wording:
//   whole_number: digits only, from `min` to `max`; the text is rewritten
//     in plain decimal, since CLI11 alone reads "010" as octal 8 and "-1"
//     given to an unsigned option as a huge number;
//   number: a finite decimal number from `min` to `max`; `unit` names what
//     it counts in the message ("seconds").
CLI::Validator whole_number(std::uint64_t min, std::uint64_t max);
CLI::Validator number(double min, double max, std::string unit = "");

// The candidate closest to `word` by edit distance, if it is a near miss
// (at most a third of the word and at most three edits): for "did you
// mean" hints.
std::optional<std::string> closest(std::string_view word, const std::vector<std::string>& candidates);

}  // namespace cli
}  // namespace mesh
