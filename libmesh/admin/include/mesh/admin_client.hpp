// A small blocking HTTP/1.1 GET/POST client for the admin endpoint (meshctl and
// the multi-process tests). Every step is bounded by one deadline, so a
// stopped (SIGSTOP) or wedged node cannot hang the caller.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "mesh/host_port.hpp"

namespace mesh {

// "host:port" or "[v6addr]:port"; nullopt if malformed (port 1-65535).
std::optional<HostPort> parse_host_port(std::string_view text);

// Header fields (name, value), in order.
using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

struct HttpResult {
  bool ok = false;       // a response arrived (of any status)
  unsigned status = 0;
  std::string body;
  std::string error;     // when !ok: one line, e.g. "connect: Connection refused"
  HttpHeaders headers;   // the response's, as received

  // The value of the first header field named `name` (any case); empty
  // if there is none.
  std::string header(std::string_view name) const;
};

// {"Authorization", "Bearer <token>"}, or nothing for an empty token: the
// admin API's credentials (mesh/mesh_admin.hpp).
HttpHeaders bearer(const std::string& token);

// GET http://host:port<target>. Never throws on network errors; the whole
// exchange (resolve, connect, write, read) must finish within `timeout`.
// Responses larger than 16 MiB are refused.
// `headers` are sent as well.
HttpResult http_get(const std::string& host, std::uint16_t port, const std::string& target,
                    std::chrono::milliseconds timeout = std::chrono::seconds(5),
                    const HttpHeaders& headers = {});

// POST `body` (Content-Type application/json) to http://host:port<target>;
// otherwise as http_get.
HttpResult http_post(const std::string& host, std::uint16_t port, const std::string& target,
                     const std::string& body,
                     std::chrono::milliseconds timeout = std::chrono::seconds(5),
                     const HttpHeaders& headers = {});

}  // namespace mesh
