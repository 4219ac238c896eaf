// Serf's encodings: tags in node meta, join/leave intents, the clocks of a
// push/pull state; and the parsing of seed addresses. Byte vectors marked
// "Go" were produced by go-msgpack 0.5.5 (the encoder inside serf 0.9.4)
// from Serf's own struct definitions.
#include <gtest/gtest.h>

#include "endpoint.hpp"
#include "mesh/swim/membership.hpp"
#include "serf.hpp"

namespace mesh::swim {
namespace {

TEST(SerfTags, HandDerivedVector) {
  // 0xFF, fixmap(2), fixraw "role", fixraw "web", fixraw "zmq", fixraw "5555"
  const Bytes want = {0xff, 0x82, 0xa4, 'r', 'o', 'l', 'e', 0xa3, 'w', 'e', 'b',
                      0xa3, 'z',  'm',  'q', 0xa4, '5', '5', '5', '5'};
  EXPECT_EQ(encode_serf_tags({{"role", "web"}, {"zmq", "5555"}}), want);
}

TEST(SerfTags, GoVector) {
  // Serf encodeTags(map[string]string{"role": "web"})
  const Bytes go = {0xff, 0x81, 0xa4, 0x72, 0x6f, 0x6c, 0x65, 0xa3, 0x77, 0x65, 0x62};
  EXPECT_EQ(encode_serf_tags({{"role", "web"}}), go);
  auto tags = decode_serf_tags(go);
  ASSERT_TRUE(tags);
  EXPECT_EQ(tags->at("role"), "web");
}

TEST(SerfTags, RoundTripIncludingLongValuesAndEmpty) {
  const std::map<std::string, std::string> tags = {
      {"", ""}, {"a", std::string(31, 'x')}, {"b", std::string(32, 'y')}, {"c", std::string(300, 'z')}};
  const Bytes meta = encode_serf_tags(tags);
  // go-msgpack has no str8: 32 bytes and up use raw16 (0xda).
  const Bytes raw16_32 = {0xda, 0x00, 0x20};
  EXPECT_NE(std::search(meta.begin(), meta.end(), raw16_32.begin(), raw16_32.end()), meta.end());
  auto back = decode_serf_tags(meta);
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, tags);
  EXPECT_EQ(encode_serf_tags({}), (Bytes{0xff, 0x80}));
  EXPECT_EQ(decode_serf_tags(Bytes{0xff, 0x80}), (std::map<std::string, std::string>{}));
}

TEST(SerfTags, TagsThatAreNotTextAreLeftOut) {
  // A peer's meta reaches JSON, logs and tables: a tag whose name or value
  // is not UTF-8, or holds a control character, is dropped; the rest stay.
  const Bytes meta = encode_serf_tags(
      {{"role", "web"}, {"bad", "\xff"}, {"line", "a\nb"}, {"\xfe", "x"}, {"zmq", "8946"}});
  auto tags = decode_serf_tags(meta);
  ASSERT_TRUE(tags);
  EXPECT_EQ(*tags, (std::map<std::string, std::string>{{"role", "web"}, {"zmq", "8946"}}));
}

TEST(SerfTags, DecodeAcceptsOtherStringFamiliesAndRejectsJunk) {
  // str8 and bin as a newer encoder might write them.
  const Bytes str8 = {0xff, 0x81, 0xd9, 0x01, 'k', 0xc4, 0x01, 'v'};
  auto t = decode_serf_tags(str8);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->at("k"), "v");
  EXPECT_FALSE(decode_serf_tags(Bytes{}));                       // no magic byte
  EXPECT_FALSE(decode_serf_tags(as_bytes("web")));              // a bare role
  EXPECT_FALSE(decode_serf_tags(Bytes{0xff}));                  // nothing after it
  EXPECT_FALSE(decode_serf_tags(Bytes{0xff, 0x81, 0xa1, 'k'}));  // value missing
  EXPECT_FALSE(decode_serf_tags(Bytes{0xff, 0x81, 0x01, 0x02}));  // ints, not strings
  EXPECT_FALSE(decode_serf_tags(Bytes{0xff, 0xdf, 0xff, 0xff, 0xff, 0xff}));  // huge count
}

TEST(SerfIntents, MatchGo) {
  // encodeMessage(messageJoinType, &messageJoin{LTime: 300, Node: "n1"})
  const Bytes join = {0x01, 0x82, 0xa5, 0x4c, 0x54, 0x69, 0x6d, 0x65, 0xcd, 0x01,
                      0x2c, 0xa4, 0x4e, 0x6f, 0x64, 0x65, 0xa2, 0x6e, 0x31};
  // encodeMessage(messageLeaveType, &messageLeave{LTime: 7, Node: "n1"})
  const Bytes leave = {0x00, 0x83, 0xa5, 0x4c, 0x54, 0x69, 0x6d, 0x65, 0x07, 0xa4, 0x4e, 0x6f,
                       0x64, 0x65, 0xa2, 0x6e, 0x31, 0xa5, 0x50, 0x72, 0x75, 0x6e, 0x65, 0xc2};
  EXPECT_EQ(serf::encode_join_intent(300, "n1"), join);
  EXPECT_EQ(serf::encode_leave_intent(7, "n1", false), leave);

  auto j = serf::decode_intent(join);
  ASSERT_TRUE(j);
  EXPECT_EQ(j->type, serf::MessageType::Join);
  EXPECT_EQ(j->ltime, 300u);
  EXPECT_EQ(j->node, "n1");
  auto l = serf::decode_intent(leave);
  ASSERT_TRUE(l);
  EXPECT_EQ(l->type, serf::MessageType::Leave);
  EXPECT_EQ(l->ltime, 7u);
  EXPECT_FALSE(l->prune);
}

TEST(SerfIntents, LargeTimesAndJunk) {
  for (std::uint64_t t : {0ull, 127ull, 128ull, 255ull, 256ull, 65535ull, 65536ull, 1ull << 40}) {
    auto in = serf::decode_intent(serf::encode_leave_intent(t, "x", true));
    ASSERT_TRUE(in);
    EXPECT_EQ(in->ltime, t);
    EXPECT_TRUE(in->prune);
  }
  EXPECT_FALSE(serf::decode_intent(Bytes{}));
  EXPECT_FALSE(serf::decode_intent(Bytes{3, 0x80}));  // a user event: not an intent
  EXPECT_FALSE(serf::decode_intent(Bytes{1, 0x80}));  // no fields
  Bytes cut = serf::encode_join_intent(300, "n1");
  cut.pop_back();
  EXPECT_FALSE(serf::decode_intent(cut));
  // Unknown fields are skipped.
  Bytes extra = {0x01, 0x83, 0xa1, 'X', 0x92, 0xc3, 0xcb, 0, 0, 0, 0, 0, 0, 0, 0,
                 0xa5, 'L', 'T', 'i', 'm', 'e', 0x05, 0xa4, 'N', 'o', 'd', 'e', 0xa1, 'q'};
  auto e = serf::decode_intent(extra);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->ltime, 5u);
  EXPECT_EQ(e->node, "q");
}

TEST(SerfPushPull, ClocksFromGoState) {
  // encodeMessage(messagePushPullType, &messagePushPull{LTime: 1000,
  //   StatusLTimes: {"cpp1": 7}, LeftMembers: ["old"], EventLTime: 3,
  //   Events: [nil, {LTime: 2, Events: [{"deploy", [1 2 255]}]}], QueryLTime: 200})
  const Bytes go = {
      0x02, 0x86, 0xaa, 0x45, 0x76, 0x65, 0x6e, 0x74, 0x4c, 0x54, 0x69, 0x6d, 0x65, 0x03, 0xa6, 0x45,
      0x76, 0x65, 0x6e, 0x74, 0x73, 0x92, 0xc0, 0x82, 0xa6, 0x45, 0x76, 0x65, 0x6e, 0x74, 0x73, 0x91,
      0x82, 0xa4, 0x4e, 0x61, 0x6d, 0x65, 0xa6, 0x64, 0x65, 0x70, 0x6c, 0x6f, 0x79, 0xa7, 0x50, 0x61,
      0x79, 0x6c, 0x6f, 0x61, 0x64, 0xa3, 0x01, 0x02, 0xff, 0xa5, 0x4c, 0x54, 0x69, 0x6d, 0x65, 0x02,
      0xa5, 0x4c, 0x54, 0x69, 0x6d, 0x65, 0xcd, 0x03, 0xe8, 0xab, 0x4c, 0x65, 0x66, 0x74, 0x4d, 0x65,
      0x6d, 0x62, 0x65, 0x72, 0x73, 0x91, 0xa3, 0x6f, 0x6c, 0x64, 0xaa, 0x51, 0x75, 0x65, 0x72, 0x79,
      0x4c, 0x54, 0x69, 0x6d, 0x65, 0xcc, 0xc8, 0xac, 0x53, 0x74, 0x61, 0x74, 0x75, 0x73, 0x4c, 0x54,
      0x69, 0x6d, 0x65, 0x73, 0x81, 0xa4, 0x63, 0x70, 0x70, 0x31, 0x07};
  auto pp = serf::decode_push_pull_clocks(go);
  ASSERT_TRUE(pp);
  EXPECT_EQ(pp->ltime, 1000u);
  ASSERT_EQ(pp->status_ltimes.size(), 1u);
  EXPECT_EQ(pp->status_ltimes[0].first, "cpp1");
  EXPECT_EQ(pp->status_ltimes[0].second, 7u);
  ASSERT_EQ(pp->left_members.size(), 1u);
  EXPECT_EQ(pp->left_members[0], "old");
  for (std::size_t n = 0; n < go.size(); ++n)
    EXPECT_FALSE(serf::decode_push_pull_clocks(ByteView(go).first(n))) << n;
}

TEST(SerfLamport, WitnessAndIncrement) {
  serf::LamportClock c;
  EXPECT_EQ(c.time(), 0u);
  c.witness(0);
  EXPECT_EQ(c.time(), 1u);
  c.witness(10);
  EXPECT_EQ(c.time(), 11u);
  c.witness(5);
  EXPECT_EQ(c.time(), 11u);
  EXPECT_EQ(c.increment(), 12u);
}

TEST(Seeds, Parse) {
  using detail::parse_seed;
  auto s = parse_seed("127.0.0.1:7946", 1);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->host, "127.0.0.1");
  EXPECT_EQ(s->port, 7946);
  s = parse_seed("example.org", 7000);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->host, "example.org");
  EXPECT_EQ(s->port, 7000);
  s = parse_seed("[::1]:8000", 1);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->host, "::1");
  EXPECT_EQ(s->port, 8000);
  s = parse_seed("[fe80::1]", 9);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->host, "fe80::1");
  EXPECT_EQ(s->port, 9);
  s = parse_seed("::1", 9);  // a bare IPv6 literal has no port
  ASSERT_TRUE(s);
  EXPECT_EQ(s->host, "::1");
  EXPECT_EQ(s->port, 9);
  s = parse_seed("node-a/10.0.0.1:7946", 1);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->host, "10.0.0.1");
  for (const char* bad : {"", ":7946", "h:0", "h:65536", "h:x", "[::1", "[::1]x", "[]:1", "/h:1"})
    EXPECT_FALSE(parse_seed(bad, 7946)) << bad;
}

}  // namespace
}  // namespace mesh::swim
