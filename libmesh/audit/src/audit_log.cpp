// The audit log's writer (mesh/audit_log.hpp).
#include "mesh/audit_log.hpp"

#include <fcntl.h>
#include <pthread.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <utility>

#include "audit_format.hpp"
#include "mesh/json_limits.hpp"

namespace mesh {

using namespace audit_detail;

// An open audit file. Shared so that the sync thread can fdatasync a file
// outside the log's lock while an append rotates it away: the descriptor
// is closed when the last holder lets go.
struct AuditLog::File {
  UniqueFd fd;
  std::string path;
};

std::string_view to_string(AuditFsync fsync) {
  switch (fsync) {
    case AuditFsync::Never: return "never";
    case AuditFsync::Interval: return "interval";
    case AuditFsync::Always: return "always";
  }
  return "?";
}

namespace {

// The last whole line of a file (without its newline) and how many bytes
// follow it unterminated. Reads backwards from the end, so that start-up
// costs the size of the last line, not of the file.
struct Tail {
  std::optional<std::string> last_line;
  std::uint64_t torn_bytes = 0;
  std::uint64_t size = 0;
};

Tail read_tail(int fd, const std::string& path) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    throw std::runtime_error("audit log: " + path + ": " + errno_text(errno));
  }
  Tail tail;
  tail.size = static_cast<std::uint64_t>(st.st_size);
  std::vector<char> buf(64 * 1024);
  // Offset of the last '\n' before `end`, if any.
  auto last_newline = [&](std::uint64_t end) -> std::optional<std::uint64_t> {
    while (end > 0) {
      const std::uint64_t begin = end > buf.size() ? end - buf.size() : 0;
      const auto want = static_cast<std::size_t>(end - begin);
      std::size_t got = 0;
      while (got < want) {
        const ssize_t n = ::pread(fd, buf.data() + got, want - got, static_cast<off_t>(begin + got));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
          throw std::runtime_error("audit log: cannot read " + path + ": " +
                                   (n < 0 ? errno_text(errno) : std::string("it shrank while being read")));
        }
        got += static_cast<std::size_t>(n);
      }
      for (std::size_t i = want; i > 0; --i) {
        if (buf[i - 1] == '\n') return begin + i - 1;
      }
      end = begin;
    }
    return std::nullopt;
  };
  const auto nl = last_newline(tail.size);
  if (!nl) {
    tail.torn_bytes = tail.size;
    return tail;
  }
  tail.torn_bytes = tail.size - *nl - 1;
  const auto before = last_newline(*nl);
  const std::uint64_t start = before ? *before + 1 : 0;
  if (*nl - start > kAuditMaxLineBytes) {
    throw std::runtime_error("audit log: " + path + ": its last line is longer than " +
                             std::to_string(kAuditMaxLineBytes) + " bytes: not an audit record");
  }
  std::string line(static_cast<std::size_t>(*nl - start), '\0');
  std::size_t got = 0;
  while (got < line.size()) {
    const ssize_t n = ::pread(fd, line.data() + got, line.size() - got, static_cast<off_t>(start + got));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw std::runtime_error("audit log: cannot read " + path);
    got += static_cast<std::size_t>(n);
  }
  tail.last_line = std::move(line);
  return tail;
}

}  // namespace

AuditLog::AuditLog(AuditOptions options) : options_(std::move(options)), sha_(std::make_unique<Sha256>()) {
  if (options_.dir.empty()) throw std::invalid_argument("audit log: no directory given");
  if (!valid_node(options_.node)) {
    throw std::invalid_argument("audit log: node name \"" + options_.node +
                                "\" cannot name a file: use 1 to 128 of A-Z a-z 0-9 . _ -");
  }
  if (options_.fsync == AuditFsync::Interval && options_.fsync_interval.count() <= 0) {
    throw std::invalid_argument("audit log: fsync_interval must be positive");
  }
  last_hash_ = kZeroHash;
  std::error_code ec;
  std::filesystem::create_directories(options_.dir, ec);
  if (ec) throw std::runtime_error("audit log: cannot create directory " + options_.dir + ": " + ec.message());
  UniqueFd dir(::open(options_.dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir) throw std::runtime_error("audit log: cannot open directory " + options_.dir + ": " + errno_text(errno));
  const std::string lock_path = options_.dir + "/" + lock_name(options_.node);
  UniqueFd lock(::openat(dir.get(), lock_name(options_.node).c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0640));
  if (!lock) throw std::runtime_error("audit log: cannot open " + lock_path + ": " + errno_text(errno));
  if (::flock(lock.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) {
      throw std::runtime_error("audit log: " + options_.dir + ": node " + options_.node +
                               "'s files are being written by another audit log (" + lock_path + " is locked)");
    }
    throw std::runtime_error("audit log: cannot lock " + lock_path + ": " + errno_text(errno));
  }
  dir_fd_ = dir.release();
  lock_fd_ = lock.release();
  try {
    recover();
    if (options_.fsync == AuditFsync::Interval) sync_thread_ = std::thread([this] { sync_loop(); });
  } catch (...) {
    file_.reset();
    ::close(lock_fd_);
    ::close(dir_fd_);
    throw;
  }
}

void AuditLog::recover() {
  std::string error;
  const auto listing = list_dir(options_.dir, &error);
  if (!listing) throw std::runtime_error("audit log: cannot read directory " + options_.dir + ": " + error);
  const auto it = listing->find(options_.node);
  if (it == listing->end() || it->second.empty()) {
    if (const int err = open_next_file()) {
      throw std::runtime_error("audit log: cannot create " + path_of(next_index_) + ": " + errno_text(err));
    }
    return;
  }
  const auto& files = it->second;
  // Newest first, to the newest whole line; files that hold none (empty,
  // or only a torn write) are passed over.
  bool newest_torn = false;
  std::uint64_t newest_size = 0;
  for (auto f = files.rbegin(); f != files.rend(); ++f) {
    UniqueFd fd(::open(f->path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) throw std::runtime_error("audit log: cannot open " + f->path + ": " + errno_text(errno));
    const Tail tail = read_tail(fd.get(), f->path);
    if (f == files.rbegin()) {
      newest_torn = tail.torn_bytes > 0;
      newest_size = tail.size;
      if (newest_torn) {
        spdlog::warn("audit log: {} ends in {} bytes of an unfinished line (a write cut short); they stay "
                     "there, and the chain continues in the next file",
                     f->path, tail.torn_bytes);
      }
    }
    if (!tail.last_line) continue;
    LineError why;
    const auto parsed = parse_line(*sha_, *tail.last_line, why);
    if (!parsed) {
      throw std::runtime_error("audit log: " + f->path + ": its last whole line is not a valid record (" +
                               why.reason + "); `meshctl audit verify " + options_.dir +
                               "` says more, and moving the node's files aside starts a new chain");
    }
    seq_ = parsed->seq + 1;
    last_hash_ = parsed->hash;
    break;
  }
  const DirFile& newest = files.back();
  next_index_ = newest.index + 1;
  if (!newest_torn) {
    UniqueFd fd(::open(newest.path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC));
    if (!fd) throw std::runtime_error("audit log: cannot open " + newest.path + ": " + errno_text(errno));
    file_ = std::make_shared<File>(File{std::move(fd), newest.path});
    file_bytes_ = newest_size;
    return;
  }
  if (const int err = open_next_file()) {
    throw std::runtime_error("audit log: cannot create " + path_of(next_index_) + ": " + errno_text(err));
  }
}

AuditLog::~AuditLog() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (sync_thread_.joinable()) sync_thread_.join();
  if (options_.fsync == AuditFsync::Interval) {
    for (const auto& f : unsynced_) sync(f);
    if (dirty_ && file_) sync(file_);
  }
  unsynced_.clear();
  file_.reset();
  ::close(lock_fd_);  // releases the lock
  ::close(dir_fd_);
}

std::string AuditLog::path_of(std::uint64_t index) const {
  return options_.dir + "/" + file_name(options_.node, index);
}

int AuditLog::open_next_file() {
  const std::string name = file_name(options_.node, next_index_);
  // O_EXCL: a file of that name can only be someone else's.
  UniqueFd fd(::openat(dir_fd_, name.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC, 0640));
  if (!fd) return errno;
  if (file_ && options_.fsync == AuditFsync::Interval && dirty_) unsynced_.push_back(file_);
  file_ = std::make_shared<File>(File{std::move(fd), options_.dir + "/" + name});
  file_bytes_ = 0;
  rotate_ = false;
  ++next_index_;
  // The new name must survive a power loss as well as the lines in it.
  if (options_.fsync != AuditFsync::Never && ::fsync(dir_fd_) != 0) io_error("cannot sync directory", options_.dir, errno);
  return 0;
}

bool AuditLog::append(nlohmann::json record) { return append_all(std::span<nlohmann::json>(&record, 1)) == 1; }

std::optional<std::string> AuditLog::serialise(const nlohmann::json& record) {
  if (!record.is_object()) {
    throw std::invalid_argument(std::string("audit log: a record is a JSON object, not ") + record.type_name());
  }
  for (const char* reserved : {"seq", "prev", "hash"}) {
    if (record.contains(reserved)) {
      throw std::invalid_argument(std::string("audit log: a record may not have a member \"") + reserved +
                                  "\": the log adds it");
    }
  }
  if (json_depth(record) > kMaxJsonDepth) {
    drop("nested deeper than kMaxJsonDepth");
    return std::nullopt;
  }
  // replace keeps a string with invalid UTF-8 (from a peer, say) from
  // throwing here.
  std::string fields = record.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (fields.size() > kAuditMaxLineBytes) {  // the line is longer still: no need to hash it to know
    drop("longer than kAuditMaxLineBytes");
    return std::nullopt;
  }
  return fields;
}

std::size_t AuditLog::append_all(std::span<nlohmann::json> records) {
  // Serialised outside the lock.
  std::vector<std::string> fields;
  fields.reserve(records.size());
  for (const auto& r : records) {
    if (auto f = serialise(r)) fields.push_back(std::move(*f));
  }
  return append_fields(fields);
}

std::size_t AuditLog::append_objects(std::span<const std::string> objects) {
  std::vector<std::string_view> fields;
  fields.reserve(objects.size());
  for (const std::string& o : objects) {
    // The cheap half of what serialise() checks: one object on one line.
    if (o.size() < 2 || o.front() != '{' || o.back() != '}' || o.find('\n') != std::string::npos) {
      throw std::invalid_argument("audit log: a serialised record is one JSON object on one line");
    }
    if (o.size() > kAuditMaxLineBytes) {
      drop("longer than kAuditMaxLineBytes");
      continue;
    }
    fields.push_back(o);
  }
  return append_fields(fields);
}

template <class Text>
std::size_t AuditLog::append_fields(const std::vector<Text>& fields) {
  if (fields.empty()) return 0;
  std::lock_guard lock(mu_);
  std::size_t written = 0;
  Pending& pending = pending_;  // its buffer keeps its capacity from batch to batch
  pending.seq = seq_;
  pending.hash = last_hash_;
  pending.lines.clear();
  pending.count = 0;
  std::string hash;
  for (const auto& f : fields) {
    const std::size_t start = pending.lines.size();
    audit_detail::append_line(*sha_, seq_, last_hash_, f, pending.lines, hash);
    const std::size_t line_size = pending.lines.size() - start;
    if (line_size - 1 > kAuditMaxLineBytes) {
      pending.lines.resize(start);
      drop("longer than kAuditMaxLineBytes");
      continue;
    }
    const std::uint64_t size = file_bytes_ + start;
    const bool full = options_.rotate_bytes > 0 && size > 0 && size + line_size > options_.rotate_bytes;
    if (!file_ || rotate_ || full) {
      // The lines before it belong in the file they were counted against.
      pending.lines.resize(start);
      written += write_pending(pending);
      if (const int err = open_next_file()) {
        io_error("cannot create", path_of(next_index_), err);
        dropped_records_.fetch_add(1, std::memory_order_relaxed);
        continue;
      }
      // Composed again: a failed write rolled the chain back.
      audit_detail::append_line(*sha_, seq_, last_hash_, f, pending.lines, hash);
    }
    ++pending.count;
    ++seq_;
    last_hash_.swap(hash);
  }
  written += write_pending(pending);
  // A burst's buffer is not kept for ever.
  if (pending.lines.capacity() > kKeptBatchBytes) pending.lines = std::string();
  return written;
}

// Writes the lines composed since the chain stood at pending.seq and
// pending.hash, in one write(). If that fails they are dropped and the
// chain goes back to where it stood, so the next record follows the last
// one written. Under mu_.
std::size_t AuditLog::write_pending(Pending& pending) {
  const std::size_t count = pending.count;
  if (count == 0) return 0;
  const std::size_t bytes = pending.lines.size();
  const bool ok = write_lines(pending.lines);
  pending.lines.clear();
  pending.count = 0;
  if (!ok) {
    seq_ = pending.seq;
    last_hash_ = pending.hash;
    dropped_records_.fetch_add(count, std::memory_order_relaxed);
    return 0;
  }
  pending.seq = seq_;
  pending.hash = last_hash_;
  records_written_.fetch_add(count, std::memory_order_relaxed);
  bytes_written_.fetch_add(bytes, std::memory_order_relaxed);
  if (options_.fsync == AuditFsync::Always) {
    if (::fdatasync(file_->fd.get()) != 0) io_error("cannot sync", file_->path, errno);
  } else if (options_.fsync == AuditFsync::Interval && !dirty_) {
    // Only the first write after a sync wakes the thread.
    dirty_ = true;
    cv_.notify_one();
  }
  return count;
}

// One write() in the normal case. A short write (a full disk) is finished
// with further writes; if that fails, the bytes that got out are cut off
// again, so the file still ends in a whole line, and when even that fails
// the file is left for the next one.
bool AuditLog::write_lines(const std::string& line) {
  const int fd = file_->fd.get();
  std::size_t done = 0;
  while (done < line.size()) {
    const ssize_t n = ::write(fd, line.data() + done, line.size() - done);
    if (n > 0) {
      done += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    const int err = n < 0 ? errno : EIO;
    if (done > 0 && ::ftruncate(fd, static_cast<off_t>(file_bytes_)) != 0) rotate_ = true;
    io_error("cannot write", file_->path, err);
    return false;
  }
  file_bytes_ += line.size();
  return true;
}

void AuditLog::io_error(const char* what, const std::string& path, int err) {
  write_errors_.fetch_add(1, std::memory_order_relaxed);
  if (!io_error_logged_.exchange(true)) {
    spdlog::error("audit log: {} {}: {} (records are dropped while this lasts; further errors are counted, "
                  "not logged)",
                  what, path, errno_text(err));
  }
}

void AuditLog::drop(const char* why) {
  dropped_records_.fetch_add(1, std::memory_order_relaxed);
  if (!drop_logged_.exchange(true)) {
    spdlog::error("audit log: a record was dropped: {} (further drops are counted, not logged)", why);
  }
}

// Interval: sleeps until a write makes the log dirty, then lets the
// interval pass (so that a burst costs one sync) and syncs. An idle log
// never wakes it.
void AuditLog::sync_loop() {
  ::pthread_setname_np(::pthread_self(), "mesh-audit-sync");  // for top, gdb and the idle test
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock, [this] { return stop_ || dirty_; });
    if (stop_) return;
    if (cv_.wait_for(lock, options_.fsync_interval, [this] { return stop_; })) return;  // the destructor syncs
    std::vector<std::shared_ptr<File>> files = std::move(unsynced_);
    unsynced_.clear();
    if (file_) files.push_back(file_);
    dirty_ = false;
    lock.unlock();
    for (const auto& f : files) sync(f);
    files.clear();  // a rotated file is closed here, outside the lock
    lock.lock();
  }
}

void AuditLog::sync(const std::shared_ptr<File>& file) {
  if (::fdatasync(file->fd.get()) != 0) io_error("cannot sync", file->path, errno);
}

AuditHead AuditLog::head() const {
  std::lock_guard lock(mu_);
  return {seq_, last_hash_};
}

std::string AuditLog::current_file() const {
  std::lock_guard lock(mu_);
  return file_ && !rotate_ ? file_->path : path_of(next_index_);
}

std::string audit_digest(std::string_view bytes) {
  thread_local audit_detail::Sha256 sha;
  return sha.hex(bytes);
}

std::string audit_node_name(std::string_view node) {
  std::string out;
  for (const char c : node.substr(0, audit_detail::kMaxNodeBytes)) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                    c == '_' || c == '-';
    out.push_back(ok ? c : '_');
  }
  return out.empty() ? std::string("_") : out;
}

}  // namespace mesh
