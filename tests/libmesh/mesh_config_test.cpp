// The Mesh configured through NodeConfig (load_node_config), and the
// example files in conf/.
//
// conf/mesh.yaml parses, loads cleanly and documents every key;
// conf/.env.example names every variable the loader reads and, with its
// lines uncommented, loads cleanly too. A Mesh built from the environment
// takes its mailbox bound, default strategy and request timeout from it;
// with P2P off it opens no socket. Two P2P meshes with CURVE keys talk,
// each authenticating the other by the key in its "zkey" SWIM tag; a third
// node without CURVE joins the membership but reaches neither, and a
// transport with a key no member published is not answered. A gossip key
// alone turns CURVE on (the pair kept in data_dir, or drawn per run), and a
// node whose traffic is unauthenticated says so once at start.
#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "mesh/mesh.hpp"
#include "mesh/peer_link.hpp"
#include "mesh/swim/membership.hpp"
#include "mesh/transport/transport.hpp"
#include "mesh_fixtures.hpp"

namespace mesh {
namespace {

using namespace std::chrono_literals;
using test::Echo;
using test::eventually;
using test::fast_options;
using test::seed_of;
using test::Probe;
using test::Silent;

std::string source_file(const std::string& relative) { return std::string(MESH_SOURCE_DIR) + "/" + relative; }

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The keys NodeConfig has, as --check-config prints them.
std::vector<std::string> config_keys() {
  const auto j = nlohmann::json::parse(to_json_string(NodeConfig{}));
  std::vector<std::string> keys;
  for (const auto& [k, v] : j.items()) {
    if (k != "config_file" && k != "sources") keys.push_back(k);
  }
  return keys;
}

// ---- conf/ -----------------------------------------------------------------

TEST(ConfFiles, MeshYamlLoadsAndDocumentsEveryKey) {
  const std::string path = source_file("conf/mesh.yaml");
  YAML::Node root;
  ASSERT_NO_THROW(root = YAML::LoadFile(path));
  ASSERT_TRUE(root.IsMap());
  const NodeConfig c = load_node_config({"--config", path}, {});
  EXPECT_EQ(c.config_file, path);
  const NodeConfig d = load_node_config({}, {});
  // The file states the defaults: loading it changes nothing.
  EXPECT_EQ(c.mailbox_limit, d.mailbox_limit);
  EXPECT_EQ(c.request_timeout, d.request_timeout);
  EXPECT_EQ(c.max_message_bytes, d.max_message_bytes);
  EXPECT_EQ(c.leave_timeout, d.leave_timeout);
  EXPECT_EQ(c.discovery_strategy, d.discovery_strategy);
  EXPECT_EQ(c.swim_port, d.swim_port);
  EXPECT_EQ(c.p2p_enabled, d.p2p_enabled);
  EXPECT_EQ(c.thread_max_turns, d.thread_max_turns);
  EXPECT_EQ(c.thread_ttl, d.thread_ttl);
  EXPECT_EQ(c.thread_max_cost, d.thread_max_cost);
  EXPECT_EQ(c.thread_max_depth, d.thread_max_depth);
  EXPECT_EQ(c.audit_dir, d.audit_dir);
  EXPECT_EQ(c.audit_fsync, d.audit_fsync);

  const std::string text = read_text(path);
  for (const auto& key : config_keys()) {
    SCOPED_TRACE(key);
    EXPECT_TRUE(root[key].IsDefined()) << "conf/mesh.yaml has no key " << key;
  }
  // Each key's comment names its variable and flag.
  for (const auto& var : config_environment_variables()) {
    EXPECT_NE(text.find(var), std::string::npos) << "conf/mesh.yaml does not mention " << var;
  }
}

// "KEY=value" or "#KEY=value" with KEY of [A-Z0-9_] (std::regex trips
// GCC 12's -Wmaybe-uninitialized under ASan).
std::optional<std::pair<std::string, std::string>> assignment(std::string_view line) {
  if (!line.empty() && line.front() == '#') line.remove_prefix(1);
  const auto eq = line.find('=');
  if (eq == std::string_view::npos || eq == 0 || !std::isupper(static_cast<unsigned char>(line[0]))) {
    return std::nullopt;
  }
  for (char ch : line.substr(0, eq)) {
    if (!std::isupper(static_cast<unsigned char>(ch)) && !std::isdigit(static_cast<unsigned char>(ch)) &&
        ch != '_') {
      return std::nullopt;
    }
  }
  return std::pair{std::string(line.substr(0, eq)), std::string(line.substr(eq + 1))};
}

TEST(ConfFiles, EnvExampleListsEveryVariableAndLoads) {
  const std::string path = source_file("conf/.env.example");
  std::ifstream in(path);
  ASSERT_TRUE(in) << path;
  // Plain KEY=value lines (commented out with '#'), nothing a shell or
  // systemd's EnvironmentFile would read differently.
  Environment env;
  std::set<std::string> listed;
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (line.empty()) continue;
    if (auto kv = assignment(line)) {
      const auto& [name, value] = *kv;
      listed.insert(name);
      EXPECT_EQ(line.front(), '#') << "line " << n << " sets a variable: it would hide the YAML file";
      EXPECT_EQ(value.find_first_of("\"'$`\\ "), std::string::npos) << "line " << n;
      if (name != "JC_CONFIG") env[name] = value;
      continue;
    }
    EXPECT_EQ(line.rfind("# ", 0) == 0 || line == "#", true) << "line " << n << ": " << line;
    EXPECT_EQ(line.find("export "), std::string::npos) << "line " << n;
  }
  for (const auto& var : config_environment_variables()) {
    EXPECT_TRUE(listed.contains(var)) << "conf/.env.example does not list " << var;
  }
  for (const auto& var : listed) {
    const auto& all = config_environment_variables();
    EXPECT_NE(std::find(all.begin(), all.end(), var), all.end()) << var << " is read by nobody";
  }
  // Uncommented, the example values are the defaults and load cleanly.
  NodeConfig c;
  ASSERT_NO_THROW(c = load_node_config({}, env));
  const NodeConfig d = load_node_config({}, {});
  EXPECT_EQ(c.mailbox_limit, d.mailbox_limit);
  EXPECT_EQ(c.request_timeout, d.request_timeout);
  EXPECT_EQ(c.max_message_bytes, d.max_message_bytes);
  EXPECT_EQ(c.discovery_strategy, d.discovery_strategy);
  EXPECT_EQ(c.p2p_enabled, d.p2p_enabled);
  EXPECT_EQ(c.swim_port, d.swim_port);
}

// ---- a Mesh from the configuration ---------------------------------------

// Sockets this process holds (/proc/self/fd entries that are sockets).
int open_sockets() {
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) {
    std::error_code ec;
    const auto target = std::filesystem::read_symlink(e.path(), ec);
    if (!ec && target.string().rfind("socket:", 0) == 0) ++n;
  }
  return n;
}

NodeConfig from_env(Environment env) {
  env.emplace("JC_NODE_NAME", "configured");
  return load_node_config({}, env);
}

TEST(MeshConfig, P2POffOpensNoSockets) {
  const int before = open_sockets();
  Mesh mesh(from_env({{"P2P_ENABLED", "false"}}));
  auto& probe = mesh.add<Probe>("probe-1");
  mesh.add<Echo>("echo-1");
  mesh.start();
  ASSERT_TRUE(probe.peers().request_blocking("echo-1", {{"x", 1}}, 10s)) << "agents talk in memory";
  EXPECT_EQ(open_sockets(), before);
  EXPECT_EQ(mesh.swim_port(), 0);
  EXPECT_EQ(mesh.membership_for_test(), nullptr);
  mesh.stop();
}

TEST(MeshConfig, MailboxLimitFromEnvironment) {
  Mesh mesh(from_env({{"JC_MAILBOX_LIMIT", "2"}}));
  auto& sender = mesh.add<Probe>("sender");
  mesh.add<Probe>("idle");  // never receives: its mailbox fills
  mesh.start();
  EXPECT_TRUE(sender.peers().notify("idle", {{"n", 1}}));
  EXPECT_TRUE(sender.peers().notify("idle", {{"n", 2}}));
  EXPECT_FALSE(sender.peers().notify("idle", {{"n", 3}})) << "the configured bound is 2";
  EXPECT_EQ(sender.peers().request_detailed_blocking("idle", {{"n", 4}}, 5s).error, ErrorCode::MailboxFull);
  mesh.stop();
}

TEST(MeshConfig, DefaultStrategyFromEnvironment) {
  Mesh mesh(from_env({{"JC_DISCOVERY_STRATEGY", "round_robin"}}));
  auto& probe = mesh.add<Probe>("probe-1");
  mesh.add<Echo>("coder-a", "coder");
  mesh.add<Echo>("coder-b", "coder");
  mesh.start();
  EXPECT_EQ(probe.peers().default_strategy(), Strategy::RoundRobin);
  // Sent to the role: successive requests go to successive coders.
  std::set<std::string> answered_by;
  for (int i = 0; i < 4; ++i) {
    auto r = probe.peers().request_blocking("coder", {{"i", i}}, 10s);
    ASSERT_TRUE(r);
    answered_by.insert(r->data.at("by").get<std::string>());
  }
  EXPECT_EQ(answered_by, (std::set<std::string>{"coder-a", "coder-b"}));
  // An agent may still change its own.
  probe.peers().set_default_strategy(Strategy::First);
  EXPECT_EQ(probe.peers().default_strategy(), Strategy::First);
  mesh.stop();
}

TEST(MeshConfig, RequestTimeoutFromEnvironment) {
  Mesh mesh(from_env({{"JC_REQUEST_TIMEOUT", "300ms"}}));
  auto& probe = mesh.add<Probe>("probe-1");
  mesh.add<Silent>("silent-1");
  mesh.start();
  // No timeout given: the configured 300 ms, not the built-in 30 s. (The
  // blocking call: with P2P off nothing runs the transport's deadlines of
  // a request_async until the next transport call.)
  auto fut = std::async(std::launch::async,
                        [&] { return probe.peers().request_detailed_blocking("silent-1", {{"x", 1}}); });
  ASSERT_EQ(fut.wait_for(20s), std::future_status::ready);
  EXPECT_EQ(fut.get().error, ErrorCode::Timeout);
  mesh.stop();
}

TEST(MeshConfig, MaxMessageBytesFromEnvironment) {
  Mesh mesh(from_env({{"JC_MAX_MESSAGE_BYTES", "8KiB"}}));
  auto& probe = mesh.add<Probe>("probe-1");
  mesh.add<Echo>("echo-1");
  mesh.start();
  EXPECT_TRUE(probe.peers().request_blocking("echo-1", {{"s", std::string(4000, 'a')}}, 10s));
  EXPECT_EQ(probe.peers().request_detailed_blocking("echo-1", {{"s", std::string(9000, 'a')}}, 10s).error,
            ErrorCode::Oversized);
  mesh.stop();
}

TEST(MeshConfig, UnusableHandMadeConfigIsRefused) {
  NodeConfig c;
  c.node_name = "x";
  c.discovery_strategy = "fastest";
  EXPECT_THROW(Mesh{c}, std::invalid_argument);
  c.discovery_strategy = "first";
  c.mailbox_limit = 0;
  EXPECT_THROW(Mesh{c}, std::invalid_argument);
  c.mailbox_limit = 10;
  const auto a = transport::generate_curve_keypair();
  const auto b = transport::generate_curve_keypair();
  c.curve_secret_key = a.secret_key;
  EXPECT_THROW(Mesh{c}, std::invalid_argument);  // no public key
  c.curve_public_key = b.public_key;
  try {
    Mesh m(c);
    ADD_FAILURE() << "a public key of another pair was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "curve_public_key does not belong to curve_secret_key");
    EXPECT_EQ(std::string(e.what()).find(a.secret_key), std::string::npos);
  }
}

// ---- CURVE ------------------------------------------------------------------

NodeConfig p2p_config(Environment env, std::vector<std::string> seeds);

NodeConfig p2p_config(const std::string& name, std::vector<std::string> seeds,
                      const std::optional<transport::CurveKeyPair>& keys) {
  Environment env = {{"P2P_ENABLED", "true"},
                     {"JC_NODE_NAME", name},
                     {"JC_SWIM_HOST", "127.0.0.1"},
                     {"JC_PROFILE", "local"},
                     {"JC_LEAVE_TIMEOUT", "2s"}};
  if (keys) {
    env["JC_CURVE_SECRET_KEY"] = keys->secret_key;
    env["JC_CURVE_PUBLIC_KEY"] = keys->public_key;
  }
  return p2p_config(std::move(env), std::move(seeds));
}

NodeConfig p2p_config(Environment env, std::vector<std::string> seeds) {
  NodeConfig c = load_node_config({}, env);
  // The kernel picks the ports (other tests run meanwhile).
  c.swim_port = 0;
  c.zmq_port = 0;
  c.seeds = std::move(seeds);
  return c;
}

std::optional<std::string> tag_of(Mesh& observer, const std::string& node, const std::string& tag) {
  for (const auto& info : observer.membership_for_test()->members()) {
    if (info.member.name != node) continue;
    auto it = info.tags.find(tag);
    if (it == info.tags.end()) return std::nullopt;
    return it->second;
  }
  return std::nullopt;
}

TEST(MeshCurve, KeyedMeshesTalkOthersCannot) {
  const auto k1 = transport::generate_curve_keypair();
  const auto k2 = transport::generate_curve_keypair();
  Mesh n1(p2p_config("c1", {}, k1), fast_options());
  n1.add<Echo>("echo-1");
  n1.start();
  Mesh n2(p2p_config("c2", {seed_of(n1)}, k2), fast_options());
  auto& probe2 = n2.add<Probe>("probe-2");
  n2.start();

  // Each publishes its public key; each reaches the other's agents.
  ASSERT_TRUE(eventually([&] { return tag_of(n1, "c2", kCurveKeyTag) == k2.public_key; }));
  ASSERT_TRUE(eventually([&] { return tag_of(n2, "c1", kCurveKeyTag) == k1.public_key; }));
  ASSERT_TRUE(eventually([&] { return probe2.peers().request_blocking("echo-1", {{"x", 1}}, 5s).has_value(); }))
      << "c2 cannot reach c1 over CURVE";

  // c3 has no CURVE: it joins the membership (gossip is not the
  // transport) but its connections to c1 and c2 fail the handshake, so it
  // never fetches their registries nor reaches their agents.
  Mesh n3(p2p_config("c3", {seed_of(n1)}, std::nullopt), fast_options());
  auto& probe3 = n3.add<Probe>("probe-3");
  n3.start();
  ASSERT_TRUE(eventually([&] { return tag_of(n1, "c3", kZmqPortTag).has_value(); }));
  ASSERT_TRUE(eventually([&] { return n3.stats().registry_failures >= 1; }))
      << "c3's registry fetch should have failed";
  EXPECT_TRUE(probe3.peers().discover(by_role("echo")).empty());
  EXPECT_NE(probe3.peers().request_detailed_blocking("echo-1", {{"x", 3}}, 2s).error, ErrorCode::None);
  // Nor does c1 send to c3: a member without a key is unreachable to it.
  EXPECT_TRUE(probe2.peers().request_blocking("echo-1", {{"x", 2}}, 5s).has_value()) << "c1 and c2 unaffected";

  // A transport with a keypair of its own that knows c1's public key: c1
  // accepts only clients whose key a member published, so nothing it
  // sends is answered.
  transport::TransportOptions to;
  to.node_name = "intruder";
  to.curve = transport::generate_curve_keypair();
  transport::Transport intruder(std::move(to));
  intruder.add_peer({"c1", "127.0.0.1", n1.zmq_port(), k1.public_key});
  transport::OutMessage m;
  m.to = {"c1", "echo-1"};
  m.sender_agent = "intruder";
  m.payload = Json::to_msgpack(Json{{"x", 4}});
  const auto reply = intruder.request(std::move(m), 2s);
  EXPECT_NE(reply.error, ErrorCode::None);

  n3.stop();
  n2.stop();
  n1.stop();
}

// ---- secure by default -------------------------------------------------------

constexpr char kGossipKey[] = "cg8StVXbQJ0gPvMd9o7yrg==";  // 16 bytes

Environment gossip_env(const std::string& name, const std::string& data_dir = {}) {
  Environment env = {{"P2P_ENABLED", "true"},   {"JC_NODE_NAME", name},
                     {"JC_SWIM_HOST", "127.0.0.1"}, {"JC_PROFILE", "local"},
                     {"JC_LEAVE_TIMEOUT", "2s"},  {"JC_GOSSIP_KEY", kGossipKey}};
  if (!data_dir.empty()) env["JC_DATA_DIR"] = data_dir;
  return env;
}

using test::ScratchDir;

// With a gossip key and nothing else, agent traffic runs over CURVE: each
// node publishes a public key and the nodes talk. The pair of a node with a
// data_dir is made there once (owner-only) and kept across restarts.
TEST(MeshSecureByDefault, AGossipKeyTurnsCurveOn) {
  ScratchDir dir;
  ASSERT_FALSE(dir.path.empty());
  const std::string data_dir = dir.path + "/n1-data";  // made by the node
  std::string first_key;
  {
    Mesh n1(p2p_config(gossip_env("g1", data_dir), {}), fast_options());
    n1.add<Echo>("echo-1");
    n1.start();
    Mesh n2(p2p_config(gossip_env("g2"), {seed_of(n1)}), fast_options());
    auto& probe = n2.add<Probe>("probe-2");
    n2.start();
    ASSERT_TRUE(eventually([&] { return tag_of(n2, "g1", kCurveKeyTag).has_value(); }));
    ASSERT_TRUE(eventually([&] { return tag_of(n1, "g2", kCurveKeyTag).has_value(); }));
    first_key = *tag_of(n2, "g1", kCurveKeyTag);
    EXPECT_TRUE(transport::is_valid_curve_key(first_key));
    ASSERT_TRUE(eventually([&] { return probe.peers().request_blocking("echo-1", {{"x", 1}}, 5s).has_value(); }));
    n2.stop();
    n1.stop();
  }
  const std::string key_file = data_dir + "/curve.key";
  struct stat st {};
  ASSERT_EQ(::stat(key_file.c_str(), &st), 0) << key_file;
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(::stat(data_dir.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  {
    std::ifstream in(key_file);
    std::string secret;
    in >> secret;
    EXPECT_EQ(transport::curve_public_from_secret(secret), first_key);
  }

  // Restarted on the same data_dir: the same key.
  Mesh again(p2p_config(gossip_env("g1", data_dir), {}), fast_options());
  again.add<Echo>("echo-1");
  again.start();
  std::string drawn;
  std::uint16_t swim_port = 0, zmq_port = 0;
  {
    Mesh watcher(p2p_config(gossip_env("g3"), {seed_of(again)}), fast_options());
    watcher.start();
    swim_port = watcher.swim_port();
    zmq_port = watcher.zmq_port();
    ASSERT_TRUE(eventually([&] { return tag_of(watcher, "g1", kCurveKeyTag).has_value(); }));
    EXPECT_EQ(*tag_of(watcher, "g1", kCurveKeyTag), first_key);
    ASSERT_TRUE(eventually([&] { return tag_of(again, "g3", kCurveKeyTag).has_value(); }));
    drawn = *tag_of(again, "g3", kCurveKeyTag);
    watcher.stop();
  }
  // A node without a data_dir comes back under its name (and ports: a name
  // that left is not taken over from another address at once) with a new
  // key: its gossip carries it, and the others reach it again.
  NodeConfig back_config = p2p_config(gossip_env("g3"), {seed_of(again)});
  back_config.swim_port = swim_port;
  back_config.zmq_port = zmq_port;
  Mesh back(back_config, fast_options());
  auto& probe = back.add<Probe>("probe-3");
  back.start();
  ASSERT_TRUE(eventually([&] {
    const auto key = tag_of(again, "g3", kCurveKeyTag);
    return key.has_value() && *key != drawn;
  }));
  ASSERT_TRUE(eventually([&] { return probe.peers().request_blocking("echo-1", {{"x", 3}}, 5s).has_value(); }));
  back.stop();
  again.stop();
}

// A data_dir that exists keeps the mode its owner gave it (it may be
// shared); only the key file is private.
TEST(MeshSecureByDefault, AnExistingDataDirKeepsItsMode) {
  ScratchDir dir;
  ASSERT_FALSE(dir.path.empty());
  ASSERT_EQ(::chmod(dir.path.c_str(), 0755), 0);
  {
    Mesh m(p2p_config(gossip_env("kept", dir.path), {}), fast_options());
    m.start();
    m.stop();
  }
  struct stat st {};
  ASSERT_EQ(::stat(dir.path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0755u);
  ASSERT_EQ(::stat((dir.path + "/curve.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST(MeshSecureByDefault, ABadKeyFileStopsTheStartNamingIt) {
  ScratchDir dir;
  ASSERT_FALSE(dir.path.empty());
  {
    std::ofstream out(dir.path + "/curve.key");
    out << "not a key\n";
  }
  try {
    Mesh m(p2p_config(gossip_env("bad", dir.path), {}), fast_options());
    FAIL() << "a Mesh started on a broken key file";
  } catch (const std::invalid_argument& e) {  // mesh-node: exit 2, a configuration error
    EXPECT_EQ(std::string(e.what()), "data_dir: " + dir.path + "/curve.key: not a Z85 CURVE secret key");
  }
}

// Captures what the Mesh logs through spdlog's default logger.
class LogCapture {
 public:
  LogCapture() : previous_(spdlog::default_logger()) {
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out_);
    spdlog::set_default_logger(std::make_shared<spdlog::logger>("capture", sink));
  }
  ~LogCapture() { spdlog::set_default_logger(previous_); }
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;
  std::size_t count(std::string_view needle) const {
    const std::string text = out_.str();
    std::size_t n = 0;
    for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
    return n;
  }
  std::string text() const { return out_.str(); }

 private:
  std::ostringstream out_;
  std::shared_ptr<spdlog::logger> previous_;
};

// The warning appears once for a P2P node without a gossip key, and never
// when P2P is off or a gossip key is set.
TEST(MeshSecureByDefault, TheInsecureStartWarningAppearsExactlyWhenItShould) {
  constexpr std::string_view kWarning = "traffic is NOT authenticated";
  constexpr std::string_view kGossipWarning = "gossip is NOT authenticated";
  {
    LogCapture log;
    Mesh open(p2p_config("open", {}, std::nullopt), fast_options());
    open.start();
    open.stop();
    EXPECT_EQ(log.count(kWarning), 1u) << log.text();
  }
  {
    LogCapture log;
    Mesh keyed(p2p_config(gossip_env("keyed"), {}), fast_options());
    keyed.start();
    keyed.stop();
    EXPECT_EQ(log.count(kWarning), 0u) << log.text();
    EXPECT_EQ(log.count(kGossipWarning), 0u) << log.text();
    EXPECT_EQ(log.count("CURVE with a key pair drawn for this run"), 1u) << log.text();
  }
  {
    LogCapture log;
    // CURVE configured by hand but no gossip key: the keys ride on forgeable gossip.
    Mesh half(p2p_config("half", {}, transport::generate_curve_keypair()), fast_options());
    half.start();
    half.stop();
    EXPECT_EQ(log.count(kWarning), 0u) << log.text();
    EXPECT_EQ(log.count(kGossipWarning), 1u) << log.text();
  }
  {
    LogCapture log;
    NodeConfig local;
    local.node_name = "local";
    Mesh m(local, fast_options());
    m.start();
    m.stop();
    EXPECT_EQ(log.count("NOT authenticated"), 0u) << log.text();
  }
}


// ---- who sent this: the sender agent --------------------------------------

transport::OutMessage message_as(const std::string& node, const std::string& target, const std::string& sender) {
  transport::OutMessage m;
  m.to = {node, target};
  m.sender_agent = sender;
  m.payload = Json::to_msgpack(Json{{"claim", "from " + sender}});  // a payload Echo would take
  return m;
}

// A member speaks only for the agents it holds: a notify or request naming
// an agent of another node, or one that nobody holds, is refused
// Unauthenticated, counted, and never reaches its target, while the
// member's own agents get through on the same connection.
TEST(MeshSenderIdentity, AMemberCannotSpeakForAnAgentItDoesNotHold) {
  Mesh n1(p2p_config(gossip_env("s1"), {}), fast_options());
  auto& echo = n1.add<Echo>("echo-1");
  n1.add<Echo>("other-1");
  n1.start();
  Mesh n2(p2p_config(gossip_env("s2"), {seed_of(n1)}), fast_options());
  auto& probe = n2.add<Probe>("probe-2");
  n2.start();
  ASSERT_TRUE(eventually([&] { return probe.peers().registry().contains("echo-1"); }));
  ASSERT_TRUE(eventually([&] { return echo.peers().registry().contains("probe-2"); }));
  ASSERT_TRUE(probe.peers().request_blocking("echo-1", {{"x", 1}}, 10s).has_value());

  transport::Transport& forger = *n2.transport_for_test();
  const auto before = n1.transport_for_test()->stats();
  for (const std::string sender : {"other-1", "ghost"}) {
    const auto reply = forger.request(message_as("s1", "echo-1", sender), 10s);
    EXPECT_EQ(reply.error, transport::ErrorCode::Unauthenticated) << sender;
    EXPECT_EQ(forger.notify(message_as("s1", "echo-1", sender)), transport::ErrorCode::None) << sender;
  }
  ASSERT_TRUE(eventually([&] { return n1.transport_for_test()->stats().frames_forged == before.frames_forged + 4; }))
      << n1.transport_for_test()->stats().frames_forged - before.frames_forged;
  // One from its own agent, after the forged ones on the same connection.
  ASSERT_TRUE(probe.peers().notify("echo-1", {{"claim", "from probe-2"}}));
  ASSERT_TRUE(eventually([&] { return echo.notify_count() == 1; }));
  std::this_thread::sleep_for(200ms);
  const auto got = echo.notifies_copy();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].sender, "probe-2");
  EXPECT_EQ(got[0].data["claim"], "from probe-2");
  EXPECT_EQ(n1.transport_for_test()->stats().frames_holding, 0u);
  n2.stop();
  n1.stop();
}

// An agent added a moment ago speaks before the node that receives it has
// heard of it (its registry version travels by gossip, here not at all):
// the message waits while that node's registry is fetched again, then is
// admitted.
TEST(MeshSenderIdentity, AMessageFromAnAgentNotYetKnownWaitsForItsRegistry) {
  Mesh n1(p2p_config(gossip_env("h1"), {}), fast_options());
  auto& echo = n1.add<Echo>("echo-1");
  n1.start();
  MeshOptions quiet = fast_options();
  quiet.tag_coalesce = 10min;  // card changes are not announced during the test
  Mesh n2(p2p_config(gossip_env("h2"), {seed_of(n1)}), quiet);
  auto& probe = n2.add<Probe>("probe-2");
  n2.start();
  ASSERT_TRUE(eventually([&] { return probe.peers().registry().contains("echo-1"); }));
  ASSERT_TRUE(eventually([&] { return echo.peers().registry().contains("probe-2"); }));

  auto& late = n2.add<Probe>("late-2");
  const auto held_before = n1.transport_for_test()->stats().frames_held;
  const auto answer = late.peers().request_blocking("echo-1", {{"x", 2}}, 20s);
  ASSERT_TRUE(answer.has_value());
  EXPECT_EQ(answer->data["by"], "echo-1");
  EXPECT_GT(n1.transport_for_test()->stats().frames_held, held_before);
  EXPECT_TRUE(echo.peers().registry().contains("late-2"));
  EXPECT_EQ(n1.transport_for_test()->stats().frames_holding, 0u);
  n2.stop();
  n1.stop();
}


// ---- gossip keys, rotated live ------------------------------------------

std::vector<Mesh::KeyResult> keys_on(Mesh& m, Mesh::KeyOp op, const std::string& key = {}) {
  std::promise<std::vector<Mesh::KeyResult>> p;
  auto f = p.get_future();
  m.keys_async(op, key, 5s, [&p](std::vector<Mesh::KeyResult> r) { p.set_value(std::move(r)); });
  if (f.wait_for(30s) != std::future_status::ready) return {};
  return f.get();
}

// Every member did it, and holds `keys` (primary first) afterwards.
void expect_everywhere(const std::vector<Mesh::KeyResult>& results, std::size_t members,
                       const std::vector<std::string>& keys) {
  ASSERT_EQ(results.size(), members);
  for (const auto& r : results) {
    EXPECT_TRUE(r.ok()) << r.node << ": " << r.error;
    EXPECT_EQ(r.keys, keys) << r.node;
  }
}

// serf keys' rotation across three nodes while one agent notifies another
// every few milliseconds: install the new key, make it primary, remove the
// old; every step done on every member, no node ever taken for dead, no
// notify lost. A node with a data_dir comes back after a restart with the
// rotated keys although its configuration still names the old one.
TEST(MeshGossipKeys, ARotationAcrossThreeNodesLosesNothing) {
  constexpr char kNewKey[] = "2Yl0jyCkZ6lDYFsMwbGHNT0YVh2WV5l1Lz4bQ6tNp1k=";  // 32 bytes
  ScratchDir dir;
  ASSERT_FALSE(dir.path.empty());
  const std::string data_dir = dir.path + "/k1";
  Mesh n1(p2p_config(gossip_env("k1", data_dir), {}), fast_options());
  auto& echo = n1.add<Echo>("echo-1");
  n1.start();
  Mesh n2(p2p_config(gossip_env("k2"), {seed_of(n1)}), fast_options());
  n2.start();
  Mesh n3(p2p_config(gossip_env("k3"), {seed_of(n1)}), fast_options());
  auto& talker = n3.add<Probe>("talker-3");
  n3.start();
  std::atomic<int> lost_nodes{0};
  for (Mesh* m : {&n1, &n2, &n3}) {
    m->node_client().subscribe([&](const PeerEvent& e) {
      if (e.kind == PeerEventKind::NodeDead || e.kind == PeerEventKind::NodeLeft) ++lost_nodes;
    });
  }
  ASSERT_TRUE(eventually([&] { return talker.peers().registry().contains("echo-1"); }));
  ASSERT_TRUE(eventually([&] { return n2.membership_for_test()->members().size() == 3; }));

  std::atomic<bool> talking{true};
  std::atomic<int> sent{0};
  std::atomic<int> refused{0};
  std::thread stream([&] {
    for (int i = 0; talking && i < 20000; ++i) {
      (talker.peers().notify("echo-1", {{"i", i}}) ? sent : refused)++;
      std::this_thread::sleep_for(3ms);
    }
  });

  expect_everywhere(keys_on(n2, Mesh::KeyOp::List), 3, {kGossipKey});
  expect_everywhere(keys_on(n2, Mesh::KeyOp::Install, kNewKey), 3, {kGossipKey, kNewKey});
  std::this_thread::sleep_for(300ms);  // gossip goes on under both keys
  expect_everywhere(keys_on(n3, Mesh::KeyOp::Use, kNewKey), 3, {kNewKey, kGossipKey});
  std::this_thread::sleep_for(300ms);
  // The primary cannot go: each member says so.
  for (const auto& r : keys_on(n1, Mesh::KeyOp::Remove, kNewKey)) {
    EXPECT_NE(r.error.find("primary key cannot be removed"), std::string::npos) << r.node << ": " << r.error;
  }
  expect_everywhere(keys_on(n1, Mesh::KeyOp::Remove, kGossipKey), 3, {kNewKey});
  std::this_thread::sleep_for(2s);  // probes and gossip under the new key alone
  talking = false;
  stream.join();
  EXPECT_GT(sent.load(), 100);
  EXPECT_EQ(refused.load(), 0);
  ASSERT_TRUE(eventually([&] { return echo.notify_count() == static_cast<std::size_t>(sent.load()); }))
      << echo.notify_count() << " of " << sent.load();
  EXPECT_EQ(talker.peers().delivery_stats().notifies_failed, 0u);
  EXPECT_EQ(lost_nodes.load(), 0);
  // Nobody dead or gone. (A member may be suspect for a moment on a loaded
  // machine: a probe answered late is not a death, and the test is about
  // deaths.)
  for (Mesh* m : {&n1, &n2, &n3}) {
    for (const auto& info : m->membership_for_test()->members()) {
      EXPECT_TRUE(info.member.state == swim::MemberState::Alive || info.member.state == swim::MemberState::Suspect)
          << m->node_name() << " sees " << info.member.name << " " << swim::to_string(info.member.state);
    }
  }
  EXPECT_THROW(n1.keys_async(Mesh::KeyOp::Install, "not base64", 1s, [](auto) {}), std::invalid_argument);

  // n1 kept its keyring: restarted with the old key configured, it uses the
  // new one, and rejoins.
  // (On its ports: a name that left is not taken over from another
  // address at once.)
  NodeConfig back = p2p_config(gossip_env("k1", data_dir), {seed_of(n2)});
  back.swim_port = n1.swim_port();
  back.zmq_port = n1.zmq_port();
  n1.stop();
  Mesh again(back, fast_options());
  again.start();
  const auto own = keys_on(again, Mesh::KeyOp::List);
  ASSERT_FALSE(own.empty());
  EXPECT_EQ(own.front().node, "k1");
  EXPECT_EQ(own.front().keys, std::vector<std::string>{kNewKey});
  ASSERT_TRUE(eventually([&] {
    const auto members = n2.membership_for_test()->members();
    return std::any_of(members.begin(), members.end(), [](const swim::MemberInfo& i) {
      return i.member.name == "k1" && i.member.state == swim::MemberState::Alive;
    });
  }));
  again.stop();
  n3.stop();
  n2.stop();
}


// ---- signed registries ------------------------------------------------------

// A node whose registry is not signed by the key its gossip names ("skey")
// gets none of its cards into any directory, and is counted; an honest
// node's cards enter as usual.
TEST(MeshSignedRegistry, ACardWithABadSignatureEntersNoDirectory) {
  Mesh n1(p2p_config(gossip_env("r1"), {}), fast_options());
  auto& watcher = n1.add<Probe>("watcher-1");
  n1.start();
  Mesh liar(p2p_config(gossip_env("r2"), {seed_of(n1)}), fast_options());
  liar.add<Echo>("forged-2");
  liar.sign_registry_with_for_test(transport::generate_curve_keypair().secret_key);
  liar.start();
  Mesh honest(p2p_config(gossip_env("r3"), {seed_of(n1)}), fast_options());
  auto& other = honest.add<Echo>("honest-3");
  honest.start();
  ASSERT_TRUE(eventually([&] { return watcher.peers().registry().contains("honest-3"); }));
  ASSERT_TRUE(eventually([&] { return other.peers().registry().contains("watcher-1"); }));
  ASSERT_TRUE(eventually([&] {
    return n1.stats().registry_bad_signatures >= 1 && honest.stats().registry_bad_signatures >= 1;
  }));
  EXPECT_TRUE(tag_of(n1, "r2", "skey").has_value());
  EXPECT_FALSE(watcher.peers().registry().contains("forged-2"));
  EXPECT_FALSE(other.peers().registry().contains("forged-2"));
  // Nor can it speak as the agent nobody lists.
  transport::OutMessage m = message_as("r1", "watcher-1", "forged-2");
  EXPECT_EQ(liar.transport_for_test()->request(std::move(m), 10s).error, transport::ErrorCode::Unauthenticated);
  honest.stop();
  liar.stop();
  n1.stop();
}

}  // namespace
}  // namespace mesh
