// The audit log: one JSON line per record (a node appends one per message
// it sends or receives), each line holding the hash of the line before, so
// that editing, removing, inserting or reordering lines after the fact
// shows when the files are verified (mesh/audit_verify.hpp,
// `meshctl audit verify DIR`).
//
// Files. A node's records go to `<dir>/audit-<node>-<index>.jsonl`, the
// index counting from 1, six digits or more (audit-n1-000001.jsonl, then
// -000002 ...). A file is closed and the next one started when a record
// would take it past `rotate_bytes`; the chain runs on across files.
// Several nodes may share a directory: each has its own files and chain.
// `<dir>/.audit-<node>.lock` is held (flock) by the one AuditLog writing
// that node's files.
//
// Format. Each line is one JSON object, UTF-8, ending in "\n":
//
//   {"seq":41,"prev":"<64 hex>",<the record's members>,"hash":"<64 hex>"}
//
//   seq    0 for the chain's first record, then one more per record,
//          across files;
//   prev   the `hash` of the record before; 64 zeros for seq 0;
//   the record's members as nlohmann::json serialises an object: compact,
//          keys in byte order, non-ASCII as UTF-8 (invalid UTF-8 in a
//          string becomes U+FFFD);
//   hash   lowercase hex SHA-256 of the line without its hash member: the
//          bytes from `{` up to the record's last member, followed by `}`:
//
//            {"seq":41,"prev":"<64 hex>",<the record's members>}
//
// The hash member is always the last 75 bytes before the newline
// (`,"hash":"` + 64 hex digits + `"}`), so a verifier cuts them off and
// hashes the rest as it is; it never serialises JSON again, so no JSON
// library's ordering or escaping can change a hash.
//
// Writing. Each record is one write() of its whole line, or a batch of
// records one write() of their lines, to a file opened with O_APPEND, so
// a process killed at any point leaves whole lines; only a power loss or
// a full disk can leave part of one (a "torn" line). A
// file that ends in a torn line is never appended to again: the chain
// continues from its last whole line in the next file, and the torn bytes
// stay where they are for the verifier to report.
//
// Restart. An AuditLog opened on a directory that holds the node's files
// continues their chain: seq and prev follow the newest whole line.
//
// What a hash chain shows, and what it cannot. Verification finds a line
// that was changed, removed, inserted or moved, and a file missing from
// the middle or (unless allowed) the start. It cannot find the newest
// records removed, or the newest files: the chain simply ends earlier.
// And the hashes have no key: whoever can write the files can rewrite the
// chain from any record onwards and compute every hash again. Both show
// only against a copy of a later head (seq and hash, see head()) kept
// where the writer of the files cannot change it.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

namespace mesh {

namespace audit_detail {
class Sha256;
}

// When appended lines are forced to the disk (fdatasync).
enum class AuditFsync : std::uint8_t {
  Never,     // left to the kernel (its dirty page writeback, ~30 s): a power
             // loss may cost the last seconds of records; the cheapest
  Interval,  // a background thread syncs every fsync_interval while there
             // were writes: a power loss costs at most about one interval
  Always,    // after every record, before append returns: nothing written
             // is lost, at the cost of a disk flush per record
};

struct AuditOptions {
  std::string dir;   // created (with its parents) when missing
  std::string node;  // part of the file names: 1 to 128 of [A-Za-z0-9._-]
  // The size past which no record is added to a file; the next one goes
  // to a new file. A record longer than this on its own still gets a file.
  // 0: one file forever.
  std::uint64_t rotate_bytes = 64 * 1024 * 1024;
  AuditFsync fsync = AuditFsync::Never;
  std::chrono::milliseconds fsync_interval{1000};  // for Interval; > 0
};

// Lines longer than this (newline excluded) are not written, and a
// verifier reports them as malformed.
inline constexpr std::size_t kAuditMaxLineBytes = 1024 * 1024;

// Lowercase hex SHA-256 of `bytes` (a record's payload digest). Any thread.
std::string audit_digest(std::string_view bytes);
// `node` made fit for AuditOptions::node: every character outside
// [A-Za-z0-9._-] becomes '_', cut to 128 bytes ("_" for an empty name).
std::string audit_node_name(std::string_view node);

// The newest record of a chain: copy it somewhere the log's writer cannot
// reach, and a later verification can tell whether the records up to it
// are still all there.
struct AuditHead {
  std::uint64_t next_seq = 0;  // the seq of the next record; 0: none yet
  std::string last_hash;       // the newest record's hash; 64 zeros if none
};

class AuditLog {
 public:
  // Opens (or creates) options.dir, takes the node's lock and finds where
  // its chain stands. Throws std::invalid_argument for bad options and
  // std::runtime_error naming the directory or file and the system's
  // reason when it cannot start: the directory cannot be created or read,
  // another AuditLog holds the node's lock, or the newest whole line of the
  // node's files is not a valid record (`meshctl audit verify` says more;
  // moving the files aside starts a new chain).
  explicit AuditLog(AuditOptions options);
  // Stops the sync thread; with Interval or Always, syncs what is unsynced.
  ~AuditLog();
  AuditLog(const AuditLog&) = delete;
  AuditLog& operator=(const AuditLog&) = delete;

  // Appends one record: `record` (a JSON object) with the log's seq, prev
  // and hash. Thread-safe; records get seqs in the order their appends
  // take the log's lock. Returns true when the line was written (handed to
  // the kernel; with Always, also synced, or a failed sync is counted).
  // I/O errors never throw: the record is dropped and counted
  // (write_errors, dropped_records), the first one is logged, and the
  // chain goes on from the last record written. A record nested deeper
  // than kMaxJsonDepth or whose line would exceed kAuditMaxLineBytes is
  // dropped and counted too. Throws std::invalid_argument only for a
  // caller's mistake: a record that is not an object, or that has a member
  // named seq, prev or hash.
  bool append(nlohmann::json record);
  // Appends the records in order, as append() each, with one write() for
  // all their lines (more only when the file rotates between them): how a
  // writer that collects records keeps to one system call per batch. With
  // Always, one sync per write. Returns how many were written; throws as
  // append() does, before anything is written.
  std::size_t append_all(std::span<nlohmann::json> records);
  // The same for records already serialised, each one JSON object on one
  // line: compact, keys in byte order, valid UTF-8, no member named seq,
  // prev or hash. Only the object's braces and the absence of a newline
  // are checked (std::invalid_argument): for a writer that builds its
  // records' text itself, where a json value would cost more.
  std::size_t append_objects(std::span<const std::string> objects);

  // For metrics; monotonic, read without the lock.
  std::uint64_t records_written() const { return records_written_.load(std::memory_order_relaxed); }
  std::uint64_t bytes_written() const { return bytes_written_.load(std::memory_order_relaxed); }
  // Failed writes, syncs and file creations.
  std::uint64_t write_errors() const { return write_errors_.load(std::memory_order_relaxed); }
  // Records not written, for any of the reasons append gives.
  std::uint64_t dropped_records() const { return dropped_records_.load(std::memory_order_relaxed); }

  // Where the chain stands now (see AuditHead).
  AuditHead head() const;
  // The path of the file being written (the next one, when the last
  // could not be created or must not be written again).
  std::string current_file() const;
  const AuditOptions& options() const { return options_; }

 private:
  struct File;
  void recover();  // start-up: where the chain stands, which file to use
  // Creates file next_index_ and makes it the current one; 0, or errno.
  // Under mu_ (or in the constructor).
  int open_next_file();
  std::string path_of(std::uint64_t index) const;
  // Lines composed but not yet written, and where the chain stood before them.
  struct Pending {
    std::uint64_t seq = 0;
    std::string hash;
    std::string lines;
    std::size_t count = 0;
  };
  std::optional<std::string> serialise(const nlohmann::json& record);
  template <class Text>
  std::size_t append_fields(const std::vector<Text>& fields);
  std::size_t write_pending(Pending& pending);
  bool write_lines(const std::string& lines);
  void io_error(const char* what, const std::string& path, int err);
  void drop(const char* why);
  void sync_loop();
  void sync(const std::shared_ptr<File>& file);

  const AuditOptions options_;
  int dir_fd_ = -1;
  int lock_fd_ = -1;

  mutable std::mutex mu_;
  std::unique_ptr<audit_detail::Sha256> sha_;  // under mu_
  std::shared_ptr<File> file_;                 // null: open the next on the next append
  std::uint64_t file_bytes_ = 0;
  std::uint64_t next_index_ = 1;  // of the next file to create
  bool rotate_ = false;           // the current file must not be written again
  std::uint64_t seq_ = 0;         // of the next record
  std::string last_hash_;
  Pending pending_;  // the batch being composed; its buffer is reused
  static constexpr std::size_t kKeptBatchBytes = std::size_t{4} << 20;

  // Interval: files with writes not yet synced, and the thread that syncs them.
  bool dirty_ = false;
  std::vector<std::shared_ptr<File>> unsynced_;  // rotated away while dirty
  bool stop_ = false;
  std::condition_variable cv_;
  std::thread sync_thread_;

  std::atomic<std::uint64_t> records_written_{0};
  std::atomic<std::uint64_t> bytes_written_{0};
  std::atomic<std::uint64_t> write_errors_{0};
  std::atomic<std::uint64_t> dropped_records_{0};
  std::atomic<bool> io_error_logged_{false};
  std::atomic<bool> drop_logged_{false};
};

std::string_view to_string(AuditFsync fsync);

}  // namespace mesh
