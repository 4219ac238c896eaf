// Writes the seed corpora of the fuzz targets from the real encoders:
//
//   fuzz_make_corpus tests/fuzz/corpus
//
// Each target gets a handful of small inputs in corpus/<name>/, laid out
// the way its LLVMFuzzerTestOneInput reads them (see the header comment of
// each <name>_fuzz.cpp). Deterministic: the same tree gives the same files.
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "mesh/agent_card.hpp"
#include "mesh/conversation.hpp"
#include "mesh/node_config.hpp"
#include "mesh/swim/codec.hpp"
#include "mesh/swim/membership.hpp"
#include "mesh/transport/envelope.hpp"
#include "payload_codec.hpp"
#include "registry_signing.hpp"
#include "serf.hpp"
#include "stream_frame.hpp"

using namespace mesh::swim;
namespace fs = std::filesystem;

namespace {

fs::path g_root;

void put(const std::string& target, const std::string& name, const Bytes& bytes) {
  const fs::path dir = g_root / target;
  fs::create_directories(dir);
  std::ofstream out(dir / name, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

Bytes text(std::string_view s) { return Bytes(s.begin(), s.end()); }

Bytes cat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

Bytes u16(std::size_t v) { return {static_cast<std::uint8_t>(v >> 8), static_cast<std::uint8_t>(v)}; }
Bytes sized(const Bytes& b) { return cat({u16(b.size()), b}); }

Alive alive(const std::string& name, std::uint8_t last, std::uint32_t inc) {
  Alive a;
  a.incarnation = inc;
  a.node = name;
  a.addr = {10, 0, 0, last};
  a.port = 7946;
  a.vsn = {1, 5, 2, 2, 5, 5};
  return a;
}

PushPull push_pull() {
  PushPull pp;
  pp.join = true;
  for (std::uint8_t i = 2; i < 5; ++i) {
    PushNodeState s;
    s.name = "n" + std::to_string(i);
    s.addr = {10, 0, 0, i};
    s.port = 7946;
    s.incarnation = i;
    s.state = i == 4 ? MemberState::Suspect : MemberState::Alive;
    s.vsn = {1, 5, 2, 2, 5, 5};
    pp.nodes.push_back(s);
  }
  pp.user_state = {2, 0x80};
  return pp;
}

void swim() {
  const Ping ping{7, "a", {10, 0, 0, 2}, 7946, "b"};
  const Bytes b_ping = encode(PacketMessage{ping});
  const Bytes b_alive = encode(PacketMessage{alive("b", 2, 3)});
  const Bytes b_suspect = encode(PacketMessage{Suspect{4, "c", "b"}});
  const Bytes b_dead = encode(PacketMessage{Dead{5, "d", "d"}});
  const Bytes b_ack = encode(PacketMessage{Ack{7, {1, 2, 3}}});
  const Bytes b_ind = encode(PacketMessage{IndirectPing{9, {10, 0, 0, 3}, 7946, "c", true, {10, 0, 0, 2}, 7946, "b"}});
  const Bytes b_user = encode(PacketMessage{UserMsg{serf::encode_join_intent(3, "b")}});
  const std::vector<Bytes> parts{b_alive, b_suspect, b_dead, b_user};
  const Bytes compound = make_compound(parts);

  put("swim_packet", "ping", b_ping);
  put("swim_packet", "ack", b_ack);
  put("swim_packet", "indirect_ping", b_ind);
  put("swim_packet", "compound", compound);
  put("swim_packet", "crc_compound", wrap_crc(compound));
  put("swim_packet", "compress_alive", wrap_compress(b_alive));
  put("swim_packet", "nack", encode(PacketMessage{Nack{8}}));
  put("lzw", "text", cat({{255}, lzw_compress(text("abababababab SWIM SWIM SWIM abab"))}));
  put("lzw", "limited", cat({{16}, lzw_compress(Bytes(64, 'x'))}));
  put("lzw", "raw", cat({{255}, text("not lzw at all")}));

  // swim_node programs: [op][...] steps (swim_node_fuzz.cpp).
  const Bytes pp_stream = encode_stream(StreamMessage{push_pull()}, false);
  put("swim_node", "alives_then_time",
      cat({{0, 0}, sized(b_alive), {0, 1}, sized(encode(PacketMessage{alive("c", 3, 1)})),
           {2}, u16(1500), {0, 1}, sized(b_suspect), {2}, u16(6000)}));
  put("swim_node", "push_pull_stream", cat({{1, 2}, sized(pp_stream), {2}, u16(3000)}));
  put("swim_node", "ping_and_compound", cat({{0, 0}, sized(wrap_crc(compound)), {0, 0}, sized(b_ping),
                                             {2}, u16(1000), {0, 0}, sized(b_ack)}));
  put("swim_node", "join_reply",
      cat({{5, 0, 0}, {3}, sized(encode_stream(StreamMessage{push_pull()}, true)), {2}, u16(40000)}));
  put("swim_node", "user_and_leave",
      cat({{5, 3, 1}, sized(text("hello")), {5, 4}, sized(text("bcast")), {0, 0}, sized(b_alive),
           {2}, u16(500), {5, 1}, {2}, u16(2000)}));
  put("swim_node", "stream_ping", cat({{1, 1}, sized(encode_stream(StreamMessage{ping}, true))}));

  put("stream_frame", "push_pull", cat({{0}, pp_stream}));
  put("stream_frame", "push_pull_compressed", cat({{0}, encode_stream(StreamMessage{push_pull()}, true)}));
  put("stream_frame", "user_msg", cat({{0}, encode_stream(StreamMessage{UserMsg{text("payload")}}, false)}));
  put("stream_frame", "err", cat({{0}, encode_stream(StreamMessage{ErrResp{"no"}}, false)}));
  put("stream_frame", "sealed_push_pull", cat({{1}, pp_stream}));
  const Keyring ring({Bytes(16, 0x42)});
  put("stream_frame", "frame", cat({{3}, detail::seal_stream(ring, pp_stream, 1)}));
}

void serf_and_keys() {
  put("serf_message", "join", serf::encode_join_intent(12, "node-b"));
  put("serf_message", "leave", serf::encode_leave_intent(13, "node-b", true));
  put("serf_message", "tags", encode_serf_tags({{"role", "web"}, {"dc", "east"}, {"zkey", "x"}}));
  const nlohmann::json state = {{"LTime", 9},
                                {"StatusLTimes", {{"node-a", 3}, {"node-b", 7}}},
                                {"LeftMembers", {"node-c"}},
                                {"EventLTime", 1},
                                {"Events", nullptr},
                                {"QueryLTime", 1}};
  put("serf_message", "push_pull_state", cat({{2}, nlohmann::json::to_msgpack(state)}));

  auto key = [](std::size_t n, std::uint8_t seed) {
    Bytes k(n);
    for (std::size_t i = 0; i < n; ++i) k[i] = static_cast<std::uint8_t>(seed + 7 * i);
    return k;
  };
  const std::uint8_t nonce[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
  const Bytes alive_msg = encode(PacketMessage{alive("b", 2, 3)});
  put("keyring", "packet_v1", cat({{0, 0, 0}, detail::encrypt_with_nonce(key(16, 1), nonce, alive_msg, {}, 1)}));
  put("keyring", "packet_v0", cat({{0, 0, 0}, detail::encrypt_with_nonce(key(32, 3), nonce, alive_msg, {}, 0)}));
  put("keyring", "seal_v0", cat({{1, 0, 0, 5}, text("seventeen bytes!!")}));
  put("keyring", "seal_v1", cat({{1, 1, 0, 40}, alive_msg}));
  put("keyring", "base64", cat({{2}, text("T9jncgl9mbLus+baTTa7q7nPwXh7BP24tSPJqQz8R3k=")}));
}

void transport() {
  mesh::transport::Envelope e;
  e.id = {0x1122334455667788ull, 42};
  e.type = mesh::transport::MessageType::Request;
  e.sender_agent = "coder-1";
  e.sender_node = "node-a";
  e.target = "reviewer-2";
  e.created_ms = 1'700'000'000'000;
  e.deadline_ms = 1'700'000'030'000;
  e.context = mesh::detail::encode_json({{"trace", "abc"}});
  e.payload = mesh::detail::encode_json({{"task", "review"}, {"lines", {1, 2, 3}}});
  put("envelope", "request", mesh::transport::encode(e));
  e.type = mesh::transport::MessageType::Response;
  e.correlation = mesh::transport::MessageId{1, 2};
  e.priority = mesh::transport::Priority::Urgent;
  put("envelope", "response", mesh::transport::encode(e));
  e.type = mesh::transport::MessageType::Error;
  e.error = mesh::transport::ErrorCode::Timeout;
  e.context.clear();
  e.payload.clear();
  put("envelope", "error", mesh::transport::encode(e));

  mesh::ThreadBlock b;
  b.id = mesh::ThreadId{0x0102030405060708ull, 9};
  b.origin_agent = "coder-1";
  b.origin_node = "node-a";
  b.subject = "review";
  b.turn = 1;
  b.depth = 1;
  b.max_turns = 10;
  b.max_depth = 4;
  b.expires_ms = 1'700'000'600'000;
  b.lineage = {"coder-1@node-a"};
  put("thread_block", "opening", mesh::encode_thread_block(b));
  e.type = mesh::transport::MessageType::Request;
  e.error = mesh::transport::ErrorCode::None;
  e.thread = mesh::encode_thread_block(b);
  put("envelope", "threaded", mesh::transport::encode(e));
  e.thread.clear();
  b.parent = mesh::ThreadId{7, 7};
  b.turn = 12;
  b.depth = 3;
  b.spent = 2.5;
  b.cost = 0.75;
  b.max_cost = 10;
  b.message_class = mesh::MessageClass::Authority;
  b.lineage = {"coder-1@node-a", "reviewer-2@node-b"};
  put("thread_block", "nested", mesh::encode_thread_block(b));

  put("payload", "object", cat({{3}, mesh::detail::encode_json({{"a", 1}, {"b", {true, nullptr, 2.5, "x"}}})}));
  put("payload", "nested", cat({{7}, mesh::detail::encode_json({{"a", {{"b", {{"c", {1, {2, {3}}}}}}}}})}));
  put("payload", "binary", cat({{1}, mesh::detail::encode_json(nlohmann::json::binary({1, 2, 3}))}));
  put("payload", "string", cat({{0}, mesh::detail::encode_json("hello")}));
}

void registry() {
  mesh::NodeRegistry reg;
  reg.node = "node-a";
  reg.version = 17;
  reg.cards.push_back({"coder-1a2b", "coder", {"python", "review"}, "writes code", "active", "", 17});
  reg.cards.push_back({"tester-9", "tester", {}, "", "idle", "", 3});
  put("registry", "registry", cat({{0}, mesh::encode_registry(reg)}));
  // As served: plain (no signing key), and sealed by registry_fuzz's signer.
  const mesh::detail::RegistrySigner signer("JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6");
  put("registry", "served_plain", cat({{2}, mesh::encode_registry(reg)}));
  put("registry", "served_signed", cat({{6}, signer.seal(reg)}));
  // Cards with input and output schemas (JSON text in a string on the wire).
  reg.cards[0].input_schema = {{"type", "object"},
                               {"properties", {{"query", {{"type", "string"}, {"maxLength", 200}}}}},
                               {"required", {"query"}}};
  reg.cards[0].output_schema = {{"type", "object"}, {"properties", {{"found", {{"type", "array"}}}}}};
  reg.cards[1].input_schema = {{"type", "string"}};
  put("registry", "with_schemas", cat({{0}, mesh::encode_registry(reg)}));
  put("registry", "card_json_schemas", cat({{1}, text(mesh::card_to_json(reg.cards[0]).dump())}));
  reg.cards.clear();
  put("registry", "empty_registry", cat({{0}, mesh::encode_registry(reg)}));
  put("registry", "card_json",
      cat({{1}, text(mesh::card_to_json({"coder-1", "coder", {"go"}, "d", "active", "node-a", 4}).dump())}));
  put("registry", "cards_array", cat({{1}, text(R"([{"agent_id":"a","role":"r"},{"agent_id":"b","role":"r","version":-1}])")}));
}

void admin() {
  put("admin_http", "get_health", text("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
  put("admin_http", "pipelined",
      text("GET /v1/echo?q=1&r=%20 HTTP/1.1\r\nHost: x\r\n\r\nGET /v1/later HTTP/1.1\r\nHost: x\r\n\r\n"
           "GET /v1/throw HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
  put("admin_http", "post_json",
      text("POST /v1/send HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n"
           "{\"to\":\"a\",\"x\":1}"));
  put("admin_http", "post_chunked",
      text("POST /v1/both HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n0\r\n\r\n"));
  put("admin_http", "put_and_404", text("PUT /v1/both HTTP/1.1\r\n\r\nGET /nope HTTP/1.0\r\n\r\n"));
  put("admin_http", "get_with_body", text("GET /healthz HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"));
}

void config() {
  const auto& names = mesh::config_environment_variables();
  auto env_index = [&](std::string_view n) {
    for (std::size_t i = 0; i < names.size(); ++i)
      if (names[i] == n) return static_cast<std::uint8_t>(i);
    std::fprintf(stderr, "make_corpus: no variable %.*s\n", static_cast<int>(n.size()), n.data());
    std::exit(1);
  };
  const Bytes yaml = text(
      "node_name: node-a\nswim_port: 7946\nseeds:\n  - 10.0.0.2:7946\n  - \"[::1]:7947\"\n"
      "profile: wan\nlog_level: debug\ntags:\n  role: web\n  dc: east\nrequest_timeout: 250ms\n"
      "max_message_bytes: 64KiB\np2p_enabled: true\n");
  put("config", "yaml_only", cat({sized(yaml), {0, 0}}));
  put("config", "env_only",
      cat({u16(0), {3, env_index("JC_SWIM_PORT")}, sized(text("8000")), {env_index("JC_TAGS")},
           sized(text("role=web,dc=east")), {env_index("JC_SEED_NODES")}, sized(text("10.0.0.2:7946,b:1")), {0}}));
  put("config", "flags",
      cat({u16(0), {0}, {4}, sized(text("--node-name")), sized(text("x")), sized(text("--admin-port=9000")),
           sized(text("--leave-timeout=2s"))}));
  put("config", "all_three",
      cat({sized(text("swim_port: 7000\ngossip_key: T9jncgl9mbLus+baTTa7q7nPwXh7BP24tSPJqQz8R3k=\n")),
           {1, env_index("JC_LOG_FORMAT")}, sized(text("json")), {2}, sized(text("--profile")),
           sized(text("local"))}));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <corpus-dir>\n", argv[0]);
    return 2;
  }
  g_root = argv[1];
  swim();
  serf_and_keys();
  transport();
  registry();
  admin();
  config();
  return 0;
}
