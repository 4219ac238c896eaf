// The admin HTTP endpoint of a node: a small HTTP/1.1 server (Boost.Beast)
// on the node's io_context, serving GET routes registered by path.
//
// It is an operator's and a test's window into the node (/v1/members,
// /v1/self, /healthz; /v1/agents, /v1/send, /v1/request on a node that
// hosts agents, see mesh_admin.hpp), not a public API: it binds to
// loopback unless configured otherwise, leaves authentication to its owner
// (a guard, which sees every request first: MeshAdmin's checks a bearer
// token), answers GET and, on routes registered for it, POST (405
// otherwise, 404 for unknown paths), and bounds what a client may cost
// it: request header size, no body on a GET and a bounded one on a POST,
// an idle and a read timeout, and a limit on connections open at once. Everything a client sends is
// untrusted; a bad request is answered (400/405/411/413) or the connection
// closed, never thrown.
//
// Threading: the server runs on the io_context it is given (one thread in
// mesh-node). Handlers run there too, so a handler must not block on work
// that needs that same thread: use route_async and answer later.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace boost::asio {
class io_context;
}

namespace mesh {

struct HttpRequest {
  std::string method;  // "GET" or "POST"
  std::string target;  // as sent: "/v1/members?x=1"
  std::string path;    // without the query: "/v1/members"
  std::string query;   // after '?', undecoded; empty if none
  std::string body;    // POST only (untrusted, at most max_body_bytes)
  std::string authorization;  // the Authorization header as sent; empty if none
};

struct HttpResponse {
  unsigned status = 200;
  std::string content_type = "application/json";
  std::string body;
  // More header fields (name, value), e.g. WWW-Authenticate on a 401.
  std::vector<std::pair<std::string, std::string>> headers;

  // {"error": message} with `status`.
  static HttpResponse error(unsigned status, std::string_view message);
  // A JSON body that is already serialised.
  static HttpResponse json(std::string body, unsigned status = 200);
  // `value` serialised. Strings that are not valid UTF-8 (names from the
  // network, a client's path) come out with U+FFFD in place of the bad
  // bytes instead of making the encoder throw.
  static HttpResponse from_json(const nlohmann::json& value, unsigned status = 200);
};

struct AdminServerOptions {
  std::size_t max_header_bytes = 8 * 1024;
  // Connections open at once. At the limit, a new connection closes the
  // one that has kept the server waiting longest for its request, so slow
  // or idle clients cannot lock out a quick one (a health probe); only
  // when every connection is being answered is the newcomer refused.
  std::size_t max_connections = 64;
  // Largest POST body accepted (413 beyond). GETs may carry none.
  std::size_t max_body_bytes = 1024 * 1024;
  // A request must arrive whole within this long, and an idle keep-alive
  // connection is closed after it.
  std::chrono::milliseconds request_timeout{10'000};
};

class AdminServer {
 public:
  using Handler = std::function<HttpResponse(const HttpRequest&)>;
  using Respond = std::function<void(HttpResponse)>;
  // `respond` may be called from any thread, exactly once.
  using AsyncHandler = std::function<void(const HttpRequest&, Respond respond)>;
  // Sees every request to a registered route, method and path known,
  // before its handler and before a POST's body is read (so a refused
  // client cannot make the server buffer one). An answer refuses the
  // request with it; nullopt lets it through. Runs on the server's thread.
  using Guard = std::function<std::optional<HttpResponse>(const HttpRequest&)>;

  // Binds and listens on host:port (an IP literal; port 0 picks a free one).
  // Throws std::runtime_error with a one-line reason if it cannot.
  AdminServer(boost::asio::io_context& io, const std::string& host, std::uint16_t port,
              AdminServerOptions options = {});
  ~AdminServer();
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  // Registers a handler for GET `path` (exact match, no query). Registering
  // a path twice replaces the handler. Call before start(), or on the
  // io_context's thread. A handler that throws yields a 500.
  void route(std::string path, Handler handler);
  void route_async(std::string path, AsyncHandler handler);
  // The same for POST `path`; the handler gets the body (Content-Length
  // required: 411 without, 413 over max_body_bytes). A path may have both
  // a GET and a POST handler; the other method gets 405 with Allow.
  void route_post(std::string path, Handler handler);
  void route_post_async(std::string path, AsyncHandler handler);
  // Installs the guard (one; a second replaces it). Call before start(),
  // or on the io_context's thread.
  void guard(Guard guard);

  // Starts accepting. Call once.
  void start();
  // Closes the listener and every open connection. Idempotent; call on the
  // io_context's thread or after it stopped running.
  void stop();

  std::uint16_t port() const;  // the bound port
  // Connections closed to make room for a new one (see max_connections).
  // Any thread.
  std::uint64_t connections_evicted() const;
  std::string endpoint() const;  // "127.0.0.1:9946"
  // Whether the bound address is a loopback one (127.0.0.0/8, ::1): only
  // clients on this machine can connect.
  bool loopback() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace mesh
