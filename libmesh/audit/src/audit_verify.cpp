// Verifying and reading audit directories (mesh/audit_verify.hpp).
#include "mesh/audit_verify.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "audit_format.hpp"
#include "mesh/audit_log.hpp"

namespace mesh {

using namespace audit_detail;

std::string_view to_string(AuditProblem problem) {
  switch (problem) {
    case AuditProblem::Unreadable: return "unreadable";
    case AuditProblem::Malformed: return "malformed";
    case AuditProblem::HashMismatch: return "hash_mismatch";
    case AuditProblem::SeqGap: return "seq_gap";
    case AuditProblem::PrevMismatch: return "prev_mismatch";
    case AuditProblem::TornTail: return "torn_tail";
  }
  return "?";
}

namespace {

nlohmann::json issue_json(const AuditIssue& issue) {
  return {{"problem", to_string(issue.problem)}, {"file", issue.file}, {"line", issue.line}, {"reason", issue.reason}};
}

std::string where(const std::string& file, std::uint64_t line) { return file + ":" + std::to_string(line); }

// Reads one node's files in order and checks every link.
class ChainVerifier {
 public:
  ChainVerifier(AuditChainResult& out, const AuditVerifyOptions& options) : out_(out), options_(options) {}

  // false: the chain failed; do not read on.
  bool file(const DirFile& f) {
    ++out_.files;
    UniqueFd fd(::open(f.path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) return fail(AuditProblem::Unreadable, f.path, 0, "cannot open: " + errno_text(errno));
    LineReader reader(fd.get(), kAuditMaxLineBytes);
    LineReader::Line line;
    std::uint64_t number = 0;
    while (reader.next(line)) {
      ++number;
      if (!line.terminated) {
        // Only the last bytes of a file can lack a newline.
        out_.warnings.push_back({AuditProblem::TornTail, f.path, number,
                                 "the file ends in " + std::to_string(line.bytes) +
                                     " bytes of an unfinished line (a write cut short); not part of the chain"});
        break;
      }
      if (line.too_long) {
        return fail(AuditProblem::Malformed, f.path, number,
                    "a line of " + std::to_string(line.bytes) + " bytes, longer than any record (" +
                        std::to_string(kAuditMaxLineBytes) + ")");
      }
      if (!record(f.path, number, line.text)) return false;
    }
    if (reader.error() != 0) {
      return fail(AuditProblem::Unreadable, f.path, number + 1, "cannot read: " + errno_text(reader.error()));
    }
    return true;
  }

 private:
  bool record(const std::string& file, std::uint64_t number, const std::string& text) {
    LineError why;
    const auto p = parse_line(sha_, text, why);
    if (!p) return fail(why.problem, file, number, why.reason);
    if (!have_previous_) {
      if (!options_.allow_pruned_start && p->seq != 0) {
        return fail(AuditProblem::SeqGap, file, number,
                    "the chain starts at seq " + std::to_string(p->seq) +
                        ", not 0: its first records or files are missing (allow a pruned start if they "
                        "were archived on purpose)");
      }
      if (p->seq == 0 && p->prev != kZeroHash) {
        return fail(AuditProblem::PrevMismatch, file, number, "seq 0 must have a prev of 64 zeros");
      }
      out_.first_seq = p->seq;
      out_.first_prev = p->prev;
    } else if (p->seq != out_.last_seq + 1) {
      return fail(AuditProblem::SeqGap, file, number,
                  "seq " + std::to_string(p->seq) + " follows seq " + std::to_string(out_.last_seq) + " (" +
                      where(last_file_, last_line_) + "): records or files were deleted, inserted or reordered");
    } else if (p->prev != out_.last_hash) {
      return fail(AuditProblem::PrevMismatch, file, number,
                  "prev is not the hash of the record before (" + where(last_file_, last_line_) +
                      "): a record was replaced");
    }
    have_previous_ = true;
    out_.last_seq = p->seq;
    out_.last_hash = p->hash;
    last_file_ = file;
    last_line_ = number;
    ++out_.records;
    return true;
  }

  bool fail(AuditProblem problem, const std::string& file, std::uint64_t line, std::string reason) {
    out_.ok = false;
    out_.failure = AuditIssue{problem, file, line, std::move(reason)};
    return false;
  }

  AuditChainResult& out_;
  const AuditVerifyOptions& options_;
  Sha256 sha_;
  bool have_previous_ = false;
  std::string last_file_;
  std::uint64_t last_line_ = 0;
};

}  // namespace

nlohmann::json AuditVerifyResult::to_json() const {
  nlohmann::json j{{"ok", ok}, {"records", records}, {"files", files}};
  if (failure) j["failure"] = issue_json(*failure);
  auto& list = j["chains"] = nlohmann::json::array();
  for (const auto& c : chains) {
    nlohmann::json cj{{"node", c.node},           {"ok", c.ok},
                      {"records", c.records},     {"files", c.files},
                      {"first_seq", c.first_seq}, {"first_prev", c.first_prev},
                      {"last_seq", c.last_seq},   {"last_hash", c.last_hash}};
    if (c.failure) cj["failure"] = issue_json(*c.failure);
    auto& warnings = cj["warnings"] = nlohmann::json::array();
    for (const auto& w : c.warnings) warnings.push_back(issue_json(w));
    list.push_back(std::move(cj));
  }
  return j;
}

AuditVerifyResult verify_audit_dir(const std::string& dir, const AuditVerifyOptions& options) {
  AuditVerifyResult result;
  std::string error;
  const auto listing = list_dir(dir, &error);
  if (!listing) {
    result.ok = false;
    result.failure = AuditIssue{AuditProblem::Unreadable, dir, 0, "cannot read the directory: " + error};
    return result;
  }
  for (const auto& [node, files] : *listing) {
    AuditChainResult& chain = result.chains.emplace_back();
    chain.node = node;
    ChainVerifier verifier(chain, options);
    for (const auto& f : files) {
      if (!verifier.file(f)) break;
    }
    result.records += chain.records;
    result.files += chain.files;
    if (!chain.ok && result.ok) {
      result.ok = false;
      result.failure = chain.failure;
    }
  }
  return result;
}

AuditReadResult read_audit_dir(const std::string& dir, const std::function<void(const AuditEntry&)>& on_record) {
  AuditReadResult result;
  std::string error;
  const auto listing = list_dir(dir, &error);
  if (!listing) {
    result.ok = false;
    result.error = dir + ": cannot read the directory: " + error;
    return result;
  }
  Sha256 sha;
  for (const auto& [node, files] : *listing) {
    for (const auto& f : files) {
      UniqueFd fd(::open(f.path.c_str(), O_RDONLY | O_CLOEXEC));
      if (!fd) {
        result.ok = false;
        result.error = f.path + ": cannot open: " + errno_text(errno);
        return result;
      }
      LineReader reader(fd.get(), kAuditMaxLineBytes);
      LineReader::Line line;
      std::uint64_t number = 0;
      while (reader.next(line)) {
        ++number;
        LineError why;
        const auto p = line.terminated && !line.too_long ? parse_line(sha, line.text, why) : std::nullopt;
        if (!p) {
          ++result.skipped;
          continue;
        }
        ++result.records;
        on_record(AuditEntry{node, f.path, number, p->record});
      }
      if (reader.error() != 0) {
        result.ok = false;
        result.error = f.path + ": cannot read: " + errno_text(reader.error());
        return result;
      }
    }
  }
  return result;
}

}  // namespace mesh
