// NodeConfig: every key from every source (YAML file, environment, flags),
// the precedence between them, derived defaults, and the exact one-line
// message of every configuration error.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "mesh/cli.hpp"
#include "mesh/node_config.hpp"

namespace mesh {
namespace {

using Args = std::vector<std::string>;

// A YAML file in a private temporary directory, removed afterwards.
class TempFile {
 public:
  explicit TempFile(const std::string& text) {
    std::string dir_template =
        (std::filesystem::temp_directory_path() / "mesh-config-XXXXXX").string();
    dir_ = ::mkdtemp(dir_template.data());
    path_ = dir_ + "/node.yaml";
    std::ofstream(path_) << text;
  }
  ~TempFile() { std::filesystem::remove_all(dir_); }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string dir_;
  std::string path_;
};

NodeConfig load(const Args& args, const Environment& env = {}) {
  return load_node_config(args, env);
}

// The message of the ConfigError that loading throws ("" if none).
std::string error_of(const Args& args, const Environment& env = {}) {
  try {
    load_node_config(args, env);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

std::string file_error(const std::string& yaml, const std::string& expected_tail) {
  TempFile f(yaml);
  const std::string msg = error_of({"--config", f.path()});
  const std::string prefix = "config file " + f.path() + ": ";
  if (msg.rfind(prefix, 0) != 0) return "wrong prefix: " + msg;
  const std::string tail = msg.substr(prefix.size());
  return tail == expected_tail ? "" : "got: " + tail;
}

// --- defaults --------------------------------------------------------------

TEST(NodeConfigTest, DefaultsWithNoSources) {
  const NodeConfig c = load({});
  EXPECT_EQ(c.node_name, local_hostname() + "-7946");
  EXPECT_EQ(c.swim_host, "0.0.0.0");
  EXPECT_EQ(c.swim_port, 7946);
  EXPECT_TRUE(c.seeds.empty());
  EXPECT_EQ(c.advertise_host, "");
  EXPECT_EQ(c.advertise_port, 0);
  EXPECT_EQ(c.profile, swim::Profile::Lan);
  EXPECT_EQ(c.log_level, LogLevel::Info);
  EXPECT_EQ(c.admin_host, "127.0.0.1");
  EXPECT_EQ(c.admin_port, 9946);
  EXPECT_TRUE(c.tags.empty());
  EXPECT_TRUE(c.gossip_key.empty());
  EXPECT_EQ(c.zmq_port, 8946);
  EXPECT_FALSE(c.p2p_enabled);
  EXPECT_EQ(c.config_file, "");
  // Only the derived name has a source; everything else kept its default.
  EXPECT_EQ(c.sources.size(), 1u);
  EXPECT_EQ(c.sources.at("node_name"), "derived from hostname and swim_port");
}

TEST(NodeConfigTest, DerivedPortsFollowSwimPortFromAnySource) {
  EXPECT_EQ(load({}, {{"JC_SWIM_PORT", "8000"}}).admin_port, 10000);
  EXPECT_EQ(load({}, {{"JC_SWIM_PORT", "8000"}}).zmq_port, 9000);
  EXPECT_EQ(load({"--swim-port", "8000"}).node_name, local_hostname() + "-8000");
  const NodeConfig c = load({"--swim-port=7000"});
  EXPECT_EQ(c.sources.at("admin_port"), "derived from swim_port");
  EXPECT_EQ(c.sources.at("zmq_port"), "derived from swim_port");
}

TEST(NodeConfigTest, ExplicitPortsAreNotDerived) {
  const NodeConfig c = load({"--swim-port", "8000", "--admin-port", "8500", "--zmq-port", "8600"});
  EXPECT_EQ(c.admin_port, 8500);
  EXPECT_EQ(c.zmq_port, 8600);
  // Set explicitly in a lower source, still not derived from a higher one.
  TempFile f("admin_port: 12000\n");
  EXPECT_EQ(load({"--config", f.path(), "--swim-port", "8000"}).admin_port, 12000);
}

// --- every key from the environment ---------------------------------------

TEST(NodeConfigTest, EveryKeyFromEnvironment) {
  const Environment env = {
      {"JC_NODE_NAME", "alpha"},
      {"JC_SWIM_HOST", "127.0.0.1"},
      {"JC_SWIM_PORT", "7000"},
      {"JC_SEED_NODES", "10.0.0.1:7946, seed.example.com:8000,[::1]:7000,bare-host"},
      {"JC_ADVERTISE_HOST", "192.168.1.5"},
      {"JC_ADVERTISE_PORT", "17000"},
      {"JC_PROFILE", "wan"},
      {"JC_LOG_LEVEL", "debug"},
      {"JC_ADMIN_HOST", "::1"},
      {"JC_ADMIN_PORT", "9100"},
      {"JC_TAGS", "role=worker, dc=east,empty="},
      {"JC_GOSSIP_KEY", "AAECAwQFBgcICQoLDA0ODw=="},
      {"JC_ZMQ_PORT", "9200"},
      {"P2P_ENABLED", "yes"},
  };
  const NodeConfig c = load({}, env);
  EXPECT_EQ(c.node_name, "alpha");
  EXPECT_EQ(c.swim_host, "127.0.0.1");
  EXPECT_EQ(c.swim_port, 7000);
  EXPECT_EQ(c.seeds, (std::vector<std::string>{"10.0.0.1:7946", "seed.example.com:8000",
                                               "[::1]:7000", "bare-host:7946"}));
  EXPECT_EQ(c.advertise_host, "192.168.1.5");
  EXPECT_EQ(c.advertise_port, 17000);
  EXPECT_EQ(c.profile, swim::Profile::Wan);
  EXPECT_EQ(c.log_level, LogLevel::Debug);
  EXPECT_EQ(c.admin_host, "::1");
  EXPECT_EQ(c.admin_port, 9100);
  EXPECT_EQ(c.tags, (std::map<std::string, std::string>{
                        {"role", "worker"}, {"dc", "east"}, {"empty", ""}}));
  ASSERT_EQ(c.gossip_key.size(), 16u);
  for (std::size_t i = 0; i < 16; ++i) EXPECT_EQ(c.gossip_key[i], i);
  EXPECT_EQ(c.zmq_port, 9200);
  EXPECT_TRUE(c.p2p_enabled);
  for (const auto& [key, env_name] : std::map<std::string, std::string>{
           {"node_name", "JC_NODE_NAME"}, {"swim_port", "JC_SWIM_PORT"},
           {"seeds", "JC_SEED_NODES"}, {"p2p_enabled", "P2P_ENABLED"}}) {
    EXPECT_EQ(c.sources.at(key), env_name) << key;
  }
}

TEST(NodeConfigTest, EmptyEnvironmentVariablesCountAsUnset) {
  const NodeConfig c = load({}, {{"JC_SWIM_PORT", ""}, {"JC_SEED_NODES", ""}, {"JC_PROFILE", ""}});
  EXPECT_EQ(c.swim_port, 7946);
  EXPECT_TRUE(c.seeds.empty());
  EXPECT_EQ(c.profile, swim::Profile::Lan);
}

TEST(NodeConfigTest, UnrelatedEnvironmentIsIgnored) {
  EXPECT_EQ(load({}, {{"PATH", "/bin"}, {"JC_UNKNOWN", "x"}}).swim_port, 7946);
}

TEST(NodeConfigTest, BooleansAndGossipKeySizes) {
  for (const char* t : {"true", "TRUE", "1", "yes", "Yes"}) {
    EXPECT_TRUE(load({}, {{"P2P_ENABLED", t}}).p2p_enabled) << t;
  }
  for (const char* f : {"false", "False", "0", "no"}) {
    EXPECT_FALSE(load({}, {{"P2P_ENABLED", f}}).p2p_enabled) << f;
  }
  // 24 and 32 bytes (serf keygen makes 32).
  EXPECT_EQ(load({}, {{"JC_GOSSIP_KEY", std::string(32, 'A')}}).gossip_key.size(), 24u);
  EXPECT_EQ(load({}, {{"JC_GOSSIP_KEY", "cg8StVXbQJ0gPvMd9o7yrg9pswE6XDmJNQnIvB5cP9s="}})
                .gossip_key.size(),
            32u);
}

TEST(NodeConfigTest, ProfilesAndLogLevels) {
  EXPECT_EQ(load({}, {{"JC_PROFILE", "local"}}).profile, swim::Profile::Local);
  EXPECT_EQ(load({}, {{"JC_PROFILE", "LAN"}}).profile, swim::Profile::Lan);
  const std::vector<std::pair<std::string, LogLevel>> levels = {
      {"trace", LogLevel::Trace}, {"debug", LogLevel::Debug}, {"info", LogLevel::Info},
      {"warn", LogLevel::Warn},   {"error", LogLevel::Error}, {"off", LogLevel::Off}};
  for (const auto& [name, level] : levels) {
    EXPECT_EQ(load({"--log-level", name}).log_level, level) << name;
    EXPECT_EQ(to_string(level), name);
  }
}

// --- every key from flags --------------------------------------------------

TEST(NodeConfigTest, EveryKeyFromFlags) {
  const NodeConfig c = load({"--node-name", "beta", "--swim-host", "[::]", "--swim-port", "7100",
                             "--seeds", "a:1,b:2", "--advertise-host", "[fe80::1]",
                             "--advertise-port", "7101", "--profile", "local", "--log-level",
                             "warn", "--admin-host", "0.0.0.0", "--admin-port", "7102", "--tags",
                             "k=v", "--gossip-key", "AAECAwQFBgcICQoLDA0ODw==", "--zmq-port",
                             "7103", "--p2p-enabled", "true"});
  EXPECT_EQ(c.node_name, "beta");
  EXPECT_EQ(c.swim_host, "::");
  EXPECT_EQ(c.swim_port, 7100);
  EXPECT_EQ(c.seeds, (std::vector<std::string>{"a:1", "b:2"}));
  EXPECT_EQ(c.advertise_host, "fe80::1");
  EXPECT_EQ(c.advertise_port, 7101);
  EXPECT_EQ(c.profile, swim::Profile::Local);
  EXPECT_EQ(c.log_level, LogLevel::Warn);
  EXPECT_EQ(c.admin_host, "0.0.0.0");
  EXPECT_EQ(c.admin_port, 7102);
  EXPECT_EQ(c.tags, (std::map<std::string, std::string>{{"k", "v"}}));
  EXPECT_EQ(c.gossip_key.size(), 16u);
  EXPECT_EQ(c.zmq_port, 7103);
  EXPECT_TRUE(c.p2p_enabled);
  EXPECT_EQ(c.sources.at("swim_port"), "--swim-port");
  EXPECT_EQ(c.sources.at("tags"), "--tags");
}

TEST(NodeConfigTest, FlagsWithEqualsAndLastOneWins) {
  const NodeConfig c = load({"--swim-port=7200", "--swim-port", "7300", "--node-name=a=b"});
  EXPECT_EQ(c.swim_port, 7300);
  EXPECT_EQ(c.node_name, "a=b");
}

TEST(NodeConfigTest, EmptyFlagValuesClearListsAndKey) {
  const NodeConfig c = load({"--seeds=", "--tags=", "--gossip-key=", "--advertise-host="},
                            {{"JC_SEED_NODES", "a:1"}, {"JC_TAGS", "a=b"},
                             {"JC_GOSSIP_KEY", "AAECAwQFBgcICQoLDA0ODw=="},
                             {"JC_ADVERTISE_HOST", "10.0.0.1"}});
  EXPECT_TRUE(c.seeds.empty());
  EXPECT_TRUE(c.tags.empty());
  EXPECT_TRUE(c.gossip_key.empty());
  EXPECT_EQ(c.advertise_host, "");
}

// --- every key from a YAML file -------------------------------------------

TEST(NodeConfigTest, EveryKeyFromFile) {
  TempFile f(R"(
node_name: gamma
swim_host: 10.1.2.3
swim_port: 7400
seeds:
  - 10.0.0.1:7946
  - "[2001:db8::1]:7946"
advertise_host: 203.0.113.7
advertise_port: 17400
profile: local
log_level: error
admin_host: 127.0.0.2
admin_port: 7401
tags:
  role: db
  zone: "a"
gossip_key: AAECAwQFBgcICQoLDA0ODw==
zmq_port: 7402
p2p_enabled: true
)");
  const NodeConfig c = load({"--config", f.path()});
  EXPECT_EQ(c.node_name, "gamma");
  EXPECT_EQ(c.swim_host, "10.1.2.3");
  EXPECT_EQ(c.swim_port, 7400);
  EXPECT_EQ(c.seeds, (std::vector<std::string>{"10.0.0.1:7946", "[2001:db8::1]:7946"}));
  EXPECT_EQ(c.advertise_host, "203.0.113.7");
  EXPECT_EQ(c.advertise_port, 17400);
  EXPECT_EQ(c.profile, swim::Profile::Local);
  EXPECT_EQ(c.log_level, LogLevel::Error);
  EXPECT_EQ(c.admin_host, "127.0.0.2");
  EXPECT_EQ(c.admin_port, 7401);
  EXPECT_EQ(c.tags, (std::map<std::string, std::string>{{"role", "db"}, {"zone", "a"}}));
  EXPECT_EQ(c.gossip_key.size(), 16u);
  EXPECT_EQ(c.zmq_port, 7402);
  EXPECT_TRUE(c.p2p_enabled);
  EXPECT_EQ(c.config_file, f.path());
  EXPECT_EQ(c.sources.at("swim_port"), "config file " + f.path());
}

TEST(NodeConfigTest, FileAcceptsStringFormsAndNulls) {
  TempFile f("seeds: a:1,b:2\ntags: x=1,y=2\nadvertise_host:\nprofile: ~\n# only a comment\n");
  const NodeConfig c = load({"--config", f.path()});
  EXPECT_EQ(c.seeds, (std::vector<std::string>{"a:1", "b:2"}));
  EXPECT_EQ(c.tags, (std::map<std::string, std::string>{{"x", "1"}, {"y", "2"}}));
  EXPECT_EQ(c.advertise_host, "");
  EXPECT_EQ(c.profile, swim::Profile::Lan);
  EXPECT_EQ(c.sources.count("profile"), 0u);
}

TEST(NodeConfigTest, EmptyFileSetsNothing) {
  TempFile f("# nothing here\n");
  const NodeConfig c = load({"--config", f.path()});
  EXPECT_EQ(c.swim_port, 7946);
  EXPECT_EQ(c.config_file, f.path());
}

TEST(NodeConfigTest, ExampleFileInConfIsValid) {
  const NodeConfig c = load({"--config", std::string(MESH_SOURCE_DIR) + "/conf/mesh.yaml"});
  EXPECT_EQ(c.swim_port, 7946);
  EXPECT_EQ(c.profile, swim::Profile::Lan);
}

// --- precedence: defaults < file < environment < flags --------------------

TEST(NodeConfigTest, PrecedenceFileEnvironmentFlags) {
  TempFile f("swim_port: 7001\nprofile: wan\nlog_level: debug\nnode_name: from-file\n");
  const Environment env = {{"JC_PROFILE", "local"}, {"JC_LOG_LEVEL", "error"}};
  const NodeConfig c = load({"--config", f.path(), "--log-level", "trace"}, env);
  EXPECT_EQ(c.swim_port, 7001);                   // file only
  EXPECT_EQ(c.node_name, "from-file");            // file only
  EXPECT_EQ(c.profile, swim::Profile::Local);     // env over file
  EXPECT_EQ(c.log_level, LogLevel::Trace);        // flag over env over file
  EXPECT_EQ(c.sources.at("swim_port"), "config file " + f.path());
  EXPECT_EQ(c.sources.at("profile"), "JC_PROFILE");
  EXPECT_EQ(c.sources.at("log_level"), "--log-level");
  // The flag order does not matter: --config is read first.
  EXPECT_EQ(load({"--log-level", "trace", "--config", f.path()}, env).log_level, LogLevel::Trace);
}

TEST(NodeConfigTest, HigherSourceReplacesListsWholesale) {
  TempFile f("seeds: [a:1, b:2]\ntags: {x: '1'}\n");
  const NodeConfig c = load({"--config", f.path()}, {{"JC_SEED_NODES", "c:3"}, {"JC_TAGS", "y=2"}});
  EXPECT_EQ(c.seeds, (std::vector<std::string>{"c:3"}));
  EXPECT_EQ(c.tags, (std::map<std::string, std::string>{{"y", "2"}}));
}

TEST(NodeConfigTest, ErrorInLowerSourceIsReportedEvenIfOverridden) {
  // Every source is validated: a typo in the file is not hidden by a flag.
  TempFile f("swim_port: nope\n");
  EXPECT_EQ(error_of({"--config", f.path(), "--swim-port", "7000"}),
            "config file " + f.path() + ": swim_port: \"nope\" is not a port (1-65535)");
}

// --- error messages: one line, the setting, the source, the value ---------

TEST(NodeConfigErrorTest, Ports) {
  EXPECT_EQ(error_of({}, {{"JC_SWIM_PORT", "70000"}}),
            "JC_SWIM_PORT: \"70000\" is not a port (1-65535)");
  EXPECT_EQ(error_of({}, {{"JC_SWIM_PORT", "0"}}), "JC_SWIM_PORT: \"0\" is not a port (1-65535)");
  EXPECT_EQ(error_of({"--swim-port", "-1"}), "--swim-port: \"-1\" is not a port (1-65535)");
  EXPECT_EQ(error_of({"--admin-port", "80a"}), "--admin-port: \"80a\" is not a port (1-65535)");
  EXPECT_EQ(error_of({}, {{"JC_ADVERTISE_PORT", "99999"}}),
            "JC_ADVERTISE_PORT: \"99999\" is not a port (1-65535)");
  EXPECT_EQ(error_of({}, {{"JC_ZMQ_PORT", "x"}}), "JC_ZMQ_PORT: \"x\" is not a port (1-65535)");
  EXPECT_EQ(error_of({}, {{"JC_ADMIN_PORT", "123456"}}),
            "JC_ADMIN_PORT: \"123456\" is not a port (1-65535)");
  EXPECT_EQ(error_of({"--zmq-port="}), "--zmq-port: \"\" is not a port (1-65535)");
}

TEST(NodeConfigErrorTest, DerivedPortOutOfRange) {
  EXPECT_EQ(error_of({"--swim-port", "64000"}),
            "admin_port: swim_port 64000 + 2000 = 66000 is not a port (1-65535); "
            "set JC_ADMIN_PORT or --admin-port");
  EXPECT_EQ(error_of({"--swim-port", "65000", "--admin-port", "9000"}),
            "zmq_port: swim_port 65000 + 1000 = 66000 is not a port (1-65535); "
            "set JC_ZMQ_PORT or --zmq-port");
  EXPECT_EQ(error_of({"--swim-port", "65000", "--admin-port", "9000", "--zmq-port", "9001"}), "");
}

TEST(NodeConfigErrorTest, PortCollisions) {
  EXPECT_EQ(error_of({"--admin-port", "7946"}), "--admin-port: 7946 is also the swim_port");
  EXPECT_EQ(error_of({}, {{"JC_ZMQ_PORT", "9946"}}), "JC_ZMQ_PORT: 9946 is also the admin_port");
  EXPECT_EQ(error_of({"--swim-port", "8946"}, {}),
            "");  // derived ports move with it: 10946 and 9946
  TempFile f("zmq_port: 7946\n");
  EXPECT_EQ(error_of({"--config", f.path()}),
            "config file " + f.path() + ": zmq_port: 7946 is also the swim_port");
}

TEST(NodeConfigErrorTest, Profile) {
  EXPECT_EQ(error_of({"--profile", "moon"}), "--profile: unknown profile \"moon\" (lan, wan, local)");
  EXPECT_EQ(error_of({}, {{"JC_PROFILE", "fast"}}),
            "JC_PROFILE: unknown profile \"fast\" (lan, wan, local)");
}

TEST(NodeConfigErrorTest, LogLevel) {
  EXPECT_EQ(error_of({}, {{"JC_LOG_LEVEL", "loud"}}),
            "JC_LOG_LEVEL: unknown log level \"loud\" (trace, debug, info, warn, error, off)");
}

TEST(NodeConfigErrorTest, Hosts) {
  EXPECT_EQ(error_of({}, {{"JC_ADVERTISE_HOST", "0.0.0.0"}}),
            "JC_ADVERTISE_HOST: 0.0.0.0 cannot be advertised");
  EXPECT_EQ(error_of({"--advertise-host", "::"}), "--advertise-host: :: cannot be advertised");
  EXPECT_EQ(error_of({"--advertise-host", "example.com"}),
            "--advertise-host: \"example.com\" is not an IP address");
  EXPECT_EQ(error_of({}, {{"JC_SWIM_HOST", "1.2.3"}}),
            "JC_SWIM_HOST: \"1.2.3\" is not an IP address");
  EXPECT_EQ(error_of({}, {{"JC_ADMIN_HOST", "localhost"}}),
            "JC_ADMIN_HOST: \"localhost\" is not an IP address");
}

TEST(NodeConfigErrorTest, Seeds) {
  EXPECT_EQ(error_of({}, {{"JC_SEED_NODES", "a:1,b:99999"}}),
            "JC_SEED_NODES: \"b:99999\": \"99999\" is not a port (1-65535)");
  EXPECT_EQ(error_of({}, {{"JC_SEED_NODES", "::1:7946"}}),
            "JC_SEED_NODES: \"::1:7946\": write an IPv6 seed as [address]:port");
  EXPECT_EQ(error_of({"--seeds", "[::1"}), "--seeds: \"[::1\": missing ']' after IPv6 address");
  EXPECT_EQ(error_of({"--seeds", "[10.0.0.1]:1"}),
            "--seeds: \"[10.0.0.1]:1\": not an IPv6 address inside [ ]");
  EXPECT_EQ(error_of({"--seeds", "[::1]7946"}), "--seeds: \"[::1]7946\": expected :port after ']'");
  EXPECT_EQ(error_of({"--seeds", "host:"}), "--seeds: \"host:\": missing port after ':'");
  EXPECT_EQ(error_of({"--seeds", "bad host:1"}), "--seeds: \"bad host:1\": not a host:port");
}

TEST(NodeConfigErrorTest, Tags) {
  EXPECT_EQ(error_of({}, {{"JC_TAGS", "role"}}), "JC_TAGS: \"role\" is not key=value");
  EXPECT_EQ(error_of({}, {{"JC_TAGS", "=x"}}), "JC_TAGS: empty tag name in \"=x\"");
  EXPECT_EQ(error_of({}, {{"JC_TAGS", "a=1,a=2"}}), "JC_TAGS: tag \"a\" given twice");
  const std::string big = "big=" + std::string(600, 'x');
  EXPECT_EQ(error_of({"--tags", big}), "--tags: tags take 609 bytes in node meta, at most 512");
}

TEST(NodeConfigErrorTest, GossipKey) {
  // 20 bytes of zeros, in base64.
  EXPECT_EQ(error_of({}, {{"JC_GOSSIP_KEY", "AAAAAAAAAAAAAAAAAAAAAAAAAAA="}}),
            "JC_GOSSIP_KEY: key is 20 bytes, must be 16, 24 or 32");
  EXPECT_EQ(error_of({"--gossip-key", "not*base64!"}), "--gossip-key: key is not valid base64");
  EXPECT_EQ(error_of({"--gossip-key", "AAECAwQFBgcICQoLDA0ODw"}),
            "--gossip-key: key is not valid base64");  // padding missing
  EXPECT_EQ(error_of({"--gossip-key", "AA=CAwQFBgcICQoLDA0ODw=="}),
            "--gossip-key: key is not valid base64");  // data after padding
}

TEST(NodeConfigErrorTest, SecretsAreNeverEchoed) {
  const std::string secret = "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0";  // 30 bytes
  EXPECT_EQ(error_of({}, {{"JC_GOSSIP_KEY", secret}}).find(secret), std::string::npos);
}

TEST(NodeConfigErrorTest, Booleans) {
  EXPECT_EQ(error_of({}, {{"P2P_ENABLED", "maybe"}}),
            "P2P_ENABLED: \"maybe\" is not a boolean (true, false, 1, 0, yes, no)");
}

TEST(NodeConfigErrorTest, NodeName) {
  EXPECT_EQ(error_of({"--node-name="}), "--node-name: node name must not be empty");
  EXPECT_EQ(error_of({}, {{"JC_NODE_NAME", "a\nb"}}),
            "JC_NODE_NAME: \"a\\x0ab\": node name contains control characters");
  EXPECT_EQ(error_of({"--node-name", std::string(257, 'n')}),
            "--node-name: \"" + std::string(80, 'n') + "...\": node name is 257 bytes long (at most 256)");
  // Bytes that are not UTF-8 are named, never echoed raw (the message may
  // end up in JSON, which must be UTF-8).
  EXPECT_EQ(error_of({}, {{"JC_NODE_NAME", "\xff"}}), "JC_NODE_NAME: \"\\xff\": node name is not valid UTF-8");
}

TEST(NodeConfigErrorTest, TagsMustBeText) {
  EXPECT_EQ(error_of({"--tags", "role=a\tb"}), "--tags: tag \"role\": tag value contains control characters");
  EXPECT_EQ(error_of({"--tags", "r\xffle=x"}), "--tags: \"r\\xffle\": tag name is not valid UTF-8");
}

TEST(NodeConfigErrorTest, CommandLine) {
  EXPECT_EQ(error_of({"--swim-prot", "1"}), "--swim-prot: unknown option (did you mean --swim-port?)");
  EXPECT_EQ(error_of({"--bogus=1"}), "--bogus: unknown option");
  EXPECT_EQ(error_of({"--swim-port"}), "--swim-port: missing value");
  EXPECT_EQ(error_of({"--node-name", "--swim-port", "1"}), "--node-name: missing value");
  EXPECT_EQ(error_of({"stray"}), "\"stray\": unexpected argument");
  EXPECT_EQ(error_of({"--help"}), "--help: unknown option");  // programs add their own
  EXPECT_EQ(error_of({"--config"}), "--config: missing value");
  EXPECT_EQ(error_of({"--config", "a", "--config", "b"}), "--config: given twice");
  EXPECT_EQ(error_of({"--config="}), "--config: missing value");
  // The last value of a setting given twice wins; --key=value is the same
  // as --key value; an empty value resets a setting.
  EXPECT_EQ(load({"--node-name", "a", "--node-name=b"}).node_name, "b");
  EXPECT_EQ(load({"--advertise-host", "10.0.0.1", "--advertise-host="}).advertise_host, "");
}

TEST(NodeConfigErrorTest, ConfigFile) {
  EXPECT_EQ(error_of({"--config", "/nonexistent/x.yaml"}),
            "config file /nonexistent/x.yaml: cannot read (No such file or directory)");
  const std::string dir = std::filesystem::temp_directory_path().string();
  EXPECT_EQ(error_of({"--config", dir}), "config file " + dir + ": cannot read (Is a directory)");
  EXPECT_EQ(file_error("swim_prot: 1\n", "unknown key \"swim_prot\""), "");
  EXPECT_EQ(file_error("- a\n- b\n", "expected a map of settings at the top level"), "");
  EXPECT_EQ(file_error("swim_port: [1, 2]\n", "swim_port: expected a single value"), "");
  EXPECT_EQ(file_error("seeds: {a: 1}\n", "seeds: expected a single value or a list"), "");
  EXPECT_EQ(file_error("seeds: [[a]]\n", "seeds: each seed must be a host:port string"), "");
  EXPECT_EQ(file_error("seeds: ['a:1,b:2']\n", "seeds: \"a:1,b:2\": one seed per list item"), "");
  EXPECT_EQ(file_error("tags: {a: [1]}\n", "tags: tags must map names to strings"), "");
  EXPECT_EQ(file_error("tags: [a]\n", "tags: expected a single value or a map"), "");
  EXPECT_EQ(file_error("profile: moon\n", "profile: unknown profile \"moon\" (lan, wan, local)"),
            "");
  EXPECT_EQ(file_error("advertise_host: 0.0.0.0\n", "advertise_host: 0.0.0.0 cannot be advertised"),
            "");
  EXPECT_EQ(file_error("gossip_key: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
                       "gossip_key: key is 20 bytes, must be 16, 24 or 32"),
            "");
  EXPECT_EQ(file_error("swim_port: 1\n  bad: indent\n",
                       "line 2, column 6: illegal map value"),
            "");
}

TEST(NodeConfigErrorTest, MessagesAreOneLine) {
  TempFile f("a: [\n");
  for (const auto& msg : {error_of({"--config", f.path()}),
                          error_of({}, {{"JC_NODE_NAME", std::string("x\r\ny")}}),
                          error_of({}, {{"JC_PROFILE", "a\nb"}})}) {
    EXPECT_FALSE(msg.empty());
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\r'), std::string::npos) << msg;
  }
}

// --- --check-config output -------------------------------------------------

TEST(NodeConfigTest, JsonShowsEffectiveConfigWithoutTheKey) {
  const std::string key = "AAECAwQFBgcICQoLDA0ODw==";
  const NodeConfig c = load({"--node-name", "n1", "--gossip-key", key, "--tags", "a=b"});
  const std::string text = to_json_string(c);
  EXPECT_EQ(text.find(key), std::string::npos);
  const auto j = nlohmann::json::parse(text);
  EXPECT_EQ(j.at("node_name"), "n1");
  EXPECT_EQ(j.at("swim_port"), 7946);
  EXPECT_EQ(j.at("admin_port"), 9946);
  EXPECT_EQ(j.at("zmq_port"), 8946);
  EXPECT_EQ(j.at("profile"), "lan");
  EXPECT_EQ(j.at("log_level"), "info");
  EXPECT_EQ(j.at("gossip_key"), "(16-byte key, not shown)");
  EXPECT_TRUE(j.at("advertise_host").is_null());
  EXPECT_EQ(j.at("tags").at("a"), "b");
  EXPECT_EQ(j.at("sources").at("node_name"), "--node-name");
}

// What --help prints of the configuration (every program adds the flags
// with add_config_flags).
TEST(NodeConfigTest, UsageListsEveryFlagAndVariable) {
  CLI::App app;
  ConfigFlags flags;
  add_config_flags(app, flags);
  const std::string u = app.help();
  for (const char* s :
       {"--node-name", "JC_NODE_NAME", "--swim-host", "JC_SWIM_HOST", "--swim-port",
        "JC_SWIM_PORT", "--seeds", "JC_SEED_NODES", "--advertise-host", "JC_ADVERTISE_HOST",
        "--advertise-port", "JC_ADVERTISE_PORT", "--profile", "JC_PROFILE", "--log-level",
        "JC_LOG_LEVEL", "--admin-host", "JC_ADMIN_HOST", "--admin-port", "JC_ADMIN_PORT",
        "--tags", "JC_TAGS", "--gossip-key", "JC_GOSSIP_KEY", "--zmq-port", "JC_ZMQ_PORT",
        "P2P_ENABLED", "--config", "JC_CONFIG", "--mailbox-limit", "JC_MAILBOX_LIMIT",
        "--discovery-strategy", "--request-timeout", "--max-message-bytes", "--ipc-dir",
        "--leave-timeout", "--curve-secret-key", "--curve-public-key", "--log-format",
        "--admin-token", "JC_ADMIN_TOKEN", "--admin-token-file", "JC_ADMIN_TOKEN_FILE",
        "--admin-read-auth", "JC_ADMIN_READ_AUTH"}) {
    EXPECT_NE(u.find(s), std::string::npos) << s;
  }
}

// --- the admin token ---------------------------------------------------------

constexpr char kToken[] = "0123456789abcdef-token";

TEST(NodeConfigTest, AdminTokenFromEverySource) {
  const NodeConfig d = load({});
  EXPECT_TRUE(d.admin_token.empty());
  EXPECT_FALSE(d.admin_read_auth);
  EXPECT_EQ(load({}, {{"JC_ADMIN_TOKEN", kToken}}).admin_token, kToken);
  EXPECT_EQ(load({"--admin-token", kToken}).admin_token, kToken);
  TempFile yaml(std::string("admin_token: '") + kToken + "'\nadmin_read_auth: true\n");
  const NodeConfig y = load({"--config", yaml.path()});
  EXPECT_EQ(y.admin_token, kToken);
  EXPECT_TRUE(y.admin_read_auth);
  EXPECT_FALSE(load({"--config", yaml.path(), "--admin-read-auth", "no"}).admin_read_auth);

  // A file is read when the configuration loads; `echo token > file`
  // leaves a newline, which is no part of the token.
  TempFile file(std::string(kToken) + " \n\n");
  TempFile yaml_file("admin_token_file: " + file.path() + "\n");
  for (const NodeConfig& c : {load({}, {{"JC_ADMIN_TOKEN_FILE", file.path()}}),
                              load({"--admin-token-file", file.path()}), load({"--config", yaml_file.path()})}) {
    EXPECT_EQ(c.admin_token, kToken);
    EXPECT_EQ(c.admin_token_file, file.path());
  }
  // Only the file of the source that wins is read.
  EXPECT_EQ(load({"--admin-token-file", file.path()}, {{"JC_ADMIN_TOKEN_FILE", "/nonexistent/token"}}).admin_token,
            kToken);
}

TEST(NodeConfigErrorTest, AdminToken) {
  EXPECT_EQ(error_of({"--admin-token", "short"}), "--admin-token: token is 5 characters, must be 16 to 1024");
  EXPECT_EQ(error_of({}, {{"JC_ADMIN_TOKEN", std::string(1025, 'a')}}),
            "JC_ADMIN_TOKEN: token is 1025 characters, must be 16 to 1024");
  EXPECT_EQ(error_of({}, {{"JC_ADMIN_TOKEN", "0123456789 abcdef"}}),
            "JC_ADMIN_TOKEN: token has a space or a character that is not printable ASCII at position 11");
  EXPECT_EQ(error_of({"--admin-token", "0123456789abcdef\xc3\xa9"}),
            "--admin-token: token has a space or a character that is not printable ASCII at position 17");
  EXPECT_EQ(file_error("admin_token: short\n", "admin_token: token is 5 characters, must be 16 to 1024"), "");

  EXPECT_EQ(error_of({}, {{"JC_ADMIN_TOKEN_FILE", "/nonexistent/token"}}),
            "JC_ADMIN_TOKEN_FILE: /nonexistent/token: cannot read (No such file or directory)");
  TempFile empty("\n  \n");
  EXPECT_EQ(error_of({"--admin-token-file", empty.path()}),
            "--admin-token-file: " + empty.path() + ": the file is empty");
  TempFile short_file("short-secret\n");
  const std::string m = error_of({"--admin-token-file", short_file.path()});
  EXPECT_EQ(m, "--admin-token-file: " + short_file.path() + ": token is 12 characters, must be 16 to 1024");
  EXPECT_EQ(m.find("short-secret"), std::string::npos);
  TempFile good(kToken);
  EXPECT_EQ(error_of({"--admin-token-file", good.path()}, {{"JC_ADMIN_TOKEN", kToken}}),
            "--admin-token-file: set, and admin_token too (set one or the other)");

  EXPECT_EQ(error_of({}, {{"JC_ADMIN_READ_AUTH", "true"}}),
            "JC_ADMIN_READ_AUTH: true, but there is no admin_token or admin_token_file");
  EXPECT_EQ(error_of({"--admin-read-auth", "maybe"}),
            "--admin-read-auth: \"maybe\" is not a boolean (true, false, 1, 0, yes, no)");
  // The rejected secret itself is never echoed.
  for (const char* bad : {"0123456789 abcdef", "0123456789abcde\n"}) {
    const std::string msg = error_of({}, {{"JC_ADMIN_TOKEN", bad}});
    EXPECT_EQ(msg.find("0123456789"), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
}

// The gossip key from a file (a mounted secret), as the admin token.
TEST(NodeConfigTest, GossipKeyFromAFile) {
  constexpr char kKey[] = "cg8StVXbQJ0gPvMd9o7yrg==";  // 16 bytes
  TempFile file(std::string(kKey) + "\n");
  TempFile yaml_file("gossip_key_file: " + file.path() + "\n");
  for (const NodeConfig& c : {load({}, {{"JC_GOSSIP_KEY_FILE", file.path()}}),
                              load({"--gossip-key-file", file.path()}), load({"--config", yaml_file.path()})}) {
    EXPECT_EQ(c.gossip_key.size(), 16u);
    EXPECT_EQ(c.gossip_key, load({}, {{"JC_GOSSIP_KEY", kKey}}).gossip_key);
    const std::string text = to_json_string(c);
    EXPECT_EQ(text.find(kKey), std::string::npos) << text;
    EXPECT_EQ(nlohmann::json::parse(text).at("gossip_key_file"), file.path());
  }
  EXPECT_EQ(error_of({}, {{"JC_GOSSIP_KEY_FILE", "/nonexistent/key"}}),
            "JC_GOSSIP_KEY_FILE: /nonexistent/key: cannot read (No such file or directory)");
  TempFile empty(" \n");
  EXPECT_EQ(error_of({"--gossip-key-file", empty.path()}), "--gossip-key-file: " + empty.path() + ": the file is empty");
  TempFile short_key("c2hvcnQta2V5\n");  // "short-key": 9 bytes
  const std::string m = error_of({"--gossip-key-file", short_key.path()});
  EXPECT_EQ(m, "--gossip-key-file: " + short_key.path() + ": key is 9 bytes, must be 16, 24 or 32");
  EXPECT_EQ(error_of({"--gossip-key-file", file.path()}, {{"JC_GOSSIP_KEY", kKey}}),
            "--gossip-key-file: set, and gossip_key too (set one or the other)");
}

TEST(NodeConfigTest, AdminTokenIsNeverPrinted) {
  TempFile file(kToken);
  for (const NodeConfig& c : {load({"--admin-token", kToken, "--admin-read-auth", "1"}),
                              load({"--admin-token-file", file.path(), "--admin-read-auth", "1"})}) {
    const std::string text = to_json_string(c);
    EXPECT_EQ(text.find(kToken), std::string::npos) << text;
    const auto j = nlohmann::json::parse(text);
    EXPECT_EQ(j.at("admin_token"), "(set, not shown)");
    EXPECT_EQ(j.at("admin_read_auth"), true);
  }
  EXPECT_EQ(nlohmann::json::parse(to_json_string(load({"--admin-token-file", file.path()}))).at("admin_token_file"),
            file.path());
  const auto d = nlohmann::json::parse(to_json_string(load({})));
  EXPECT_TRUE(d.at("admin_token").is_null());
  EXPECT_TRUE(d.at("admin_token_file").is_null());
  EXPECT_EQ(d.at("admin_read_auth"), false);
}

// --- the Mesh's keys --------------------------------------------------------

// A syntactically valid Z85 key pair (libzmq's documented example keys);
// load_node_config checks form, the Mesh checks that they belong together.
constexpr char kPublicKey[] = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7";
constexpr char kSecretKey[] = "JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6";

TEST(NodeConfigTest, MeshKeysDefaults) {
  const NodeConfig c = load({});
  EXPECT_EQ(c.mailbox_limit, 1000u);
  EXPECT_EQ(c.discovery_strategy, "first");
  EXPECT_EQ(c.request_timeout, std::chrono::seconds(30));
  EXPECT_EQ(c.max_message_bytes, 4u * 1024 * 1024);
  EXPECT_EQ(c.ipc_dir, "");
  EXPECT_EQ(c.leave_timeout, std::chrono::seconds(3));
  EXPECT_EQ(c.curve_secret_key, "");
  EXPECT_EQ(c.curve_public_key, "");
  EXPECT_EQ(c.log_format, LogFormat::Text);
  EXPECT_EQ(c.thread_max_turns, 100u);
  EXPECT_EQ(c.thread_ttl, std::chrono::minutes(10));
  EXPECT_EQ(c.thread_max_cost, 0.0);
  EXPECT_EQ(c.thread_max_depth, 8u);
  EXPECT_EQ(c.audit_dir, "");
  EXPECT_EQ(c.audit_fsync, "never");
}

TEST(NodeConfigTest, ConversationKeysRefuseNonsense) {
  for (const auto& [var, value] : std::vector<std::pair<std::string, std::string>>{
           {"JC_THREAD_MAX_TURNS", "-1"},
           {"JC_THREAD_MAX_COST", "abc"},
           {"JC_THREAD_MAX_COST", "-2"},
           {"JC_THREAD_MAX_COST", "nan"},
           {"JC_THREAD_MAX_DEPTH", "5000"},
           {"JC_AUDIT_FSYNC", "sometimes"},
           {"JC_AUDIT_DIR", "relative/dir"}}) {
    SCOPED_TRACE(var + "=" + value);
    try {
      load({}, {{var, value}});
      ADD_FAILURE() << "accepted";
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(var), std::string::npos) << e.what();
    }
  }
}

// Each Mesh key from the file, overridden by the environment, overridden by
// a flag: the value and the recorded source of each step.
TEST(NodeConfigTest, MeshKeysPrecedence) {
  struct Case {
    std::string key, env, flag;
    std::string file_value, env_value, flag_value;
    std::function<std::string(const NodeConfig&)> get;
  };
  auto ms = [](std::chrono::milliseconds d) { return std::to_string(d.count()); };
  const std::vector<Case> cases = {
      {"mailbox_limit", "JC_MAILBOX_LIMIT", "--mailbox-limit", "10", "20", "30",
       [](const NodeConfig& c) { return std::to_string(c.mailbox_limit); }},
      {"discovery_strategy", "JC_DISCOVERY_STRATEGY", "--discovery-strategy", "random", "round_robin",
       "least_recent", [](const NodeConfig& c) { return c.discovery_strategy; }},
      {"request_timeout", "JC_REQUEST_TIMEOUT", "--request-timeout", "2m", "250ms", "7s",
       [&](const NodeConfig& c) { return ms(c.request_timeout); }},
      {"max_message_bytes", "JC_MAX_MESSAGE_BYTES", "--max-message-bytes", "65536", "64KiB", "2MiB",
       [](const NodeConfig& c) { return std::to_string(c.max_message_bytes); }},
      {"mailbox_bytes", "JC_MAILBOX_BYTES", "--mailbox-bytes", "1MiB", "8388608", "1024MiB",
       [](const NodeConfig& c) { return std::to_string(c.mailbox_bytes); }},
      {"ipc_dir", "JC_IPC_DIR", "--ipc-dir", "/run/a", "/run/b", "/run/c/",
       [](const NodeConfig& c) { return c.ipc_dir; }},
      {"leave_timeout", "JC_LEAVE_TIMEOUT", "--leave-timeout", "0ms", "1s", "10m",
       [&](const NodeConfig& c) { return ms(c.leave_timeout); }},
      {"retry_join_interval", "JC_RETRY_JOIN_INTERVAL", "--retry-join-interval", "10ms", "2s", "10m",
       [&](const NodeConfig& c) { return ms(c.retry_join_interval); }},
      {"retry_join_max", "JC_RETRY_JOIN_MAX", "--retry-join-max", "0", "3", "1000000",
       [](const NodeConfig& c) { return std::to_string(c.retry_join_max); }},
      {"log_format", "JC_LOG_FORMAT", "--log-format", "json", "text", "JSON",
       [](const NodeConfig& c) { return std::string(to_string(c.log_format)); }},
      {"thread_max_turns", "JC_THREAD_MAX_TURNS", "--thread-max-turns", "10", "0", "7",
       [](const NodeConfig& c) { return std::to_string(c.thread_max_turns); }},
      {"thread_max_cost", "JC_THREAD_MAX_COST", "--thread-max-cost", "2.5", "0", "10",
       [](const NodeConfig& c) { return std::to_string(c.thread_max_cost); }},
      {"audit_fsync", "JC_AUDIT_FSYNC", "--audit-fsync", "always", "interval", "Never",
       [](const NodeConfig& c) { return c.audit_fsync; }},
  };
  const std::vector<std::vector<std::string>> expected = {
      {"10", "20", "30"},
      {"random", "round_robin", "least_recent"},
      {"120000", "250", "7000"},
      {"65536", "65536", "2097152"},
      {"1048576", "8388608", "1073741824"},
      {"/run/a", "/run/b", "/run/c"},
      {"0", "1000", "600000"},
      {"10", "2000", "600000"},
      {"0", "3", "1000000"},
      {"json", "text", "json"},
      {"10", "0", "7"},
      {"2.500000", "0.000000", "10.000000"},
      {"always", "interval", "never"},
  };
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const Case& k = cases[i];
    SCOPED_TRACE(k.key);
    TempFile f(k.key + ": " + k.file_value + "\n");
    const NodeConfig from_file = load({"--config", f.path()});
    EXPECT_EQ(k.get(from_file), expected[i][0]);
    EXPECT_EQ(from_file.sources.at(k.key), "config file " + f.path());
    const Environment env = {{k.env, k.env_value}};
    const NodeConfig from_env = load({"--config", f.path()}, env);
    EXPECT_EQ(k.get(from_env), expected[i][1]);
    EXPECT_EQ(from_env.sources.at(k.key), k.env);
    const NodeConfig from_flag = load({"--config", f.path(), k.flag, k.flag_value}, env);
    EXPECT_EQ(k.get(from_flag), expected[i][2]);
    EXPECT_EQ(from_flag.sources.at(k.key), k.flag);
  }
}

TEST(NodeConfigTest, CurveKeysPrecedenceAndPairing) {
  TempFile f(std::string("curve_secret_key: 'JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6'\n") +
             "curve_public_key: 'rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7'\n");
  const NodeConfig c = load({"--config", f.path()});
  EXPECT_EQ(c.curve_secret_key, kSecretKey);
  EXPECT_EQ(c.curve_public_key, kPublicKey);
  const std::string other = "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID";
  const NodeConfig e = load({"--config", f.path()}, {{"JC_CURVE_PUBLIC_KEY", other}});
  EXPECT_EQ(e.curve_public_key, other);
  EXPECT_EQ(e.sources.at("curve_public_key"), "JC_CURVE_PUBLIC_KEY");
  const NodeConfig g =
      load({"--config", f.path(), "--curve-public-key", kPublicKey}, {{"JC_CURVE_PUBLIC_KEY", other}});
  EXPECT_EQ(g.curve_public_key, kPublicKey);
  // Both or neither.
  EXPECT_EQ(error_of({}, {{"JC_CURVE_SECRET_KEY", kSecretKey}}),
            "JC_CURVE_SECRET_KEY: set, but curve_public_key is not (set both or neither)");
  EXPECT_EQ(error_of({"--curve-public-key", kPublicKey}),
            "--curve-public-key: set, but curve_secret_key is not (set both or neither)");
}

TEST(NodeConfigTest, CurveSecretIsNeverEchoed) {
  const std::string bad_alphabet = "JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh\"";
  const std::string short_key = "JTKVSB%%)wK0E.X)V>+}";
  const std::string m1 = error_of({}, {{"JC_CURVE_SECRET_KEY", bad_alphabet}, {"JC_CURVE_PUBLIC_KEY", kPublicKey}});
  EXPECT_EQ(m1, "JC_CURVE_SECRET_KEY: key has a character outside the Z85 alphabet at position 40");
  const std::string m2 = error_of({"--curve-secret-key", short_key});
  EXPECT_EQ(m2, "--curve-secret-key: key is 20 characters, a Z85 CURVE key has 40");
  EXPECT_EQ(file_error("curve_secret_key: 'abc'\n", "curve_secret_key: key is 3 characters, a Z85 CURVE key has 40"),
            "");
  for (const auto& m : {m1, m2}) EXPECT_EQ(m.find("JTKVSB"), std::string::npos) << m;
  // --check-config shows that a secret is set, never the secret.
  const NodeConfig c = load({}, {{"JC_CURVE_SECRET_KEY", kSecretKey}, {"JC_CURVE_PUBLIC_KEY", kPublicKey}});
  const std::string json = to_json_string(c);
  EXPECT_EQ(json.find("JTKVSB"), std::string::npos);
  const auto j = nlohmann::json::parse(json);
  EXPECT_EQ(j["curve_secret_key"], "(set, not shown)");
  EXPECT_EQ(j["curve_public_key"], kPublicKey);
  EXPECT_EQ(j["request_timeout"], "30s");
  EXPECT_EQ(j["leave_timeout"], "3s");
  EXPECT_EQ(j["mailbox_limit"], 1000);
  EXPECT_EQ(j["discovery_strategy"], "first");
  EXPECT_EQ(j["log_format"], "text");
  EXPECT_TRUE(j["ipc_dir"].is_null());
}

TEST(NodeConfigTest, MeshKeysBadValues) {
  EXPECT_EQ(error_of({}, {{"JC_MAILBOX_LIMIT", "0"}}),
            "JC_MAILBOX_LIMIT: \"0\" is not a mailbox size (1-10000000)");
  EXPECT_EQ(error_of({"--mailbox-limit", "-5"}), "--mailbox-limit: \"-5\" is not a mailbox size (1-10000000)");
  EXPECT_EQ(file_error("mailbox_limit: lots\n", "mailbox_limit: \"lots\" is not a mailbox size (1-10000000)"), "");
  EXPECT_EQ(error_of({}, {{"JC_DISCOVERY_STRATEGY", "fastest"}}),
            "JC_DISCOVERY_STRATEGY: unknown strategy \"fastest\" (first, random, round_robin, least_recent)");
  EXPECT_EQ(error_of({}, {{"JC_REQUEST_TIMEOUT", "30"}}),
            "JC_REQUEST_TIMEOUT: \"30\" is not a duration (an integer and ms, s, m or h: 250ms, 30s, 2m)");
  EXPECT_EQ(error_of({"--request-timeout", "1.5s"}),
            "--request-timeout: \"1.5s\" is not a duration (an integer and ms, s, m or h: 250ms, 30s, 2m)");
  EXPECT_EQ(error_of({"--request-timeout", "0s"}), "--request-timeout: \"0s\" is out of range (1ms to 24h)");
  EXPECT_EQ(file_error("request_timeout: 5d\n",
                       "request_timeout: \"5d\" is not a duration (an integer and ms, s, m or h: 250ms, 30s, 2m)"),
            "");
  EXPECT_EQ(error_of({}, {{"JC_LEAVE_TIMEOUT", "11m"}}), "JC_LEAVE_TIMEOUT: \"11m\" is out of range (0ms to 10m)");
  EXPECT_EQ(error_of({}, {{"JC_RETRY_JOIN_MAX", "-1"}}),
            "JC_RETRY_JOIN_MAX: \"-1\" is not a number of attempts (0-1000000; 0: never give up)");
  EXPECT_EQ(error_of({}, {{"JC_MAX_MESSAGE_BYTES", "1KiB"}}),
            "JC_MAX_MESSAGE_BYTES: \"1KiB\" is out of range (4KiB to 256MiB)");
  EXPECT_EQ(error_of({"--max-message-bytes", "4MB"}),
            "--max-message-bytes: \"4MB\" is not a size (bytes, or an integer and KiB or MiB: 65536, 64KiB, 4MiB)");
  EXPECT_EQ(error_of({}, {{"JC_IPC_DIR", "run/mesh"}}), "JC_IPC_DIR: \"run/mesh\" is not an absolute path");
  EXPECT_EQ(error_of({"--ipc-dir", "/" + std::string(120, 'd'), "--node-name", "n"}),
            "--ipc-dir: the socket path <ipc_dir>/<node_name>.zmq is 127 bytes, at most 107");
  EXPECT_EQ(error_of({}, {{"JC_LOG_FORMAT", "xml"}}), "JC_LOG_FORMAT: unknown log format \"xml\" (text, json)");
}

TEST(NodeConfigTest, ConfigFileFromEnvironment) {
  TempFile f("mailbox_limit: 77\n");
  TempFile g("mailbox_limit: 88\n");
  EXPECT_EQ(load({}, {{"JC_CONFIG", f.path()}}).mailbox_limit, 77u);
  EXPECT_EQ(load({}, {{"JC_CONFIG", f.path()}}).config_file, f.path());
  // --config wins over JC_CONFIG; the environment still wins over the file.
  EXPECT_EQ(load({"--config", g.path()}, {{"JC_CONFIG", f.path()}}).mailbox_limit, 88u);
  EXPECT_EQ(load({}, {{"JC_CONFIG", f.path()}, {"JC_MAILBOX_LIMIT", "5"}}).mailbox_limit, 5u);
  EXPECT_EQ(error_of({}, {{"JC_CONFIG", "/nonexistent/mesh.yaml"}}),
            "config file /nonexistent/mesh.yaml: cannot read (No such file or directory)");
}

TEST(NodeConfigTest, EnvironmentVariableList) {
  const auto& vars = config_environment_variables();
  for (const char* v : {"JC_CONFIG", "JC_SWIM_PORT", "P2P_ENABLED", "JC_MAILBOX_LIMIT", "JC_DISCOVERY_STRATEGY",
                        "JC_REQUEST_TIMEOUT", "JC_MAX_MESSAGE_BYTES", "JC_IPC_DIR", "JC_LEAVE_TIMEOUT",
                        "JC_CURVE_SECRET_KEY", "JC_CURVE_PUBLIC_KEY", "JC_LOG_FORMAT"}) {
    EXPECT_NE(std::find(vars.begin(), vars.end(), v), vars.end()) << v;
  }
  // Every variable is read: setting it to garbage is an error naming it.
  for (const auto& v : vars) {
    if (v == "JC_CONFIG") continue;
    const std::string msg = error_of({}, {{v, "\x01garbage"}});
    EXPECT_EQ(msg.rfind(v + ": ", 0), 0u) << v << " -> " << msg;
  }
}

// An unknown JC_* variable: a warning with the likely one meant, kept for
// the Mesh to log; the rest of the configuration loads as usual.
TEST(NodeConfigTest, UnknownVariablesAreWarnings) {
  const NodeConfig c = load({}, {{"JC_SEED_NODE", "10.0.0.1"}, {"JC_SWIM_PORT", "7000"}, {"JC_ZZZZZZZZ", "1"}});
  EXPECT_EQ(c.swim_port, 7000);
  ASSERT_EQ(c.warnings.size(), 2u);
  EXPECT_EQ(c.warnings[0], "JC_SEED_NODE: unknown configuration variable (did you mean JC_SEED_NODES?)");
  EXPECT_EQ(c.warnings[1], "JC_ZZZZZZZZ: unknown configuration variable (mesh-node --help lists them)");
  EXPECT_TRUE(load({}, {{"JC_SEED_NODES", "10.0.0.1"}, {"OTHER", "x"}}).warnings.empty());
  EXPECT_THROW(reject_unknown_variables({{"JC_SEED_NODE", "x"}}), ConfigError);
}

TEST(NodeConfigTest, DefaultAdvertiseHost) {
  NodeConfig c;
  c.swim_host = "10.9.8.7";
  EXPECT_EQ(default_advertise_host(c), "10.9.8.7");
  c.swim_host = "0.0.0.0";
  // Whatever this machine has, never the unspecified or a loopback address.
  if (auto ip = default_advertise_host(c)) {
    EXPECT_NE(*ip, "0.0.0.0");
    EXPECT_NE(ip->rfind("127.", 0), 0u);
  }
}

TEST(NodeConfigTest, CurrentEnvironmentReadsTheProcess) {
  ::setenv("MESH_CONFIG_TEST_VAR", "a=b", 1);
  EXPECT_EQ(current_environment().at("MESH_CONFIG_TEST_VAR"), "a=b");
  ::unsetenv("MESH_CONFIG_TEST_VAR");
}

}  // namespace
}  // namespace mesh
