#include "mesh/logging.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <spdlog/details/log_msg.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <string_view>
#include <utility>

#include "mesh/log_fields.hpp"
#include "mesh/text.hpp"

namespace mesh {
namespace {

// The text look mesh-node has always had; %* is the message, escaped.
constexpr const char* kTextPattern = "%Y-%m-%dT%H:%M:%S.%e %^%-5l%$ %*";

// spdlog's string_view is fmt's here, which has no conversion to std's.
std::string_view sv(spdlog::string_view_t s) { return {s.data(), s.size()}; }

void append(spdlog::memory_buf_t& out, std::string_view s) { out.append(s.data(), s.data() + s.size()); }

// `s` as a JSON string, quotes included.
void append_json_string(spdlog::memory_buf_t& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.push_back('"');
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      const std::size_t n = utf8_sequence_length(s, i);
      if (n == 0) {
        append(out, "\\ufffd");
        ++i;
      } else {
        append(out, s.substr(i, n));
        i += n;
      }
      continue;
    }
    switch (c) {
      case '"': append(out, "\\\""); break;
      case '\\': append(out, "\\\\"); break;
      case '\n': append(out, "\\n"); break;
      case '\r': append(out, "\\r"); break;
      case '\t': append(out, "\\t"); break;
      case '\b': append(out, "\\b"); break;
      case '\f': append(out, "\\f"); break;
      default:
        if (c < 0x20) {
          const char esc[] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 0xF]};
          out.append(esc, esc + sizeof esc);
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
    ++i;
  }
  out.push_back('"');
}

void append_member(spdlog::memory_buf_t& out, std::string_view key, std::string_view value) {
  out.push_back(',');
  append_json_string(out, key);
  out.push_back(':');
  append_json_string(out, value);
}

bool reserved_key(std::string_view key) {
  return key == "ts" || key == "level" || key == "node" || key == "logger" || key == "msg";
}

// The message of a text log line with control characters and bytes that
// are not UTF-8 written as \xNN: a name from the network that holds a
// newline cannot start a forged line of its own.
class EscapedMessage final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&, spdlog::memory_buf_t& dest) override {
    const std::string_view text = sv(msg.payload);
    if (!needs_escape(text)) {
      append(dest, text);
      return;
    }
    append(dest, escape_text(text));
  }

  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<EscapedMessage>();
  }

 private:
  // The common case costs one pass and no allocation.
  static bool needs_escape(std::string_view s) {
    for (const char ch : s) {
      const auto c = static_cast<unsigned char>(ch);
      if (c < 0x20 || c == 0x7F || c == '\\' || c >= 0x80) return true;
    }
    return false;
  }
};

class JsonFormatter final : public spdlog::formatter {
 public:
  explicit JsonFormatter(std::string node) : node_(std::move(node)) {}

  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    append(dest, "{\"ts\":");
    append_timestamp(dest, msg.time);
    append_member(dest, "level", sv(spdlog::level::to_string_view(msg.level)));
    append_member(dest, "node", node_);
    append_member(dest, "logger", sv(msg.logger_name));
    append_member(dest, "msg", sv(msg.payload));
    // Innermost scope first; a key already written is not repeated.
    std::array<std::string_view, 4 * LogFields::kMaxFields> seen{};
    std::size_t n_seen = 0;
    for (const LogFields* scope = LogFields::innermost(); scope != nullptr; scope = scope->outer()) {
      for (const LogField& f : *scope) {
        if (f.key.empty() || reserved_key(f.key)) continue;
        bool dup = false;
        for (std::size_t k = 0; k < n_seen; ++k) dup = dup || seen[k] == f.key;
        if (dup || n_seen == seen.size()) continue;
        seen[n_seen++] = f.key;
        append_member(dest, f.key, f.value);
      }
    }
    append(dest, "}\n");
  }

  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<JsonFormatter>(node_);
  }

 private:
  static void append_timestamp(spdlog::memory_buf_t& dest, spdlog::log_clock::time_point t) {
    const auto since = t.time_since_epoch();
    const auto secs = std::chrono::duration_cast<std::chrono::seconds>(since);
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(since - secs).count();
    const std::time_t tt = static_cast<std::time_t>(secs.count());
    std::tm tm{};
    gmtime_r(&tt, &tm);
    char buf[40];
    const int len = std::snprintf(buf, sizeof buf, "\"%04d-%02d-%02dT%02d:%02d:%02d.%03dZ\"",
                                  tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                                  tm.tm_min, tm.tm_sec, static_cast<int>(ms < 0 ? 0 : ms));
    if (len > 0) dest.append(buf, buf + std::min<std::size_t>(static_cast<std::size_t>(len), sizeof buf - 1));
  }

  std::string node_;
};

}  // namespace

spdlog::level::level_enum to_spdlog_level(LogLevel level) {
  switch (level) {
    case LogLevel::Trace: return spdlog::level::trace;
    case LogLevel::Debug: return spdlog::level::debug;
    case LogLevel::Info: return spdlog::level::info;
    case LogLevel::Warn: return spdlog::level::warn;
    case LogLevel::Error: return spdlog::level::err;
    case LogLevel::Off: return spdlog::level::off;
  }
  return spdlog::level::info;
}

std::unique_ptr<spdlog::formatter> make_text_log_formatter() {
  auto f = std::make_unique<spdlog::pattern_formatter>();
  f->add_flag<EscapedMessage>('*').set_pattern(kTextPattern);
  return f;
}

std::unique_ptr<spdlog::formatter> make_json_log_formatter(std::string node_name) {
  return std::make_unique<JsonFormatter>(std::move(node_name));
}

void configure_logging(const LoggingOptions& options) {
  spdlog::sink_ptr sink = options.sink;
  if (!sink) {
    if (options.format == LogFormat::JsonLines) {
      sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();  // no colour codes in JSON
    } else {
      sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
    }
  }
  if (options.format == LogFormat::JsonLines) {
    sink->set_formatter(make_json_log_formatter(options.node_name));
  } else {
    sink->set_formatter(make_text_log_formatter());
  }
  auto logger = std::make_shared<spdlog::logger>(options.logger_name, std::move(sink));
  logger->set_level(to_spdlog_level(options.level));
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(std::move(logger));
}

void configure_logging(LogFormat format, LogLevel level, std::string node_name) {
  LoggingOptions o;
  o.format = format;
  o.level = level;
  o.node_name = std::move(node_name);
  configure_logging(o);
}

}  // namespace mesh
