#include "mesh/json_limits.hpp"


namespace mesh {

namespace {

// Recursion is safe here: it never goes deeper than limit + 1 frames,
// and it allocates nothing (this runs for every message sent).
std::size_t depth_below(const nlohmann::json& v, std::size_t level, std::size_t limit) {
  if (!v.is_structured()) return level;
  const std::size_t here = level + 1;
  if (here > limit) return here;
  std::size_t deepest = here;
  for (const auto& child : v) {
    if (!child.is_structured()) continue;
    const std::size_t d = depth_below(child, here, limit);
    if (d > deepest) deepest = d;
    if (deepest > limit) break;
  }
  return deepest;
}

}  // namespace

std::size_t json_depth(const nlohmann::json& value, std::size_t stop_at) {
  return depth_below(value, 0, stop_at);
}

namespace {

// Deepest bracket nesting of JSON text, strings skipped; stops early once
// past `limit`. Syntax is the parser's business, not this scan's.
std::size_t text_depth(std::string_view text, std::size_t limit) {
  std::size_t depth = 0, deepest = 0;
  bool in_string = false, escaped = false;
  for (const char c : text) {
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
      continue;
    }
    switch (c) {
      case '"': in_string = true; break;
      case '[':
      case '{':
        if (++depth > deepest) deepest = depth;
        if (deepest > limit) return deepest;
        break;
      case ']':
      case '}':
        if (depth > 0) --depth;
        break;
      default: break;
    }
  }
  return deepest;
}

}  // namespace

std::optional<nlohmann::json> parse_json_bounded(std::string_view text, std::string* error,
                                                 std::size_t max_depth) {
  if (text_depth(text, max_depth) > max_depth) {
    if (error) *error = "JSON nested deeper than " + std::to_string(max_depth) + " levels";
    return std::nullopt;
  }
  auto value = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded()) {
    if (error) *error = "not valid JSON";
    return std::nullopt;
  }
  return value;
}

}  // namespace mesh
