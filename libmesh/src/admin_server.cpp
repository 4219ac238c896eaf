#include "mesh/admin_server.hpp"

#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <list>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <utility>

namespace mesh {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

class Session;

// Everything the listener and its connections share; a connection keeps it
// alive as long as its own operations are pending.
struct ServerState {
  ServerState(asio::io_context& io_, AdminServerOptions options_)
      : io(io_), acceptor(io_), options(options_) {}

  asio::io_context& io;
  tcp::acceptor acceptor;
  AdminServerOptions options;
  std::map<std::string, AdminServer::AsyncHandler, std::less<>> routes;
  // Open connections, so that stop() can close them. Weak: a connection
  // lives as long as its pending operations.
  std::list<std::weak_ptr<Session>> sessions;
  std::size_t open = 0;
  bool started = false;
  bool stopped = false;
};

void accept(const std::shared_ptr<ServerState>& state);

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, std::shared_ptr<ServerState> server)
      : stream_(std::move(socket)), server_(std::move(server)) {
    ++server_->open;
  }
  ~Session() { --server_->open; }
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  void start() { read(); }

  void close() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.socket().close(ignored);
  }

 private:
  void read() {
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(server_->options.max_header_bytes));
    // An empty_body parser refuses any request with a body
    // (http::error::unexpected_body): GETs carry none, and nothing here
    // should make us buffer a client's bytes.
    stream_.expires_after(server_->options.request_timeout);
    http::async_read(stream_, buffer_, *parser_,
                     [self = shared_from_this()](beast::error_code ec, std::size_t) {
                       self->on_read(ec);
                     });
  }

  void on_read(beast::error_code ec) {
    if (ec == http::error::end_of_stream || ec == beast::error::timeout ||
        ec == asio::error::operation_aborted || ec == asio::error::connection_reset ||
        ec == asio::error::eof || server_->stopped) {
      close();
      return;
    }
    if (ec == http::error::header_limit) {
      write(HttpResponse::error(431, "request header too large"), false);
      return;
    }
    if (ec == http::error::unexpected_body || ec == http::error::body_limit) {
      write(HttpResponse::error(413, "request bodies are not accepted"), false);
      return;
    }
    if (ec) {
      write(HttpResponse::error(400, "bad request"), false);
      return;
    }
    const auto& req = parser_->get();
    keep_alive_ = req.keep_alive();
    HttpRequest r;
    r.method = std::string(req.method_string());
    r.target = std::string(req.target());
    const auto q = r.target.find('?');
    r.path = r.target.substr(0, q);
    if (q != std::string::npos) r.query = r.target.substr(q + 1);

    if (req.method() != http::verb::get) {
      write(HttpResponse::error(405, "only GET is supported"), keep_alive_, true);
      return;
    }
    auto it = server_->routes.find(r.path);
    if (it == server_->routes.end()) {
      write(HttpResponse::error(404, "no such path: " + r.path), keep_alive_);
      return;
    }
    // The handler may answer now or later, from any thread; the answer is
    // written on the io_context. `answered` makes a second answer harmless
    // and lets a throwing handler become a 500.
    auto answered = std::make_shared<std::atomic<bool>>(false);
    auto respond = [self = shared_from_this(), answered](HttpResponse res) {
      if (answered->exchange(true)) return;
      asio::post(self->stream_.get_executor(), [self, res = std::move(res)]() mutable {
        self->write(std::move(res), self->keep_alive_);
      });
    };
    try {
      it->second(r, respond);
    } catch (const std::exception& e) {
      respond(HttpResponse::error(500, e.what()));
    } catch (...) {
      respond(HttpResponse::error(500, "handler failed"));
    }
  }

  void write(HttpResponse res, bool keep_alive, bool allow_header = false) {
    if (server_->stopped) {
      close();
      return;
    }
    auto msg = std::make_shared<http::response<http::string_body>>();
    msg->version(11);
    msg->result(static_cast<http::status>(res.status));
    msg->set(http::field::content_type, res.content_type);
    msg->set(http::field::cache_control, "no-store");
    if (allow_header) msg->set(http::field::allow, "GET");
    msg->keep_alive(keep_alive);
    msg->body() = std::move(res.body);
    msg->prepare_payload();
    stream_.expires_after(server_->options.request_timeout);
    http::async_write(stream_, *msg,
                      [self = shared_from_this(), msg, keep_alive](beast::error_code ec,
                                                                   std::size_t) {
                        if (ec || !keep_alive || self->server_->stopped) {
                          self->close();
                          return;
                        }
                        self->read();
                      });
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::empty_body>> parser_;
  bool keep_alive_ = false;
  std::shared_ptr<ServerState> server_;
};

std::string errno_text(const boost::system::error_code& ec) { return ec.message(); }

void accept(const std::shared_ptr<ServerState>& self) {
  self->acceptor.async_accept([self](beast::error_code ec, tcp::socket socket) {
    if (self->stopped || ec == asio::error::operation_aborted) return;
    if (!ec) {
      // Over the limit: close at once rather than queue; a client of the
      // admin endpoint retries, and the node's own work comes first.
      if (self->open >= self->options.max_connections) {
        beast::error_code ignored;
        socket.close(ignored);
      } else {
        auto session = std::make_shared<Session>(std::move(socket), self);
        self->sessions.remove_if([](const auto& w) { return w.expired(); });
        self->sessions.push_back(session);
        session->start();
      }
    }
    // Errors of one accept (EMFILE, ECONNABORTED) are not fatal for the
    // listener; keep accepting.
    accept(self);
  });
}

}  // namespace

struct AdminServer::Impl : ServerState {
  using ServerState::ServerState;
};

HttpResponse HttpResponse::error(unsigned status, std::string_view message) {
  HttpResponse r;
  r.status = status;
  r.body = nlohmann::json{{"error", std::string(message)}}.dump();
  return r;
}

HttpResponse HttpResponse::json(std::string body, unsigned status) {
  HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

AdminServer::AdminServer(asio::io_context& io, const std::string& host, std::uint16_t port,
                         AdminServerOptions options)
    : impl_(std::make_shared<Impl>(io, options)) {
  boost::system::error_code ec;
  const auto address = asio::ip::make_address(host, ec);
  if (ec) throw std::runtime_error("admin endpoint: \"" + host + "\" is not an IP address");
  const tcp::endpoint ep(address, port);
  const std::string where =
      "admin endpoint " + (address.is_v6() ? "[" + host + "]" : host) + ":" + std::to_string(port);
  auto& a = impl_->acceptor;
  a.open(ep.protocol(), ec);
  if (!ec) a.set_option(asio::socket_base::reuse_address(true), ec);
  if (ec) throw std::runtime_error(where + ": cannot open socket (" + errno_text(ec) + ")");
  a.bind(ep, ec);
  if (ec) throw std::runtime_error(where + ": cannot bind (" + errno_text(ec) + ")");
  a.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) throw std::runtime_error(where + ": cannot listen (" + errno_text(ec) + ")");
}

AdminServer::~AdminServer() {
  // Sessions still queued on the io_context hold the Impl; they see
  // `stopped` and close themselves.
  impl_->stopped = true;
  boost::system::error_code ignored;
  impl_->acceptor.close(ignored);
}

void AdminServer::route(std::string path, Handler handler) {
  route_async(std::move(path), [h = std::move(handler)](const HttpRequest& req, Respond respond) {
    respond(h(req));
  });
}

void AdminServer::route_async(std::string path, AsyncHandler handler) {
  impl_->routes[std::move(path)] = std::move(handler);
}

void AdminServer::start() {
  if (impl_->started) return;
  impl_->started = true;
  accept(impl_);
}

void AdminServer::stop() {
  if (impl_->stopped) return;
  impl_->stopped = true;
  boost::system::error_code ignored;
  impl_->acceptor.close(ignored);
  for (auto& w : impl_->sessions) {
    if (auto s = w.lock()) s->close();
  }
  impl_->sessions.clear();
}

std::uint16_t AdminServer::port() const {
  boost::system::error_code ec;
  const auto ep = impl_->acceptor.local_endpoint(ec);
  return ec ? 0 : ep.port();
}

std::string AdminServer::endpoint() const {
  boost::system::error_code ec;
  const auto ep = impl_->acceptor.local_endpoint(ec);
  if (ec) return "?";
  const auto host = ep.address().to_string();
  return (ep.address().is_v6() ? "[" + host + "]" : host) + ":" + std::to_string(ep.port());
}

}  // namespace mesh
