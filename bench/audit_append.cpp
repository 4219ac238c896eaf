// audit_append: what AuditLog::append costs per record under each fsync
// policy, against the bare system calls under it, side by side in one run.
//
//   write       the very lines an AuditLog wrote, one write() each to an
//               O_APPEND file: the floor under fsync never
//   never       AuditLog, fsync never: the record serialised, hashed and
//               written (one write() per line)
//   interval    AuditLog, fsync every second by its sync thread
//   write+sync  write() and fdatasync() per line: the floor under always
//   always      AuditLog, fsync always
//
// The records are like those a node writes per message (about 380 bytes
// a line), made before the clock starts. A row's time runs from its first
// append to the end of the log's destructor (which, for interval, syncs
// what is left). Rows run in an order that rotates from round to round;
// the report is the median over rounds of microseconds per record and of
// the ratios never/write, interval/write and always/write+sync.
//
// The directory matters: a sync on tmpfs costs nothing, on a disk it costs
// a flush. The default is a fresh directory under /var/tmp (a disk on
// most systems); --dir names another (it is created and emptied).
//
//   audit_append [--rounds 3] [--records 100000] [--synced 500] [--dir PATH] [--json]
//
// Exit 0 after the run; 1 when a write fails; 2 on bad flags.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "mesh/audit_log.hpp"
#include "mesh/cli.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using Json = nlohmann::json;
namespace fs = std::filesystem;

struct Options {
  std::size_t rounds = 3;
  std::size_t records = 100'000;
  std::size_t synced = 500;  // records of the rows that sync each one
  std::string dir;
  bool json = false;
};

Json message_record(std::size_t i) {
  return {{"thread", "t-" + std::to_string(i % 97)},
          {"id", "m-" + std::to_string(i)},
          {"from", "analyst-1a2b3c4d"},
          {"to", "scout-9f8e7d6c"},
          {"class", "request"},
          {"priority", 1},
          {"outcome", "ok"},
          {"sent_us", 1'700'000'000'000'000 + i},
          {"latency_us", 412},
          {"payload_sha256", std::string(64, 'a')}};
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

// Microseconds per record of an AuditLog in a fresh directory.
std::optional<double> log_row(const std::string& dir, mesh::AuditFsync fsync, std::size_t n) {
  fs::remove_all(dir);
  std::vector<Json> records;
  records.reserve(n);
  for (std::size_t i = 0; i < n; ++i) records.push_back(message_record(i));
  mesh::AuditOptions o;
  o.dir = dir;
  o.node = "bench";
  o.fsync = fsync;
  const auto t0 = Clock::now();
  {
    mesh::AuditLog log(o);
    for (auto& r : records) log.append(std::move(r));
    if (log.write_errors() != 0 || log.records_written() != n) return std::nullopt;
  }
  return std::chrono::duration<double, std::micro>(Clock::now() - t0).count() / static_cast<double>(n);
}

// Microseconds per line of bare write()s (and fdatasync()s) of `lines`.
std::optional<double> raw_row(const std::string& dir, const std::vector<std::string>& lines, std::size_t n,
                              bool sync) {
  fs::remove_all(dir);
  fs::create_directories(dir);
  const int fd = ::open((dir + "/raw.jsonl").c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
  if (fd < 0) return std::nullopt;
  bool ok = true;
  const auto t0 = Clock::now();
  for (std::size_t i = 0; i < n && ok; ++i) {
    const auto& l = lines[i % lines.size()];
    ok = ::write(fd, l.data(), l.size()) == static_cast<ssize_t>(l.size()) && (!sync || ::fdatasync(fd) == 0);
  }
  const auto t1 = Clock::now();
  ::close(fd);
  if (!ok) return std::nullopt;
  return std::chrono::duration<double, std::micro>(t1 - t0).count() / static_cast<double>(n);
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app(
      "What an audit log append costs per record with fsync never, interval and always,\n"
      "against bare write() and write() + fdatasync() of the same lines, side by side\n"
      "(docs/benchmarks.md). Exit 0 after the run, 1 when a write fails, 2 on bad flags.");
  mesh::cli::setup(app, "audit_append");
  app.add_option("--rounds", o.rounds, "rounds, 1..50 (default 3)")->transform(mesh::cli::whole_number(1, 50));
  app.add_option("--records", o.records, "records per round of write, never and interval (default 100000)")
      ->transform(mesh::cli::whole_number(1, 10'000'000));
  app.add_option("--synced", o.synced, "records per round of write+sync and always (default 500)")
      ->transform(mesh::cli::whole_number(1, 1'000'000));
  app.add_option("--dir", o.dir, "a directory to create, fill and remove (default: under /var/tmp)")
      ->type_name("PATH");
  app.add_flag("--json", o.json, "one JSON object on stdout");
  try {
    if (auto done = mesh::cli::parse(app, argc, argv)) return *done;
  } catch (const mesh::UsageError& e) {
    std::cerr << "audit_append: " << e.what() << "\n";
    return 2;
  }
  const bool own_dir = o.dir.empty();
  if (own_dir) {
    const fs::path base = fs::exists("/var/tmp") ? fs::path("/var/tmp") : fs::temp_directory_path();
    o.dir = (base / ("mesh-audit-append-" + std::to_string(::getpid()))).string();
  }
  const std::string work = o.dir + "/run";

  // The lines the write rows write: an AuditLog's own.
  std::vector<std::string> lines;
  if (!log_row(work, mesh::AuditFsync::Never, std::min<std::size_t>(o.records, 10'000))) {
    std::cerr << "audit_append: cannot write to " << work << "\n";
    return 1;
  }
  {
    std::ifstream in(work + "/audit-bench-000001.jsonl");
    for (std::string l; std::getline(in, l);) lines.push_back(l + "\n");
  }

  const std::vector<std::string> rows = {"write", "never", "interval", "write+sync", "always"};
  std::map<std::string, std::vector<double>> us;
  int status = 0;
  for (std::size_t r = 0; r < o.rounds && status == 0; ++r) {
    for (std::size_t k = 0; k < rows.size(); ++k) {
      const std::string& row = rows[(k + r) % rows.size()];
      std::optional<double> v;
      if (row == "write") v = raw_row(work, lines, o.records, false);
      if (row == "write+sync") v = raw_row(work, lines, o.synced, true);
      if (row == "never") v = log_row(work, mesh::AuditFsync::Never, o.records);
      if (row == "interval") v = log_row(work, mesh::AuditFsync::Interval, o.records);
      if (row == "always") v = log_row(work, mesh::AuditFsync::Always, o.synced);
      if (!v) {
        std::cerr << "audit_append: " << row << ": a write failed in " << work << "\n";
        status = 1;
        break;
      }
      std::cerr << "round " << r + 1 << " " << row << ": " << *v << " us/record\n";
      us[row].push_back(*v);
    }
  }
  fs::remove_all(own_dir ? o.dir : work);
  if (status != 0) return status;

  Json out;
  for (const auto& row : rows) out["us_per_record"][row] = median(us[row]);
  for (const auto& [a, b] : {std::pair{"never", "write"}, {"interval", "write"}, {"always", "write+sync"}}) {
    std::vector<double> v;
    for (std::size_t i = 0; i < us[a].size(); ++i) v.push_back(us[a][i] / us[b][i]);
    out["ratios"][std::string(a) + "/" + b] = median(v);
  }
  out["rounds"] = o.rounds;
  out["records"] = o.records;
  out["synced"] = o.synced;
  out["line_bytes"] = lines.empty() ? 0 : lines.front().size();
  if (o.json) {
    std::cout << out.dump() << "\n";
    return 0;
  }
  std::printf("%-12s %12s\n", "row", "us/record");
  for (const auto& row : rows) std::printf("%-12s %12.2f\n", row.c_str(), out["us_per_record"][row].get<double>());
  std::printf("\n%-18s %7s\n", "ratio", "");
  for (const auto& [k, v] : out["ratios"].items()) std::printf("%-18s %7.2f\n", k.c_str(), v.get<double>());
  return 0;
}
