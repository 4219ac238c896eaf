// AdminServer and its client: routing, methods, limits, async handlers,
// and the JSON shapes of members. A real server on 127.0.0.1 port 0, run
// by one io thread, as in mesh-node.
#include <gtest/gtest.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <future>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "mesh/admin_client.hpp"
#include "mesh/admin_server.hpp"
#include "mesh/member_json.hpp"

namespace mesh {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

class AdminServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    AdminServerOptions opt;
    opt.max_header_bytes = 1024;
    opt.max_connections = 4;
    opt.request_timeout = 2s;
    opt.max_body_bytes = 64;
    server_.emplace(io_, "127.0.0.1", 0, opt);
    server_->route("/healthz", [](const HttpRequest&) {
      return HttpResponse::json(R"({"status":"ok"})");
    });
    server_->route("/echo", [](const HttpRequest& r) {
      return HttpResponse::json(nlohmann::json{{"path", r.path}, {"query", r.query}}.dump());
    });
    server_->route_post("/echo", [](const HttpRequest& r) {
      return HttpResponse::json(nlohmann::json{{"method", r.method}, {"body", r.body}}.dump());
    });
    server_->route("/throws", [](const HttpRequest&) -> HttpResponse {
      throw std::runtime_error("boom");
    });
    // Answers from another thread, later: the shape mesh-node uses for
    // membership snapshots.
    server_->route_async("/later", [this](const HttpRequest&, AdminServer::Respond respond) {
      workers_.emplace_back([respond = std::move(respond)] {
        std::this_thread::sleep_for(20ms);
        respond(HttpResponse::json(R"({"late":true})"));
        respond(HttpResponse::json(R"({"twice":true})"));  // ignored
      });
    });
    server_->start();
    port_ = server_->port();
    thread_ = std::thread([this] { io_.run(); });
  }

  void TearDown() override {
    for (auto& t : workers_) t.join();
    asio::post(io_, [this] { server_->stop(); });
    work_.reset();
    thread_.join();
    server_.reset();
  }

  HttpResult get(const std::string& target) { return http_get("127.0.0.1", port_, target, 3s); }

  // Sends raw bytes and returns everything the server answers until it
  // closes the connection (or 3 s pass).
  std::string raw(const std::string& request) {
    asio::io_context io;
    tcp::socket s(io);
    s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port_));
    asio::write(s, asio::buffer(request));
    struct timeval tv{3, 0};
    ::setsockopt(s.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    std::string out;
    char buf[4096];
    boost::system::error_code ec;
    while (true) {
      const std::size_t n = s.read_some(asio::buffer(buf), ec);
      if (ec) break;
      out.append(buf, n);
    }
    return out;
  }

  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_ = asio::make_work_guard(io_);
  std::optional<AdminServer> server_;
  std::uint16_t port_ = 0;
  std::thread thread_;
  std::vector<std::thread> workers_;
};

TEST_F(AdminServerTest, ServesRegisteredRoutes) {
  const auto r = get("/healthz");
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.status, 200u);
  EXPECT_EQ(nlohmann::json::parse(r.body).at("status"), "ok");
}

TEST_F(AdminServerTest, SplitsPathAndQuery) {
  const auto r = get("/echo?x=1&y=2");
  ASSERT_TRUE(r.ok) << r.error;
  const auto j = nlohmann::json::parse(r.body);
  EXPECT_EQ(j.at("path"), "/echo");
  EXPECT_EQ(j.at("query"), "x=1&y=2");
}

TEST_F(AdminServerTest, UnknownPathIs404) {
  const auto r = get("/nope");
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.status, 404u);
  EXPECT_EQ(nlohmann::json::parse(r.body).at("error"), "no such path: /nope");
}

TEST_F(AdminServerTest, OtherMethodsAre405WithAllow) {
  const std::string out = raw("POST /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(out.rfind("HTTP/1.1 405", 0), 0u) << out;
  EXPECT_NE(out.find("Allow: GET"), std::string::npos) << out;
  const std::string del = raw("DELETE /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(del.rfind("HTTP/1.1 405", 0), 0u) << del;
}

TEST_F(AdminServerTest, RequestBodiesAreRefused) {
  const std::string out = raw("GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello");
  EXPECT_EQ(out.rfind("HTTP/1.1 413", 0), 0u) << out;
}

TEST_F(AdminServerTest, PostRoutesGetTheirBody) {
  const auto r = http_post("127.0.0.1", port_, "/echo", R"({"a":1})", 3s);
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.status, 200u);
  EXPECT_EQ(nlohmann::json::parse(r.body),
            nlohmann::json::parse(R"({"method":"POST","body":"{\"a\":1}"})"));
  // GET on the same path is its own route.
  EXPECT_EQ(nlohmann::json::parse(get("/echo").body).at("path"), "/echo");
  // An empty body is a body.
  const auto empty = http_post("127.0.0.1", port_, "/echo", "", 3s);
  EXPECT_EQ(nlohmann::json::parse(empty.body).at("body"), "");
  // Keep-alive: a second request on the same connection after a POST.
  const std::string two = raw(
      "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
      "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\nde");
  EXPECT_NE(two.find(R"("body":"abc")"), std::string::npos) << two;
  EXPECT_NE(two.find(R"("body":"de")"), std::string::npos) << two;
}

TEST_F(AdminServerTest, PostBodiesAreBounded) {
  const auto big = http_post("127.0.0.1", port_, "/echo", std::string(65, 'x'), 3s);
  ASSERT_TRUE(big.ok) << big.error;
  EXPECT_EQ(big.status, 413u);
  const auto fits = http_post("127.0.0.1", port_, "/echo", std::string(64, 'x'), 3s);
  EXPECT_EQ(fits.status, 200u);
  const std::string chunked = raw(
      "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
  EXPECT_EQ(chunked.rfind("HTTP/1.1 411", 0), 0u) << chunked;
  // POST where only GET is served, and the reverse, name what is.
  const std::string post_get =
      raw("POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}");
  EXPECT_EQ(post_get.rfind("HTTP/1.1 405", 0), 0u) << post_get;
  EXPECT_NE(post_get.find("Allow: GET\r\n"), std::string::npos) << post_get;
  const std::string del = raw("DELETE /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_NE(del.find("Allow: GET, POST"), std::string::npos) << del;
  EXPECT_EQ(http_post("127.0.0.1", port_, "/nope", "{}", 3s).status, 404u);
}

TEST_F(AdminServerTest, OversizedHeadersAreRefused) {
  const std::string out =
      raw("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(4000, 'a') + "\r\n\r\n");
  EXPECT_EQ(out.rfind("HTTP/1.1 431", 0), 0u) << out;
}

TEST_F(AdminServerTest, GarbageIs400) {
  const std::string out = raw("HELLO\x01\x02 there\r\n\r\n");
  EXPECT_EQ(out.rfind("HTTP/1.1 400", 0), 0u) << out;
}

TEST_F(AdminServerTest, KeepAliveServesSeveralRequests) {
  const std::string req = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
  const std::string out = raw(req + req + "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  std::size_t count = 0;
  for (auto pos = out.find("HTTP/1.1 200"); pos != std::string::npos;
       pos = out.find("HTTP/1.1 200", pos + 1)) {
    ++count;
  }
  EXPECT_EQ(count, 3u) << out;
}

TEST_F(AdminServerTest, IdleConnectionIsClosedAfterTheTimeout) {
  // raw() returns when the server closes; it would wait 3 s (its own
  // receive timeout) if the server never did, and the server's is 2 s.
  const std::string out = raw("GET /healthz HTTP/1.1\r\nHost: x\r\n");  // never finished
  EXPECT_EQ(out, "");
}

TEST_F(AdminServerTest, ThrowingHandlerIs500) {
  const auto r = get("/throws");
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.status, 500u);
  EXPECT_EQ(nlohmann::json::parse(r.body).at("error"), "boom");
}

TEST_F(AdminServerTest, AsyncHandlerAnswersFromAnotherThreadOnce) {
  const auto r = get("/later");
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.status, 200u);
  EXPECT_EQ(r.body, R"({"late":true})");
}

TEST_F(AdminServerTest, IdleConnectionsMakeRoomForANewOne) {
  // Four idle connections fill the limit. A fifth, which sends its
  // request at once, is served: the connection that waited longest for a
  // request is closed to make room (slow clients cannot lock out a probe).
  asio::io_context io;
  std::vector<tcp::socket> idle;
  for (int i = 0; i < 4; ++i) {
    idle.emplace_back(io);
    idle.back().connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port_));
    std::this_thread::sleep_for(20ms);  // a clear order of age
  }
  std::this_thread::sleep_for(100ms);  // let the server accept them
  const auto served = get("/healthz");
  ASSERT_TRUE(served.ok);
  EXPECT_EQ(served.status, 200u);
  // The oldest was closed: its read ends.
  struct timeval tv{3, 0};
  ::setsockopt(idle.front().native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  char c;
  boost::system::error_code ec;
  idle.front().read_some(asio::buffer(&c, 1), ec);
  EXPECT_EQ(ec, asio::error::eof);
  std::promise<std::uint64_t> evicted;
  asio::post(io_, [&] { evicted.set_value(server_->connections_evicted()); });
  EXPECT_GE(evicted.get_future().get(), 1u);
}

TEST_F(AdminServerTest, WhenEveryConnectionIsBeingAnsweredANewOneIsClosed) {
  // Four requests the handler holds: nothing to evict, so a fifth
  // connection is closed at once; answered, the server serves again.
  std::mutex mu;
  std::vector<AdminServer::Respond> held;
  std::promise<void> routed;
  asio::post(io_, [&] {
    server_->route_async("/hold", [&](const HttpRequest&, AdminServer::Respond respond) {
      std::lock_guard lock(mu);
      held.push_back(std::move(respond));
    });
    routed.set_value();
  });
  routed.get_future().get();
  std::vector<std::thread> clients;
  for (int i = 0; i < 4; ++i) clients.emplace_back([this] { (void)get("/hold"); });
  for (int i = 0; i < 100; ++i) {
    {
      std::lock_guard lock(mu);
      if (held.size() == 4) break;
    }
    std::this_thread::sleep_for(20ms);
  }
  {
    std::lock_guard lock(mu);
    ASSERT_EQ(held.size(), 4u);
  }
  EXPECT_FALSE(get("/healthz").ok);
  {
    std::lock_guard lock(mu);
    for (auto& respond : held) respond(HttpResponse::json("{}"));
  }
  for (auto& t : clients) t.join();
  std::optional<HttpResult> r;
  for (int i = 0; i < 50 && !(r && r->ok); ++i) {
    std::this_thread::sleep_for(50ms);
    r = get("/healthz");
  }
  ASSERT_TRUE(r && r->ok);
  EXPECT_EQ(r->status, 200u);
}

TEST_F(AdminServerTest, TextThatIsNotUtf8ComesOutAsValidJson) {
  // A path from the client, a name from the network: neither may make the
  // JSON encoder throw (which once ended the process).
  const auto missing = get("/no/\xff\xfe");
  EXPECT_EQ(missing.status, 404u);
  EXPECT_FALSE(nlohmann::json::parse(missing.body, nullptr, false).is_discarded()) << missing.body;
  const auto r = HttpResponse::from_json(nlohmann::json{{"name", "bad\xff"}});
  EXPECT_EQ(r.body, "{\"name\":\"bad\xEF\xBF\xBD\"}");
}

// A guard sees method, path and Authorization before the handler (and
// before a POST's body is read); its answer goes out with its header fields.
TEST_F(AdminServerTest, GuardAnswersBeforeTheHandler) {
  std::promise<void> installed;
  asio::post(io_, [&] {
    server_->guard([](const HttpRequest& r) -> std::optional<HttpResponse> {
      if (r.path == "/healthz" || r.authorization == "Bearer let-me-in") return std::nullopt;
      HttpResponse no = HttpResponse::error(401, r.method + " " + r.path + " refused");
      no.headers.emplace_back("WWW-Authenticate", "Bearer");
      return no;
    });
    installed.set_value();
  });
  installed.get_future().wait();
  EXPECT_EQ(get("/healthz").status, 200u);
  const auto refused = http_post("127.0.0.1", port_, "/echo", "{}", 3s);
  EXPECT_EQ(refused.status, 401u);
  EXPECT_EQ(refused.header("www-authenticate"), "Bearer");
  EXPECT_EQ(nlohmann::json::parse(refused.body).at("error"), "POST /echo refused");
  EXPECT_EQ(get("/echo").status, 401u);
  const auto allowed = http_post("127.0.0.1", port_, "/echo", "{}", 3s, bearer("let-me-in"));
  EXPECT_EQ(allowed.status, 200u);
  EXPECT_EQ(nlohmann::json::parse(allowed.body).at("body"), "{}");
  EXPECT_EQ(get("/nope").status, 404u);  // nothing there to guard
  EXPECT_TRUE(bearer("").empty());
}

TEST(AdminServerBindTest, LoopbackIsTheBoundAddress) {
  asio::io_context io;
  EXPECT_TRUE(AdminServer(io, "127.0.0.1", 0).loopback());
  EXPECT_FALSE(AdminServer(io, "0.0.0.0", 0).loopback());
}

TEST(AdminServerBindTest, BindFailureIsOneLine) {
  asio::io_context io;
  AdminServer first(io, "127.0.0.1", 0);
  const auto port = first.port();
  try {
    AdminServer second(io, "127.0.0.1", port);
    FAIL() << "bound twice";
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()), "admin endpoint 127.0.0.1:" + std::to_string(port) +
                                         ": cannot bind (Address already in use)");
  }
  EXPECT_THROW(AdminServer(io, "localhost", 0), std::runtime_error);
}

TEST(AdminClientTest, ConnectionRefusedIsAnErrorValue) {
  // Bind then close to get a port nobody listens on.
  std::uint16_t port = 0;
  {
    asio::io_context io;
    tcp::acceptor a(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    port = a.local_endpoint().port();
  }
  const auto r = http_get("127.0.0.1", port, "/", 2s);
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.error, "connect: Connection refused");
}

TEST(AdminClientTest, SilentServerTimesOut) {
  // A listener that never accepts: the kernel completes the handshake, and
  // nobody ever answers (what a SIGSTOPped node looks like).
  asio::io_context io;
  tcp::acceptor a(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  const auto start = std::chrono::steady_clock::now();
  const auto r = http_get("127.0.0.1", a.local_endpoint().port(), "/", 300ms);
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.error, "read: timed out");
  EXPECT_LT(std::chrono::steady_clock::now() - start, 10s);  // bounded, not hung
}

TEST(AdminClientTest, ParseHostPort) {
  EXPECT_EQ(parse_host_port("127.0.0.1:9946")->host, "127.0.0.1");
  EXPECT_EQ(parse_host_port("127.0.0.1:9946")->port, 9946);
  EXPECT_EQ(parse_host_port("[::1]:80")->host, "::1");
  EXPECT_EQ(parse_host_port("node-1.local:1")->port, 1);
  EXPECT_FALSE(parse_host_port("127.0.0.1"));
  EXPECT_FALSE(parse_host_port("::1:80"));
  EXPECT_FALSE(parse_host_port("h:0"));
  EXPECT_FALSE(parse_host_port("h:65536"));
  EXPECT_FALSE(parse_host_port(":80"));
  EXPECT_FALSE(parse_host_port("[::1]"));
}

TEST(MemberJsonTest, ShapeOfAMember) {
  swim::MemberInfo info;
  info.member.name = "n1";
  info.member.addr = swim::Address::v4(10, 0, 0, 7, 7946);
  info.member.incarnation = 3;
  info.member.state = swim::MemberState::Suspect;
  info.member.vsn = {1, 5, 2, 2, 5, 4};
  info.tags = {{"role", "db"}};
  const auto j = member_json(info);
  EXPECT_EQ(j, nlohmann::json::parse(R"({
    "name": "n1", "addr": "10.0.0.7", "port": 7946, "state": "suspect", "incarnation": 3,
    "tags": {"role": "db"},
    "protocol": {"min": 1, "max": 5, "cur": 2},
    "delegate": {"min": 2, "max": 5, "cur": 4}})"));
}

TEST(MemberJsonTest, StatesAndAddresses) {
  swim::MemberInfo info;
  info.member.addr = swim::Address::v4(127, 0, 0, 1, 1);
  for (auto [state, name] : {std::pair{swim::MemberState::Alive, "alive"},
                             std::pair{swim::MemberState::Dead, "dead"},
                             std::pair{swim::MemberState::Left, "left"}}) {
    info.member.state = state;
    EXPECT_EQ(member_json(info).at("state"), name);
  }
  EXPECT_TRUE(member_json(info).at("tags").is_object());  // {} when none
  swim::Address v6;
  v6.ip_len = 16;
  v6.ip[15] = 1;
  v6.port = 80;
  EXPECT_EQ(ip_string(v6), "::1");
}

TEST(MemberJsonTest, SelfAddsHealthAndStats) {
  swim::MemberInfo self;
  self.member.name = "me";
  self.member.addr = swim::Address::v4(127, 0, 0, 1, 7946);
  swim::NodeStats n;
  n.probes = 12;
  n.decode_errors[static_cast<std::size_t>(swim::DecodeError::BadCrc)] = 2;
  swim::DriverStats d;
  d.send_errors = 1;
  const auto j = self_json(self, 3, n, d);
  EXPECT_EQ(j.at("name"), "me");
  EXPECT_EQ(j.at("health_score"), 3);
  EXPECT_EQ(j.at("stats").at("probes"), 12);
  EXPECT_EQ(j.at("stats").at("decode_errors_total"), 2);
  EXPECT_EQ(j.at("stats").at("decode_errors").at(std::string(swim::to_string(swim::DecodeError::BadCrc))), 2);
  EXPECT_EQ(j.at("stats").at("send_errors"), 1);
}

}  // namespace
}  // namespace mesh
