#include "mesh/admin_server.hpp"

#include <atomic>
#include <chrono>
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

struct Routes {
  AdminServer::AsyncHandler get;
  AdminServer::AsyncHandler post;
};

// Everything the listener and its connections share; a connection keeps it
// alive as long as its own operations are pending.
struct ServerState {
  ServerState(asio::io_context& io_, AdminServerOptions options_)
      : io(io_), acceptor(io_), options(options_) {}

  asio::io_context& io;
  tcp::acceptor acceptor;
  AdminServerOptions options;
  std::map<std::string, Routes, std::less<>> routes;
  AdminServer::Guard guard;
  // Open connections, so that stop() can close them. Weak: a connection
  // lives as long as its pending operations.
  std::list<std::weak_ptr<Session>> sessions;
  std::size_t open = 0;
  std::atomic<std::uint64_t> evicted{0};  // connections closed to make room
  bool started = false;
  // Atomic: answers may come from other threads (see dispatch) and must
  // not post to an io_context that the server's owner is tearing down.
  std::atomic<bool> stopped{false};
};

void accept(const std::shared_ptr<ServerState>& state);

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, std::shared_ptr<ServerState> server)
      : stream_(std::move(socket)), server_(std::move(server)) {
    ++server_->open;
  }

  // Waiting for a client's request (header or body), as opposed to
  // handling one or writing an answer; since when.
  bool waiting() const { return waiting_ && !closed_; }
  std::chrono::steady_clock::time_point waiting_since() const { return waiting_since_; }
  // A connection counts against max_connections while its socket is open,
  // not while the Session lives: a handler may hold its Respond (and so
  // the Session) long after the client went away.
  ~Session() { release_slot(); }
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  void start() { read(); }

  void close() {
    closed_ = true;
    release_slot();
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.socket().close(ignored);
  }

 private:
  void release_slot() {
    if (counted_) --server_->open;
    counted_ = false;
  }

  void read() {
    waiting_ = true;
    waiting_since_ = std::chrono::steady_clock::now();
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(server_->options.max_header_bytes));
    // Checked against Content-Length already while the header is parsed.
    parser_->body_limit(server_->options.max_body_bytes);
    // The header first: whether a body may follow, and how large, depends
    // on the method and the route, and nothing here should make us buffer
    // a client's bytes that no handler wants.
    stream_.expires_after(server_->options.request_timeout);
    http::async_read_header(stream_, buffer_, *parser_,
                            [self = shared_from_this()](beast::error_code ec, std::size_t) {
                              self->on_header(ec);
                            });
  }

  // A transport-level end of the connection, or a stopped server: close
  // without answering. Otherwise the error is the client's: answer it.
  bool closed_or_refused(const beast::error_code& ec) {
    if (ec == http::error::end_of_stream || ec == beast::error::timeout ||
        ec == asio::error::operation_aborted || ec == asio::error::connection_reset ||
        ec == asio::error::eof || server_->stopped) {
      close();
      return true;
    }
    if (ec == http::error::header_limit) {
      write(HttpResponse::error(431, "request header too large"), false);
      return true;
    }
    if (ec == http::error::body_limit) {
      write(HttpResponse::error(413, "request body too large"), false);
      return true;
    }
    if (ec) {
      write(HttpResponse::error(400, "bad request"), false);
      return true;
    }
    return false;
  }

  void on_header(beast::error_code ec) {
    if (closed_or_refused(ec)) return;
    const auto& req = parser_->get();
    // A body we do not read would be taken for the next request: answers
    // that leave one unread close the connection.
    const bool body_pending = !parser_->is_done();
    keep_alive_ = req.keep_alive() && !body_pending;
    request_ = HttpRequest{};
    request_.method = std::string(req.method_string());
    request_.target = std::string(req.target());
    const auto q = request_.target.find('?');
    request_.path = request_.target.substr(0, q);
    if (q != std::string::npos) request_.query = request_.target.substr(q + 1);
    request_.authorization = std::string(req[http::field::authorization]);

    const auto it = server_->routes.find(request_.path);
    const Routes* routes = it == server_->routes.end() ? nullptr : &it->second;
    const bool get = req.method() == http::verb::get;
    const bool post = req.method() == http::verb::post;
    if (!get && !post) {
      write(HttpResponse::error(405, "method not allowed"), keep_alive_, allow(routes));
      return;
    }
    if (routes == nullptr) {
      write(HttpResponse::error(404, "no such path: " + request_.path), keep_alive_);
      return;
    }
    const AdminServer::AsyncHandler& handler = get ? routes->get : routes->post;
    if (!handler) {
      write(HttpResponse::error(405, std::string(get ? "GET" : "POST") + " is not supported here"),
            keep_alive_, allow(routes));
      return;
    }
    if (server_->guard) {
      if (auto refused = server_->guard(request_)) {
        write(std::move(*refused), keep_alive_);
        return;
      }
    }
    if (get) {
      if (body_pending) {
        write(HttpResponse::error(413, "request bodies are not accepted"), false);
        return;
      }
      dispatch(handler);
      return;
    }
    if (body_pending && !parser_->content_length()) {
      write(HttpResponse::error(411, "Content-Length required"), false);
      return;
    }
    if (parser_->content_length() && *parser_->content_length() > server_->options.max_body_bytes) {
      write(HttpResponse::error(413, "request body too large"), false);
      return;
    }
    if (!body_pending) {
      dispatch(handler);
      return;
    }
    http::async_read(stream_, buffer_, *parser_,
                     [self = shared_from_this(), path = request_.path](beast::error_code ec2,
                                                                       std::size_t) {
                       if (self->closed_or_refused(ec2)) return;
                       self->keep_alive_ = self->parser_->get().keep_alive();
                       // Routes may be replaced meanwhile (on this thread):
                       // look the handler up again.
                       const auto again = self->server_->routes.find(path);
                       if (again == self->server_->routes.end() || !again->second.post) {
                         self->write(HttpResponse::error(404, "no such path: " + path),
                                     self->keep_alive_);
                         return;
                       }
                       self->dispatch(again->second.post);
                     });
  }

  static std::string allow(const Routes* routes) {
    if (routes == nullptr) return "GET";
    std::string a;
    if (routes->get) a = "GET";
    if (routes->post) a += a.empty() ? "POST" : ", POST";
    return a;
  }

  void dispatch(const AdminServer::AsyncHandler& handler) {
    waiting_ = false;
    request_.body = std::move(parser_->get().body());
    // The handler may answer now or later, from any thread; the answer is
    // written on the io_context. `answered` makes a second answer harmless
    // and lets a throwing handler become a 500.
    auto answered = std::make_shared<std::atomic<bool>>(false);
    auto respond = [self = shared_from_this(), answered](HttpResponse res) {
      if (answered->exchange(true) || self->server_->stopped) return;
      asio::post(self->stream_.get_executor(), [self, res = std::move(res)]() mutable {
        self->write(std::move(res), self->keep_alive_);
      });
    };
    try {
      handler(request_, respond);
    } catch (const std::exception& e) {
      respond(HttpResponse::error(500, e.what()));
    } catch (...) {
      respond(HttpResponse::error(500, "handler failed"));
    }
  }

  void write(HttpResponse res, bool keep_alive, const std::string& allow_header = {}) {
    waiting_ = false;
    if (server_->stopped) {
      close();
      return;
    }
    auto msg = std::make_shared<http::response<http::string_body>>();
    msg->version(11);
    msg->result(static_cast<http::status>(res.status));
    msg->set(http::field::content_type, res.content_type);
    msg->set(http::field::cache_control, "no-store");
    if (!allow_header.empty()) msg->set(http::field::allow, allow_header);
    for (const auto& [name, value] : res.headers) msg->set(name, value);
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
  std::optional<http::request_parser<http::string_body>> parser_;
  HttpRequest request_;
  bool keep_alive_ = false;
  bool waiting_ = false;
  bool closed_ = false;
  bool counted_ = true;  // in server_->open
  std::chrono::steady_clock::time_point waiting_since_{};
  std::shared_ptr<ServerState> server_;
};

std::string errno_text(const boost::system::error_code& ec) { return ec.message(); }

bool evict_slowest(ServerState& state) {
  std::shared_ptr<Session> victim;
  for (const auto& w : state.sessions) {
    auto s = w.lock();
    if (!s || !s->waiting()) continue;
    if (!victim || s->waiting_since() < victim->waiting_since()) victim = std::move(s);
  }
  if (!victim) return false;
  victim->close();  // its pending read fails; the session then goes away
  ++state.evicted;
  return true;
}

void accept(const std::shared_ptr<ServerState>& self) {
  self->acceptor.async_accept([self](beast::error_code ec, tcp::socket socket) {
    if (self->stopped || ec == asio::error::operation_aborted) return;
    if (!ec) {
      // At the limit, the connection that has kept us waiting longest for
      // its request makes room: slow or idle clients cannot lock out a
      // health probe, which sends its request at once. When every
      // connection is busy being answered, the newcomer is closed instead
      // (a client of the admin endpoint retries).
      if (self->open >= self->options.max_connections && !evict_slowest(*self)) {
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
  r.body = nlohmann::json{{"error", std::string(message)}}.dump(-1, ' ', false,
                                                                nlohmann::json::error_handler_t::replace);
  return r;
}

HttpResponse HttpResponse::from_json(const nlohmann::json& value, unsigned status) {
  return json(value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), status);
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
  impl_->routes[std::move(path)].get = std::move(handler);
}

void AdminServer::route_post(std::string path, Handler handler) {
  route_post_async(std::move(path),
                   [h = std::move(handler)](const HttpRequest& req, Respond respond) {
                     respond(h(req));
                   });
}

void AdminServer::route_post_async(std::string path, AsyncHandler handler) {
  impl_->routes[std::move(path)].post = std::move(handler);
}

void AdminServer::guard(Guard guard) { impl_->guard = std::move(guard); }

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

bool AdminServer::loopback() const {
  boost::system::error_code ec;
  const auto ep = impl_->acceptor.local_endpoint(ec);
  return !ec && ep.address().is_loopback();
}

std::uint64_t AdminServer::connections_evicted() const { return impl_->evicted; }

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
