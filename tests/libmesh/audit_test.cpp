// The audit log (mesh/audit_log.hpp) and its verifier and reader
// (mesh/audit_verify.hpp): the line format as documented, rotation,
// restart, tampering of every kind the chain can show, torn writes, a full
// file system, concurrent appends, the fsync policies, and garbage.
#include <gtest/gtest.h>
#include <openssl/sha.h>
#include <signal.h>
#include <sys/resource.h>

#include <algorithm>
#include <array>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "mesh/audit_log.hpp"
#include "mesh/audit_verify.hpp"
#include "mesh/random.hpp"
#include "process.hpp"
#include "wakeups.hpp"

namespace mesh {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;
using test::TempDir;

const std::string kZeros(64, '0');

AuditOptions options_for(const TempDir& tmp, std::string node = "n1") {
  AuditOptions o;
  o.dir = tmp.path() + "/audit";
  o.node = std::move(node);
  return o;
}

// A record like the ones a node writes for a message.
Json message_record(std::uint64_t i) {
  return {{"thread", "t-" + std::to_string(i % 7)},
          {"id", "m-" + std::to_string(i)},
          {"from", "agent-a"},
          {"to", "agent-b"},
          {"class", "request"},
          {"priority", 1},
          {"outcome", "ok"},
          {"sent_us", 1'700'000'000'000'000 + i},
          {"payload_sha256", std::string(64, 'a')}};
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

void append_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::app);
  out << text;
}

std::vector<std::string> lines_of(const std::string& path) {
  std::vector<std::string> out;
  std::istringstream in(read_file(path));
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

void write_lines(const std::string& path, const std::vector<std::string>& lines) {
  std::string text;
  for (const auto& l : lines) text += l + "\n";
  write_file(path, text);
}

// The node's audit files in index order.
std::vector<std::string> files_in(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    const auto name = e.path().filename().string();
    if (name.starts_with("audit-") && name.ends_with(".jsonl")) out.push_back(e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string sha256_hex(const std::string& bytes) {
  std::array<unsigned char, SHA256_DIGEST_LENGTH> md{};
  SHA256(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), md.data());
  std::string hex;
  for (unsigned char b : md) {
    static constexpr char kDigits[] = "0123456789abcdef";
    hex += kDigits[b >> 4];
    hex += kDigits[b & 15];
  }
  return hex;
}

void write_records(const AuditOptions& o, std::uint64_t from, std::uint64_t count) {
  AuditLog log(o);
  for (std::uint64_t i = from; i < from + count; ++i) ASSERT_TRUE(log.append(message_record(i)));
}

std::string describe(const AuditVerifyResult& r) { return r.to_json().dump(2); }

// The directory verifies and holds `records` records.
void expect_verified(const std::string& dir, std::uint64_t records) {
  const auto r = verify_audit_dir(dir);
  EXPECT_TRUE(r.ok) << describe(r);
  EXPECT_EQ(r.records, records);
}

// Runs `f` with this process's file size limit at `bytes` (and SIGXFSZ
// ignored), so that a write crossing it is cut short like on a full disk.
template <class F>
void with_file_size_limit(std::uintmax_t bytes, F f) {
  const auto old_handler = ::signal(SIGXFSZ, SIG_IGN);
  rlimit saved{};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &saved), 0);
  rlimit small = saved;
  small.rlim_cur = bytes;
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
  f();
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &saved), 0);
  ::signal(SIGXFSZ, old_handler);
}

// --- writing and verifying ------------------------------------------------

TEST(AuditLogTest, AppendsAndVerifies) {
  TempDir tmp;
  const auto o = options_for(tmp);
  AuditHead head;
  {
    AuditLog log(o);
    EXPECT_EQ(log.head().next_seq, 0u);
    EXPECT_EQ(log.head().last_hash, kZeros);
    for (std::uint64_t i = 0; i < 100; ++i) ASSERT_TRUE(log.append(message_record(i)));
    EXPECT_EQ(log.records_written(), 100u);
    EXPECT_EQ(log.write_errors(), 0u);
    EXPECT_EQ(log.dropped_records(), 0u);
    EXPECT_EQ(log.bytes_written(), fs::file_size(log.current_file()));
    head = log.head();
    EXPECT_EQ(head.next_seq, 100u);
  }
  const auto files = files_in(o.dir);
  ASSERT_EQ(files.size(), 1u);
  EXPECT_EQ(fs::path(files[0]).filename(), "audit-n1-000001.jsonl");

  const auto r = verify_audit_dir(o.dir);
  EXPECT_TRUE(r.ok) << describe(r);
  EXPECT_EQ(r.records, 100u);
  EXPECT_EQ(r.files, 1u);
  ASSERT_EQ(r.chains.size(), 1u);
  EXPECT_EQ(r.chains[0].node, "n1");
  EXPECT_EQ(r.chains[0].first_seq, 0u);
  EXPECT_EQ(r.chains[0].first_prev, kZeros);
  EXPECT_EQ(r.chains[0].last_seq, 99u);
  EXPECT_EQ(r.chains[0].last_hash, head.last_hash);
  EXPECT_TRUE(r.chains[0].warnings.empty());
  EXPECT_FALSE(r.failure);
}

// The format section of audit_log.hpp, checked with a SHA-256 of our own.
TEST(AuditLogTest, LinesAreInTheDocumentedFormat) {
  TempDir tmp;
  const auto o = options_for(tmp);
  {
    AuditLog log(o);
    ASSERT_TRUE(log.append(Json{{"b", 2}, {"a", "x\xffy"}, {"text", "h\u00e9 \"q\"\n"}}));
    ASSERT_TRUE(log.append(Json::object()));
  }
  const auto lines = lines_of(files_in(o.dir)[0]);
  ASSERT_EQ(lines.size(), 2u);
  // Keys in byte order after seq and prev; invalid UTF-8 replaced; the
  // hash member last.
  const std::string body0 =
      "{\"seq\":0,\"prev\":\"" + kZeros + "\",\"a\":\"x\xef\xbf\xbdy\",\"b\":2,\"text\":\"h\u00e9 \\\"q\\\"\\n\"}";
  const std::string hash0 = sha256_hex(body0);
  EXPECT_EQ(lines[0], body0.substr(0, body0.size() - 1) + ",\"hash\":\"" + hash0 + "\"}");
  const std::string body1 = "{\"seq\":1,\"prev\":\"" + hash0 + "\"}";
  EXPECT_EQ(lines[1], "{\"seq\":1,\"prev\":\"" + hash0 + "\",\"hash\":\"" + sha256_hex(body1) + "\"}");
  const Json j = Json::parse(lines[0]);
  EXPECT_EQ(j.at("seq"), 0);
  EXPECT_EQ(j.at("hash"), hash0);
  EXPECT_TRUE(verify_audit_dir(o.dir).ok);
}

TEST(AuditLogTest, RotatesAcrossFilesAndTheChainRunsOn) {
  TempDir tmp;
  auto o = options_for(tmp);
  o.rotate_bytes = 2000;
  write_records(o, 0, 100);
  const auto files = files_in(o.dir);
  ASSERT_GE(files.size(), 10u);
  for (std::size_t i = 0; i < files.size(); ++i) {
    char want[64];
    std::snprintf(want, sizeof want, "audit-n1-%06zu.jsonl", i + 1);
    EXPECT_EQ(fs::path(files[i]).filename(), want);
    EXPECT_LE(fs::file_size(files[i]), 2000u) << files[i];
  }
  // The first line of a file continues from the last of the one before.
  const Json last = Json::parse(lines_of(files[0]).back());
  const Json first = Json::parse(lines_of(files[1]).front());
  EXPECT_EQ(first.at("seq"), last.at("seq").get<std::uint64_t>() + 1);
  EXPECT_EQ(first.at("prev"), last.at("hash"));

  const auto r = verify_audit_dir(o.dir);
  EXPECT_TRUE(r.ok) << describe(r);
  EXPECT_EQ(r.records, 100u);
  EXPECT_EQ(r.files, files.size());
}

TEST(AuditLogTest, ARecordLargerThanAFileGetsAFileOfItsOwn) {
  TempDir tmp;
  auto o = options_for(tmp);
  o.rotate_bytes = 100;
  {
    AuditLog log(o);
    ASSERT_TRUE(log.append(Json{{"big", std::string(500, 'x')}}));
    ASSERT_TRUE(log.append(Json{{"big", std::string(500, 'y')}}));
  }
  EXPECT_EQ(files_in(o.dir).size(), 2u);
  EXPECT_TRUE(verify_audit_dir(o.dir).ok);
}

TEST(AuditLogTest, AReopenedLogContinuesTheChain) {
  TempDir tmp;
  auto o = options_for(tmp);
  o.rotate_bytes = 3000;
  AuditHead before;
  {
    AuditLog log(o);
    for (std::uint64_t i = 0; i < 30; ++i) ASSERT_TRUE(log.append(message_record(i)));
    before = log.head();
  }
  const auto files_before = files_in(o.dir);
  {
    AuditLog log(o);
    EXPECT_EQ(log.head().next_seq, before.next_seq);
    EXPECT_EQ(log.head().last_hash, before.last_hash);
    // It goes on in the newest file, which ended cleanly.
    EXPECT_EQ(log.current_file(), files_before.back());
    for (std::uint64_t i = 30; i < 60; ++i) ASSERT_TRUE(log.append(message_record(i)));
  }
  write_records(o, 60, 1);
  const auto r = verify_audit_dir(o.dir);
  EXPECT_TRUE(r.ok) << describe(r);
  EXPECT_EQ(r.records, 61u);
  EXPECT_EQ(r.chains.at(0).last_seq, 60u);
}

// --- tampering ------------------------------------------------------------

class AuditTamperTest : public ::testing::Test {
 protected:
  void SetUp() override {
    o_ = options_for(tmp_);
    o_.rotate_bytes = 3000;
    write_records(o_, 0, 60);
    files_ = files_in(o_.dir);
    ASSERT_GE(files_.size(), 4u);
    ASSERT_TRUE(verify_audit_dir(o_.dir).ok);
  }

  void expect_failure(AuditProblem problem, const std::string& file, std::uint64_t line,
                      const AuditVerifyOptions& options = {}) {
    const auto r = verify_audit_dir(o_.dir, options);
    EXPECT_FALSE(r.ok);
    ASSERT_TRUE(r.failure) << describe(r);
    EXPECT_EQ(r.failure->problem, problem) << describe(r);
    EXPECT_EQ(r.failure->file, file) << describe(r);
    EXPECT_EQ(r.failure->line, line) << describe(r);
    EXPECT_FALSE(r.failure->reason.empty());
    EXPECT_EQ(r.failure->reason.find('\n'), std::string::npos);
  }

  TempDir tmp_;
  AuditOptions o_;
  std::vector<std::string> files_;
};

TEST_F(AuditTamperTest, OneByteEditedFailsAtThatLine) {
  auto lines = lines_of(files_[1]);
  ASSERT_GE(lines.size(), 3u);
  const auto at = lines[2].find("agent-b");
  ASSERT_NE(at, std::string::npos);
  lines[2][at] = 'A';
  write_lines(files_[1], lines);
  expect_failure(AuditProblem::HashMismatch, files_[1], 3);
}

TEST_F(AuditTamperTest, AnEditThatBreaksTheJsonIsStillAHashMismatch) {
  auto lines = lines_of(files_[2]);
  const auto at = lines[1].find("\"class\":");
  ASSERT_NE(at, std::string::npos);
  lines[1][at + 7] = '!';  // the colon
  write_lines(files_[2], lines);
  expect_failure(AuditProblem::HashMismatch, files_[2], 2);
}

TEST_F(AuditTamperTest, DeletedLineFailsAtTheNextOne) {
  auto lines = lines_of(files_[1]);
  lines.erase(lines.begin() + 2);
  write_lines(files_[1], lines);
  expect_failure(AuditProblem::SeqGap, files_[1], 3);
}

TEST_F(AuditTamperTest, DeletedLastLineOfAFileFailsAtTheNextFile) {
  auto lines = lines_of(files_[1]);
  lines.pop_back();
  write_lines(files_[1], lines);
  expect_failure(AuditProblem::SeqGap, files_[2], 1);
}

TEST_F(AuditTamperTest, SwappedLinesFail) {
  auto lines = lines_of(files_[0]);
  std::swap(lines[3], lines[4]);
  write_lines(files_[0], lines);
  expect_failure(AuditProblem::SeqGap, files_[0], 4);
}

TEST_F(AuditTamperTest, InsertedCopyOfALineFails) {
  auto lines = lines_of(files_[0]);
  lines.insert(lines.begin() + 5, lines[2]);
  write_lines(files_[0], lines);
  expect_failure(AuditProblem::SeqGap, files_[0], 6);
}

// A record rewritten with a hash recomputed for it alone: the line holds,
// the next record's prev does not.
TEST_F(AuditTamperTest, ReplacedRecordWithItsOwnHashFailsAtTheNextLink) {
  auto lines = lines_of(files_[1]);
  Json j = Json::parse(lines[1]);
  j.erase("hash");
  j["outcome"] = "refused";
  std::string body = "{\"seq\":" + j.at("seq").dump() + ",\"prev\":" + j.at("prev").dump();
  j.erase("seq");
  j.erase("prev");
  body += "," + j.dump().substr(1);
  lines[1] = body.substr(0, body.size() - 1) + ",\"hash\":\"" + sha256_hex(body) + "\"}";
  write_lines(files_[1], lines);
  expect_failure(AuditProblem::PrevMismatch, files_[1], 3);
}

TEST_F(AuditTamperTest, DeletedMiddleFileFails) {
  fs::remove(files_[2]);
  expect_failure(AuditProblem::SeqGap, files_[3], 1);
}

TEST_F(AuditTamperTest, DeletedFirstFileFailsUnlessAPrunedStartIsAllowed) {
  const auto first_of_second = Json::parse(lines_of(files_[1]).front());
  fs::remove(files_[0]);
  expect_failure(AuditProblem::SeqGap, files_[1], 1);
  const auto r = verify_audit_dir(o_.dir, {.allow_pruned_start = true});
  EXPECT_TRUE(r.ok) << describe(r);
  EXPECT_EQ(r.chains.at(0).first_seq, first_of_second.at("seq").get<std::uint64_t>());
  EXPECT_EQ(r.chains.at(0).first_prev, first_of_second.at("prev").get<std::string>());
}

// What a chain cannot show: the newest records gone. Only a head kept
// elsewhere tells.
TEST_F(AuditTamperTest, DeletedTailIsNotDetectedButTheHeadMoves) {
  const auto before = verify_audit_dir(o_.dir).chains.at(0);
  auto lines = lines_of(files_.back());
  lines.pop_back();
  write_lines(files_.back(), lines);
  const auto r = verify_audit_dir(o_.dir);
  EXPECT_TRUE(r.ok);
  EXPECT_EQ(r.chains.at(0).last_seq + 1, before.last_seq);
  EXPECT_NE(r.chains.at(0).last_hash, before.last_hash);
}

TEST_F(AuditTamperTest, ALogRefusesToContinueFromATamperedHead) {
  auto lines = lines_of(files_.back());
  lines.back()[lines.back().find("agent-a")] = 'X';
  write_lines(files_.back(), lines);
  try {
    AuditLog log(o_);
    FAIL() << "opened";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(files_.back()), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("hash mismatch"), std::string::npos) << e.what();
  }
}

// --- torn writes ----------------------------------------------------------

TEST(AuditLogTest, TornTailIsAWarningAndTheLogContinuesInANewFile) {
  TempDir tmp;
  const auto o = options_for(tmp);
  write_records(o, 0, 10);
  const auto first = files_in(o.dir).at(0);
  const std::string torn = "{\"seq\":10,\"prev\":\"0123";
  append_file(first, torn);

  auto r = verify_audit_dir(o.dir);
  EXPECT_TRUE(r.ok) << describe(r);
  EXPECT_EQ(r.records, 10u);
  ASSERT_EQ(r.chains.at(0).warnings.size(), 1u);
  const auto& w = r.chains[0].warnings[0];
  EXPECT_EQ(w.problem, AuditProblem::TornTail);
  EXPECT_EQ(w.file, first);
  EXPECT_EQ(w.line, 11u);
  EXPECT_NE(w.reason.find(std::to_string(torn.size()) + " bytes"), std::string::npos) << w.reason;

  {
    AuditLog log(o);
    EXPECT_EQ(log.head().next_seq, 10u);
    EXPECT_EQ(log.current_file(), o.dir + "/audit-n1-000002.jsonl");
    for (std::uint64_t i = 10; i < 15; ++i) ASSERT_TRUE(log.append(message_record(i)));
  }
  EXPECT_EQ(read_file(first).substr(read_file(first).size() - torn.size()), torn);  // left in place
  r = verify_audit_dir(o.dir);
  EXPECT_TRUE(r.ok) << describe(r);
  EXPECT_EQ(r.records, 15u);
  EXPECT_EQ(r.files, 2u);
  EXPECT_EQ(r.chains.at(0).warnings.size(), 1u);
}

// A crash during the first write to a fresh file: the file holds nothing
// but the torn bytes, and the chain goes on from the file before it.
TEST(AuditLogTest, AFileHoldingOnlyATornWriteIsPassedOver) {
  TempDir tmp;
  const auto o = options_for(tmp);
  write_records(o, 0, 5);
  write_file(o.dir + "/audit-n1-000002.jsonl", "{\"seq\":5,");
  {
    AuditLog log(o);
    EXPECT_EQ(log.head().next_seq, 5u);
    EXPECT_EQ(log.current_file(), o.dir + "/audit-n1-000003.jsonl");
    ASSERT_TRUE(log.append(message_record(5)));
  }
  const auto r = verify_audit_dir(o.dir);
  EXPECT_TRUE(r.ok) << describe(r);
  EXPECT_EQ(r.records, 6u);
  EXPECT_EQ(r.chains.at(0).warnings.size(), 1u);
}

TEST(AuditLogTest, AnEmptyNewestFileIsUsed) {
  TempDir tmp;
  const auto o = options_for(tmp);
  write_records(o, 0, 3);
  write_file(o.dir + "/audit-n1-000002.jsonl", "");
  {
    AuditLog log(o);
    EXPECT_EQ(log.head().next_seq, 3u);
    EXPECT_EQ(log.current_file(), o.dir + "/audit-n1-000002.jsonl");
    ASSERT_TRUE(log.append(message_record(3)));
  }
  EXPECT_TRUE(verify_audit_dir(o.dir).ok);
}

// A full file system, made with RLIMIT_FSIZE: the write that crosses the
// limit is cut short, the next fails. The log cuts the partial line off
// again, counts the error, drops the record and goes on once there is room.
TEST(AuditLogTest, AShortWriteIsUndoneCountedAndTheChainGoesOn) {
  TempDir tmp;
  const auto o = options_for(tmp);
  AuditLog log(o);
  for (std::uint64_t i = 0; i < 5; ++i) ASSERT_TRUE(log.append(message_record(i)));
  const auto size = fs::file_size(log.current_file());
  bool written = true;
  with_file_size_limit(size + 100, [&] { written = log.append(message_record(5)); });  // half a record

  EXPECT_FALSE(written);
  EXPECT_EQ(log.write_errors(), 1u);
  EXPECT_EQ(log.dropped_records(), 1u);
  EXPECT_EQ(fs::file_size(log.current_file()), size);
  EXPECT_EQ(log.head().next_seq, 5u);
  ASSERT_TRUE(log.append(message_record(6)));
  EXPECT_EQ(log.records_written(), 6u);
  const auto r = verify_audit_dir(o.dir);
  EXPECT_TRUE(r.ok) << describe(r);
  EXPECT_EQ(r.records, 6u);
  EXPECT_TRUE(r.chains.at(0).warnings.empty());
}

// A batch is the same records as one append each: one chain, rotation
// between its lines included, and single appends before and after it.
TEST(AuditLogTest, ABatchIsWrittenAsTheSameChainAndRotatesInside) {
  TempDir tmp;
  auto o = options_for(tmp);
  o.rotate_bytes = 2000;
  {
    AuditLog log(o);
    ASSERT_TRUE(log.append(message_record(0)));
    std::vector<Json> batch;
    for (std::uint64_t i = 1; i < 60; ++i) batch.push_back(message_record(i));
    EXPECT_EQ(log.append_all(batch), 59u);
    EXPECT_EQ(log.append_all(std::span<Json>()), 0u);
    ASSERT_TRUE(log.append(message_record(60)));
    EXPECT_EQ(log.records_written(), 61u);
    EXPECT_EQ(log.head().next_seq, 61u);
  }
  const auto files = files_in(o.dir);
  ASSERT_GE(files.size(), 5u);
  std::uint64_t seq = 0;
  for (const auto& f : files) {
    EXPECT_LE(fs::file_size(f), 2000u) << f;
    for (const auto& line : lines_of(f)) {
      const Json j = Json::parse(line);
      EXPECT_EQ(j.at("seq"), seq);
      EXPECT_EQ(j.at("id"), "m-" + std::to_string(seq));
      ++seq;
    }
  }
  EXPECT_EQ(seq, 61u);
  expect_verified(o.dir, 61u);
}

// Records serialised by their writer go into the same chain; what is not
// one object on one line is refused before anything is written.
TEST(AuditLogTest, SerialisedRecordsJoinTheChain) {
  TempDir tmp;
  const auto o = options_for(tmp);
  {
    AuditLog log(o);
    ASSERT_TRUE(log.append(message_record(0)));
    const std::vector<std::string> objects = {message_record(1).dump(), "{}", message_record(3).dump()};
    EXPECT_EQ(log.append_objects(objects), 3u);
    const std::vector<std::string> bad = {message_record(4).dump(), "{\"a\":1}\n{\"b\":2}"};
    EXPECT_THROW(log.append_objects(bad), std::invalid_argument);
    const std::vector<std::string> not_object = {"[1,2]"};
    EXPECT_THROW(log.append_objects(not_object), std::invalid_argument);
    EXPECT_EQ(log.head().next_seq, 4u);
  }
  const auto lines = lines_of(files_in(o.dir)[0]);
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_EQ(Json::parse(lines[3]).at("id"), "m-3");
  expect_verified(o.dir, 4u);
}

// A batch whose write fails is dropped whole (and counted): the chain goes
// on from the last record written, so it still verifies.
TEST(AuditLogTest, AFailedBatchIsDroppedWholeAndTheChainGoesOn) {
  TempDir tmp;
  const auto o = options_for(tmp);
  AuditLog log(o);
  for (std::uint64_t i = 0; i < 3; ++i) ASSERT_TRUE(log.append(message_record(i)));
  const auto size = fs::file_size(log.current_file());
  std::vector<Json> batch;
  for (std::uint64_t i = 3; i < 8; ++i) batch.push_back(message_record(i));
  std::size_t written = 99;
  with_file_size_limit(size + 500, [&] { written = log.append_all(batch); });  // a record or two of the five

  EXPECT_EQ(written, 0u);
  EXPECT_EQ(log.dropped_records(), 5u);
  EXPECT_EQ(fs::file_size(log.current_file()), size);
  EXPECT_EQ(log.head().next_seq, 3u);
  ASSERT_TRUE(log.append(message_record(8)));
  expect_verified(o.dir, 4u);
}

// --- options, several nodes, bad records ----------------------------------

TEST(AuditLogTest, StartUpErrorsNameTheProblem) {
  TempDir tmp;
  auto o = options_for(tmp);
  o.node = "a/b";
  EXPECT_THROW(AuditLog{o}, std::invalid_argument);
  o.node = "";
  EXPECT_THROW(AuditLog{o}, std::invalid_argument);

  const std::string file = tmp.write("plain", "x");
  o = options_for(tmp);
  o.dir = file + "/audit";
  try {
    AuditLog log(o);
    FAIL() << "opened";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(o.dir), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("Not a directory"), std::string::npos) << e.what();
  }

  o = options_for(tmp);
  AuditLog first(o);
  try {
    AuditLog second(o);
    FAIL() << "two logs on one node's files";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("another audit log"), std::string::npos) << e.what();
  }
}

TEST(AuditLogTest, NodesSharingADirectoryHaveChainsOfTheirOwn) {
  TempDir tmp;
  auto a = options_for(tmp, "node-a");
  auto b = options_for(tmp, "node-a-000001");  // a name that looks like a file index
  a.rotate_bytes = b.rotate_bytes = 2000;
  {
    AuditLog la(a), lb(b);
    for (std::uint64_t i = 0; i < 40; ++i) {
      ASSERT_TRUE(la.append(message_record(i)));
      if (i % 2 == 0) {
        ASSERT_TRUE(lb.append(message_record(i)));
      }
    }
  }
  auto r = verify_audit_dir(a.dir);
  EXPECT_TRUE(r.ok) << describe(r);
  ASSERT_EQ(r.chains.size(), 2u);
  EXPECT_EQ(r.chains[0].node, "node-a");
  EXPECT_EQ(r.chains[0].records, 40u);
  EXPECT_EQ(r.chains[1].node, "node-a-000001");
  EXPECT_EQ(r.chains[1].records, 20u);

  // Tampering in one chain leaves the other verified.
  const auto b_file = a.dir + "/audit-node-a-000001-000001.jsonl";
  auto lines = lines_of(b_file);
  lines.erase(lines.begin());
  write_lines(b_file, lines);
  r = verify_audit_dir(a.dir);
  EXPECT_FALSE(r.ok);
  EXPECT_TRUE(r.chains[0].ok);
  EXPECT_FALSE(r.chains[1].ok);
  ASSERT_TRUE(r.failure);
  EXPECT_EQ(r.failure->file, b_file);
  EXPECT_EQ(r.failure->line, 1u);
}

TEST(AuditLogTest, BadRecordsAreRefusedOrDroppedWithoutBreakingTheChain) {
  TempDir tmp;
  const auto o = options_for(tmp);
  AuditLog log(o);
  EXPECT_THROW(log.append(Json::array()), std::invalid_argument);
  EXPECT_THROW(log.append(Json("text")), std::invalid_argument);
  EXPECT_THROW(log.append(Json{{"seq", 1}}), std::invalid_argument);
  EXPECT_THROW(log.append(Json{{"hash", "x"}}), std::invalid_argument);
  ASSERT_TRUE(log.append(message_record(0)));

  Json deep = Json::object();
  for (int i = 0; i < 200; ++i) deep = Json{{"d", std::move(deep)}};
  EXPECT_FALSE(log.append(deep));
  EXPECT_FALSE(log.append(Json{{"big", std::string(kAuditMaxLineBytes, 'x')}}));
  // Small enough on its own, too long with seq, prev and hash around it.
  EXPECT_FALSE(log.append(Json{{"big", std::string(kAuditMaxLineBytes - 20, 'x')}}));
  EXPECT_EQ(log.dropped_records(), 3u);
  EXPECT_EQ(log.write_errors(), 0u);
  ASSERT_TRUE(log.append(Json{{"big", std::string(kAuditMaxLineBytes - 200, 'x')}}));  // fits
  ASSERT_TRUE(log.append(message_record(1)));
  EXPECT_EQ(log.head().next_seq, 3u);
  const auto r = verify_audit_dir(o.dir);
  EXPECT_TRUE(r.ok) << describe(r);
  EXPECT_EQ(r.records, 3u);
}

// --- concurrency and fsync -------------------------------------------------

// With Interval, the sync thread also syncs files that rotation has
// just taken away from the appenders.
class AuditConcurrencyTest : public ::testing::TestWithParam<AuditFsync> {};

TEST_P(AuditConcurrencyTest, ConcurrentAppendsGetDistinctSeqsAndOneChain) {
  TempDir tmp;
  auto o = options_for(tmp);
  o.rotate_bytes = 64 * 1024;
  o.fsync = GetParam();
  o.fsync_interval = std::chrono::milliseconds(5);
  constexpr int kThreads = 8, kEach = 500;
  {
    AuditLog log(o);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&log, t] {
        for (int i = 0; i < kEach; ++i) log.append(Json{{"thread", t}, {"i", i}});
      });
    }
    for (auto& th : threads) th.join();
    EXPECT_EQ(log.records_written(), std::uint64_t{kThreads * kEach});
    EXPECT_EQ(log.write_errors(), 0u);
  }
  const auto r = verify_audit_dir(o.dir);
  EXPECT_TRUE(r.ok) << describe(r);
  EXPECT_EQ(r.records, std::uint64_t{kThreads * kEach});
  EXPECT_GT(r.files, 1u);

  std::set<std::uint64_t> seqs;
  std::map<int, int> last_i;
  const auto read = read_audit_dir(o.dir, [&](const AuditEntry& e) {
    seqs.insert(e.record.at("seq").get<std::uint64_t>());
    // Each thread's records in the order it appended them.
    const int t = e.record.at("thread"), i = e.record.at("i");
    if (last_i.count(t)) {
      EXPECT_GT(i, last_i[t]);
    }
    last_i[t] = i;
  });
  EXPECT_TRUE(read.ok) << read.error;
  EXPECT_EQ(read.records, std::uint64_t{kThreads * kEach});
  EXPECT_EQ(seqs.size(), std::size_t{kThreads * kEach});
  EXPECT_EQ(*seqs.rbegin(), std::uint64_t{kThreads * kEach - 1});
}

INSTANTIATE_TEST_SUITE_P(Fsync, AuditConcurrencyTest, ::testing::Values(AuditFsync::Never, AuditFsync::Interval),
                         [](const auto& p) { return std::string(to_string(p.param)); });

TEST(AuditLogTest, IntervalSyncStartsSyncsAndStops) {
  TempDir tmp;
  auto o = options_for(tmp);
  o.fsync = AuditFsync::Interval;
  o.fsync_interval = std::chrono::milliseconds(20);
  o.rotate_bytes = 1000;
  {
    AuditLog idle(o);  // never written: stops at once
  }
  {
    AuditLog log(o);
    for (std::uint64_t i = 0; i < 20; ++i) ASSERT_TRUE(log.append(message_record(i)));
    std::this_thread::sleep_for(std::chrono::milliseconds(60));
    for (std::uint64_t i = 20; i < 40; ++i) ASSERT_TRUE(log.append(message_record(i)));
    EXPECT_EQ(log.write_errors(), 0u);
  }
  {
    // A long interval must not hold up the destructor.
    o.fsync_interval = std::chrono::hours(1);
    std::optional<AuditLog> log(std::in_place, o);
    ASSERT_TRUE(log->append(message_record(40)));
    const auto t0 = std::chrono::steady_clock::now();
    log.reset();
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(10));
  }
  const auto r = verify_audit_dir(o.dir);
  EXPECT_TRUE(r.ok) << describe(r);
  EXPECT_EQ(r.records, 41u);
}

// The sync thread sleeps while nothing is written: a wait on a condition,
// not a poll every interval.
TEST(AuditLogTest, IntervalSyncThreadSleepsWhileIdle) {
  TempDir tmp;
  auto o = options_for(tmp);
  o.fsync = AuditFsync::Interval;
  o.fsync_interval = std::chrono::milliseconds(10);
  AuditLog log(o);
  ASSERT_TRUE(log.append(message_record(0)));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // its one sync is done
  const auto before = test::WakeupSnapshot::take();
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const auto woke = test::WakeupSnapshot::take().since(before);
  ASSERT_TRUE(std::any_of(woke.begin(), woke.end(), [](const auto& t) { return t.second.name == "mesh-audit-sync"; }))
      << test::describe_wakeups(woke);
  // A poll every interval would be about 50.
  EXPECT_LE(test::wakeups_of(woke, "mesh-audit-sync"), 1u) << test::describe_wakeups(woke);
}

TEST(AuditLogTest, AlwaysSyncWrites) {
  TempDir tmp;
  auto o = options_for(tmp);
  o.fsync = AuditFsync::Always;
  o.rotate_bytes = 1000;
  write_records(o, 0, 20);
  const auto r = verify_audit_dir(o.dir);
  EXPECT_TRUE(r.ok) << describe(r);
  EXPECT_EQ(r.records, 20u);
}

// --- reading ----------------------------------------------------------------

TEST(AuditReadTest, ReadsEveryIntactRecordInOrder) {
  TempDir tmp;
  auto o = options_for(tmp);
  o.rotate_bytes = 2000;
  write_records(o, 0, 30);
  append_file(files_in(o.dir).back(), "{\"torn");
  std::vector<Json> records;
  std::set<std::string> files;
  const auto r = read_audit_dir(o.dir, [&](const AuditEntry& e) {
    EXPECT_EQ(e.node, "n1");
    files.insert(std::string(e.file));
    records.push_back(e.record);
  });
  EXPECT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.records, 30u);
  EXPECT_EQ(r.skipped, 1u);
  ASSERT_EQ(records.size(), 30u);
  for (std::size_t i = 0; i < records.size(); ++i) {
    EXPECT_EQ(records[i].at("seq"), i);
    EXPECT_EQ(records[i].at("id"), "m-" + std::to_string(i));
    EXPECT_EQ(records[i].at("hash").get<std::string>().size(), 64u);
  }
  EXPECT_EQ(files.size(), files_in(o.dir).size());

  const auto missing = read_audit_dir(tmp.path() + "/nowhere", [](const AuditEntry&) {});
  EXPECT_FALSE(missing.ok);
  EXPECT_NE(missing.error.find("No such file or directory"), std::string::npos) << missing.error;
}

TEST(AuditVerifyTest, AnUnreadableDirectoryIsAnIoFailure) {
  const auto r = verify_audit_dir("/nonexistent/audit");
  EXPECT_FALSE(r.ok);
  ASSERT_TRUE(r.failure);
  EXPECT_EQ(r.failure->problem, AuditProblem::Unreadable);
  EXPECT_EQ(r.failure->file, "/nonexistent/audit");
  const Json j = r.to_json();
  EXPECT_EQ(j.at("failure").at("problem"), "unreadable");
  EXPECT_EQ(j.at("ok"), false);
}

TEST(AuditVerifyTest, AnOverlongLineIsMalformedAndNotHeldWhole) {
  TempDir tmp;
  const auto o = options_for(tmp);
  write_records(o, 0, 2);
  const auto file = files_in(o.dir).at(0);
  append_file(file, std::string(kAuditMaxLineBytes * 3, 'x') + "\n");
  const auto r = verify_audit_dir(o.dir);
  EXPECT_FALSE(r.ok);
  ASSERT_TRUE(r.failure);
  EXPECT_EQ(r.failure->problem, AuditProblem::Malformed);
  EXPECT_EQ(r.failure->line, 3u);
  EXPECT_NE(r.failure->reason.find("longer than any record"), std::string::npos) << r.failure->reason;
  EXPECT_EQ(r.records, 2u);
}

// Garbage, whole lines of it, or valid lines cut and flipped at random:
// always a failure, never a crash, and the reader skips it. Each case
// names its seed.
TEST(AuditVerifyTest, GarbageAlwaysFailsAndNeverCrashes) {
  TempDir tmp;
  const auto o = options_for(tmp);
  write_records(o, 0, 8);
  const auto file = files_in(o.dir).at(0);
  const auto valid = lines_of(file);
  for (std::uint64_t seed = 1; seed <= 300; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    Rng rng(seed);
    std::vector<std::string> lines = valid;
    const auto victim = static_cast<std::size_t>(rng.below(lines.size()));
    std::string& l = lines[victim];
    switch (rng.below(4)) {
      case 0: {  // random bytes, no newline inside
        l.assign(static_cast<std::size_t>(rng.below(300)), '\0');
        for (auto& c : l) {
          do c = static_cast<char>(rng.below(256));
          while (c == '\n');
        }
        break;
      }
      case 1:  // cut short
        l.resize(static_cast<std::size_t>(rng.below(l.size())));
        break;
      case 2: {  // one to four bytes changed
        for (auto n = rng.below(4) + 1; n > 0; --n) {
          auto& c = l[static_cast<std::size_t>(rng.below(l.size()))];
          char d;
          do d = static_cast<char>(rng.below(256));
          while (d == '\n' || d == c);
          c = d;
        }
        break;
      }
      default:  // JSON-like noise that keeps the frame
        l = "{\"seq\":" + std::to_string(rng.below(10)) + ",\"prev\":\"" + kZeros + "\",\"x\":[[[[{\"" +
            ",\"hash\":\"" + std::string(64, "0123456789abcdef"[rng.below(16)]) + "\"}";
        break;
    }
    write_lines(file, lines);
    const auto r = verify_audit_dir(o.dir);
    EXPECT_FALSE(r.ok) << "line " << victim + 1 << ": " << l;
    ASSERT_TRUE(r.failure);
    EXPECT_EQ(r.failure->line, victim + 1);
    const auto read = read_audit_dir(o.dir, [](const AuditEntry&) {});
    EXPECT_EQ(read.records + read.skipped, valid.size());
    EXPECT_GE(read.skipped, 1u);
  }
}

}  // namespace
}  // namespace mesh
