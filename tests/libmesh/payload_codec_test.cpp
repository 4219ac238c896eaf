// The payload codec of the runtime (payload_codec.hpp): encode_json writes
// through its own output adapter; its bytes must stay those of nlohmann's
// to_msgpack, which the receivers' decoder and other nodes expect.
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <thread>
#include <vector>

#include "payload_codec.hpp"

namespace {

using nlohmann::json;

std::vector<json> samples() {
  std::vector<json> v = {json(), json(true), json(false), json(0), json(1), json(-1), json(127), json(128),
                         json(-32), json(-33), json(255), json(256), json(65535), json(65536), json(-129),
                         json(std::numeric_limits<std::int64_t>::min()), json(std::numeric_limits<std::int64_t>::max()),
                         json(std::numeric_limits<std::uint64_t>::max()), json(0.5), json(1e300), json(-2.25),
                         json(""), json("text"), json(std::string(40, 'x')), json(std::string(70000, 'y')),
                         json::array(), json::object(), json::binary({1, 2, 3})};
  v.push_back(json{{"a", 1}, {"b", {true, nullptr, 2.5, "x"}}, {"c", json::object()}});
  json many = json::array();
  for (int i = 0; i < 300; ++i) many.push_back(i * 1000);
  v.push_back(many);
  return v;
}

TEST(PayloadCodec, EncodeJsonWritesWhatToMsgpackWrites) {
  for (const auto& value : samples()) {
    EXPECT_EQ(mesh::detail::encode_json(value), json::to_msgpack(value)) << value.dump().substr(0, 80);
  }
}

TEST(PayloadCodec, EncodeJsonRoundTripsAndEachCallHasItsOwnBytes) {
  const auto first = mesh::detail::encode_json(json{{"k", "first"}});
  const auto second = mesh::detail::encode_json(json(7));
  EXPECT_EQ(mesh::detail::decode_json(first, json()), (json{{"k", "first"}}));
  EXPECT_EQ(mesh::detail::decode_json(second, json()), json(7));
}

TEST(PayloadCodec, EncodeJsonOnSeveralThreadsAtOnce) {
  std::vector<std::thread> threads;
  std::vector<int> mismatches(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([t, &mismatches] {
      for (int i = 0; i < 2000; ++i) {
        const json value{{"thread", t}, {"i", i}};
        if (mesh::detail::encode_json(value) != json::to_msgpack(value)) ++mismatches[t];
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < 4; ++t) EXPECT_EQ(mismatches[t], 0) << "thread " << t;
}

TEST(PayloadCodec, TooDeepIsRefusedBeforeWriting) {
  json deep = json::array();
  json* at = &deep;
  for (std::size_t i = 0; i < mesh::kMaxJsonDepth + 1; ++i) {
    at->push_back(json::array());
    at = &(*at)[0];
  }
  EXPECT_THROW(mesh::detail::encode_json(deep), std::invalid_argument);
  EXPECT_EQ(mesh::detail::encode_json(json(3)), json::to_msgpack(json(3)));  // the next call is unharmed
}

}  // namespace
