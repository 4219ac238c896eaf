// Member states from the JSON a node gives out about its membership
// (GET /v1/members, or `meshctl members --json`): name -> "alive",
// "suspect", "dead" or "left". Header-only; the tests that use it read
// the body over HTTP or from meshctl themselves.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

namespace mesh::test {

// nullopt when `body` is not a JSON array of members with names and states.
inline std::optional<std::map<std::string, std::string>> member_states(const std::string& body) {
  std::map<std::string, std::string> out;
  try {
    for (const auto& m : nlohmann::json::parse(body)) {
      out[m.at("name").get<std::string>()] = m.at("state").get<std::string>();
    }
  } catch (const std::exception&) {
    return std::nullopt;
  }
  return out;
}

}  // namespace mesh::test
