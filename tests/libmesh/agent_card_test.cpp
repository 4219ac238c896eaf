// Agent cards: validation, the registry codec (round trip, every way a
// registry can be malformed, seeded mutation and garbage), and the JSON
// shape of the admin endpoint.
#include "mesh/agent_card.hpp"
#include "test_seeds.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace mesh {
namespace {

using json = nlohmann::json;
using Bytes = std::vector<std::uint8_t>;

AgentCard card(std::string id, std::string role, std::vector<std::string> caps = {}) {
  AgentCard c;
  c.agent_id = std::move(id);
  c.role = std::move(role);
  c.capabilities = std::move(caps);
  return c;
}

NodeRegistry sample_registry() {
  NodeRegistry r;
  r.node = "node-a";
  r.version = 17;
  AgentCard a = card("coder-1a2b3c4d", "coder", {"python", "review"});
  a.description = "writes code; ünïcödé → ok\nsecond line";
  a.version = 12;
  AgentCard b = card("tester-00000001", "tester");
  b.status = "busy";
  b.version = std::numeric_limits<std::uint64_t>::max();
  r.cards = {a, b};
  for (auto& c : r.cards) c.node = r.node;
  return r;
}

// The sample registry as the wire's json document, to be broken by hand.
json sample_doc() { return json::from_msgpack(encode_registry(sample_registry())); }

std::optional<NodeRegistry> decode_doc(const json& doc) {
  const Bytes bytes = json::to_msgpack(doc);
  return decode_registry(bytes);
}

// ---------------------------------------------------------------------------
// validate_card

TEST(ValidateCard, AcceptsAPlainCard) {
  EXPECT_EQ(validate_card(card("a-1", "coder", {"python", "code review"})), std::nullopt);
  AgentCard c = card("ä-1", "kodierer");
  c.description = "";
  EXPECT_EQ(validate_card(c), std::nullopt);
}

TEST(ValidateCard, NamesTheFirstProblem) {
  struct Case {
    AgentCard card;
    std::string error;
  };
  AgentCard empty_status = card("a", "r");
  empty_status.status = "";
  AgentCard ctl_status = card("a", "r");
  ctl_status.status = "act\nive";
  AgentCard bad_desc = card("a", "r");
  bad_desc.description = "\xc3\x28";
  AgentCard long_desc = card("a", "r");
  long_desc.description.assign(kMaxStringBytes + 1, 'x');
  const std::vector<Case> cases = {
      {card("", "r"), "agent_id is empty"},
      {card("a", ""), "role is empty"},
      {card("a b", "r"), "agent_id contains whitespace or a control character"},
      {card("a\tb", "r"), "agent_id contains whitespace or a control character"},
      {card("a", "r\x01"), "role contains whitespace or a control character"},
      {card("a", "r\x7f"), "role contains whitespace or a control character"},
      {card("a", "r", {"ok", ""}), "capabilities[1] is empty"},
      {card("a", "r", {"x\ny"}), "capabilities[0] contains a control character"},
      {card("a\xff", "r"), "agent_id is not valid UTF-8"},
      {card("a", "r", std::vector<std::string>(kMaxCapabilities + 1, "c")),
       "more than 256 capabilities"},
      {empty_status, "status is empty"},
      {ctl_status, "status contains a control character"},
      {bad_desc, "description is not valid UTF-8"},
      {long_desc, "description is longer than 65536 bytes"},
  };
  for (const auto& c : cases) {
    const auto err = validate_card(c.card);
    ASSERT_TRUE(err.has_value()) << c.error;
    EXPECT_EQ(*err, c.error);
    EXPECT_EQ(err->find('\n'), std::string::npos);
  }
}

TEST(ValidateCard, RejectsMalformedUtf8) {
  // Overlong '/', a lone continuation byte, a UTF-16 surrogate, past
  // U+10FFFF, a truncated sequence.
  for (const char* bad : {"\xc0\xaf", "\x80", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe2\x82"}) {
    AgentCard c = card("a", "r");
    c.description = bad;
    EXPECT_TRUE(validate_card(c).has_value()) << bad;
  }
  AgentCard ok = card("a", "r");
  ok.description = "\xf0\x9f\x98\x80 \xe2\x82\xac \xc3\xa9";  // emoji, euro, é
  EXPECT_EQ(validate_card(ok), std::nullopt);
}

TEST(ValidateRegistry, NodeCountAndUniqueIds) {
  NodeRegistry r = sample_registry();
  EXPECT_EQ(validate_registry(r), std::nullopt);
  r.node = "";
  EXPECT_EQ(validate_registry(r), "node is empty");
  r = sample_registry();
  r.cards.push_back(r.cards.front());
  EXPECT_EQ(validate_registry(r), "duplicate agent_id 'coder-1a2b3c4d'");
  r = sample_registry();
  r.cards[1].role = "";
  EXPECT_EQ(validate_registry(r), "card 1: role is empty");
  r = sample_registry();
  r.cards.clear();
  for (std::size_t i = 0; i <= kMaxCards; ++i) r.cards.push_back(card("a" + std::to_string(i), "r"));
  EXPECT_EQ(validate_registry(r), "more than 10000 cards");
}

// ---------------------------------------------------------------------------
// The codec

TEST(RegistryCodec, RoundTrip) {
  const NodeRegistry r = sample_registry();
  const auto back = decode_registry(encode_registry(r));
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(*back, r);
}

TEST(RegistryCodec, EmptyRegistryRoundTrips) {
  NodeRegistry r;
  r.node = "n";
  const auto back = decode_registry(encode_registry(r));
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(*back, r);
}

TEST(RegistryCodec, TheDocumentedShape) {
  const json doc = sample_doc();
  EXPECT_EQ(doc.at("v"), 1);
  EXPECT_EQ(doc.at("node"), "node-a");
  EXPECT_EQ(doc.at("version"), 17);
  ASSERT_EQ(doc.at("cards").size(), 2u);
  const json& c = doc.at("cards").at(0);
  EXPECT_EQ(c.at("agent_id"), "coder-1a2b3c4d");
  EXPECT_EQ(c.at("role"), "coder");
  EXPECT_EQ(c.at("capabilities"), json({"python", "review"}));
  EXPECT_EQ(c.at("status"), "active");
  EXPECT_EQ(c.at("version"), 12);
  EXPECT_FALSE(c.contains("node"));  // the receiver sets it from "node"
  EXPECT_EQ(c.size(), 6u);
}

TEST(RegistryCodec, CardsTakeTheRegistrysNode) {
  NodeRegistry r = sample_registry();
  r.cards[0].node = "somewhere-else";
  const auto back = decode_registry(encode_registry(r));
  ASSERT_TRUE(back.has_value());
  for (const auto& c : back->cards) EXPECT_EQ(c.node, "node-a");
}

TEST(RegistryCodec, IgnoresUnknownKeysAndTakesSignedVersions) {
  json doc = sample_doc();
  doc["later"] = {{"x", 1}};
  doc["cards"][0]["tags"] = json::array({"a"});
  EXPECT_TRUE(decode_doc(doc).has_value());

  // Versions sent as signed integers (int64, 0xd3) by another encoder:
  // {"v": 1, "node": "n", "version": 17, "cards": []}.
  const Bytes signed_versions = {
      0x84,                                                         // map of 4
      0xa1, 'v', 0xd3, 0, 0, 0, 0, 0, 0, 0, 1,                      // "v": int64 1
      0xa4, 'n', 'o', 'd', 'e', 0xa1, 'n',                          // "node": "n"
      0xa7, 'v', 'e', 'r', 's', 'i', 'o', 'n', 0xd3, 0, 0, 0, 0, 0, 0, 0, 17,
      0xa5, 'c', 'a', 'r', 'd', 's', 0x90,                          // "cards": []
  };
  const auto r = decode_registry(signed_versions);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->node, "n");
  EXPECT_EQ(r->version, 17u);
}

TEST(RegistryCodec, RefusesUnknownFormatVersion) {
  for (const json& v : {json(0), json(2), json(-1), json("1"), json(1.0), json(nullptr)}) {
    json doc = sample_doc();
    doc["v"] = v;
    EXPECT_FALSE(decode_doc(doc).has_value()) << v.dump();
  }
  json doc = sample_doc();
  doc.erase("v");
  EXPECT_FALSE(decode_doc(doc).has_value());
}

TEST(RegistryCodec, RefusesMissingKeys) {
  for (const char* key : {"node", "version", "cards"}) {
    json doc = sample_doc();
    doc.erase(key);
    EXPECT_FALSE(decode_doc(doc).has_value()) << key;
  }
  for (const char* key : {"agent_id", "role", "capabilities", "description", "status", "version"}) {
    json doc = sample_doc();
    doc["cards"][1].erase(key);
    EXPECT_FALSE(decode_doc(doc).has_value()) << key;
  }
}

TEST(RegistryCodec, RefusesWrongTypes) {
  const std::vector<std::pair<std::string, json>> top = {
      {"node", 5}, {"node", json::array()}, {"version", "17"}, {"version", -3},
      {"version", 1.5}, {"cards", json::object()}, {"cards", "x"},
  };
  for (const auto& [key, value] : top) {
    json doc = sample_doc();
    doc[key] = value;
    EXPECT_FALSE(decode_doc(doc).has_value()) << key << "=" << value.dump();
  }
  const std::vector<std::pair<std::string, json>> in_card = {
      {"agent_id", 1},          {"role", nullptr},        {"capabilities", "python"},
      {"capabilities", {1, 2}}, {"description", false},   {"status", json::object()},
      {"version", "1"},         {"version", -1},
  };
  for (const auto& [key, value] : in_card) {
    json doc = sample_doc();
    doc["cards"][0][key] = value;
    EXPECT_FALSE(decode_doc(doc).has_value()) << key << "=" << value.dump();
  }
  json doc = sample_doc();
  doc["cards"][0] = "not a card";
  EXPECT_FALSE(decode_doc(doc).has_value());
  EXPECT_FALSE(decode_doc(json::array({1, 2})).has_value());
  EXPECT_FALSE(decode_doc(json("registry")).has_value());
}

TEST(RegistryCodec, RefusesWhatValidationRefuses) {
  const std::vector<std::pair<std::string, json>> in_card = {
      {"agent_id", ""}, {"role", ""}, {"agent_id", "two words"}, {"role", "a\x1b[31m"},
      {"capabilities", {"ok", ""}},
  };
  for (const auto& [key, value] : in_card) {
    json doc = sample_doc();
    doc["cards"][0][key] = value;
    EXPECT_FALSE(decode_doc(doc).has_value()) << key << "=" << value.dump();
  }
  json doc = sample_doc();
  doc["node"] = "";
  EXPECT_FALSE(decode_doc(doc).has_value());
  doc = sample_doc();
  doc["cards"][1]["agent_id"] = doc["cards"][0]["agent_id"];
  EXPECT_FALSE(decode_doc(doc).has_value());
}

TEST(RegistryCodec, RefusesOversizedStringsAndCounts) {
  json doc = sample_doc();
  doc["cards"][0]["description"] = std::string(kMaxStringBytes + 1, 'd');
  EXPECT_FALSE(decode_doc(doc).has_value());
  doc["cards"][0]["description"] = std::string(kMaxStringBytes, 'd');
  EXPECT_TRUE(decode_doc(doc).has_value());

  NodeRegistry big;
  big.node = "n";
  for (std::size_t i = 0; i < kMaxCards; ++i) big.cards.push_back(card("a" + std::to_string(i), "r"));
  EXPECT_TRUE(decode_registry(encode_registry(big)).has_value());
  big.cards.push_back(card("one-more", "r"));
  EXPECT_FALSE(decode_registry(encode_registry(big)).has_value());

  doc = sample_doc();
  doc["cards"][0]["capabilities"] = std::vector<std::string>(kMaxCapabilities + 1, "c");
  EXPECT_FALSE(decode_doc(doc).has_value());
}

TEST(RegistryCodec, RefusesInvalidUtf8FromTheWire) {
  // nlohmann's to_msgpack copies bytes as they are; dump() of such a card
  // on the admin endpoint would throw, so the decoder refuses it.
  NodeRegistry r = sample_registry();
  r.cards[0].description = "\xc3\x28";
  EXPECT_FALSE(decode_registry(encode_registry(r)).has_value());
  r = sample_registry();
  r.node = "n\xff";
  EXPECT_FALSE(decode_registry(encode_registry(r)).has_value());
}

TEST(RegistryCodec, RefusesHostileStructureWithoutCrashing) {
  // 200 000 nested one-element arrays: a recursive reader would run out of stack.
  Bytes deep(200'000, 0x91);
  deep.push_back(0xc0);
  EXPECT_FALSE(decode_registry(deep).has_value());
  Bytes deep_maps;
  for (int i = 0; i < 100'000; ++i) {
    deep_maps.push_back(0x81);  // map of one: "a" -> ...
    deep_maps.push_back(0xa1);
    deep_maps.push_back('a');
  }
  deep_maps.push_back(0xc0);
  EXPECT_FALSE(decode_registry(deep_maps).has_value());
  // An array claiming 2^32-1 elements, and a string claiming 4 GiB.
  EXPECT_FALSE(decode_registry(Bytes{0xdd, 0xff, 0xff, 0xff, 0xff, 0x01}).has_value());
  EXPECT_FALSE(decode_registry(Bytes{0xdb, 0xff, 0xff, 0xff, 0xff, 'a'}).has_value());
  // A map claiming 2^32-1 entries.
  EXPECT_FALSE(decode_registry(Bytes{0xdf, 0xff, 0xff, 0xff, 0xff}).has_value());
  // Binary and extension types, which the shape never uses.
  EXPECT_FALSE(decode_registry(Bytes{0xc4, 0x01, 0x00}).has_value());
  EXPECT_FALSE(decode_registry(Bytes{0xd4, 0x01, 0x00}).has_value());
  // Many tiny values within the byte limit: refused before a tree is built.
  Bytes wide = {0xdc, 0x27, 0x10};  // array16 of 10 000 ...
  for (int i = 0; i < 10'000; ++i) {
    wide.insert(wide.end(), {0xdc, 0x00, 0xff});  // ... arrays of 255 nils
    wide.insert(wide.end(), 255, 0xc0);
  }
  EXPECT_FALSE(decode_registry(wide).has_value());
  // Over the byte limit.
  EXPECT_FALSE(decode_registry(Bytes(kMaxRegistryBytes + 1, 0xc0)).has_value());
  // Empty, truncated, trailing bytes.
  EXPECT_FALSE(decode_registry(Bytes{}).has_value());
  const Bytes good = encode_registry(sample_registry());
  EXPECT_FALSE(decode_registry(std::span(good).first(good.size() - 1)).has_value());
  Bytes trailing = good;
  trailing.push_back(0xc0);
  EXPECT_FALSE(decode_registry(trailing).has_value());
}

// Every single-byte change, truncation and insertion of a valid registry,
// then seeded random mutations: never a crash or a throw, and whatever is
// accepted is a valid registry that round-trips.
void check_accepted(const std::optional<NodeRegistry>& r) {
  if (!r) return;
  EXPECT_EQ(validate_registry(*r), std::nullopt);
  const auto again = decode_registry(encode_registry(*r));
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(*again, *r);
}

TEST(RegistryCodec, EveryByteFlipIsSafe) {
  const Bytes good = encode_registry(sample_registry());
  for (std::size_t i = 0; i < good.size(); ++i) {
    for (std::uint8_t v : {std::uint8_t{0x00}, std::uint8_t{0xff}, std::uint8_t{0xc1},
                           std::uint8_t(good[i] ^ 0x01), std::uint8_t(good[i] ^ 0x80)}) {
      Bytes b = good;
      b[i] = v;
      check_accepted(decode_registry(b));
    }
    check_accepted(decode_registry(std::span(good).first(i)));
  }
}

TEST(RegistryCodec, SeededMutationsAreSafe) {
  const std::uint64_t seed = ::mesh::test::test_seed(0x5eed'ca4d);
  MESH_SEED_TRACE(seed);
  std::mt19937_64 rng(seed);
  auto below = [&](std::size_t n) { return static_cast<std::size_t>(rng() % n); };
  const Bytes good = encode_registry(sample_registry());
  std::size_t accepted = 0;
  for (int iter = 0; iter < 20'000; ++iter) {
    Bytes b = good;
    const std::size_t edits = 1 + below(4);
    for (std::size_t e = 0; e < edits && !b.empty(); ++e) {
      switch (below(5)) {
        case 0: b[below(b.size())] = static_cast<std::uint8_t>(rng()); break;
        case 1: b[below(b.size())] ^= static_cast<std::uint8_t>(1u << below(8)); break;
        case 2: b.resize(below(b.size())); break;
        case 3: b.insert(b.begin() + static_cast<std::ptrdiff_t>(below(b.size() + 1)),
                         static_cast<std::uint8_t>(rng()));
          break;
        case 4: b.erase(b.begin() + static_cast<std::ptrdiff_t>(below(b.size()))); break;
      }
    }
    const auto r = decode_registry(b);
    if (r) ++accepted;
    check_accepted(r);
    if (HasFailure()) return;
  }
  // Most mutations break the document; some (inside a description) do not.
  EXPECT_GT(accepted, 0u);
}

TEST(RegistryCodec, SeededGarbageIsRefused) {
  const std::uint64_t seed = ::mesh::test::test_seed(0x6a7b'a6e);
  MESH_SEED_TRACE(seed);
  std::mt19937_64 rng(seed);
  for (int iter = 0; iter < 20'000; ++iter) {
    Bytes b(rng() % 64);
    for (auto& x : b) x = static_cast<std::uint8_t>(rng());
    // A random leading byte is almost never a map with the four keys.
    check_accepted(decode_registry(b));
    if (HasFailure()) return;
  }
}

// ---------------------------------------------------------------------------
// Input and output schemas

json sample_input_schema() {
  return {{"type", "object"},
          {"properties", {{"question", {{"type", "string"}, {"description", "what to ask, ünïcödé"}}},
                          {"limit", {{"type", "integer"}, {"minimum", 1}, {"maximum", 1.5e3}}}}},
          {"required", {"question"}}};
}

// Objects and arrays nested `levels` deep: {"a": {"a": ... {} }}.
json nested_object(std::size_t levels) {
  json j = json::object();
  for (std::size_t i = 1; i < levels; ++i) j = json{{"a", std::move(j)}};
  return j;
}

std::size_t depth_of(const json& j) {
  std::size_t deepest = 0;
  if (j.is_structured()) {
    for (const auto& e : j) deepest = std::max(deepest, depth_of(e));
    return deepest + 1;
  }
  return 0;
}

NodeRegistry registry_with_schemas() {
  NodeRegistry r = sample_registry();
  r.cards[0].input_schema = sample_input_schema();
  r.cards[0].output_schema = {{"type", "object"}, {"properties", {{"answer", {{"type", "string"}}}}}};
  r.cards[1].input_schema = nested_object(kMaxSchemaDepth);
  return r;
}

TEST(ValidateCard, AcceptsObjectSchemas) {
  AgentCard c = card("a-1", "coder");
  c.input_schema = sample_input_schema();
  c.output_schema = json::object();
  EXPECT_EQ(validate_card(c), std::nullopt);
  c.input_schema = nested_object(kMaxSchemaDepth);
  EXPECT_EQ(validate_card(c), std::nullopt);
}

TEST(ValidateCard, RefusesSchemasThatAreNoBoundedJsonObject) {
  const auto problem = [](json schema, bool output = false) {
    AgentCard c = card("a-1", "coder");
    (output ? c.output_schema : c.input_schema) = std::move(schema);
    return validate_card(c).value_or("(accepted)");
  };
  for (const json& not_object : {json::array({1}), json("{}"), json(3), json(true)}) {
    EXPECT_EQ(problem(not_object), "input_schema is not a JSON object") << not_object.dump();
  }
  EXPECT_EQ(problem(json::array(), true), "output_schema is not a JSON object");
  EXPECT_EQ(problem(nested_object(kMaxSchemaDepth + 1)), "input_schema nests deeper than 32 levels");
  EXPECT_EQ(problem({{"a", {{"b", json::array({nested_object(kMaxSchemaDepth)})}}}}),
            "input_schema nests deeper than 32 levels");
  EXPECT_EQ(problem({{"description", std::string(kMaxSchemaBytes, 'x')}}),
            "input_schema is longer than 32768 bytes as JSON text");
  EXPECT_EQ(problem({{"minimum", std::numeric_limits<double>::quiet_NaN()}}), "input_schema has a number that is not finite");
  EXPECT_EQ(problem({{"x", json::binary({1, 2})}}), "input_schema has a binary value");
  EXPECT_EQ(problem({{"x", "\xff"}}), "input_schema has a string that is not valid UTF-8");
  EXPECT_EQ(problem({{"\xc3", 1}}, true), "output_schema has a key that is not valid UTF-8");
  // Hostile depth built in memory is refused without walking all of it.
  EXPECT_EQ(problem(nested_object(100'000)), "input_schema nests deeper than 32 levels");
}

TEST(RegistryCodec, SchemasRoundTripAsJsonText) {
  const NodeRegistry r = registry_with_schemas();
  ASSERT_EQ(validate_registry(r), std::nullopt);
  const Bytes bytes = encode_registry(r);
  const auto back = decode_registry(bytes);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(*back, r);
  EXPECT_EQ(back->cards[0].input_schema, sample_input_schema());

  // On the wire each schema is one string of compact JSON: a reader that
  // predates them ignores one string key, and the document nests no deeper
  // than a registry without schemas (map, cards, card, capabilities).
  const json doc = json::from_msgpack(bytes);
  const json& c = doc.at("cards").at(0);
  ASSERT_TRUE(c.at("input_schema").is_string());
  EXPECT_EQ(json::parse(c.at("input_schema").get<std::string>()), sample_input_schema());
  EXPECT_TRUE(c.at("output_schema").is_string());
  EXPECT_FALSE(doc.at("cards").at(1).contains("output_schema"));
  EXPECT_EQ(depth_of(doc), depth_of(sample_doc()));
  EXPECT_LE(c.at("input_schema").get<std::string>().size(), kMaxStringBytes);
}

TEST(RegistryCodec, CardsWithoutSchemasHaveNone) {
  // A registry from a sender that knows nothing of schemas.
  const auto back = decode_doc(sample_doc());
  ASSERT_TRUE(back.has_value());
  for (const auto& c : back->cards) {
    EXPECT_TRUE(c.input_schema.is_null());
    EXPECT_TRUE(c.output_schema.is_null());
  }
  // And a card without schemas is encoded as before: no schema keys.
  EXPECT_FALSE(sample_doc().at("cards").at(0).contains("input_schema"));
}

TEST(RegistryCodec, RefusesMalformedSchemasFromTheWire) {
  const std::string too_deep = nested_object(kMaxSchemaDepth + 1).dump();
  const std::string too_long = json{{"description", std::string(kMaxSchemaBytes, 'x')}}.dump();
  const std::vector<json> bad = {
      sample_input_schema(),               // an object, not its text
      json(7),                             // no string
      json(nullptr),                       //
      json("{\"type\": "),                // not JSON
      json("[1, 2]"),                      // JSON, no object
      json("null"),                        //
      json("{\"a\": 1} trailing"),         //
      json(too_deep),                      // nested too deep
      json(too_long),                      // too long
      json("{\"x\": \"\xff\"}"),          // invalid UTF-8
      json(std::string(100'000, '[')),     // hostile nesting, and too long
      json(std::string(3000, '[') + std::string(3000, ']')),
  };
  for (const char* key : {"input_schema", "output_schema"}) {
    for (const json& value : bad) {
      json doc = sample_doc();
      doc["cards"][1][key] = value;
      EXPECT_FALSE(decode_doc(doc).has_value()) << key << "=" << value.dump(-1, ' ', false, json::error_handler_t::replace).substr(0, 80);
    }
  }
  // The same document with a good schema is taken.
  json doc = sample_doc();
  doc["cards"][1]["input_schema"] = sample_input_schema().dump();
  const auto ok = decode_doc(doc);
  ASSERT_TRUE(ok.has_value());
  EXPECT_EQ(ok->cards[1].input_schema, sample_input_schema());
}

TEST(RegistryCodec, MutatedSchemasAreSafe) {
  const Bytes base = encode_registry(registry_with_schemas());
  const std::uint64_t seed = ::mesh::test::test_seed(0x5c4e'3a5);
  MESH_SEED_TRACE(seed);
  std::mt19937_64 rng(seed);
  for (int i = 0; i < 3000; ++i) {
    Bytes b = base;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int f = 0; f < flips; ++f) b[rng() % b.size()] ^= static_cast<std::uint8_t>(1u << (rng() % 8));
    if (auto r = decode_registry(b)) {
      EXPECT_EQ(validate_registry(*r), std::nullopt);
    }
  }
}

// ---------------------------------------------------------------------------
// JSON for the admin endpoint and meshctl

TEST(CardJson, RoundTrip) {
  AgentCard c = sample_registry().cards[0];
  const json j = card_to_json(c);
  EXPECT_EQ(j.at("node"), "node-a");
  EXPECT_EQ(j.at("version"), 12);
  EXPECT_EQ(j.at("capabilities"), json({"python", "review"}));
  const auto back = card_from_json(j);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(*back, c);
  // Through JSON text too.
  EXPECT_EQ(card_from_json(json::parse(j.dump())), c);
}

TEST(CardJson, SchemasAreObjects) {
  AgentCard c = registry_with_schemas().cards[0];
  const json j = card_to_json(c);
  EXPECT_EQ(j.at("input_schema"), sample_input_schema());
  EXPECT_TRUE(j.at("output_schema").is_object());
  EXPECT_EQ(card_from_json(j), c);
  EXPECT_EQ(card_from_json(json::parse(j.dump())), c);
  EXPECT_FALSE(card_to_json(sample_registry().cards[0]).contains("input_schema"));
  for (const json& wrong : {json("{}"), json::array(), json(1)}) {
    json bad = j;
    bad["input_schema"] = wrong;
    EXPECT_FALSE(card_from_json(bad).has_value()) << wrong.dump();
  }
  json none = j;
  none["output_schema"] = nullptr;
  ASSERT_TRUE(card_from_json(none).has_value());
  EXPECT_TRUE(card_from_json(none)->output_schema.is_null());
}

TEST(CardJson, OptionalFieldsTakeDefaults) {
  const auto c = card_from_json(json{{"agent_id", "a"}, {"role", "r"}, {"extra", 1}});
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(*c, card("a", "r"));
  EXPECT_EQ(c->status, "active");
}

TEST(CardJson, RefusesMissingRequiredAndWrongTypes) {
  EXPECT_FALSE(card_from_json(json{{"agent_id", "a"}}).has_value());
  EXPECT_FALSE(card_from_json(json{{"role", "r"}}).has_value());
  EXPECT_FALSE(card_from_json(json::array()).has_value());
  EXPECT_FALSE(card_from_json(json("a")).has_value());
  const json base = {{"agent_id", "a"}, {"role", "r"}};
  const std::vector<std::pair<std::string, json>> wrong = {
      {"agent_id", 1}, {"role", json::array()}, {"capabilities", "x"}, {"capabilities", {true}},
      {"description", 2}, {"status", nullptr}, {"node", 3}, {"version", -1}, {"version", "7"},
  };
  for (const auto& [key, value] : wrong) {
    json j = base;
    j[key] = value;
    EXPECT_FALSE(card_from_json(j).has_value()) << key << "=" << value.dump();
  }
}

TEST(CardJson, DoesNotValidate) {
  // The caller validates, to tell the user what is wrong.
  const auto c = card_from_json(json{{"agent_id", ""}, {"role", "r"}});
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(validate_card(*c), "agent_id is empty");
}

}  // namespace
}  // namespace mesh
