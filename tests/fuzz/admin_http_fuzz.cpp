// admin_http: raw bytes sent to the admin HTTP endpoint, the way a client
// on the network sends them.
//
// The AdminServer runs on a loopback port of this process with small
// limits and a few routes of each kind (GET, POST, asynchronous, one that
// throws, one behind a guard). For each input a client connects, writes
// the whole input (which may hold several pipelined requests), shuts its
// side down and reads until the server closes. The server must answer or close without
// crashing, and must close: a connection left open would stall this
// harness until libFuzzer's -timeout calls it a hang. No seam in the
// server is needed, so what is fuzzed is exactly what runs in a node.
#include <unistd.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>

#include "fuzz_input.hpp"
#include "mesh/admin_server.hpp"

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {

// A fixed range of test ports below 32768, spread by process id so that
// concurrent runs (libFuzzer -jobs, ctest -j) rarely try the same one.
constexpr std::uint16_t kPortBase = 29500;
constexpr int kPortRange = 400;

struct Server {
  asio::io_context io;
  std::unique_ptr<mesh::AdminServer> admin;

  Server() {
    mesh::AdminServerOptions opts;
    opts.max_header_bytes = 1024;
    opts.max_body_bytes = 4096;
    opts.max_connections = 4;
    opts.request_timeout = std::chrono::milliseconds(2000);
    const int start = static_cast<int>(getpid()) % kPortRange;
    for (int i = 0; i < kPortRange && !admin; ++i) {
      const auto port = static_cast<std::uint16_t>(kPortBase + (start + i) % kPortRange);
      try {
        admin = std::make_unique<mesh::AdminServer>(io, "127.0.0.1", port, opts);
      } catch (const std::runtime_error&) {
      }
    }
    if (!admin) {
      std::fprintf(stderr, "admin_http: no free port in %u..%u\n", kPortBase, kPortBase + kPortRange - 1);
      std::abort();
    }
    add_routes();
    admin->start();
  }

  void add_routes() {
    admin->route("/healthz", [](const mesh::HttpRequest&) {
      return mesh::HttpResponse::json(R"({"status":"ok"})");
    });
    admin->route("/v1/echo", [](const mesh::HttpRequest& req) {
      return mesh::HttpResponse::json(nlohmann::json{{"query", req.query}}.dump(
          -1, ' ', false, nlohmann::json::error_handler_t::replace));
    });
    admin->route("/v1/throw", [](const mesh::HttpRequest&) -> mesh::HttpResponse {
      throw std::runtime_error("handler failed on purpose");
    });
    admin->route_async("/v1/later", [this](const mesh::HttpRequest&, mesh::AdminServer::Respond r) {
      asio::post(io, [r = std::move(r)] { r(mesh::HttpResponse::json("{}")); });
    });
    admin->route_post("/v1/send", [](const mesh::HttpRequest& req) {
      const auto j = nlohmann::json::parse(req.body, nullptr, false);
      if (j.is_discarded()) return mesh::HttpResponse::error(400, "body is not JSON");
      return mesh::HttpResponse::json(j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    });
    admin->route("/v1/both", [](const mesh::HttpRequest&) { return mesh::HttpResponse::json("{}"); });
    admin->route_post("/v1/both", [](const mesh::HttpRequest& req) {
      return mesh::HttpResponse::json(std::to_string(req.body.size()));
    });
    // As MeshAdmin's: a POST to /v1/both needs a token, and the refusal,
    // sent before the body is read, carries a header field.
    admin->guard([](const mesh::HttpRequest& req) -> std::optional<mesh::HttpResponse> {
      if (req.method == "GET" || req.path != "/v1/both" || req.authorization == "Bearer fuzz-token-0123456789") {
        return std::nullopt;
      }
      auto refused = mesh::HttpResponse::error(401, "token required");
      refused.headers.emplace_back("WWW-Authenticate", "Bearer");
      return refused;
    });
  }
};

Server& server() {
  static Server* s = new Server();  // never destroyed: lives as long as the fuzzer
  return *s;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Server& s = server();
  tcp::socket client(s.io);
  boost::system::error_code ec;
  const tcp::endpoint server_ep(asio::ip::make_address_v4("127.0.0.1"), s.admin->port());
  // libFuzzer's timer signal may interrupt a blocking connect: start over
  // on a fresh socket (the interrupted one may still be connecting).
  for (int attempt = 0; attempt < 10; ++attempt) {
    client.connect(server_ep, ec);
    if (ec != asio::error::interrupted) break;
    boost::system::error_code ignored;
    client.close(ignored);
  }
  if (ec) {
    std::fprintf(stderr, "admin_http: connect: %s\n", ec.message().c_str());
    std::abort();
  }

  // Both handlers refer to this frame: wait for both before leaving it.
  bool written = false;
  bool closed = false;
  asio::streambuf reply(1 << 20);
  asio::async_write(client, asio::buffer(data, size), [&](boost::system::error_code, std::size_t) {
    // Whether or not the server read it all, nothing more will come.
    boost::system::error_code ignored;
    client.shutdown(tcp::socket::shutdown_send, ignored);
    written = true;
  });
  asio::async_read(client, reply, [&](boost::system::error_code, std::size_t) { closed = true; });
  while (!written || !closed) s.io.run_one();
  return 0;
}
