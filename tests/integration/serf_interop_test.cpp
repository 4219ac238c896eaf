// Interoperation with a real `serf agent` (0.9.4, memberlist 0.2.2): it
// must list our nodes with their tags, see them leave as `left`, and log
// no error because of us; we must see it alive, and dead after kill -9.
// Skipped (with a message) when no serf binary is installed.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <random>
#include <sstream>

#include "harness.hpp"

namespace mesh::swim::test {
namespace {

struct SerfMember {
  std::string status;
  std::map<std::string, std::string> tags;
};

class SerfAgent {
 public:
  SerfAgent(const std::string& bin, const TempDir& dir, const std::string& name,
            const std::vector<std::string>& extra)
      : bin_(bin), log_(dir.path() / (name + ".log")) {
    port_ = free_port();
    rpc_ = "127.0.0.1:" + std::to_string(free_port());
    std::vector<std::string> argv = {bin,
                                     "agent",
                                     "-node=" + name,
                                     "-bind=127.0.0.1:" + std::to_string(port_),
                                     "-rpc-addr=" + rpc_,
                                     "-log-level=debug",
                                     "-profile=local",
                                     "-tag",
                                     "role=serf"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    child_ = std::make_unique<ChildProcess>(argv, log_);
  }

  std::string seed() const { return "127.0.0.1:" + std::to_string(port_); }
  void kill9() { child_->kill9(); }
  std::string log() const { return read_file(log_); }

  // `serf members -format=json`, nullopt while the agent's RPC is not up.
  std::optional<std::map<std::string, SerfMember>> members() const {
    auto out = run_capture(bin_ + " members -rpc-addr=" + rpc_ + " -format=json 2>/dev/null");
    if (!out) return std::nullopt;
    auto j = nlohmann::json::parse(*out, nullptr, false);
    if (j.is_discarded() || !j.contains("members")) return std::nullopt;
    std::map<std::string, SerfMember> r;
    for (const auto& m : j["members"]) {
      SerfMember sm;
      sm.status = m.value("status", "");
      if (m.contains("tags"))
        for (const auto& [k, v] : m["tags"].items()) sm.tags[k] = v.get<std::string>();
      r[m.value("name", "")] = sm;
    }
    return r;
  }

  bool shows(const std::string& name, const std::string& status) const {
    auto ms = members();
    return ms && ms->count(name) != 0 && ms->at(name).status == status;
  }

  // Lines of the log with the given level marker, e.g. "[ERR]".
  std::vector<std::string> lines_with(const std::string& marker) const {
    std::vector<std::string> out;
    std::stringstream ss(log());
    std::string line;
    while (std::getline(ss, line))
      if (line.find(marker) != std::string::npos) out.push_back(line);
    return out;
  }

 private:
  std::string bin_;
  std::filesystem::path log_;
  std::uint16_t port_ = 0;
  std::string rpc_;
  std::unique_ptr<ChildProcess> child_;
};

std::string serf_binary() { return find_on_path("serf"); }

std::string base64(const Bytes& b) {
  static const char* t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  for (std::size_t i = 0; i < b.size(); i += 3) {
    std::uint32_t n = static_cast<std::uint32_t>(b[i]) << 16;
    if (i + 1 < b.size()) n |= static_cast<std::uint32_t>(b[i + 1]) << 8;
    if (i + 2 < b.size()) n |= b[i + 2];
    out += t[(n >> 18) & 63];
    out += t[(n >> 12) & 63];
    out += i + 1 < b.size() ? t[(n >> 6) & 63] : '=';
    out += i + 2 < b.size() ? t[n & 63] : '=';
  }
  return out;
}

void expect_clean_log(const SerfAgent& serf) {
  const auto errors = serf.lines_with("[ERR]");
  EXPECT_TRUE(errors.empty()) << "serf logged errors:\n" << [&] {
    std::string all;
    for (const auto& e : errors) all += e + "\n";
    return all;
  }();
  for (const auto& w : serf.lines_with("[WARN]")) std::cout << "serf warning: " << w << "\n";
}

// serf1 is a real agent. cpp1 (with tags) and cpp2 join it. serf lists both
// alive with their tags and we list serf1 alive with its tag. cpp1 leaves
// gracefully: serf shows it `left` (not `failed`). serf1 is killed -9:
// cpp2 finds it dead. Serf's log holds no error.
TEST(SerfInterop, JoinListLeaveAndKill) {
  const std::string bin = serf_binary();
  if (bin.empty()) GTEST_SKIP() << "the serf binary is not installed (apt-get install serf)";
  TempDir dir;
  SerfAgent serf(bin, dir, "serf1", {});
  ASSERT_TRUE(eventually([&] { return serf.members().has_value(); }, 20s)) << serf.log();

  const std::map<std::string, std::string> tags = {{"role", "agent"}, {"zmq", "5555"}};
  TestNode cpp1(local_config("cpp1"), loopback(), 71, tags);
  TestNode cpp2(local_config("cpp2"), loopback(), 72, {{"role", "agent"}});
  std::atomic<int> joined{0};
  cpp1.m->join({serf.seed()}, [&] { ++joined; });
  cpp2.m->join({serf.seed()}, [&] { ++joined; });

  ASSERT_TRUE(eventually([&] {
    auto ms = serf.members();
    return ms && ms->count("cpp1") && ms->at("cpp1").status == "alive" && ms->count("cpp2") &&
           ms->at("cpp2").status == "alive";
  })) << serf.log();
  EXPECT_EQ(serf.members()->at("cpp1").tags, tags);
  EXPECT_EQ(joined.load(), 2);
  ASSERT_TRUE(eventually([&] {
    return sees(*cpp1.m, "serf1", MemberState::Alive) && sees(*cpp2.m, "cpp1", MemberState::Alive);
  }));
  for (const auto& i : cpp1.m->members())
    if (i.member.name == "serf1") {
      EXPECT_EQ(i.tags.at("role"), "serf");
    }

  EXPECT_TRUE(cpp1.m->leave(5s));
  EXPECT_TRUE(eventually([&] { return serf.shows("cpp1", "left"); })) << serf.log();
  EXPECT_TRUE(eventually([&] { return sees(*cpp2.m, "cpp1", MemberState::Left); }));
  EXPECT_TRUE(serf.shows("cpp2", "alive"));

  expect_clean_log(serf);
  serf.kill9();
  EXPECT_TRUE(eventually([&] { return sees(*cpp2.m, "serf1", MemberState::Dead); }, 60s));
}

// The same with encryption: serf -encrypt=<key> and our Keyring.
TEST(SerfInterop, Encrypted) {
  const std::string bin = serf_binary();
  if (bin.empty()) GTEST_SKIP() << "the serf binary is not installed (apt-get install serf)";
  Bytes key(32);
  std::random_device rd;
  for (auto& b : key) b = static_cast<std::uint8_t>(rd());
  TempDir dir;
  SerfAgent serf(bin, dir, "serf-enc", {"-encrypt=" + base64(key)});
  ASSERT_TRUE(eventually([&] { return serf.members().has_value(); }, 20s)) << serf.log();

  auto decoded = Keyring::decode_base64_key(base64(key));
  ASSERT_TRUE(decoded);
  NetOptions net = loopback();
  net.keyring = Keyring({*decoded});
  TestNode cpp(local_config("cpp-enc"), net, 81, {{"secure", "yes"}});
  cpp.m->join({serf.seed()});
  ASSERT_TRUE(eventually([&] { return serf.shows("cpp-enc", "alive"); })) << serf.log();
  EXPECT_EQ(serf.members()->at("cpp-enc").tags.at("secure"), "yes");
  EXPECT_TRUE(eventually([&] { return sees(*cpp.m, "serf-enc", MemberState::Alive); }));
  // Let a few probes and gossip rounds go both ways.
  std::this_thread::sleep_for(2s);
  EXPECT_TRUE(serf.shows("cpp-enc", "alive"));
  EXPECT_EQ(cpp.m->driver_stats().packets_dropped_decrypt, 0u);
  EXPECT_EQ(cpp.m->driver_stats().streams_dropped_decrypt, 0u);

  EXPECT_TRUE(cpp.m->leave(5s));
  EXPECT_TRUE(eventually([&] { return serf.shows("cpp-enc", "left"); })) << serf.log();
  expect_clean_log(serf);
}

}  // namespace
}  // namespace mesh::swim::test
