// Who may call which route of the admin API (mesh/mesh_admin.hpp,
// "Authentication"): the AdminServer guard MeshAdmin installs.
#include <algorithm>
#include <cctype>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "mesh_admin_state.hpp"

namespace mesh::admin_api {
namespace {

// The credentials of "Authorization: Bearer <token>" (RFC 6750; the scheme
// in any case); nullopt for anything else.
std::optional<std::string_view> bearer_token(std::string_view header) {
  constexpr std::string_view kScheme = "bearer ";
  if (header.size() < kScheme.size()) return std::nullopt;
  for (std::size_t i = 0; i < kScheme.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(header[i])) != kScheme[i]) return std::nullopt;
  }
  header.remove_prefix(kScheme.size());
  while (!header.empty() && header.front() == ' ') header.remove_prefix(1);
  while (!header.empty() && header.back() == ' ') header.remove_suffix(1);
  return header;
}

// Takes as long for any two strings of the same lengths, wherever they
// first differ, so that response times do not give the token away byte by
// byte.
bool same_secret(std::string_view given, std::string_view token) {
  const std::size_t n = std::max(given.size(), token.size());
  unsigned diff = given.size() == token.size() ? 0U : 1U;
  for (std::size_t i = 0; i < n; ++i) {
    const unsigned a = i < given.size() ? static_cast<unsigned char>(given[i]) : 0U;
    const unsigned b = i < token.size() ? static_cast<unsigned char>(token[i]) : 0U;
    diff |= a ^ b;
  }
  return diff == 0;
}

}  // namespace

AdminServer::Guard auth_guard(std::string token, bool read_auth, bool loopback,
                              std::function<void()> refused) {
  return [token = std::move(token), read_auth, loopback,
          refused = std::move(refused)](const HttpRequest& req) -> std::optional<HttpResponse> {
    // Probes (kubelet, the image's HEALTHCHECK) carry no token.
    if (req.path == "/healthz" || req.path == "/livez" || req.path == "/readyz") return std::nullopt;
    const bool mutating = req.method != "GET";
    if (token.empty()) {
      // Without a token only this machine may act as the node's agents.
      if (!mutating || loopback) return std::nullopt;
      refused();
      return HttpResponse::error(403,
                                 "the admin endpoint listens beyond loopback without a token: POST "
                                 "routes are refused (set JC_ADMIN_TOKEN_FILE or JC_ADMIN_TOKEN)");
    }
    if (!mutating && !read_auth) return std::nullopt;
    const auto given = bearer_token(req.authorization);
    if (given && same_secret(*given, token)) return std::nullopt;
    refused();
    HttpResponse r = HttpResponse::error(
        401, given ? "wrong admin token" : "this route needs the admin token (Authorization: Bearer <token>)");
    r.headers.emplace_back("WWW-Authenticate", "Bearer");
    return r;
  };
}

}  // namespace mesh::admin_api
