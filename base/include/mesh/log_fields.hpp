// Event fields for log lines: what a JSON log line carries besides its
// message ("member": "n2", "event": "dead"), for log shippers to index.
//
//   const mesh::LogFields fields{{"event", "member_dead"}, {"member", name}};
//   spdlog::info("swim {}: member {} dead", self, name);
//
// A LogFields attaches its fields to every line this thread logs while it
// is alive (scopes nest; the innermost comes first). The text format
// ignores them; the JSON format (mesh/logging.hpp) adds them as string
// members. It relies on spdlog's loggers formatting on the calling thread,
// which the synchronous loggers configure_logging installs do.
//
// It lives in the lowest layer (the swim targets' include directory) so
// that every layer can attach fields without depending on libmesh; it
// needs nothing but the standard library.
#pragma once

#include <array>
#include <cstddef>
#include <initializer_list>
#include <string_view>

namespace mesh {

struct LogField {
  std::string_view key;
  std::string_view value;
};

class LogFields {
 public:
  static constexpr std::size_t kMaxFields = 6;

  // The strings must outlive this object. Fields past kMaxFields are
  // ignored.
  LogFields(std::initializer_list<LogField> fields) : outer_(innermost_) {
    for (const LogField& f : fields) {
      if (size_ == kMaxFields) break;
      fields_[size_++] = f;
    }
    innermost_ = this;
  }
  ~LogFields() { innermost_ = outer_; }
  LogFields(const LogFields&) = delete;
  LogFields& operator=(const LogFields&) = delete;

  // The innermost scope alive on this thread, or null.
  static const LogFields* innermost() { return innermost_; }
  const LogFields* outer() const { return outer_; }
  const LogField* begin() const { return fields_.data(); }
  const LogField* end() const { return fields_.data() + size_; }

 private:
  std::array<LogField, kMaxFields> fields_{};
  std::size_t size_ = 0;
  const LogFields* outer_;
  static inline thread_local const LogFields* innermost_ = nullptr;
};

}  // namespace mesh
