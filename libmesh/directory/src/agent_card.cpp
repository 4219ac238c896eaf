#include "mesh/agent_card.hpp"

#include <cmath>
#include <string_view>
#include <unordered_set>
#include <utility>

#include "mesh/text.hpp"

namespace mesh {
namespace {

using json = nlohmann::json;

// Bounds for the pre-pass over untrusted input (see LimitsSax). The shape
// nests four deep (map, cards, card, capabilities); a little room is left
// for fields a later sender may add. kMaxValues bounds what the parsed tree
// can cost: a 1-byte MessagePack element becomes a 16-byte json value (more
// for a string), so 16 MiB of tiny elements would otherwise cost gigabytes.
// A real registry of kMaxCards cards with a dozen capabilities each has
// about 250 000 values.
constexpr std::size_t kMaxDepth = 8;
constexpr std::size_t kMaxMapEntries = 64;
constexpr std::size_t kMaxValues = 1'000'000;

bool is_control(unsigned char c) { return c < 0x20 || c == 0x7F; }

bool has_control(std::string_view s) {
  for (char ch : s) {
    if (is_control(static_cast<unsigned char>(ch))) return true;
  }
  return false;
}

bool has_space_or_control(std::string_view s) {
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == ' ' || is_control(c)) return true;
  }
  return false;
}

// Length and encoding, common to every string field.
std::optional<std::string> check_string(std::string_view field, std::string_view s) {
  if (s.size() > kMaxStringBytes) {
    return std::string(field) + " is longer than " + std::to_string(kMaxStringBytes) + " bytes";
  }
  if (!valid_utf8(s)) return std::string(field) + " is not valid UTF-8";
  return std::nullopt;
}

// For names that are matched exactly and printed in logs: agent_id, role, node.
std::optional<std::string> check_name(std::string_view field, std::string_view s) {
  if (s.empty()) return std::string(field) + " is empty";
  if (auto err = check_string(field, s)) return err;
  if (has_space_or_control(s)) return std::string(field) + " contains whitespace or a control character";
  return std::nullopt;
}

std::optional<std::uint64_t> as_u64(const json& j) {
  if (j.is_number_unsigned()) return j.get<std::uint64_t>();
  // Another encoder may send a non-negative value as a signed integer.
  if (j.is_number_integer()) {
    const auto v = j.get<std::int64_t>();
    if (v >= 0) return static_cast<std::uint64_t>(v);
  }
  return std::nullopt;
}

// Checks the shape of untrusted MessagePack before nlohmann builds a tree
// from it: nlohmann's binary reader recurses once per nesting level, so
// deep nesting must be refused before it reaches it, and a declared array
// size above max_size() throws from inside the DOM builder.
class LimitsSax {
 public:
  using number_integer_t = json::number_integer_t;
  using number_unsigned_t = json::number_unsigned_t;
  using number_float_t = json::number_float_t;
  using string_t = json::string_t;
  using binary_t = json::binary_t;

  bool null() { return value(); }
  bool boolean(bool) { return value(); }
  bool number_integer(number_integer_t) { return value(); }
  bool number_unsigned(number_unsigned_t) { return value(); }
  bool number_float(number_float_t, const string_t&) { return value(); }
  bool string(string_t& s) { return value() && s.size() <= kMaxStringBytes; }
  bool binary(binary_t&) { return false; }  // the shape has none
  bool key(string_t& k) { return value() && k.size() <= kMaxStringBytes; }
  bool start_object(std::size_t len) { return open(len, kMaxMapEntries); }
  bool end_object() { return close(); }
  bool start_array(std::size_t len) { return open(len, kMaxCards); }
  bool end_array() { return close(); }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) {
    return false;
  }

 private:
  bool value() { return ++values_ <= kMaxValues; }
  bool open(std::size_t len, std::size_t max_len) {
    if (!value()) return false;
    // MessagePack always declares the length; -1 would mean "unknown".
    if (len == static_cast<std::size_t>(-1) || len > max_len) return false;
    return ++depth_ <= kMaxDepth;
  }
  bool close() {
    --depth_;
    return true;
  }

  std::size_t depth_ = 0;
  std::size_t values_ = 0;
};

// Reads a string member; nullopt if missing or not a string.
std::optional<std::string> get_string(const json& obj, const char* key) {
  const auto it = obj.find(key);
  if (it == obj.end() || !it->is_string()) return std::nullopt;
  return it->get<std::string>();
}

std::optional<std::vector<std::string>> get_string_array(const json& j) {
  if (!j.is_array()) return std::nullopt;
  std::vector<std::string> out;
  out.reserve(j.size());
  for (const auto& e : j) {
    if (!e.is_string()) return std::nullopt;
    out.push_back(e.get<std::string>());
  }
  return out;
}

// Counts nesting while nlohmann parses JSON text, so that a schema nested
// deeper than kMaxSchemaDepth is refused before a tree is built from it.
class DepthSax {
 public:
  using number_integer_t = json::number_integer_t;
  using number_unsigned_t = json::number_unsigned_t;
  using number_float_t = json::number_float_t;
  using string_t = json::string_t;
  using binary_t = json::binary_t;

  bool null() { return true; }
  bool boolean(bool) { return true; }
  bool number_integer(number_integer_t) { return true; }
  bool number_unsigned(number_unsigned_t) { return true; }
  bool number_float(number_float_t, const string_t&) { return true; }
  bool string(string_t&) { return true; }
  bool binary(binary_t&) { return false; }
  bool key(string_t&) { return true; }
  bool start_object(std::size_t) { return ++depth_ <= kMaxSchemaDepth; }
  bool end_object() { return close(); }
  bool start_array(std::size_t) { return ++depth_ <= kMaxSchemaDepth; }
  bool end_array() { return close(); }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) { return false; }

 private:
  bool close() {
    --depth_;
    return true;
  }
  std::size_t depth_ = 0;
};

// A schema as the wire carries it (JSON text); nullopt unless it is JSON
// text of a bounded object. validate_card checks the rest.
std::optional<json> schema_from_text(const json& j) {
  if (!j.is_string()) return std::nullopt;
  const auto& text = j.get_ref<const std::string&>();
  if (text.size() > kMaxSchemaBytes) return std::nullopt;
  DepthSax depth;
  if (!json::sax_parse(text, &depth, json::input_format_t::json, /*strict=*/true)) return std::nullopt;
  json schema = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!schema.is_object()) return std::nullopt;
  return schema;
}

// What JSON text can carry, nested at most kMaxSchemaDepth deep (`depth`
// is the level of `j`). Bounded recursion: it stops at the limit.
std::optional<std::string> check_json_value(std::string_view field, const json& j, std::size_t depth) {
  switch (j.type()) {
    case json::value_t::object:
    case json::value_t::array:
      if (depth > kMaxSchemaDepth) {
        return std::string(field) + " nests deeper than " + std::to_string(kMaxSchemaDepth) + " levels";
      }
      for (auto it = j.begin(); it != j.end(); ++it) {
        if (j.is_object() && !valid_utf8(it.key())) return std::string(field) + " has a key that is not valid UTF-8";
        if (auto err = check_json_value(field, it.value(), depth + 1)) return err;
      }
      return std::nullopt;
    case json::value_t::string:
      if (!valid_utf8(j.get_ref<const std::string&>())) return std::string(field) + " has a string that is not valid UTF-8";
      return std::nullopt;
    case json::value_t::number_float:
      if (!std::isfinite(j.get<double>())) return std::string(field) + " has a number that is not finite";
      return std::nullopt;
    case json::value_t::binary:
      return std::string(field) + " has a binary value";
    case json::value_t::discarded:
      return std::string(field) + " is not a JSON value";
    default:
      return std::nullopt;
  }
}

std::string schema_text(const json& schema) {
  return schema.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::optional<std::string> check_schema(std::string_view field, const json& schema) {
  if (schema.is_null()) return std::nullopt;
  if (!schema.is_object()) return std::string(field) + " is not a JSON object";
  if (auto err = check_json_value(field, schema, 1)) return err;
  if (schema_text(schema).size() > kMaxSchemaBytes) {
    return std::string(field) + " is longer than " + std::to_string(kMaxSchemaBytes) + " bytes as JSON text";
  }
  return std::nullopt;
}

// One card. `strict`: every key required (the wire); otherwise only
// agent_id and role (JSON typed by a person or a script).
std::optional<AgentCard> card_from(const json& j, bool strict) {
  if (!j.is_object()) return std::nullopt;
  AgentCard card;
  auto id = get_string(j, "agent_id");
  auto role = get_string(j, "role");
  if (!id || !role) return std::nullopt;
  card.agent_id = std::move(*id);
  card.role = std::move(*role);

  if (const auto it = j.find("capabilities"); it != j.end()) {
    auto caps = get_string_array(*it);
    if (!caps) return std::nullopt;
    card.capabilities = std::move(*caps);
  } else if (strict) {
    return std::nullopt;
  }
  for (auto [key, field] : {std::pair{"description", &card.description},
                            std::pair{"status", &card.status}}) {
    if (const auto it = j.find(key); it != j.end()) {
      if (!it->is_string()) return std::nullopt;
      *field = it->get<std::string>();
    } else if (strict) {
      return std::nullopt;
    }
  }
  if (const auto it = j.find("version"); it != j.end()) {
    const auto v = as_u64(*it);
    if (!v) return std::nullopt;
    card.version = *v;
  } else if (strict) {
    return std::nullopt;
  }
  if (!strict) {
    if (const auto it = j.find("node"); it != j.end()) {
      if (!it->is_string()) return std::nullopt;
      card.node = it->get<std::string>();
    }
  }
  // Optional either way: JSON text on the wire, an object (or null) in JSON.
  for (auto [key, field] : {std::pair{"input_schema", &card.input_schema},
                            std::pair{"output_schema", &card.output_schema}}) {
    const auto it = j.find(key);
    if (it == j.end()) continue;
    if (strict) {
      auto schema = schema_from_text(*it);
      if (!schema) return std::nullopt;
      *field = std::move(*schema);
    } else {
      if (!it->is_object() && !it->is_null()) return std::nullopt;
      *field = *it;
    }
  }
  return card;
}

}  // namespace

std::optional<std::string> validate_card(const AgentCard& card) {
  if (auto err = check_name("agent_id", card.agent_id)) return err;
  if (auto err = check_name("role", card.role)) return err;
  if (card.status.empty()) return "status is empty";
  if (auto err = check_string("status", card.status)) return err;
  if (has_control(card.status)) return "status contains a control character";
  if (auto err = check_string("description", card.description)) return err;
  if (card.capabilities.size() > kMaxCapabilities) {
    return "more than " + std::to_string(kMaxCapabilities) + " capabilities";
  }
  for (std::size_t i = 0; i < card.capabilities.size(); ++i) {
    const std::string field = "capabilities[" + std::to_string(i) + "]";
    const auto& cap = card.capabilities[i];
    if (cap.empty()) return field + " is empty";
    if (auto err = check_string(field, cap)) return err;
    if (has_control(cap)) return field + " contains a control character";
  }
  if (auto err = check_schema("input_schema", card.input_schema)) return err;
  if (auto err = check_schema("output_schema", card.output_schema)) return err;
  return std::nullopt;
}

std::optional<std::string> validate_registry(const NodeRegistry& registry) {
  if (auto err = check_name("node", registry.node)) return err;
  if (registry.cards.size() > kMaxCards) {
    return "more than " + std::to_string(kMaxCards) + " cards";
  }
  std::unordered_set<std::string_view> ids;
  ids.reserve(registry.cards.size());
  for (const auto& card : registry.cards) {
    if (auto err = validate_card(card)) return "card " + std::to_string(ids.size()) + ": " + *err;
    if (!ids.insert(card.agent_id).second) return "duplicate agent_id '" + card.agent_id + "'";
  }
  return std::nullopt;
}

std::vector<std::uint8_t> encode_registry(const NodeRegistry& registry) {
  json cards = json::array();
  for (const auto& c : registry.cards) {
    json card = {{"agent_id", c.agent_id},
                 {"role", c.role},
                 {"capabilities", c.capabilities},
                 {"description", c.description},
                 {"status", c.status},
                 {"version", c.version}};
    // Only when declared: a card without schemas is the one old readers know.
    if (!c.input_schema.is_null()) card["input_schema"] = schema_text(c.input_schema);
    if (!c.output_schema.is_null()) card["output_schema"] = schema_text(c.output_schema);
    cards.push_back(std::move(card));
  }
  const json doc = {{"v", kRegistryFormatVersion},
                    {"node", registry.node},
                    {"version", registry.version},
                    {"cards", std::move(cards)}};
  return json::to_msgpack(doc);
}

std::optional<NodeRegistry> decode_registry(std::span<const std::uint8_t> bytes) {
  if (bytes.size() > kMaxRegistryBytes) return std::nullopt;
  try {
    LimitsSax limits;
    if (!json::sax_parse(bytes.begin(), bytes.end(), &limits, json::input_format_t::msgpack,
                         /*strict=*/true)) {
      return std::nullopt;
    }
    const json doc = json::from_msgpack(bytes.begin(), bytes.end(), /*strict=*/true,
                                        /*allow_exceptions=*/false);
    if (!doc.is_object()) return std::nullopt;  // also catches "discarded"

    const auto v = doc.find("v");
    if (v == doc.end() || as_u64(*v) != kRegistryFormatVersion) return std::nullopt;

    NodeRegistry reg;
    auto node = get_string(doc, "node");
    if (!node) return std::nullopt;
    reg.node = std::move(*node);

    const auto version = doc.find("version");
    if (version == doc.end()) return std::nullopt;
    const auto ver = as_u64(*version);
    if (!ver) return std::nullopt;
    reg.version = *ver;

    const auto cards = doc.find("cards");
    if (cards == doc.end() || !cards->is_array() || cards->size() > kMaxCards) return std::nullopt;
    reg.cards.reserve(cards->size());
    for (const auto& c : *cards) {
      auto card = card_from(c, /*strict=*/true);
      if (!card) return std::nullopt;
      card->node = reg.node;
      reg.cards.push_back(std::move(*card));
    }
    if (validate_registry(reg)) return std::nullopt;
    return reg;
  } catch (...) {
    // Allocation failure, or an nlohmann error path that throws despite
    // allow_exceptions=false. Untrusted input must never throw through.
    return std::nullopt;
  }
}

nlohmann::json card_to_json(const AgentCard& card) {
  json j = {{"agent_id", card.agent_id},
            {"role", card.role},
            {"capabilities", card.capabilities},
            {"description", card.description},
            {"status", card.status},
            {"node", card.node},
            {"version", card.version}};
  if (!card.input_schema.is_null()) j["input_schema"] = card.input_schema;
  if (!card.output_schema.is_null()) j["output_schema"] = card.output_schema;
  return j;
}

std::optional<AgentCard> card_from_json(const nlohmann::json& j) {
  try {
    return card_from(j, /*strict=*/false);
  } catch (...) {
    return std::nullopt;
  }
}

}  // namespace mesh
