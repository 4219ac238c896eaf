// GET /metrics and JSON-lines logs.
//
// The cluster test runs three Meshes with P2P on in one process, on
// 127.0.0.1 with kernel-chosen ports and memberlist's `local` profile, and
// serves N1's metrics on a real admin endpoint. It scrapes the text format
// and checks that the numbers follow the cluster: three members alive;
// probes, packets and bytes that grow between scrapes; request counts and
// the latency histogram that grow with requests N1 makes; the malformed
// drop counter after garbage is sent to N1's SWIM port; and, when N2's
// SWIM dies without a word, alive falling to 2 and dead rising to 1. No
// counter ever goes down between two scrapes. The same run logs as JSON
// lines into a captured sink: every line parses, with node and level, and
// N1's line about N2 joining carries the member event's fields.
#include <gtest/gtest.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <future>
#include <limits>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <prometheus/counter.h>
#include <prometheus/registry.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <sstream>
#include <string>
#include <sys/socket.h>
#include <thread>
#include <vector>

#include "mesh/admin_client.hpp"
#include "mesh/admin_server.hpp"
#include "mesh/log_fields.hpp"
#include "mesh/logging.hpp"
#include "mesh/mesh.hpp"
#include "mesh/metrics.hpp"
#include "mesh/version.hpp"
#include "loopback_config.hpp"

namespace mesh {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;

bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds limit = 45s) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > until) return false;
    std::this_thread::sleep_for(50ms);
  }
  return true;
}

// ---- the text format, parsed ------------------------------------------------

struct Series {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

// Sample lines of the text format (comments skipped). Fails the test on a
// line it cannot read.
std::vector<Series> parse_exposition(const std::string& text) {
  std::vector<Series> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    Series s;
    std::size_t i = line.find_first_of("{ ");
    s.name = line.substr(0, i);
    if (i != std::string::npos && line[i] == '{') {
      ++i;
      while (i < line.size() && line[i] != '}') {
        const std::size_t eq = line.find('=', i);
        EXPECT_NE(eq, std::string::npos) << line;
        if (eq == std::string::npos || eq + 1 >= line.size() || line[eq + 1] != '"') return out;
        const std::string key = line.substr(i, eq - i);
        std::string value;
        std::size_t k = eq + 2;
        for (; k < line.size() && line[k] != '"'; ++k) {
          if (line[k] == '\\' && k + 1 < line.size()) ++k;
          value.push_back(line[k]);
        }
        s.labels[key] = value;
        i = k + 1;
        if (i < line.size() && line[i] == ',') ++i;
      }
      ++i;  // '}'
    }
    const std::string number = line.substr(line.find_first_not_of(' ', i));
    s.value = number == "+Inf" ? std::numeric_limits<double>::infinity() : std::stod(number);
    out.push_back(std::move(s));
  }
  return out;
}

struct Scrape {
  std::vector<Series> series;

  // The value of the one series `name` with (at least) these labels; nullopt
  // when there is none.
  std::optional<double> get(const std::string& name, const std::map<std::string, std::string>& labels = {}) const {
    for (const auto& s : series) {
      if (s.name != name) continue;
      bool match = true;
      for (const auto& [k, v] : labels) {
        auto it = s.labels.find(k);
        match = match && it != s.labels.end() && it->second == v;
      }
      if (match) return s.value;
    }
    return std::nullopt;
  }
  double at(const std::string& name, const std::map<std::string, std::string>& labels = {}) const {
    auto v = get(name, labels);
    EXPECT_TRUE(v.has_value()) << name << " is missing";
    return v.value_or(-1);
  }
};

// Every counter (a _total, or a histogram's _count/_sum/_bucket) in `later`
// is at least its value in `earlier`.
void expect_monotonic(const Scrape& earlier, const Scrape& later) {
  const auto is_counter = [](const std::string& n) {
    const auto ends = [&](std::string_view suffix) {
      return n.size() >= suffix.size() && n.compare(n.size() - suffix.size(), suffix.size(), suffix) == 0;
    };
    return ends("_total") || ends("_count") || ends("_sum") || ends("_bucket");
  };
  for (const auto& s : earlier.series) {
    if (!is_counter(s.name)) continue;
    const auto now = later.get(s.name, s.labels);
    ASSERT_TRUE(now.has_value()) << s.name << " disappeared";
    EXPECT_GE(*now, s.value) << s.name << " went down";
  }
}

// ---- captured logs -----------------------------------------------------------

class CapturedLog {
 public:
  explicit CapturedLog(LogFormat format, const std::string& node) {
    previous_ = spdlog::default_logger();
    LoggingOptions o;
    o.format = format;
    o.level = LogLevel::Debug;
    o.node_name = node;
    o.logger_name = "test";
    o.sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out_);
    configure_logging(o);
  }
  ~CapturedLog() { spdlog::set_default_logger(previous_); }
  CapturedLog(const CapturedLog&) = delete;
  CapturedLog& operator=(const CapturedLog&) = delete;

  std::vector<std::string> lines() {
    spdlog::default_logger()->flush();
    std::vector<std::string> out;
    std::istringstream in(text());
    std::string line;
    while (std::getline(in, line)) out.push_back(line);
    return out;
  }
  // Read once the threads that log have stopped (the sink writes out_).
  std::string text() const { return out_.str(); }

 private:
  std::ostringstream out_;
  std::shared_ptr<spdlog::logger> previous_;
};

// ---- the cluster --------------------------------------------------------------

class Echo : public CustomAgent {
 public:
  explicit Echo(std::string id) : CustomAgent({.role = "echo", .agent_id = std::move(id)}) {}
  std::optional<Json> on_peer_request(const IncomingMessage& m) override { return Json{{"echo", m.data}}; }
};

class Caller : public Agent {
 public:
  explicit Caller(std::string id) : Agent({.role = "caller", .agent_id = std::move(id)}) {}
};

NodeConfig node_config(const std::string& name, std::vector<std::string> seeds) {
  NodeConfig c = test::loopback_config(name, std::move(seeds));
  c.log_level = LogLevel::Debug;
  return c;
}

std::string seed_of(const Mesh& m) { return "127.0.0.1:" + std::to_string(m.swim_port()); }

// An admin endpoint on 127.0.0.1:0 run by one io thread, as in mesh-node.
class Endpoint {
 public:
  Endpoint() : server_(io_, "127.0.0.1", 0) {}
  void start() {
    server_.start();
    thread_ = std::thread([this] { io_.run(); });
  }
  ~Endpoint() {
    asio::post(io_, [this] { server_.stop(); });
    work_.reset();
    if (thread_.joinable()) thread_.join();
  }
  AdminServer& server() { return server_; }
  std::uint16_t port() const { return server_.port(); }

 private:
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_ = asio::make_work_guard(io_);
  AdminServer server_;
  std::thread thread_;
};

Scrape scrape(std::uint16_t port) {
  const HttpResult r = http_get("127.0.0.1", port, "/metrics", 10s);
  EXPECT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.status, 200u) << r.body;
  return Scrape{parse_exposition(r.body)};
}

// The response headers of GET /metrics.
std::string metrics_headers(std::uint16_t port) {
  asio::io_context io;
  asio::ip::tcp::socket s(io);
  s.connect(asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  asio::write(s, asio::buffer(std::string("GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")));
  struct timeval tv{10, 0};
  ::setsockopt(s.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::string out;
  char buf[4096];
  boost::system::error_code ec;
  while (out.find("\r\n\r\n") == std::string::npos) {
    const std::size_t n = s.read_some(asio::buffer(buf), ec);
    if (ec) break;
    out.append(buf, n);
  }
  return out.substr(0, out.find("\r\n\r\n"));
}

void send_udp(std::uint16_t port, const std::vector<std::uint8_t>& bytes) {
  asio::io_context io;
  asio::ip::udp::socket s(io, asio::ip::udp::v4());
  s.send_to(asio::buffer(bytes), asio::ip::udp::endpoint(asio::ip::make_address("127.0.0.1"), port));
}

TEST(MetricsCluster, ScrapedValuesFollowTheCluster) {
  CapturedLog log(LogFormat::JsonLines, "n1");

  Mesh n1(node_config("n1", {}));
  auto& caller = n1.add<Caller>("caller-1");
  n1.start();
  Mesh n2(node_config("n2", {seed_of(n1)}));
  n2.add<Echo>("echo-2");
  n2.start();
  Mesh n3(node_config("n3", {seed_of(n1)}));
  n3.add<Echo>("echo-3");
  n3.start();

  Endpoint admin;
  auto endpoint = attach_metrics(admin.server(), n1);
  admin.start();

  // S1: everyone alive, as N1 sees it.
  ASSERT_TRUE(eventually([&] { return scrape(admin.port()).get("mesh_swim_members", {{"state", "alive"}}) == 3.0; }))
      << "n1 never reported three alive members";
  const Scrape first = scrape(admin.port());
  EXPECT_EQ(first.at("mesh_swim_members", {{"state", "dead"}}), 0.0);
  EXPECT_EQ(first.at("mesh_agents"), 1.0);
  EXPECT_GE(first.at("mesh_swim_health_score"), 0.0);

  const auto headers = metrics_headers(admin.port());
  EXPECT_NE(headers.find("text/plain; version=0.0.4"), std::string::npos) << headers;

  // S2: SWIM keeps probing and gossiping: its counters move on their own.
  ASSERT_TRUE(eventually([&] {
    const Scrape s = scrape(admin.port());
    return s.at("mesh_swim_probes_total") > first.at("mesh_swim_probes_total") &&
           s.at("mesh_swim_packets_total", {{"direction", "out"}}) >
               first.at("mesh_swim_packets_total", {{"direction", "out"}}) &&
           s.at("mesh_swim_packets_total", {{"direction", "in"}}) >
               first.at("mesh_swim_packets_total", {{"direction", "in"}}) &&
           s.at("mesh_swim_bytes_total", {{"direction", "in"}}) >
               first.at("mesh_swim_bytes_total", {{"direction", "in"}}) &&
           s.at("mesh_swim_bytes_total", {{"direction", "out"}}) >
               first.at("mesh_swim_bytes_total", {{"direction", "out"}});
  })) << "probes, packets or bytes did not move";

  // S3: requests N1 makes show in its message counters and histogram.
  ASSERT_TRUE(eventually([&] { return caller.peers().discover(by_role("echo")).size() == 2; }));
  ASSERT_TRUE(eventually([&] { return caller.peers().request_blocking("echo-3", {{"warm", 1}}, 5s).has_value(); }));
  const Scrape before = scrape(admin.port());
  constexpr int kRequests = 10;
  for (int i = 0; i < kRequests; ++i) {
    ASSERT_TRUE(caller.peers().request_blocking(i % 2 ? "echo-2" : "echo-3", {{"i", i}}, 5s).has_value());
  }
  const Scrape after = scrape(admin.port());
  const std::map<std::string, std::string> answered{{"outcome", "answered"}};
  EXPECT_GE(after.at("mesh_transport_messages_sent_total", {{"type", "request"}}) -
                before.at("mesh_transport_messages_sent_total", {{"type", "request"}}),
            kRequests);
  EXPECT_GE(after.at("mesh_transport_messages_received_total", {{"type", "response"}}) -
                before.at("mesh_transport_messages_received_total", {{"type", "response"}}),
            kRequests);
  const double count = after.at("mesh_transport_request_duration_seconds_count", answered);
  EXPECT_GE(count - before.at("mesh_transport_request_duration_seconds_count", answered), kRequests);
  EXPECT_GT(after.at("mesh_transport_request_duration_seconds_sum", answered),
            before.at("mesh_transport_request_duration_seconds_sum", answered));
  EXPECT_EQ(after.at("mesh_transport_request_duration_seconds_bucket", {{"outcome", "answered"}, {"le", "+Inf"}}),
            count);
  EXPECT_LE(after.at("mesh_transport_request_duration_seconds_bucket", {{"outcome", "answered"}, {"le", "0.001"}}),
            after.at("mesh_transport_request_duration_seconds_bucket", {{"outcome", "answered"}, {"le", "30"}}));
  EXPECT_TRUE(after.get("mesh_transport_pending_requests"));
  // n1 fetched n2's and n3's registries: started, and ended in one result each.
  const double started = after.at("mesh_registry_fetches_started_total");
  const double applied = after.at("mesh_registry_fetches_total", {{"result", "applied"}});
  EXPECT_GE(applied, 2.0);
  EXPECT_GE(started, applied + after.at("mesh_registry_fetches_total", {{"result", "unchanged"}}) +
                         after.at("mesh_registry_fetches_total", {{"result", "failed"}}));
  EXPECT_EQ(after.at("mesh_registry_bad_signatures_total"), 0.0);
  EXPECT_EQ(after.at("mesh_transport_peers_known"), 2.0);
  EXPECT_LE(after.at("mesh_transport_peers_connected"), 2.0);
  EXPECT_GE(after.at("mesh_transport_peers_connected"), 1.0);  // n1 sent requests to both

  // S4: garbage on N1's SWIM port is counted, by what was wrong, and dropped.
  const std::map<std::string, std::string> unknown{{"error", "unknown_type"}};
  const std::map<std::string, std::string> truncated{{"error", "truncated"}};
  const double unknown_before = after.at("mesh_swim_messages_undecodable_total", unknown);
  const double truncated_before = after.at("mesh_swim_messages_undecodable_total", truncated);
  send_udp(n1.swim_port(), {0xFF, 0x00, 0x13, 0x37});  // message type 255: unknown
  send_udp(n1.swim_port(), {0x02});                     // a ping with no body: truncated
  ASSERT_TRUE(eventually([&] {
    const Scrape s = scrape(admin.port());
    return s.at("mesh_swim_messages_undecodable_total", unknown) >= unknown_before + 1 &&
           s.at("mesh_swim_messages_undecodable_total", truncated) >= truncated_before + 1;
  })) << "garbage datagrams were not counted";
  EXPECT_FALSE(after.get("mesh_swim_messages_undecodable_total", {{"error", "incomplete"}}));
  EXPECT_TRUE(after.get("mesh_transport_frames_dropped_total", {{"reason", "malformed"}}));
  EXPECT_TRUE(after.get("mesh_swim_packets_dropped_total", {{"reason", "decrypt_failure"}}));
  EXPECT_TRUE(after.get("mesh_swim_streams_dropped_total", {{"reason", "over_budget"}}));

  // S5: N2's SWIM dies without a word. N1 declares it dead.
  const Scrape alive = scrape(admin.port());
  n2.kill_membership_for_test();
  ASSERT_TRUE(eventually([&] {
    const Scrape s = scrape(admin.port());
    return s.get("mesh_swim_members", {{"state", "alive"}}) == 2.0 &&
           s.get("mesh_swim_members", {{"state", "dead"}}) == 1.0;
  })) << "n1 did not report n2 dead";
  const Scrape dead = scrape(admin.port());
  EXPECT_GT(dead.at("mesh_swim_probes_failed_total"), alive.at("mesh_swim_probes_failed_total"));
  expect_monotonic(first, after);
  expect_monotonic(after, alive);
  expect_monotonic(alive, dead);

  endpoint.reset();  // before the Meshes stop
  n3.stop();
  n2.stop();
  n1.stop();

  // The JSON lines of the run: every one parses; N1 logged N2's join
  // with the member event's fields.
  bool saw_join = false;
  std::size_t parsed = 0;
  for (const auto& line : log.lines()) {
    const auto j = nlohmann::json::parse(line, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << line;
    ASSERT_TRUE(j.is_object()) << line;
    EXPECT_EQ(j.value("node", ""), "n1") << line;
    EXPECT_TRUE(j.contains("level") && j.contains("ts") && j.contains("msg")) << line;
    ++parsed;
    const std::string msg = j.value("msg", "");
    if (j.value("event", "") == "member" && j.value("member", "") == "n2" && j.value("change", "") == "joined" &&
        msg.rfind("swim n1:", 0) == 0) {
      saw_join = true;
      EXPECT_EQ(j.value("level", ""), "info");
      EXPECT_FALSE(j.value("addr", "").empty());
    }
  }
  EXPECT_GT(parsed, 0u);
  EXPECT_TRUE(saw_join) << "no JSON line of n1 about n2 joining with event fields";
}

// ---- a Metrics on its own -------------------------------------------------------

TEST(Metrics, HistogramIsCumulativeAndProgramMetricsAreServed) {
  Metrics metrics;
  transport::TransportStats stats;
  stats.sent[0] = 7;
  auto& h = stats.request_latency[0];
  h.buckets[0] = 2;                                         // <= 100 us
  h.buckets[5] = 3;                                         // <= 5 ms
  h.buckets[transport::kRequestLatencyBounds.size()] = 1;   // over 30 s
  h.count = 6;
  h.sum_seconds = 31.5;
  metrics.add_source(Metrics::TransportSource([&] { return std::optional(stats); }));
  metrics.add_source(Metrics::MeshSource([]() -> std::optional<MeshSample> { return std::nullopt; }));
  metrics.add_source(Metrics::MembershipSource([]() -> std::optional<MembershipSample> {
    throw std::runtime_error("gone");
  }));
  auto& mine = prometheus::BuildCounter().Name("app_jobs_total").Help("Jobs.").Register(metrics.registry());
  mine.Add({{"kind", "x"}}).Increment(4);

  const std::string text = metrics.scrape();
  const Scrape s{parse_exposition(text)};
  const std::map<std::string, std::string> answered{{"outcome", "answered"}};
  EXPECT_EQ(s.at("mesh_transport_messages_sent_total", {{"type", "notify"}}), 7.0);
  EXPECT_EQ(s.at("mesh_transport_request_duration_seconds_bucket", {{"outcome", "answered"}, {"le", "0.0001"}}), 2.0);
  EXPECT_EQ(s.at("mesh_transport_request_duration_seconds_bucket", {{"outcome", "answered"}, {"le", "0.005"}}), 5.0);
  EXPECT_EQ(s.at("mesh_transport_request_duration_seconds_bucket", {{"outcome", "answered"}, {"le", "30"}}), 5.0);
  EXPECT_EQ(s.at("mesh_transport_request_duration_seconds_bucket", {{"outcome", "answered"}, {"le", "+Inf"}}), 6.0);
  EXPECT_EQ(s.at("mesh_transport_request_duration_seconds_count", answered), 6.0);
  EXPECT_EQ(s.at("mesh_transport_request_duration_seconds_sum", answered), 31.5);
  EXPECT_EQ(s.at("app_jobs_total", {{"kind", "x"}}), 4.0);
  // The throwing membership source and the empty mesh source add nothing.
  EXPECT_FALSE(s.get("mesh_swim_members"));
  EXPECT_FALSE(s.get("mesh_agents"));
  // One HELP and TYPE per name.
  std::map<std::string, int> types;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("# TYPE ", 0) == 0) ++types[line.substr(7, line.find(' ', 7) - 7)];
  }
  EXPECT_GT(types.size(), 10u);
  for (const auto& [name, n] : types) EXPECT_EQ(n, 1) << name;
  EXPECT_NE(text.find("# TYPE mesh_transport_request_duration_seconds histogram"), std::string::npos);
}

// The build and the process, as every Prometheus client library exports
// them: values this process can check for itself.
TEST(Metrics, BuildInfoAndProcessMetrics) {
  Metrics metrics;
  std::vector<char> burn(8 << 20, 1);  // resident for sure
  const std::string text = metrics.scrape();
  const Scrape s{parse_exposition(text)};
  EXPECT_EQ(s.at("mesh_build_info", {{"version", std::string(kVersion)}}), 1.0) << text;
  EXPECT_GE(s.at("process_resident_memory_bytes", {}), static_cast<double>(burn.size())) << text;
  EXPECT_GE(s.at("process_virtual_memory_bytes", {}), s.at("process_resident_memory_bytes", {}));
  EXPECT_GE(s.at("process_open_fds", {}), 3.0);  // stdin, stdout, stderr at least
  EXPECT_GE(s.at("process_max_fds", {}), s.at("process_open_fds", {}));
  EXPECT_GE(s.at("process_cpu_seconds_total", {}), 0.0);
  const double now = static_cast<double>(
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count());
  const double start = s.at("process_start_time_seconds", {});
  EXPECT_LE(start, now + 2) << text;
  EXPECT_GT(start, now - 7 * 24 * 3600) << text;  // started this week, not in 1970
  EXPECT_NE(text.find("# TYPE process_cpu_seconds_total counter"), std::string::npos);
}

// Per role of a node's agents: how many, what waits in their mailboxes,
// and how long their handlers take (awaits included).
class Gate : public CustomAgent {
 public:
  explicit Gate(std::string id) : CustomAgent({.role = "gate", .agent_id = std::move(id)}) {}
  // Holds its first notify (and with it the mailbox) until opened, or for
  // 60 s at most, so that a failing test still stops.
  void on_peer_notify(const IncomingMessage&) override {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, 60s, [this] { return open_; });
  }
  void open() {
    std::lock_guard lock(mu_);
    open_ = true;
    cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;
};

class Napper : public CustomAgent {
 public:
  explicit Napper(std::string id) : CustomAgent({.role = "napper", .agent_id = std::move(id)}) {}
  Task<std::optional<Json>> on_request(const IncomingMessage&) override {
    co_await peers().sleep(30ms);
    co_return Json{{"slept", true}};
  }
};

TEST(Metrics, PerRoleAgentsMailboxesAndHandlerDurations) {
  NodeConfig c;
  c.node_name = "roles";
  c.worker_threads = 2;
  Mesh mesh(c);
  auto& gate = mesh.add<Gate>("gate-1");
  mesh.add<Napper>("napper-1");
  mesh.add<Napper>("napper-2");
  mesh.start();
  Metrics metrics;
  metrics.watch(mesh);
  const auto role = [](const char* r) { return std::map<std::string, std::string>{{"role", r}}; };

  // Five notifies to the gate: the first is held in its handler, four wait.
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(mesh.node_client().notify("gate-1", Json{{"i", i}}));
  ASSERT_TRUE(eventually([&] {
    return Scrape{parse_exposition(metrics.scrape())}.get("mesh_role_mailbox_messages", role("gate")) == 4.0;
  })) << metrics.scrape();
  gate.open();
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(mesh.node_client().request_blocking(i % 2 ? "napper-1" : "napper-2", Json::object(),
                                                    SendOptions{.timeout = 10s}));
  }
  Scrape s;
  ASSERT_TRUE(eventually([&] {
    s = Scrape{parse_exposition(metrics.scrape())};
    // A handler's duration is recorded once it has returned, which can be
    // just after its reply reached the caller: wait for the naps too.
    return s.get("mesh_role_handler_duration_seconds_count", role("gate")) == 5.0 &&
           s.get("mesh_role_handler_duration_seconds_count", role("napper")) == 3.0;
  })) << metrics.scrape();
  EXPECT_EQ(s.at("mesh_role_mailbox_messages", role("gate")), 0.0);
  EXPECT_EQ(s.at("mesh_role_agents", role("gate")), 1.0);
  EXPECT_EQ(s.at("mesh_role_agents", role("napper")), 2.0);
  EXPECT_EQ(s.at("mesh_agents"), 3.0);
  // Each nap took 30 ms or more: none is in a bucket of 25 ms or less.
  EXPECT_EQ(s.at("mesh_role_handler_duration_seconds_count", role("napper")), 3.0);
  EXPECT_EQ(s.at("mesh_role_handler_duration_seconds_bucket", {{"role", "napper"}, {"le", "0.025"}}), 0.0);
  EXPECT_EQ(s.at("mesh_role_handler_duration_seconds_bucket", {{"role", "napper"}, {"le", "+Inf"}}), 3.0);
  EXPECT_GE(s.at("mesh_role_handler_duration_seconds_sum", role("napper")), 0.09);
  mesh.stop();
}

TEST(Metrics, TransportRecordsRequestLatency) {
  transport::TransportOptions o;
  o.node_name = "solo";
  o.local_only = true;
  transport::Transport t(o);
  auto inbox = t.open_inbox("echo", 0, [](const transport::EnvelopeView&, std::vector<std::uint8_t>& out) {
    out = {1};
    return transport::ErrorCode::None;
  });
  transport::OutMessage m;
  m.to = {"", "echo"};
  m.payload = {0};
  ASSERT_TRUE(t.request(m, 2s).ok());
  std::promise<void> done;
  t.request_async(m, 2s, [&](transport::Reply r) {
    EXPECT_TRUE(r.ok());
    done.set_value();
  });
  done.get_future().wait();
  m.to.target = "nobody";
  EXPECT_FALSE(t.request(m, 2s).ok());
  const auto s = t.stats();
  EXPECT_EQ(s.request_latency[0].count, 2u);
  EXPECT_EQ(s.request_latency[1].count, 1u);
  EXPECT_GT(s.request_latency[0].sum_seconds, 0.0);
}

// ---- JSON lines ------------------------------------------------------------------

TEST(JsonLogs, EveryLineParsesWithNodeLevelAndFields) {
  CapturedLog log(LogFormat::JsonLines, "node-\"1\"");
  spdlog::info("plain {}", 1);
  {
    const LogFields outer{{"event", "outer"}, {"peer", "p1"}};
    const LogFields inner{{"event", "member"}, {"member", "n\xff" "2"}, {"msg", "not a field"}};
    spdlog::warn("quote \" backslash \\ newline \n tab \t ctl \x01 bad \xc3\x28 ok \xc3\xa9");
  }
  spdlog::error("after the scopes");
  const auto lines = log.lines();
  ASSERT_EQ(lines.size(), 3u) << log.text();
  std::vector<nlohmann::json> j;
  for (const auto& line : lines) {
    j.push_back(nlohmann::json::parse(line, nullptr, false));
    ASSERT_FALSE(j.back().is_discarded()) << line;
    EXPECT_EQ(j.back()["node"], "node-\"1\"");
    EXPECT_EQ(j.back()["logger"], "test");
    const std::string ts = j.back()["ts"];
    EXPECT_EQ(ts.size(), 24u) << ts;  // 2026-11-21T17:20:00.123Z
    EXPECT_EQ(ts.back(), 'Z');
  }
  EXPECT_EQ(j[0]["level"], "info");
  EXPECT_EQ(j[0]["msg"], "plain 1");
  EXPECT_FALSE(j[0].contains("event"));
  EXPECT_EQ(j[1]["level"], "warning");
  EXPECT_EQ(j[1]["msg"], "quote \" backslash \\ newline \n tab \t ctl \x01 bad \xef\xbf\xbd( ok \xc3\xa9");
  EXPECT_EQ(j[1]["event"], "member");  // the inner scope wins
  EXPECT_EQ(j[1]["member"], "n\xef\xbf\xbd" "2");
  EXPECT_EQ(j[1]["peer"], "p1");
  EXPECT_EQ(j[2]["level"], "error");
  EXPECT_FALSE(j[2].contains("event"));
}

TEST(TextLogs, KeepTheHumanFormat) {
  CapturedLog log(LogFormat::Text, "n1");
  spdlog::info("hello {}", "world");
  const auto lines = log.lines();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_NE(lines[0].front(), '{');
  EXPECT_NE(lines[0].find("info  hello world"), std::string::npos) << lines[0];
}

}  // namespace
}  // namespace mesh
