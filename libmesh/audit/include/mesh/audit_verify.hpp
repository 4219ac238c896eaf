// Checking and reading audit directories (the files mesh/audit_log.hpp
// describes). Both take the files as untrusted input: any bytes give a
// result, never an exception or a crash.
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mesh {

enum class AuditProblem : std::uint8_t {
  Unreadable,    // the directory or a file cannot be read (an I/O error, not tampering)
  Malformed,     // a line that is not a record: garbage, cut, or too long
  HashMismatch,  // a record's bytes differ from those it was written with: edited
  SeqGap,        // seq is not the one after the record before: records or files
                 // deleted, inserted or reordered
  PrevMismatch,  // seq follows, but prev is not the hash of the record before:
                 // a record replaced by another
  TornTail,      // (a warning) a file ends in part of a line: a write cut short
};
// "unreadable", "malformed", "hash_mismatch", "seq_gap", "prev_mismatch", "torn_tail"
std::string_view to_string(AuditProblem problem);

struct AuditIssue {
  AuditProblem problem = AuditProblem::Malformed;
  std::string file;        // the file's path (the directory's, if it is unreadable)
  std::uint64_t line = 0;  // from 1; 0: the file as a whole
  std::string reason;      // one line, for people
};

// One node's chain.
struct AuditChainResult {
  std::string node;
  bool ok = true;
  std::uint64_t records = 0;  // whole, valid records before the first failure
  std::uint64_t files = 0;    // files read
  // Where the chain starts: seq 0 and 64 zeros, unless allow_pruned_start
  // accepted a later start (then it is trusted as it is: compare it with
  // the head of the files archived before).
  std::uint64_t first_seq = 0;
  std::string first_prev;
  // Its newest valid record (empty hash when there is none): compare with
  // a head kept elsewhere to detect the newest records removed.
  std::uint64_t last_seq = 0;
  std::string last_hash;
  std::optional<AuditIssue> failure;  // the first; the chain is not read further
  std::vector<AuditIssue> warnings;   // torn tails
};

struct AuditVerifyResult {
  bool ok = true;  // every chain verified (true for a directory without audit files)
  std::uint64_t records = 0;
  std::uint64_t files = 0;
  std::vector<AuditChainResult> chains;  // by node name
  // The first failure: the directory's, else the first failing chain's.
  std::optional<AuditIssue> failure;

  // {"ok", "records", "files", "failure"?: issue, "chains": [{"node", "ok",
  // "records", "files", "first_seq", "first_prev", "last_seq", "last_hash",
  // "failure"?, "warnings": [issue]}]}, an issue being {"problem" (as
  // to_string), "file", "line", "reason"}.
  nlohmann::json to_json() const;
};

struct AuditVerifyOptions {
  // Accept a chain whose oldest file does not start at seq 0: its older
  // files were archived or deleted on purpose. Off: that is a SeqGap.
  bool allow_pruned_start = false;
};

// Walks the audit files of `dir` (audit-<node>-<index>.jsonl; other names
// are ignored), node by node, each node's files in index order, and checks
// every line: its hash, its seq (one more than the record before, across
// files) and its prev (the hash of the record before). A torn tail (a
// file's last bytes without a newline) is a warning: it was never part of
// the chain, and the next file must continue from the line before it. A
// log being written while it is verified may show its line in progress as
// a torn tail.
AuditVerifyResult verify_audit_dir(const std::string& dir, const AuditVerifyOptions& options = {});

// One record read back: its JSON (the record's members with seq, prev and
// hash), the node whose chain it belongs to, and where it was.
struct AuditEntry {
  std::string_view node;
  std::string_view file;
  std::uint64_t line = 0;
  const nlohmann::json& record;
};

struct AuditReadResult {
  bool ok = true;        // false: the directory or a file could not be read
  std::string error;     // then: what, and the system's reason
  std::uint64_t records = 0;
  std::uint64_t skipped = 0;  // lines that are not intact records, torn tails
};

// Calls `on_record` for every intact record (its hash holds) of every
// audit file in `dir`, node by node (by name), each node's files in order,
// lines in order. It does not check the links between records (seq,
// prev): verify_audit_dir does. Stops at the first file it cannot read.
AuditReadResult read_audit_dir(const std::string& dir, const std::function<void(const AuditEntry&)>& on_record);

}  // namespace mesh
