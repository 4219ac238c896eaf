// meshctl audit verify as a program: exit 0 when every chain holds, 1 with
// one line naming file:line when one does not, 2 when there is nothing to
// verify; warnings for torn tails; --json; --allow-pruned.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "mesh/audit_log.hpp"
#include "process.hpp"

namespace mesh::test {
namespace {

namespace fs = std::filesystem;

RunResult meshctl(std::vector<std::string> args) {
  args.insert(args.begin(), MESHCTL_BIN);
  return run_to_exit(std::move(args), {});
}

// Two nodes' logs in one directory, several files each.
std::string make_logs(const TempDir& tmp) {
  const std::string dir = tmp.path() + "/audit";
  for (const char* node : {"n1", "n2"}) {
    AuditLog log({.dir = dir, .node = node, .rotate_bytes = 1000});
    for (int i = 0; i < 30; ++i) log.append({{"id", "m-" + std::to_string(i)}, {"outcome", "ok"}});
  }
  return dir;
}

std::vector<std::string> lines_of(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> out;
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

void write_lines(const std::string& path, const std::vector<std::string>& lines) {
  std::ofstream out(path, std::ios::trunc);
  for (const auto& l : lines) out << l << "\n";
}

TEST(AuditCliTest, IntactChainsExitZero) {
  TempDir tmp;
  const auto dir = make_logs(tmp);
  const RunResult r = meshctl({"audit", "verify", dir});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(r.out.rfind("n1: ok, 30 records in ", 0), 0u) << r.out;
  EXPECT_NE(r.out.find("\nn2: ok, 30 records in "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("seq 0 to 29, last hash "), std::string::npos) << r.out;

  const RunResult j = meshctl({"audit", "verify", dir, "--json"});
  EXPECT_EQ(j.exit_code, 0) << j.err;
  const auto doc = nlohmann::json::parse(j.out);
  EXPECT_EQ(doc.at("ok"), true);
  EXPECT_EQ(doc.at("records"), 60);
  EXPECT_EQ(doc.at("chains").size(), 2u);
  EXPECT_EQ(doc.at("chains")[1].at("node"), "n2");
}

TEST(AuditCliTest, AnEditedLineExitsOneNamingFileAndLine) {
  TempDir tmp;
  const auto dir = make_logs(tmp);
  const std::string file = dir + "/audit-n2-000002.jsonl";
  auto lines = lines_of(file);
  ASSERT_GE(lines.size(), 2u);
  lines[1][lines[1].find("\"ok\"") + 1] = 'O';
  write_lines(file, lines);

  const RunResult r = meshctl({"audit", "verify", dir});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "meshctl: audit verify: " + file + ":2: hash mismatch: the line was changed after it was written\n");
  EXPECT_EQ(r.out.rfind("n1: ok, 30 records", 0), 0u) << r.out;  // the other chain still holds
  EXPECT_EQ(r.out.find("n2:"), std::string::npos) << r.out;

  const RunResult j = meshctl({"--json", "audit", "verify", dir});
  EXPECT_EQ(j.exit_code, 1);
  const auto doc = nlohmann::json::parse(j.out);
  EXPECT_EQ(doc.at("ok"), false);
  EXPECT_EQ(doc.at("failure").at("problem"), "hash_mismatch");
  EXPECT_EQ(doc.at("failure").at("file"), file);
  EXPECT_EQ(doc.at("failure").at("line"), 2);
}

TEST(AuditCliTest, AMissingFirstFileFailsUnlessPruningIsAllowed) {
  TempDir tmp;
  const auto dir = make_logs(tmp);
  fs::remove(dir + "/audit-n1-000001.jsonl");
  const RunResult r = meshctl({"audit", "verify", dir});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err.rfind("meshctl: audit verify: " + dir + "/audit-n1-000002.jsonl:1: the chain starts at seq ", 0), 0u)
      << r.err;
  const RunResult pruned = meshctl({"audit", "verify", "--allow-pruned", dir});
  EXPECT_EQ(pruned.exit_code, 0) << pruned.err;
}

TEST(AuditCliTest, ATornTailIsAWarning) {
  TempDir tmp;
  const auto dir = make_logs(tmp);
  std::vector<std::string> n1;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().filename().string().starts_with("audit-n1-")) n1.push_back(e.path().string());
  }
  std::sort(n1.begin(), n1.end());
  const auto lines = lines_of(n1.back());
  std::ofstream(n1.back(), std::ios::app) << "{\"seq\":30,";
  const RunResult r = meshctl({"audit", "verify", dir});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err, "meshctl: audit verify: warning: " + n1.back() + ":" + std::to_string(lines.size() + 1) +
                       ": the file ends in 10 bytes of an unfinished line (a write cut short); not part of the chain\n");
}

TEST(AuditCliTest, NothingToVerifyExitsTwo) {
  TempDir tmp;
  const RunResult missing = meshctl({"audit", "verify", tmp.path() + "/nowhere"});
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_EQ(missing.err, "meshctl: audit verify: " + tmp.path() +
                             "/nowhere: cannot read the directory: No such file or directory\n");
  const RunResult empty = meshctl({"audit", "verify", tmp.path()});
  EXPECT_EQ(empty.exit_code, 2);
  EXPECT_EQ(empty.err, "meshctl: audit verify: " + tmp.path() + ": no audit files (audit-<node>-<index>.jsonl) in it\n");

  const RunResult no_dir = meshctl({"audit", "verify"});
  EXPECT_EQ(no_dir.exit_code, 2);
  EXPECT_EQ(no_dir.err, "meshctl: audit: dir is required (meshctl --help)\n");
}

}  // namespace
}  // namespace mesh::test
