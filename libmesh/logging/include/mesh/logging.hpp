// Log output of the programs: spdlog's default logger, as human-readable
// text (the default) or as JSON lines for log shippers (JC_LOG_FORMAT=json).
//
// A JSON line is one object:
//
//   {"ts":"2026-11-21T17:20:00.123Z","level":"info","node":"n1",
//    "logger":"mesh-node","msg":"swim n1: member n2 dead (10.0.0.2:7946)",
//    "event":"member","member":"n2","change":"dead","addr":"10.0.0.2:7946"}
//
// ts is UTC, RFC 3339 with milliseconds; level is spdlog's name (trace,
// debug, info, warning, error, critical); node is the configured node
// name; logger the spdlog logger's name. Event fields come from the
// mesh::LogFields scopes alive on the logging thread (mesh/log_fields.hpp):
// SWIM member events carry event/member/change/addr. A field whose key is
// one of the five above is left out. Bytes that are not valid UTF-8 (a
// member name comes from the network) are written as U+FFFD, so every line
// parses.
#pragma once

#include <memory>
#include <spdlog/common.h>
#include <spdlog/formatter.h>
#include <string>

#include "mesh/node_config.hpp"

namespace mesh {

struct LoggingOptions {
  LogFormat format = LogFormat::Text;
  LogLevel level = LogLevel::Info;
  std::string node_name;              // the JSON "node" field
  std::string logger_name = "mesh";   // the JSON "logger" field
  spdlog::sink_ptr sink;              // null: stderr (text: coloured on a terminal)
};

// Replaces spdlog's default logger with one writing to `options.sink` in
// `options.format` at `options.level`, flushing on every line at info and
// above. Safe to call again (the last call wins); not while other threads
// log through the default logger being replaced.
void configure_logging(const LoggingOptions& options);
// The same with stderr and logger name "mesh".
void configure_logging(LogFormat format, LogLevel level, std::string node_name);

// The text formatter on its own, for a sink of the program's: the message
// with control characters and bytes that are not UTF-8 escaped as \xNN.
std::unique_ptr<spdlog::formatter> make_text_log_formatter();

// The JSON-lines formatter on its own, for a sink of the program's.
std::unique_ptr<spdlog::formatter> make_json_log_formatter(std::string node_name);

// The spdlog level of a LogLevel.
spdlog::level::level_enum to_spdlog_level(LogLevel level);

}  // namespace mesh
