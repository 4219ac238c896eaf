// The borrowed (view) codec paths must accept, reject and write exactly
// what the owned paths do: the node uses them on its hot paths.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "mesh/swim/codec.hpp"

namespace mesh::swim {
namespace {

Alive sample_alive(int i) {
  return Alive{static_cast<std::uint32_t>(i + 1), "node-" + std::to_string(i),
               Bytes{10, 0, 0, static_cast<std::uint8_t>(i)}, 7946,
               i % 2 ? Bytes{} : Bytes{'m', 'e', 't', 'a'}, Bytes{1, 5, 2, 2, 5, 5}};
}

PushPull sample_push_pull(int n) {
  PushPull pp;
  pp.join = true;
  for (int i = 0; i < n; ++i) {
    const Alive a = sample_alive(i);
    pp.nodes.push_back({a.node, a.addr, a.port, a.meta, a.incarnation,
                        static_cast<MemberState>(i % 4), a.vsn});
  }
  pp.user_state = {1, 2, 3};
  return pp;
}

std::vector<PushNodeStateView> views_of(const PushPull& pp) {
  std::vector<PushNodeStateView> v;
  for (const auto& s : pp.nodes)
    v.push_back({s.name, s.addr, s.port, s.meta, s.incarnation, s.state, s.vsn});
  return v;
}

TEST(CodecView, AliveViewEncodesAndDecodesLikeAlive) {
  for (int i = 0; i < 4; ++i) {
    const Alive a = sample_alive(i);
    const Bytes owned = encode(a);
    Bytes viewed;
    encode(AliveView{a.incarnation, a.node, a.addr, a.port, a.meta, a.vsn}, viewed);
    EXPECT_EQ(owned, viewed);
    auto v = decode_alive_view(owned);
    ASSERT_TRUE(v.ok());
    EXPECT_EQ(v->node, a.node);
    EXPECT_EQ(Bytes(v->addr.begin(), v->addr.end()), a.addr);
    EXPECT_EQ(Bytes(v->meta.begin(), v->meta.end()), a.meta);
    EXPECT_EQ(Bytes(v->vsn.begin(), v->vsn.end()), a.vsn);
    EXPECT_EQ(v->incarnation, a.incarnation);
    EXPECT_EQ(v->port, a.port);
  }
  EXPECT_EQ(decode_alive_view(encode(Nack{1})).error().code, DecodeError::UnknownType);
  // Every truncation fails the same way as decode_message.
  const Bytes full = encode(sample_alive(0));
  for (std::size_t n = 1; n < full.size(); ++n) {
    const ByteView cut(full.data(), n);
    auto owned = decode_message(cut);
    auto viewed = decode_alive_view(cut);
    ASSERT_FALSE(owned.ok());
    ASSERT_FALSE(viewed.ok());
    EXPECT_EQ(owned.error().code, viewed.error().code);
  }
}

TEST(CodecView, SplitPacketFindsTheMessagesDecodePacketDecodes) {
  std::vector<Bytes> parts = {encode(sample_alive(1)), encode(Nack{7}), Bytes{0xee},
                              encode(sample_alive(2))};
  const Bytes inner = make_compound(parts);
  const std::vector<Bytes> packets = {
      wrap_crc(inner), inner, wrap_compress(inner), wrap_crc(wrap_compress(inner)),
      encode(sample_alive(3)), Bytes{0x07, 0x03, 0x00, 0x09, 0x00}, Bytes{}};
  for (const Bytes& p : packets) {
    auto decoded = decode_packet(p);
    auto split = split_packet(p);
    ASSERT_EQ(decoded.ok(), split.ok());
    if (!decoded.ok()) {
      EXPECT_EQ(decoded.error().code, split.error().code);
      continue;
    }
    EXPECT_EQ(decoded->truncated_parts, split->truncated_parts);
    std::vector<PacketMessage> messages;
    std::size_t errors = split->part_errors.size();
    for (ByteView m : split->messages) {
      auto one = decode_message(m);
      if (one.ok()) messages.push_back(*one);
      else ++errors;
    }
    EXPECT_EQ(messages, decoded->messages);
    EXPECT_EQ(errors, decoded->part_errors.size());
  }
}

TEST(CodecView, PushPullFromViewsHasTheSameBytes) {
  for (bool compress : {false, true}) {
    const PushPull pp = sample_push_pull(20);
    const auto views = views_of(pp);
    EXPECT_EQ(encode_stream(StreamMessage{pp}, compress),
              encode_push_pull_stream(pp.join, views, pp.user_state, compress));
  }
}

TEST(CodecView, StreamViewMatchesDecodeStreamOnEveryPrefix) {
  for (bool compress : {false, true}) {
    const Bytes b = encode_stream(StreamMessage{sample_push_pull(5)}, compress);
    for (std::size_t n = 0; n <= b.size(); ++n) {
      const ByteView prefix(b.data(), n);
      auto owned = decode_stream(prefix);
      Bytes inflated;
      auto viewed = decode_stream_view(prefix, inflated);
      ASSERT_EQ(owned.ok(), viewed.ok()) << n;
      if (!owned.ok()) {
        EXPECT_EQ(owned.error().code, viewed.error().code) << n;
        continue;
      }
      EXPECT_EQ(owned->consumed, viewed->consumed);
      const auto& pv = std::get<PushPullView>(viewed->message);
      const auto& po = std::get<PushPull>(owned->message);
      ASSERT_EQ(pv.nodes.size(), po.nodes.size());
      for (std::size_t i = 0; i < pv.nodes.size(); ++i) {
        EXPECT_EQ(pv.nodes[i].name, po.nodes[i].name);
        EXPECT_EQ(pv.nodes[i].state, po.nodes[i].state);
        EXPECT_EQ(pv.nodes[i].incarnation, po.nodes[i].incarnation);
      }
      EXPECT_EQ(Bytes(pv.user_state.begin(), pv.user_state.end()), po.user_state);
    }
  }
}

TEST(CodecView, BadStateBeforeACutIsStillIncomplete) {
  // A state that fails to decode while a later one is cut off means "wait
  // for more" (the old skip-scan decided completeness first); once all is
  // here it is malformed.
  PushPull pp = sample_push_pull(3);
  Bytes b = encode_stream(StreamMessage{pp}, false);
  // The first state's State value (a fixint) becomes 9: out of range.
  const Bytes key = {0xa5, 'S', 't', 'a', 't', 'e'};
  auto at = std::search(b.begin(), b.end(), key.begin(), key.end());
  ASSERT_NE(at, b.end());
  *(at + key.size()) = 0x09;
  Bytes inflated;
  auto cut = decode_stream_view(ByteView(b.data(), b.size() - 10), inflated);
  ASSERT_FALSE(cut.ok());
  EXPECT_EQ(cut.error().code, DecodeError::Incomplete);
  EXPECT_EQ(decode_stream(ByteView(b.data(), b.size() - 10)).error().code,
            DecodeError::Incomplete);
  auto whole = decode_stream_view(b, inflated);
  ASSERT_FALSE(whole.ok());
  EXPECT_EQ(whole.error().code, DecodeError::Malformed);
}

}  // namespace
}  // namespace mesh::swim
