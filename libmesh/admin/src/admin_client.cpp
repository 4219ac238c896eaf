#include "mesh/admin_client.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace mesh {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

constexpr std::uint64_t kMaxBody = 16u << 20;

std::string describe(std::string_view step, const beast::error_code& ec) {
  if (ec == beast::error::timeout) return std::string(step) + ": timed out";
  return std::string(step) + ": " + ec.message();
}

}  // namespace

std::optional<HostPort> parse_host_port(std::string_view text) {
  auto split = split_host_port(text, {});
  auto* hp = std::get_if<HostPort>(&split);
  if (hp == nullptr || hp->host.empty()) return std::nullopt;
  return std::move(*hp);
}

namespace {

HttpResult exchange(http::verb verb, const std::string& host, std::uint16_t port,
                    const std::string& target, const std::string* body,
                    std::chrono::milliseconds timeout, const HttpHeaders& headers) {
  // Beast's timeouts apply to asynchronous operations only, so the
  // "blocking" call runs the asynchronous chain on a private io_context.
  asio::io_context io;
  tcp::resolver resolver(io);
  beast::tcp_stream stream(io);
  beast::flat_buffer buffer;
  http::request<http::string_body> req{verb, target, 11};
  req.set(http::field::host, host + ":" + std::to_string(port));
  req.set(http::field::user_agent, "meshctl");
  for (const auto& [name, value] : headers) req.set(name, value);
  if (body != nullptr) {
    req.set(http::field::content_type, "application/json");
    req.body() = *body;
    req.prepare_payload();
  }
  req.keep_alive(false);
  http::response_parser<http::string_body> parser;
  parser.body_limit(kMaxBody);
  HttpResult result;
  const auto deadline = std::chrono::steady_clock::now() + timeout;

  // The step in progress, to say which one ran out of time.
  std::string step = "resolve " + host;
  auto fail = [&](std::string_view what, const beast::error_code& ec) {
    result.error = describe(what, ec);
  };
  resolver.async_resolve(host, std::to_string(port), [&](beast::error_code ec,
                                                         tcp::resolver::results_type eps) {
    if (ec) return fail("resolve " + host, ec);
    stream.expires_at(deadline);
    step = "connect";
    stream.async_connect(eps, [&](beast::error_code ec2, const tcp::endpoint&) {
      if (ec2) return fail("connect", ec2);
      step = "write";
      http::async_write(stream, req, [&](beast::error_code ec3, std::size_t) {
        if (ec3) return fail("write", ec3);
        step = "read";
        http::async_read(stream, buffer, parser, [&](beast::error_code ec4, std::size_t) {
          if (ec4) return fail("read", ec4);
          result.ok = true;
          result.status = parser.get().result_int();
          result.body = std::move(parser.get().body());
          for (const auto& field : parser.get()) {
            result.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
          }
          beast::error_code ignored;
          stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
        });
      });
    });
  });
  // The resolver has no expiry of its own; bound it by the same deadline.
  io.run_until(deadline);
  if (!io.stopped()) {
    io.stop();
    if (!result.ok && result.error.empty()) result.error = step + ": timed out";
  }
  return result;
}

}  // namespace

std::string HttpResult::header(std::string_view name) const {
  for (const auto& [n, value] : headers) {
    if (beast::iequals(n, beast::string_view(name.data(), name.size()))) return value;
  }
  return {};
}

HttpHeaders bearer(const std::string& token) {
  if (token.empty()) return {};
  return {{"Authorization", "Bearer " + token}};
}

HttpResult http_get(const std::string& host, std::uint16_t port, const std::string& target,
                    std::chrono::milliseconds timeout, const HttpHeaders& headers) {
  return exchange(http::verb::get, host, port, target, nullptr, timeout, headers);
}

HttpResult http_post(const std::string& host, std::uint16_t port, const std::string& target,
                     const std::string& body, std::chrono::milliseconds timeout,
                     const HttpHeaders& headers) {
  return exchange(http::verb::post, host, port, target, &body, timeout, headers);
}

}  // namespace mesh
