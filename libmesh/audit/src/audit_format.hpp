// What the writer, the verifier and the reader of audit files share: the
// hash, the file names, the framing of a line (mesh/audit_log.hpp,
// "Format") and a bounded line reader. Private to mesh_audit.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mesh/audit_verify.hpp"

namespace mesh::audit_detail {

inline constexpr std::size_t kHashHexBytes = 64;
inline constexpr std::string_view kHashKey = ",\"hash\":\"";
// `,"hash":"<64 hex>"}`: the last bytes of every line before its newline.
inline constexpr std::size_t kHashSuffixBytes = kHashKey.size() + kHashHexBytes + 2;
inline constexpr std::string_view kLinePrefix = "{\"seq\":";
inline const std::string kZeroHash(kHashHexBytes, '0');

// SHA-256 through libsodium (crypto_hash_sha256: one call, no context to
// allocate or look up; OpenSSL's EVP, used before, needed both kept
// between calls). An object still, so that the callers need not change if
// a digest ever needs state again.
class Sha256 {
 public:
  // Lowercase hex of the digest.
  std::string hex(std::string_view bytes);
};

// Node names that can be part of a file name: 1 to kMaxNodeBytes of
// [A-Za-z0-9._-].
inline constexpr std::size_t kMaxNodeBytes = 128;
bool valid_node(std::string_view node);

// "audit-<node>-<index, 6 digits or more>.jsonl", and back.
std::string file_name(std::string_view node, std::uint64_t index);
struct FileName {
  std::string node;
  std::uint64_t index = 0;
};
std::optional<FileName> parse_file_name(std::string_view name);
// The file whose lock a writer holds while it writes node's files.
std::string lock_name(std::string_view node);

// The audit files of a directory, by node (sorted by name), each node's
// by index. Non-audit names are ignored.
struct DirFile {
  std::uint64_t index = 0;
  std::string path;  // dir + "/" + name
};
using DirListing = std::map<std::string, std::vector<DirFile>>;
// nullopt with `error` (the system's words) if the directory cannot be read.
std::optional<DirListing> list_dir(const std::string& dir, std::string* error);

// The line of a record: `{"seq":<seq>,"prev":"<prev>"` + the members of
// `fields` (the compact serialisation of an object, braces included) +
// `,"hash":"<hash>"}` + "\n", appended to `out` and hashed where it lies
// (a batch of lines is composed in one buffer without copying each).
// `hash_out` receives the hash.
void append_line(Sha256& sha, std::uint64_t seq, std::string_view prev, std::string_view fields,
                 std::string& out, std::string& hash_out);

// One line (without its newline) read back.
struct ParsedLine {
  std::uint64_t seq = 0;
  std::string prev;
  std::string hash;
  nlohmann::json record;  // the whole object, seq, prev and hash included
};
struct LineError {
  AuditProblem problem = AuditProblem::Malformed;  // Malformed or HashMismatch
  std::string reason;
};
// The framing is checked first and then the hash, before any JSON parsing:
// an edited line reports HashMismatch even when the edit also broke its
// JSON. Never throws.
std::optional<ParsedLine> parse_line(Sha256& sha, std::string_view line, LineError& error);

bool is_hex_hash(std::string_view s);

// Lines of a file, read through a buffer; a line longer than `max_bytes`
// is reported as such and skipped, never held whole.
class LineReader {
 public:
  LineReader(int fd, std::size_t max_bytes) : fd_(fd), max_(max_bytes) {}
  struct Line {
    std::string text;          // without the newline; empty when too_long
    bool terminated = true;    // false: the file ended before a newline
    bool too_long = false;
    std::uint64_t bytes = 0;   // the line's length, newline excluded
  };
  // false at the end of the file, or on a read error (then error() != 0).
  bool next(Line& line);
  int error() const { return errno_; }

 private:
  bool fill();
  int fd_;
  std::size_t max_;
  std::vector<char> buf_ = std::vector<char>(64 * 1024);
  std::size_t pos_ = 0, end_ = 0;
  bool eof_ = false;
  int errno_ = 0;
};

// An owned file descriptor.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd();
  UniqueFd(UniqueFd&& o) noexcept : fd_(o.release()) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept;
  int get() const { return fd_; }
  int release() {
    const int fd = fd_;
    fd_ = -1;
    return fd;
  }
  explicit operator bool() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

std::string errno_text(int err);

}  // namespace mesh::audit_detail
