// Codec tests: byte-exact golden vectors, decoding leniency, packets and
// streams, and robustness against truncated, mutated and hostile input.
//
// Golden vectors were derived by hand from go-msgpack 0.5.5's rules (keys
// in sorted Go field-name order, raw strings, smallest integers, nil for a
// nil []byte, omitempty fields dropped) and cross-checked once against the
// real Go encoder; the comments spell out each derivation.
#include "mesh/swim/codec.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "mesh/swim/messages.hpp"
#include "mesh/swim/types.hpp"

namespace mesh::swim {
namespace {

// --- helpers --------------------------------------------------------------

void append(Bytes& out, int byte) { out.push_back(static_cast<std::uint8_t>(byte)); }
void append(Bytes& out, const char* s) {
  out.insert(out.end(), reinterpret_cast<const std::uint8_t*>(s),
             reinterpret_cast<const std::uint8_t*>(s) + std::strlen(s));
}
void append(Bytes& out, const Bytes& b) { out.insert(out.end(), b.begin(), b.end()); }

// bytes(0x00, 0x82, 0xa4, "Node", ...): ints are single bytes, C strings
// their characters (without the terminator), Bytes are spliced in.
template <class... Args>
Bytes bytes(const Args&... args) {
  Bytes out;
  (append(out, args), ...);
  return out;
}

Bytes to_bytes(std::string_view s) { return Bytes(s.begin(), s.end()); }

std::string hex(ByteView b) {
  static const char* digits = "0123456789abcdef";
  std::string s;
  for (auto x : b) {
    s += digits[x >> 4];
    s += digits[x & 15];
    s += ' ';
  }
  return s;
}

template <class T>
std::string why(const Result<T>& r) {
  return r.ok() ? std::string("ok")
                : std::string(to_string(r.error().code)) + ": " + r.error().reason;
}

template <class M>
M decode_as(const Bytes& b) {
  auto r = decode_message(b);
  EXPECT_TRUE(r.ok()) << why(r) << " for " << hex(b);
  if (!r.ok()) return M{};
  EXPECT_TRUE(std::holds_alternative<M>(*r));
  if (!std::holds_alternative<M>(*r)) return M{};
  return std::get<M>(*r);
}

DecodeError error_of(const Bytes& b) {
  auto r = decode_message(b);
  EXPECT_FALSE(r.ok()) << "decoded " << hex(b);
  return r.ok() ? DecodeError::Count_ : r.error().code;
}

const Vsn kVsn{1, 5, 2, 2, 5, 5};
Bytes vsn_bytes() { return Bytes(kVsn.begin(), kVsn.end()); }

// --- golden vectors, one per message type -----------------------------------

// ping{SeqNo:1, Node:"a"}: sorted keys put Node before SeqNo; the three
// omitempty fields are absent, so the map has 2 entries.
Bytes ping_min_vec() { return bytes(0x00, 0x82, 0xa4, "Node", 0xa1, "a", 0xa5, "SeqNo", 0x01); }

// All omitempty fields present: Node, SeqNo, SourceAddr, SourceNode,
// SourcePort (A < N < P). 300 needs uint16 (cd 01 2c), 7946 = cd 1f 0a.
Bytes ping_full_vec() {
  return bytes(0x00, 0x85, 0xa4, "Node", 0xa6, "node-1", 0xa5, "SeqNo", 0xcd, 0x01, 0x2c, 0xaa,
               "SourceAddr", 0xa4, 10, 0, 0, 1, 0xaa, "SourceNode", 0xa2, "me", 0xaa, "SourcePort",
               0xcd, 0x1f, 0x0a);
}

// indirectPingReq: Nack < Node ('a' < 'o') < Port < SeqNo < Target.
// 70000 needs uint32 (ce 00 01 11 70); true is c3.
Bytes indirect_vec() {
  return bytes(0x01, 0x85, 0xa4, "Nack", 0xc3, 0xa4, "Node", 0xa1, "b", 0xa4, "Port", 0x50, 0xa5,
               "SeqNo", 0xce, 0x00, 0x01, 0x11, 0x70, 0xa6, "Target", 0xa4, 127, 0, 0, 1);
}

// All zero: false is c2, "" is a0, the nil Target is c0.
Bytes indirect_zero_vec() {
  return bytes(0x01, 0x85, 0xa4, "Nack", 0xc2, 0xa4, "Node", 0xa0, 0xa4, "Port", 0x00, 0xa5,
               "SeqNo", 0x00, 0xa6, "Target", 0xc0);
}

Bytes indirect_full_vec() {
  return bytes(0x01, 0x88, 0xa4, "Nack", 0xc2, 0xa4, "Node", 0xa1, "t", 0xa4, "Port", 0xcd, 0x1f,
               0x0a, 0xa5, "SeqNo", 0x05, 0xaa, "SourceAddr", 0xa4, 5, 6, 7, 8, 0xaa, "SourceNode",
               0xa1, "s", 0xaa, "SourcePort", 0x01, 0xa6, "Target", 0xa4, 1, 2, 3, 4);
}

// ackResp with no payload: Payload < SeqNo; nil payload c0; 128 = cc 80.
Bytes ack_nil_vec() { return bytes(0x02, 0x82, 0xa7, "Payload", 0xc0, 0xa5, "SeqNo", 0xcc, 0x80); }

Bytes ack_payload_vec() {
  return bytes(0x02, 0x82, 0xa7, "Payload", 0xa3, 1, 2, 3, 0xa5, "SeqNo", 0xce, 0x00, 0x01, 0x00,
               0x00);
}

// suspect: From < Incarnation < Node; 255 = cc ff.
Bytes suspect_vec() {
  return bytes(0x03, 0x83, 0xa4, "From", 0xa1, "f", 0xab, "Incarnation", 0xcc, 0xff, 0xa4, "Node",
               0xa1, "n");
}

// alive: Addr < Incarnation < Meta < Node < Port < Vsn. Empty Meta is nil;
// Vsn is a 6-byte raw string (a6 ...), not an array.
Bytes alive_vec() {
  return bytes(0x04, 0x86, 0xa4, "Addr", 0xa4, 192, 168, 1, 2, 0xab, "Incarnation", 0xcd, 0x01,
               0x00, 0xa4, "Meta", 0xc0, 0xa4, "Node", 0xa1, "x", 0xa4, "Port", 0xcd, 0x1f, 0x0a,
               0xa3, "Vsn", 0xa6, 1, 5, 2, 2, 5, 5);
}

// dead with From == Node (a leave); max uint32 = ce ff ff ff ff.
Bytes dead_vec() {
  return bytes(0x05, 0x83, 0xa4, "From", 0xa1, "n", 0xab, "Incarnation", 0xce, 0xff, 0xff, 0xff,
               0xff, 0xa4, "Node", 0xa1, "n");
}

Bytes nack_vec() { return bytes(0x0b, 0x81, 0xa5, "SeqNo", 0x2a); }

Bytes err_vec() { return bytes(0x0d, 0x81, 0xa5, "Error", 0xa4, "boom"); }

// A 40-byte string is past fixstr (31) and, without str8 in the old
// spec, goes straight to raw16: da 00 28.
Bytes err_long_vec() {
  return bytes(0x0d, 0x81, 0xa5, "Error", 0xda, 0x00, 0x28, std::string(40, 'z').c_str());
}

Bytes user_vec() { return bytes(0x08, "serf-bytes"); }

// pushNodeState {Name a, Addr 1.2.3.4, Port 7946, Incarnation 2, State
// left(3), Vsn}: Addr < Incarnation < Meta < Name < Port < State < Vsn.
Bytes push_state_vec() {
  return bytes(0x87, 0xa4, "Addr", 0xa4, 1, 2, 3, 4, 0xab, "Incarnation", 0x02, 0xa4, "Meta", 0xc0,
               0xa4, "Name", 0xa1, "a", 0xa4, "Port", 0xcd, 0x1f, 0x0a, 0xa5, "State", 0x03, 0xa3,
               "Vsn", 0xa6, 1, 5, 2, 2, 5, 5);
}

// [6] pushPullHeader{Nodes 1, UserStateLen 3, Join true} (Join < Nodes <
// UserStateLen), one state, then 3 raw bytes of user state.
Bytes push_pull_vec() {
  return bytes(0x06, 0x83, 0xa4, "Join", 0xc3, 0xa5, "Nodes", 0x01, 0xac, "UserStateLen", 0x03,
               push_state_vec(), 0xaa, 0xbb, 0xcc);
}

// [8] userMsgHeader{UserMsgLen 2} then the payload.
Bytes user_stream_vec() { return bytes(0x08, 0x81, 0xaa, "UserMsgLen", 0x02, "hi"); }

PushNodeState push_state_value() {
  PushNodeState s;
  s.name = "a";
  s.addr = {1, 2, 3, 4};
  s.port = 7946;
  s.incarnation = 2;
  s.state = MemberState::Left;
  s.vsn = vsn_bytes();
  return s;
}

PushPull push_pull_value() {
  PushPull p;
  p.join = true;
  p.nodes.push_back(push_state_value());
  p.user_state = {0xaa, 0xbb, 0xcc};
  return p;
}

// compress{Algo 0, Buf lzw(ping_min_vec)}: Algo < Buf. From Go.
Bytes compressed_ping_vec() {
  return bytes(0x09, 0x82, 0xa4, "Algo", 0x00, 0xa3, "Buf", 0xb4, 0x00, 0x01, 0x08, 0x22, 0xe5,
               0xe4, 0x0d, 0x99, 0x32, 0xa1, 0xc2, 0x94, 0x9a, 0x52, 0x26, 0x4e, 0xc1, 0x00, 0x01,
               0x01);
}

// Every msgpack-bodied packet vector.
std::vector<Bytes> message_vectors() {
  return {ping_min_vec(),      ping_full_vec(), indirect_vec(),    indirect_zero_vec(),
          indirect_full_vec(), ack_nil_vec(),   ack_payload_vec(), suspect_vec(),
          alive_vec(),         dead_vec(),      nack_vec(),        err_vec(),
          err_long_vec()};
}

// --- encoding: byte-exact -----------------------------------------------------

TEST(CodecEncode, PingMinimalOmitsEmptyOptionals) {
  Ping p;
  p.seq_no = 1;
  p.node = "a";
  EXPECT_EQ(encode(p), ping_min_vec()) << hex(encode(p));
}

TEST(CodecEncode, PingWithAllOptionals) {
  Ping p;
  p.seq_no = 300;
  p.node = "node-1";
  p.source_addr = {10, 0, 0, 1};
  p.source_port = 7946;
  p.source_node = "me";
  EXPECT_EQ(encode(p), ping_full_vec()) << hex(encode(p));
}

TEST(CodecEncode, PingWithOnlySourcePortCountsOneOptional) {
  Ping p;
  p.seq_no = 2;
  p.source_port = 1;
  EXPECT_EQ(encode(p),
            bytes(0x00, 0x83, 0xa4, "Node", 0xa0, 0xa5, "SeqNo", 0x02, 0xaa, "SourcePort", 0x01));
}

TEST(CodecEncode, IndirectPing) {
  IndirectPing m;
  m.seq_no = 70000;
  m.target = {127, 0, 0, 1};
  m.port = 80;
  m.node = "b";
  m.nack = true;
  EXPECT_EQ(encode(m), indirect_vec()) << hex(encode(m));
  EXPECT_EQ(encode(IndirectPing{}), indirect_zero_vec()) << hex(encode(IndirectPing{}));
  IndirectPing full;
  full.seq_no = 5;
  full.target = {1, 2, 3, 4};
  full.port = 7946;
  full.node = "t";
  full.source_addr = {5, 6, 7, 8};
  full.source_port = 1;
  full.source_node = "s";
  EXPECT_EQ(encode(full), indirect_full_vec()) << hex(encode(full));
}

TEST(CodecEncode, AckNilAndNonEmptyPayload) {
  Ack a;
  a.seq_no = 128;
  EXPECT_EQ(encode(a), ack_nil_vec());
  a.seq_no = 65536;
  a.payload = {1, 2, 3};
  EXPECT_EQ(encode(a), ack_payload_vec());
}

TEST(CodecEncode, RawLengthForms) {
  // 300 bytes: raw16 (da 01 2c); 70000 bytes: raw32 (db 00 01 11 70).
  Ack a;
  a.seq_no = 1;
  a.payload.assign(300, 0);
  Bytes out = encode(a);
  EXPECT_EQ(Bytes(out.begin(), out.begin() + 13),
            bytes(0x02, 0x82, 0xa7, "Payload", 0xda, 0x01, 0x2c));
  EXPECT_EQ(out.size(), 13u + 300 + 7);
  a.payload.assign(70000, 0);
  out = encode(a);
  EXPECT_EQ(Bytes(out.begin(), out.begin() + 15),
            bytes(0x02, 0x82, 0xa7, "Payload", 0xdb, 0x00, 0x01, 0x11, 0x70));
  // 31 bytes is the last fixstr, 32 the first raw16.
  a.payload.assign(31, 7);
  EXPECT_EQ(encode(a)[10], 0xbf);
  a.payload.assign(32, 7);
  EXPECT_EQ(encode(a)[10], 0xda);
}

TEST(CodecEncode, Nack) {
  Nack n;
  n.seq_no = 42;
  EXPECT_EQ(encode(n), nack_vec());
}

TEST(CodecEncode, SuspectAliveDead) {
  Suspect s;
  s.incarnation = 255;
  s.node = "n";
  s.from = "f";
  EXPECT_EQ(encode(s), suspect_vec());

  Alive a;
  a.incarnation = 256;
  a.node = "x";
  a.addr = {192, 168, 1, 2};
  a.port = 7946;
  a.vsn = vsn_bytes();
  EXPECT_EQ(encode(a), alive_vec()) << hex(encode(a));

  Dead d;
  d.incarnation = 0xffffffffu;
  d.node = "n";
  d.from = "n";
  EXPECT_EQ(encode(d), dead_vec());
}

TEST(CodecEncode, ErrAndUser) {
  EXPECT_EQ(encode(ErrResp{"boom"}), err_vec());
  EXPECT_EQ(encode(ErrResp{std::string(40, 'z')}), err_long_vec());
  EXPECT_EQ(encode(UserMsg{to_bytes("serf-bytes")}), user_vec());
  EXPECT_EQ(encode(UserMsg{}), bytes(0x08));
}

TEST(CodecEncode, PacketMessageVariantDispatches) {
  Bytes out;
  encode(PacketMessage{Nack{42}}, out);
  EXPECT_EQ(out, nack_vec());
  encode(PacketMessage{ErrResp{"boom"}}, out);  // appends
  EXPECT_EQ(out, bytes(nack_vec(), err_vec()));
}

TEST(CodecEncode, Compound) {
  // [7][n=2][len 9 BE][len 13 BE][part][part]
  const Bytes parts[] = {nack_vec(), err_vec()};
  EXPECT_EQ(make_compound(parts), bytes(0x07, 0x02, 0x00, 0x09, 0x00, 0x0d, nack_vec(), err_vec()));
}

TEST(CodecEncode, CrcWrapper) {
  // CRC-32 of "123456789" is the standard check value cbf43926.
  EXPECT_EQ(wrap_crc(to_bytes("123456789")), bytes(0x0c, 0xcb, 0xf4, 0x39, 0x26, "123456789"));
}

// make_packet builds in one allocation what make_compound and wrap_crc
// build in two or three: byte for byte the same packet.
TEST(CodecEncode, MakePacketEqualsCompoundAndCrc) {
  const Bytes parts[] = {nack_vec(), err_vec(), ping_min_vec()};
  const ByteView views[] = {parts[0], parts[1], parts[2]};
  for (std::size_t n = 1; n <= 3; ++n) {
    const std::span<const Bytes> p(parts, n);
    const std::span<const ByteView> v(views, n);
    const Bytes plain = n == 1 ? parts[0] : make_compound(p);
    EXPECT_EQ(make_packet(v, false), plain) << n;
    EXPECT_EQ(make_packet(v, true), wrap_crc(plain)) << n;
  }
}

TEST(CodecEncode, CompressMatchesGo) {
  EXPECT_EQ(wrap_compress(ping_min_vec()), compressed_ping_vec())
      << hex(wrap_compress(ping_min_vec()));
}

TEST(CodecEncode, StreamForms) {
  EXPECT_EQ(encode_stream(push_pull_value(), false), push_pull_vec())
      << hex(encode_stream(push_pull_value(), false));
  EXPECT_EQ(encode_stream(UserMsg{to_bytes("hi")}, false), user_stream_vec());
  Ping p;
  p.seq_no = 1;
  p.node = "a";
  EXPECT_EQ(encode_stream(p, false), ping_min_vec());
  Ack a;
  a.seq_no = 128;
  EXPECT_EQ(encode_stream(a, false), ack_nil_vec());
  EXPECT_EQ(encode_stream(ErrResp{"boom"}, false), err_vec());
  // memberlist compresses the whole stream message, type byte included.
  EXPECT_EQ(encode_stream(p, true), compressed_ping_vec());
  EXPECT_EQ(encode_stream(push_pull_value(), true), wrap_compress(push_pull_vec()));
}

TEST(CodecEncode, PushPullEmptyHasNoStatesAndNoUserState) {
  EXPECT_EQ(encode_stream(PushPull{}, false),
            bytes(0x06, 0x83, 0xa4, "Join", 0xc2, 0xa5, "Nodes", 0x00, 0xac, "UserStateLen", 0x00));
}

TEST(CodecEncode, PushNodeStateEmptyBytesAreNil) {
  PushPull p;
  p.nodes.emplace_back();
  const Bytes expected =
      bytes(0x06, 0x83, 0xa4, "Join", 0xc2, 0xa5, "Nodes", 0x01, 0xac, "UserStateLen", 0x00, 0x87,
            0xa4, "Addr", 0xc0, 0xab, "Incarnation", 0x00, 0xa4, "Meta", 0xc0, 0xa4, "Name", 0xa0,
            0xa4, "Port", 0x00, 0xa5, "State", 0x00, 0xa3, "Vsn", 0xc0);
  EXPECT_EQ(encode_stream(p, false), expected);
}

// --- decoding golden vectors -------------------------------------------------

TEST(CodecDecode, GoldenVectors) {
  Ping p = decode_as<Ping>(ping_full_vec());
  EXPECT_EQ(p.seq_no, 300u);
  EXPECT_EQ(p.node, "node-1");
  EXPECT_EQ(p.source_addr, (Bytes{10, 0, 0, 1}));
  EXPECT_EQ(p.source_port, 7946);
  EXPECT_EQ(p.source_node, "me");

  IndirectPing ip = decode_as<IndirectPing>(indirect_vec());
  EXPECT_EQ(ip.seq_no, 70000u);
  EXPECT_EQ(ip.target, (Bytes{127, 0, 0, 1}));
  EXPECT_EQ(ip.port, 80);
  EXPECT_TRUE(ip.nack);
  EXPECT_EQ(decode_as<IndirectPing>(indirect_zero_vec()), IndirectPing{});

  EXPECT_EQ(decode_as<Ack>(ack_nil_vec()), (Ack{128, {}}));
  EXPECT_EQ(decode_as<Ack>(ack_payload_vec()), (Ack{65536, {1, 2, 3}}));
  EXPECT_EQ(decode_as<Nack>(nack_vec()), Nack{42});
  EXPECT_EQ(decode_as<Suspect>(suspect_vec()), (Suspect{255, "n", "f"}));
  EXPECT_EQ(decode_as<Dead>(dead_vec()), (Dead{0xffffffffu, "n", "n"}));
  Alive a = decode_as<Alive>(alive_vec());
  EXPECT_EQ(a.incarnation, 256u);
  EXPECT_EQ(a.addr, (Bytes{192, 168, 1, 2}));
  EXPECT_EQ(a.port, 7946);
  EXPECT_TRUE(a.meta.empty());
  EXPECT_EQ(a.vsn, vsn_bytes());
  EXPECT_EQ(decode_as<ErrResp>(err_vec()), ErrResp{"boom"});
  EXPECT_EQ(decode_as<ErrResp>(err_long_vec()), ErrResp{std::string(40, 'z')});
  EXPECT_EQ(decode_as<UserMsg>(user_vec()), UserMsg{to_bytes("serf-bytes")});
  EXPECT_EQ(decode_as<UserMsg>(bytes(0x08)), UserMsg{});
}

TEST(CodecDecode, KeysInAnyOrder) {
  const Bytes reversed = bytes(0x04, 0x86, 0xa3, "Vsn", 0xa6, 1, 5, 2, 2, 5, 5, 0xa4, "Port", 0xcd,
                               0x1f, 0x0a, 0xa4, "Node", 0xa1, "x", 0xa4, "Meta", 0xa2, "mm", 0xab,
                               "Incarnation", 0x07, 0xa4, "Addr", 0xa4, 1, 2, 3, 4);
  Alive a = decode_as<Alive>(reversed);
  EXPECT_EQ(a.vsn, vsn_bytes());
  EXPECT_EQ(a.port, 7946);
  EXPECT_EQ(a.node, "x");
  EXPECT_EQ(a.meta, to_bytes("mm"));
  EXPECT_EQ(a.incarnation, 7u);
  EXPECT_EQ(a.addr, (Bytes{1, 2, 3, 4}));
}

TEST(CodecDecode, MissingKeysAreZeroAndDuplicatesTakeTheLast) {
  EXPECT_EQ(decode_as<Ping>(bytes(0x00, 0x80)), Ping{});
  EXPECT_EQ(decode_as<Nack>(bytes(0x0b, 0x82, 0xa5, "SeqNo", 0x01, 0xa5, "SeqNo", 0x02)), Nack{2});
}

TEST(CodecDecode, KeyNamesAreCaseSensitive) {
  EXPECT_EQ(decode_as<Nack>(bytes(0x0b, 0x81, 0xa5, "seqno", 0x05)), Nack{0});
}

TEST(CodecDecode, UnknownKeysOfEveryTypeAreSkipped) {
  // Before SeqNo: a nested map holding an array holding a map, a float64,
  // a fixext4, an ext8, a negative int, a bin8 and nil; after it one more.
  // clang-format off
  const Bytes b = bytes(
      0x0b, 0x89,
      0xa1, "m", 0x82, 0xa1, "x", 0x92, 0x81, 0xa1, "y", 0xc3, 0x01, 0xa1, "z", 0xdc, 0x00, 0x01, 0xc0,
      0xa1, "f", 0xcb, 1, 2, 3, 4, 5, 6, 7, 8,
      0xa1, "e", 0xd6, 0x05, 1, 2, 3, 4,
      0xa1, "g", 0xc7, 0x02, 0x09, 0xee, 0xee,
      0xa1, "n", 0xd3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe,
      0xa1, "b", 0xc4, 0x02, 0x00, 0x00,
      0xa1, "z", 0xc0,
      0xa5, "SeqNo", 0x09,
      0xa5, "Zzzzz", 0xde, 0x00, 0x01, 0xa1, "k", 0xdd, 0x00, 0x00, 0x00, 0x01, 0xca, 0, 0, 0, 0);
  // clang-format on
  EXPECT_EQ(decode_as<Nack>(b), Nack{9});
}

TEST(CodecDecode, AcceptsEveryStringAndBytesForm) {
  // str8 (d9), bin8 (c4), bin16 (c5), str32 (db), bin32 (c6) and nil.
  const Bytes b =
      bytes(0x04, 0x86, 0xa4, "Node", 0xd9, 0x02, "ab", 0xa4, "Addr", 0xc4, 0x04, 1, 2, 3, 4, 0xa4,
            "Meta", 0xc5, 0x00, 0x01, "m", 0xa3, "Vsn", 0xdb, 0x00, 0x00, 0x00, 0x06, 1, 5, 2, 2, 5,
            5, 0xa4, "Port", 0x01, 0xab, "Incarnation", 0xc0);
  Alive a = decode_as<Alive>(b);
  EXPECT_EQ(a.node, "ab");
  EXPECT_EQ(a.addr, (Bytes{1, 2, 3, 4}));
  EXPECT_EQ(a.meta, to_bytes("m"));
  EXPECT_EQ(a.vsn, vsn_bytes());
  EXPECT_EQ(a.incarnation, 0u);
  EXPECT_EQ(decode_as<ErrResp>(bytes(0x0d, 0x81, 0xa5, "Error", 0xc6, 0, 0, 0, 1, "!")),
            ErrResp{"!"});
  EXPECT_EQ(decode_as<ErrResp>(bytes(0x0d, 0x81, 0xa5, "Error", 0xc0)), ErrResp{});
  // Keys may come in any string form too.
  EXPECT_EQ(decode_as<Nack>(bytes(0x0b, 0x81, 0xd9, 0x05, "SeqNo", 0x03)), Nack{3});
  EXPECT_EQ(decode_as<Nack>(bytes(0x0b, 0xde, 0x00, 0x01, 0xc4, 0x05, "SeqNo", 0x03)), Nack{3});
  EXPECT_EQ(decode_as<Nack>(bytes(0x0b, 0xdf, 0x00, 0x00, 0x00, 0x01, 0xa5, "SeqNo", 0x03)),
            Nack{3});
}

TEST(CodecDecode, AcceptsEveryIntegerFormThatFits) {
  const auto seq = [](Bytes value) {
    return decode_as<Nack>(bytes(0x0b, 0x81, 0xa5, "SeqNo", value)).seq_no;
  };
  EXPECT_EQ(seq({0x7f}), 127u);
  EXPECT_EQ(seq({0xcc, 0x05}), 5u);
  EXPECT_EQ(seq({0xcd, 0x00, 0x05}), 5u);
  EXPECT_EQ(seq({0xce, 0xff, 0xff, 0xff, 0xff}), 0xffffffffu);
  EXPECT_EQ(seq({0xcf, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff}), 0xffffffffu);
  EXPECT_EQ(seq({0xd0, 0x05}), 5u);
  EXPECT_EQ(seq({0xd1, 0x00, 0x05}), 5u);
  EXPECT_EQ(seq({0xd2, 0x7f, 0xff, 0xff, 0xff}), 0x7fffffffu);
  EXPECT_EQ(seq({0xd3, 0, 0, 0, 0, 0, 0, 0, 0x05}), 5u);
  EXPECT_EQ(seq({0xc0}), 0u);
  // bool from fixint 0/1, as go-msgpack allows.
  const auto nack = [](int v) {
    return decode_as<IndirectPing>(bytes(0x01, 0x81, 0xa4, "Nack", v)).nack;
  };
  EXPECT_TRUE(nack(0x01));
  EXPECT_FALSE(nack(0x00));
  EXPECT_TRUE(nack(0xc3));
}

TEST(CodecDecode, RejectsIntegersThatDoNotFit) {
  const auto seq_error = [](Bytes value) {
    return error_of(bytes(0x0b, 0x81, 0xa5, "SeqNo", value));
  };
  EXPECT_EQ(seq_error({0xff}), DecodeError::Malformed);        // -1
  EXPECT_EQ(seq_error({0xd0, 0x80}), DecodeError::Malformed);  // -128
  EXPECT_EQ(seq_error({0xd3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}),
            DecodeError::Malformed);
  EXPECT_EQ(seq_error({0xcf, 0, 0, 0, 1, 0, 0, 0, 0}), DecodeError::Malformed);  // 2^32
  EXPECT_EQ(seq_error({0xca, 0, 0, 0, 0}), DecodeError::Malformed);              // float
  // Port is a uint16.
  EXPECT_EQ(error_of(bytes(0x01, 0x81, 0xa4, "Port", 0xce, 0x00, 0x01, 0x00, 0x00)),
            DecodeError::Malformed);
  EXPECT_EQ(decode_as<IndirectPing>(bytes(0x01, 0x81, 0xa4, "Port", 0xcd, 0xff, 0xff)).port, 65535);
}

TEST(CodecDecode, RejectsWrongTypedFields) {
  EXPECT_EQ(error_of(bytes(0x00, 0x81, 0xa4, "Node", 0x05)), DecodeError::Malformed);
  EXPECT_EQ(error_of(bytes(0x00, 0x81, 0xa5, "SeqNo", 0xa1, "1")), DecodeError::Malformed);
  EXPECT_EQ(error_of(bytes(0x01, 0x81, 0xa4, "Nack", 0xa4, "true")), DecodeError::Malformed);
  EXPECT_EQ(error_of(bytes(0x01, 0x81, 0xa4, "Nack", 0x02)), DecodeError::Malformed);
  EXPECT_EQ(error_of(bytes(0x04, 0x81, 0xa3, "Vsn", 0x96, 1, 5, 2, 2, 5, 5)),
            DecodeError::Malformed);
  EXPECT_EQ(error_of(bytes(0x02, 0x81, 0xa7, "Payload", 0x80)), DecodeError::Malformed);
  // A key that is not a string.
  EXPECT_EQ(error_of(bytes(0x0b, 0x81, 0x01, 0x02)), DecodeError::Malformed);
  // 0xc1 is never valid msgpack, even in a skipped value.
  EXPECT_EQ(error_of(bytes(0x0b, 0x81, 0xa1, "x", 0xc1)), DecodeError::Malformed);
}

TEST(CodecDecode, BodyMustBeAMap) {
  EXPECT_EQ(error_of(bytes(0x00)), DecodeError::Truncated);
  EXPECT_EQ(error_of(bytes(0x00, 0xc0)), DecodeError::Malformed);
  EXPECT_EQ(error_of(bytes(0x00, 0x92, 0x01, 0xa1, "a")), DecodeError::Malformed);
  EXPECT_EQ(error_of(bytes(0x00, 0xa1, "a")), DecodeError::Malformed);
  EXPECT_EQ(error_of(bytes(0x00, 0x01)), DecodeError::Malformed);
}

TEST(CodecDecode, ClaimedSizesBeyondTheInputAreTruncated) {
  EXPECT_EQ(error_of(bytes(0x0b, 0xdf, 0xff, 0xff, 0xff, 0xff)), DecodeError::Truncated);
  EXPECT_EQ(error_of(bytes(0x0d, 0x81, 0xa5, "Error", 0xdb, 0xff, 0xff, 0xff, 0xff, "x")),
            DecodeError::Truncated);
  EXPECT_EQ(error_of(bytes(0x0b, 0x81, 0xa1, "x", 0xdd, 0xff, 0xff, 0xff, 0xff, 0x01)),
            DecodeError::Truncated);
  EXPECT_EQ(error_of(bytes(0x0b, 0x81, 0xa1, "x", 0xc9, 0xff, 0xff, 0xff, 0xff, 0x01)),
            DecodeError::Truncated);
}

TEST(CodecDecode, DeeplyNestedUnknownValueDoesNotRecurse) {
  Bytes b = bytes(0x0b, 0x82, 0xa1, "x");
  for (int i = 0; i < 100000; ++i) append(b, 0x91);
  append(b, 0xc0);
  append(b, bytes(0xa5, "SeqNo", 0x04));
  EXPECT_EQ(decode_as<Nack>(b), Nack{4});
}

TEST(CodecDecode, TrailingBytesAfterTheBodyAreIgnored) {
  EXPECT_EQ(decode_as<Nack>(bytes(nack_vec(), 0xff, 0xff)), Nack{42});
}

TEST(CodecDecode, TypesWeDoNotTakeAsMessages) {
  for (int t : {6, 7, 9, 10, 12, 14, 100, 244, 255}) {
    EXPECT_EQ(error_of(bytes(t, 0x80)), DecodeError::UnknownType) << t;
  }
  EXPECT_EQ(error_of(Bytes{}), DecodeError::Truncated);
}

// --- round trips ---------------------------------------------------------------

std::string random_string(std::mt19937& rng, std::size_t max) {
  std::string s(rng() % (max + 1), ' ');
  for (auto& c : s) c = static_cast<char>('a' + rng() % 26);
  return s;
}

Bytes random_bytes(std::mt19937& rng, std::size_t max) {
  Bytes b(rng() % (max + 1));
  for (auto& x : b) x = static_cast<std::uint8_t>(rng());
  return b;
}

// Numbers spread over every msgpack width.
std::uint32_t random_u32(std::mt19937& rng) {
  switch (rng() % 4) {
    case 0: return rng() % 128;
    case 1: return rng() % 256;
    case 2: return rng() % 65536;
    default: return static_cast<std::uint32_t>(rng());
  }
}
std::uint16_t random_u16(std::mt19937& rng) { return static_cast<std::uint16_t>(random_u32(rng)); }

PacketMessage random_message(std::mt19937& rng) {
  switch (rng() % 9) {
    case 0:
      return Ping{random_u32(rng), random_string(rng, 40), random_bytes(rng, 16), random_u16(rng),
                  random_string(rng, 40)};
    case 1:
      return IndirectPing{random_u32(rng),        random_bytes(rng, 16), random_u16(rng),
                          random_string(rng, 40), rng() % 2 == 0,        random_bytes(rng, 16),
                          random_u16(rng),        random_string(rng, 40)};
    case 2: return Ack{random_u32(rng), random_bytes(rng, 300)};
    case 3: return Nack{random_u32(rng)};
    case 4: return Suspect{random_u32(rng), random_string(rng, 64), random_string(rng, 64)};
    case 5:
      return Alive{random_u32(rng), random_string(rng, 64), random_bytes(rng, 16),
                   random_u16(rng), random_bytes(rng, 600), random_bytes(rng, 6)};
    case 6: return Dead{random_u32(rng), random_string(rng, 64), random_string(rng, 64)};
    case 7: return ErrResp{random_string(rng, 100)};
    default: return UserMsg{random_bytes(rng, 100)};
  }
}

TEST(CodecRoundTrip, EveryPacketMessageType) {
  std::mt19937 rng(2024);
  int seen[9] = {};
  for (int i = 0; i < 3000; ++i) {
    const PacketMessage m = random_message(rng);
    ++seen[m.index()];
    Bytes b;
    encode(m, b);
    auto r = decode_message(b);
    ASSERT_TRUE(r.ok()) << why(r) << " " << hex(b);
    ASSERT_TRUE(*r == m) << "index " << m.index() << " " << hex(b);
  }
  for (int n : seen) EXPECT_GT(n, 0);
}

TEST(CodecRoundTrip, PacketsThroughEveryWrapper) {
  std::mt19937 rng(99);
  for (int i = 0; i < 300; ++i) {
    std::vector<PacketMessage> msgs;
    std::vector<Bytes> parts;
    const std::size_t n = 1 + rng() % 6;
    for (std::size_t k = 0; k < n; ++k) {
      msgs.push_back(random_message(rng));
      parts.push_back(Bytes{});
      encode(msgs.back(), parts.back());
    }
    Bytes packet = make_compound(parts);
    if (rng() % 2 == 0) packet = wrap_compress(packet);
    if (rng() % 2 == 0) packet = wrap_crc(packet);
    auto r = decode_packet(packet);
    ASSERT_TRUE(r.ok()) << why(r);
    EXPECT_TRUE(r->messages == msgs);
    EXPECT_EQ(r->truncated_parts, 0u);
    EXPECT_TRUE(r->part_errors.empty());
  }
}

TEST(CodecRoundTrip, EveryStreamMessageType) {
  std::mt19937 rng(7);
  for (int i = 0; i < 200; ++i) {
    StreamMessage m;
    switch (i % 5) {
      case 0: {
        PushPull p;
        p.join = rng() % 2 == 0;
        const std::size_t n = rng() % 20;
        for (std::size_t k = 0; k < n; ++k) {
          PushNodeState s;
          s.name = random_string(rng, 30);
          s.addr = random_bytes(rng, 16);
          s.port = random_u16(rng);
          s.meta = random_bytes(rng, 512);
          s.incarnation = random_u32(rng);
          s.state = static_cast<MemberState>(rng() % 4);
          s.vsn = random_bytes(rng, 6);
          p.nodes.push_back(std::move(s));
        }
        p.user_state = random_bytes(rng, 3000);
        m = std::move(p);
        break;
      }
      case 1:
        m = Ping{
            random_u32(rng), random_string(rng, 20), random_bytes(rng, 4), random_u16(rng), {}};
        break;
      case 2: m = Ack{random_u32(rng), random_bytes(rng, 40)}; break;
      case 3: m = UserMsg{random_bytes(rng, 70000)}; break;
      default: m = ErrResp{random_string(rng, 50)}; break;
    }
    for (bool compress : {false, true}) {
      Bytes b = encode_stream(m, compress);
      const std::size_t len = b.size();
      b.push_back(0x42);  // the start of whatever follows on the stream
      auto r = decode_stream(b);
      ASSERT_TRUE(r.ok()) << why(r);
      EXPECT_TRUE(r->message == m);
      EXPECT_EQ(r->consumed, len);
    }
  }
}

// --- packets --------------------------------------------------------------------

TEST(CodecPacket, PlainMessage) {
  auto r = decode_packet(ping_min_vec());
  ASSERT_TRUE(r.ok()) << why(r);
  ASSERT_EQ(r->messages.size(), 1u);
  EXPECT_EQ(std::get<Ping>(r->messages[0]), (Ping{1, "a", {}, 0, {}}));
}

TEST(CodecPacket, CrcWrapper) {
  const Bytes good = wrap_crc(ping_min_vec());
  ASSERT_EQ(good.size(), 5 + ping_min_vec().size());
  auto r = decode_packet(good);
  ASSERT_TRUE(r.ok()) << why(r);
  EXPECT_EQ(r->messages.size(), 1u);

  Bytes bad = good;
  bad[3] ^= 1;
  EXPECT_EQ(decode_packet(bad).error().code, DecodeError::BadCrc);
  bad = good;
  bad.back() ^= 1;
  EXPECT_EQ(decode_packet(bad).error().code, DecodeError::BadCrc);
  EXPECT_EQ(decode_packet(bytes(0x0c, 0, 0)).error().code, DecodeError::Truncated);
  // CRC of nothing is 0: an empty payload passes the check but is no message.
  EXPECT_EQ(decode_packet(bytes(0x0c, 0, 0, 0, 0)).error().code, DecodeError::Truncated);
  // Only the outermost layer may carry a CRC.
  EXPECT_EQ(decode_packet(wrap_crc(wrap_crc(nack_vec()))).error().code, DecodeError::UnknownType);
}

TEST(CodecPacket, CompoundOfEveryKind) {
  const Bytes parts[] = {ping_min_vec(), user_vec(), nack_vec(), compressed_ping_vec()};
  auto r = decode_packet(make_compound(parts));
  ASSERT_TRUE(r.ok()) << why(r);
  ASSERT_EQ(r->messages.size(), 4u);
  EXPECT_TRUE(std::holds_alternative<Ping>(r->messages[0]));
  EXPECT_EQ(std::get<UserMsg>(r->messages[1]).payload, to_bytes("serf-bytes"));
  EXPECT_EQ(std::get<Nack>(r->messages[2]).seq_no, 42u);
  EXPECT_EQ(std::get<Ping>(r->messages[3]).node, "a");
}

TEST(CodecPacket, CompoundTruncatedTailIsCounted) {
  const Bytes parts[] = {nack_vec(), err_vec(), ping_min_vec()};
  Bytes b = make_compound(parts);
  // Cut into the second part: the first survives, two are counted.
  b.resize(2 + 6 + nack_vec().size() + 3);
  auto r = decode_packet(b);
  ASSERT_TRUE(r.ok()) << why(r);
  ASSERT_EQ(r->messages.size(), 1u);
  EXPECT_EQ(std::get<Nack>(r->messages[0]).seq_no, 42u);
  EXPECT_EQ(r->truncated_parts, 2u);
  // The length table itself cut off: nothing is usable.
  EXPECT_EQ(decode_packet(bytes(0x07, 0x03, 0x00, 0x09, 0x00)).error().code,
            DecodeError::Truncated);
  EXPECT_EQ(decode_packet(bytes(0x07)).error().code, DecodeError::Truncated);
  // n = 0 is an empty but valid compound.
  auto empty = decode_packet(bytes(0x07, 0x00));
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->messages.empty());
}

TEST(CodecPacket, CompoundBadPartsDoNotSpoilTheOthers) {
  const Bytes parts[] = {nack_vec(),
                         bytes(0x0b, 0x81, 0xa5, "SeqNo", 0xff),
                         bytes(0x06, 0x80),
                         Bytes{},
                         bytes(0x09, 0x82, 0xa4, "Algo", 0x01, 0xa3, "Buf", 0xa0),
                         err_vec()};
  auto r = decode_packet(make_compound(parts));
  ASSERT_TRUE(r.ok()) << why(r);
  ASSERT_EQ(r->messages.size(), 2u);
  EXPECT_TRUE(std::holds_alternative<Nack>(r->messages[0]));
  EXPECT_TRUE(std::holds_alternative<ErrResp>(r->messages[1]));
  ASSERT_EQ(r->part_errors.size(), 4u);
  EXPECT_EQ(r->part_errors[0].code, DecodeError::Malformed);
  EXPECT_EQ(r->part_errors[1].code, DecodeError::UnknownType);
  EXPECT_EQ(r->part_errors[2].code, DecodeError::Truncated);
  EXPECT_EQ(r->part_errors[3].code, DecodeError::BadCompression);
}

TEST(CodecPacket, NestedWrappersWithinTheDepthLimit) {
  // crc(compress(compound(nack, compound(err)))) is 4 wrappers deep.
  const Bytes inner_parts[] = {err_vec()};
  const Bytes parts[] = {nack_vec(), make_compound(inner_parts)};
  const Bytes packet = wrap_crc(wrap_compress(make_compound(parts)));
  auto r = decode_packet(packet);
  ASSERT_TRUE(r.ok()) << why(r);
  ASSERT_EQ(r->messages.size(), 2u);
  EXPECT_TRUE(std::holds_alternative<ErrResp>(r->messages[1]));

  DecodeLimits shallow;
  shallow.max_depth = 3;
  auto limited = decode_packet(packet, shallow);
  ASSERT_TRUE(limited.ok()) << why(limited);
  ASSERT_EQ(limited->messages.size(), 1u);
  ASSERT_EQ(limited->part_errors.size(), 1u);
  EXPECT_EQ(limited->part_errors[0].code, DecodeError::TooDeep);
}

TEST(CodecPacket, CompressionBombsStopAtTheLimit) {
  // A 50 KB user message squeezes into a small packet.
  const Bytes big = bytes(0x08, Bytes(50000, 0));
  const Bytes packet = wrap_compress(big);
  ASSERT_LT(packet.size(), kUdpPacketMax);
  EXPECT_TRUE(decode_packet(packet).ok());
  DecodeLimits limits;
  limits.max_decompressed = 10000;
  EXPECT_EQ(decode_packet(packet, limits).error().code, DecodeError::TooLarge);
  limits.max_decompressed = big.size();
  EXPECT_TRUE(decode_packet(packet, limits).ok());
  // Inside a packet the inflated content may not exceed a packet's size
  // either, whatever max_decompressed (sized for streams) allows.
  const Bytes bomb = wrap_compress(bytes(0x08, Bytes(kUdpReceiveMax, 0)));
  ASSERT_LT(bomb.size(), kUdpPacketMax);
  EXPECT_EQ(decode_packet(bomb).error().code, DecodeError::TooLarge);

  // Compress nested in compress, past the depth limit.
  Bytes nested = nack_vec();
  for (int i = 0; i < 10; ++i) nested = wrap_compress(nested);
  EXPECT_EQ(decode_packet(nested).error().code, DecodeError::TooDeep);
}

TEST(CodecPacket, CompressErrors) {
  EXPECT_EQ(
      decode_packet(bytes(0x09, 0x82, 0xa4, "Algo", 0x01, 0xa3, "Buf", 0xa3, 0x00, 0x03, 0x02))
          .error()
          .code,
      DecodeError::BadCompression);
  EXPECT_EQ(decode_packet(bytes(0x09, 0x82, 0xa4, "Algo", 0xcd, 0x01, 0x00, 0xa3, "Buf", 0xa0))
                .error()
                .code,
            DecodeError::Malformed);
  EXPECT_EQ(decode_packet(bytes(0x09, 0x81, 0xa3, "Buf", 0xa2, 0xff, 0xff)).error().code,
            DecodeError::BadCompression);
  // Decompresses to nothing: no message inside.
  EXPECT_EQ(decode_packet(bytes(0x09, 0x81, 0xa3, "Buf", 0xa3, 0x00, 0x03, 0x02)).error().code,
            DecodeError::Truncated);
  EXPECT_EQ(decode_packet(bytes(0x09, 0x91, 0x00)).error().code, DecodeError::Malformed);
}

TEST(CodecPacket, LimitsAndUnknownTypes) {
  EXPECT_EQ(decode_packet(Bytes{}).error().code, DecodeError::Truncated);
  DecodeLimits limits;
  limits.max_packet = 10;
  EXPECT_EQ(decode_packet(ping_min_vec(), limits).error().code, DecodeError::TooLarge);
  for (int t : {6, 10, 14, 200, 244}) {
    EXPECT_EQ(decode_packet(bytes(t, 0x80)).error().code, DecodeError::UnknownType) << t;
  }
}

// --- streams --------------------------------------------------------------------

TEST(CodecStream, PushPullGolden) {
  auto r = decode_stream(push_pull_vec());
  ASSERT_TRUE(r.ok()) << why(r);
  EXPECT_EQ(r->consumed, push_pull_vec().size());
  EXPECT_TRUE(std::get<PushPull>(r->message) == push_pull_value());
}

TEST(CodecStream, OtherStreamMessages) {
  auto user = decode_stream(user_stream_vec());
  ASSERT_TRUE(user.ok()) << why(user);
  EXPECT_EQ(std::get<UserMsg>(user->message).payload, to_bytes("hi"));
  EXPECT_EQ(user->consumed, user_stream_vec().size());

  auto ping = decode_stream(ping_full_vec());
  ASSERT_TRUE(ping.ok());
  EXPECT_EQ(std::get<Ping>(ping->message).node, "node-1");

  auto ack = decode_stream(ack_payload_vec());
  ASSERT_TRUE(ack.ok());
  EXPECT_EQ(std::get<Ack>(ack->message).payload, (Bytes{1, 2, 3}));

  auto err = decode_stream(err_vec());
  ASSERT_TRUE(err.ok());
  EXPECT_EQ(std::get<ErrResp>(err->message).error, "boom");

  auto compressed = decode_stream(compressed_ping_vec());
  ASSERT_TRUE(compressed.ok()) << why(compressed);
  EXPECT_EQ(std::get<Ping>(compressed->message).node, "a");
  EXPECT_EQ(compressed->consumed, compressed_ping_vec().size());
}

TEST(CodecStream, EveryPrefixIsIncomplete) {
  const Bytes streams[] = {push_pull_vec(),
                           user_stream_vec(),
                           ping_full_vec(),
                           ack_nil_vec(),
                           err_vec(),
                           compressed_ping_vec(),
                           encode_stream(push_pull_value(), true)};
  for (const auto& s : streams) {
    for (std::size_t len = 0; len < s.size(); ++len) {
      auto r = decode_stream(ByteView(s).first(len));
      ASSERT_FALSE(r.ok()) << hex(s) << " prefix " << len;
      ASSERT_EQ(r.error().code, DecodeError::Incomplete)
          << hex(s) << " prefix " << len << " " << why(r);
    }
    EXPECT_TRUE(decode_stream(s).ok());
  }
}

TEST(CodecStream, LargePushPullArrivingInPieces) {
  PushPull p;
  for (int i = 0; i < 2000; ++i) {
    PushNodeState s = push_state_value();
    s.name = "node-" + std::to_string(i);
    p.nodes.push_back(std::move(s));
  }
  p.user_state.assign(100000, 0x5a);
  const Bytes b = encode_stream(p, false);
  for (std::size_t len = 0; len < b.size(); len += 4096) {
    auto r = decode_stream(ByteView(b).first(len));
    ASSERT_EQ(r.error().code, DecodeError::Incomplete) << len;
  }
  auto r = decode_stream(b);
  ASSERT_TRUE(r.ok()) << why(r);
  EXPECT_TRUE(std::get<PushPull>(r->message) == p);
  // The whole exchange must fit the stream limit.
  DecodeLimits limits;
  limits.max_stream = b.size() - 1;
  EXPECT_EQ(decode_stream(b, limits).error().code, DecodeError::TooLarge);
  EXPECT_EQ(decode_stream(ByteView(b).first(b.size() - 10), limits).error().code,
            DecodeError::TooLarge);
}

TEST(CodecStream, HeaderCountsAreChecked) {
  const auto header = [](Bytes nodes, Bytes user_len) {
    return bytes(0x06, 0x83, 0xa4, "Join", 0xc2, 0xa5, "Nodes", nodes, 0xac, "UserStateLen",
                 user_len);
  };
  EXPECT_EQ(decode_stream(header({0xff}, {0x00})).error().code, DecodeError::Malformed);
  EXPECT_EQ(decode_stream(header({0x00}, {0xd0, 0x80})).error().code, DecodeError::Malformed);
  EXPECT_EQ(decode_stream(header({0xce, 0x7f, 0xff, 0xff, 0xff}, {0x00})).error().code,
            DecodeError::TooLarge);
  EXPECT_EQ(decode_stream(header({0x00}, {0xce, 0x7f, 0xff, 0xff, 0xff})).error().code,
            DecodeError::TooLarge);
  EXPECT_EQ(decode_stream(header({0xcf, 0xff, 0, 0, 0, 0, 0, 0, 0}, {0x00})).error().code,
            DecodeError::Malformed);
  DecodeLimits limits;
  limits.max_push_nodes = 2;
  EXPECT_EQ(decode_stream(header({0x03}, {0x00}), limits).error().code, DecodeError::TooLarge);
  // A count the buffer cannot hold yet is just incomplete.
  EXPECT_EQ(decode_stream(header({0x02}, {0x00}), limits).error().code, DecodeError::Incomplete);
  EXPECT_EQ(decode_stream(header({0x00}, {0x05})).error().code, DecodeError::Incomplete);
  // Negative user message length.
  EXPECT_EQ(decode_stream(bytes(0x08, 0x81, 0xaa, "UserMsgLen", 0xff)).error().code,
            DecodeError::Malformed);
  EXPECT_EQ(decode_stream(bytes(0x08, 0x81, 0xaa, "UserMsgLen", 0xce, 0x7f, 0xff, 0xff, 0xff))
                .error()
                .code,
            DecodeError::TooLarge);
}

TEST(CodecStream, NodeStateMustBeKnown) {
  const auto with_state = [](Bytes state) {
    return bytes(0x06, 0x83, 0xa4, "Join", 0xc2, 0xa5, "Nodes", 0x01, 0xac, "UserStateLen", 0x00,
                 0x81, 0xa5, "State", state);
  };
  EXPECT_EQ(std::get<PushPull>(decode_stream(with_state({0x02}))->message).nodes[0].state,
            MemberState::Dead);
  EXPECT_EQ(decode_stream(with_state({0x04})).error().code, DecodeError::Malformed);
  EXPECT_EQ(decode_stream(with_state({0xff})).error().code, DecodeError::Malformed);
  EXPECT_EQ(decode_stream(with_state(bytes(0xa1, "0"))).error().code, DecodeError::Malformed);
}

TEST(CodecStream, LargeClaimsOverTheLimitAreTooLargeNotIncomplete) {
  DecodeLimits limits;
  limits.max_stream = 1000;
  // An error string claiming 1 MiB.
  EXPECT_EQ(decode_stream(bytes(0x0d, 0x81, 0xa5, "Error", 0xdb, 0x00, 0x10, 0x00, 0x00), limits)
                .error()
                .code,
            DecodeError::TooLarge);
  // A buffer already past the limit that is still incomplete.
  Bytes b = bytes(0x0d, 0x81, 0xa5, "Zzzzz", 0xdd, 0x00, 0x10, 0x00, 0x00);
  b.resize(1200, 0x00);
  EXPECT_EQ(decode_stream(b, limits).error().code, DecodeError::TooLarge);
}

TEST(CodecStream, CompressedContentMustBeComplete) {
  // Outer compress complete, inner push/pull cut short: final error.
  const Bytes full = push_pull_vec();
  const Bytes cut(full.begin(), full.end() - 1);
  EXPECT_EQ(decode_stream(wrap_compress(cut)).error().code, DecodeError::Truncated);
  EXPECT_EQ(decode_stream(wrap_compress(Bytes{})).error().code, DecodeError::Truncated);
  // Only one compress layer, and only stream types inside it.
  EXPECT_EQ(decode_stream(wrap_compress(wrap_compress(ping_min_vec()))).error().code,
            DecodeError::UnknownType);
  EXPECT_EQ(decode_stream(wrap_compress(nack_vec())).error().code, DecodeError::UnknownType);
  EXPECT_EQ(decode_stream(bytes(0x09, 0x82, 0xa4, "Algo", 0x01, 0xa3, "Buf", 0xa0)).error().code,
            DecodeError::BadCompression);
  DecodeLimits limits;
  limits.max_decompressed = 10;
  EXPECT_EQ(decode_stream(encode_stream(push_pull_value(), true), limits).error().code,
            DecodeError::TooLarge);
}

TEST(CodecStream, TypesNotValidOnAStream) {
  for (int t : {1, 3, 4, 5, 7, 10, 11, 12, 14, 244}) {
    EXPECT_EQ(decode_stream(bytes(t, 0x80)).error().code, DecodeError::UnknownType) << t;
  }
  EXPECT_EQ(decode_stream(Bytes{}).error().code, DecodeError::Incomplete);
}

// --- robustness -------------------------------------------------------------------

TEST(CodecRobustness, EveryTruncationOfEveryVectorFails) {
  std::vector<Bytes> vectors = message_vectors();
  vectors.push_back(compressed_ping_vec());
  vectors.push_back(wrap_crc(alive_vec()));
  for (const auto& v : vectors) {
    for (std::size_t len = 0; len < v.size(); ++len) {
      const ByteView prefix = ByteView(v).first(len);
      EXPECT_FALSE(decode_packet(prefix).ok()) << hex(v) << " prefix " << len;
      EXPECT_FALSE(decode_message(prefix).ok()) << hex(v) << " prefix " << len;
    }
  }
  // A compound's truncations never fail silently: each is an error or a
  // counted truncated part.
  const Bytes parts[] = {nack_vec(), alive_vec()};
  const Bytes compound = make_compound(parts);
  for (std::size_t len = 0; len < compound.size(); ++len) {
    auto r = decode_packet(ByteView(compound).first(len));
    if (r.ok()) {
      EXPECT_GT(r->truncated_parts, 0u) << "prefix " << len;
    }
  }
  // A user message is "the rest of the packet", so its prefixes are
  // shorter user messages, not errors.
  const Bytes user = user_vec();
  for (std::size_t len = 1; len < user.size(); ++len) {
    auto r = decode_packet(ByteView(user).first(len));
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(std::get<UserMsg>(r->messages[0]).payload.size(), len - 1);
  }
}

void mutate(std::mt19937& rng, Bytes& b) {
  const int edits = 1 + static_cast<int>(rng() % 4);
  for (int e = 0; e < edits; ++e) {
    switch (rng() % 5) {
      case 0:
        if (!b.empty()) b[rng() % b.size()] ^= static_cast<std::uint8_t>(1u << (rng() % 8));
        break;
      case 1:
        if (!b.empty()) b[rng() % b.size()] = static_cast<std::uint8_t>(rng());
        break;
      case 2:
        b.insert(b.begin() + static_cast<std::ptrdiff_t>(rng() % (b.size() + 1)),
                 static_cast<std::uint8_t>(rng()));
        break;
      case 3:
        if (!b.empty()) b.erase(b.begin() + static_cast<std::ptrdiff_t>(rng() % b.size()));
        break;
      default: {
        // Interesting msgpack tags: huge lengths, containers, reserved.
        static const std::uint8_t tags[] = {0xc1, 0xdb, 0xdd, 0xdf, 0xc6, 0xc9,
                                            0xcf, 0xd3, 0x9f, 0x8f, 0xff};
        if (!b.empty()) b[rng() % b.size()] = tags[rng() % std::size(tags)];
        break;
      }
    }
  }
}

TEST(CodecRobustness, RandomMutationsNeverCrash) {
  std::vector<Bytes> seeds = message_vectors();
  seeds.push_back(user_vec());
  seeds.push_back(compressed_ping_vec());
  seeds.push_back(wrap_crc(ping_full_vec()));
  const Bytes parts[] = {alive_vec(), suspect_vec(), indirect_full_vec()};
  seeds.push_back(make_compound(parts));
  seeds.push_back(wrap_crc(wrap_compress(make_compound(parts))));
  seeds.push_back(push_pull_vec());
  seeds.push_back(user_stream_vec());
  seeds.push_back(encode_stream(push_pull_value(), true));

  std::mt19937 rng(424242);
  std::size_t ok = 0;
  for (int iter = 0; iter < 6000; ++iter) {
    Bytes b = seeds[rng() % seeds.size()];
    mutate(rng, b);
    auto p = decode_packet(b);
    auto m = decode_message(b);
    auto s = decode_stream(b);
    ok += p.ok() + m.ok() + s.ok();
    if (s.ok()) {
      EXPECT_LE(s->consumed, b.size());
    }
  }
  // Sanity: mutations are not all fatal, so the decoders saw real work.
  EXPECT_GT(ok, 100u);
}

TEST(CodecRobustness, RandomGarbageNeverCrashes) {
  std::mt19937 rng(31337);
  for (int iter = 0; iter < 3000; ++iter) {
    Bytes b(rng() % 200);
    for (auto& x : b) x = static_cast<std::uint8_t>(rng());
    if (!b.empty()) b[0] = static_cast<std::uint8_t>(rng() % 14);
    (void)decode_packet(b);
    (void)decode_message(b);
    (void)decode_stream(b);
  }
}

// --- vocabulary -----------------------------------------------------------------

TEST(CodecTypes, AddressToString) {
  EXPECT_EQ(Address::v4(1, 2, 3, 4, 7946).to_string(), "1.2.3.4:7946");
  std::array<std::uint8_t, 16> v6{};
  v6[15] = 1;
  EXPECT_EQ(Address::from_bytes(v6, 7946)->to_string(), "[::1]:7946");
  const std::array<std::uint8_t, 16> doc{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0,
                                         0,    1,    0,    0,    0, 0, 0, 1};
  EXPECT_EQ(Address::from_bytes(doc, 80)->to_string(), "[2001:db8::1:0:0:1]:80");
  const std::array<std::uint8_t, 16> full{0xfe, 0x80, 0, 1, 0, 2, 0,    3,
                                          0,    4,    0, 5, 0, 6, 0xab, 0xcd};
  EXPECT_EQ(Address::from_bytes(full, 1)->to_string(), "[fe80:1:2:3:4:5:6:abcd]:1");
  std::array<std::uint8_t, 16> zero{};
  EXPECT_EQ(Address::from_bytes(zero, 2)->to_string(), "[::]:2");
  // IPv4-mapped addresses print as IPv4, as Go's net.IP does.
  const std::array<std::uint8_t, 16> mapped{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 7};
  EXPECT_EQ(Address::from_bytes(mapped, 7946)->to_string(), "10.0.0.7:7946");
  EXPECT_EQ(Address{}.to_string(), "<no-ip>:0");
}

TEST(CodecTypes, EnumNames) {
  EXPECT_EQ(to_string(MemberState::Alive), "alive");
  EXPECT_EQ(to_string(MemberState::Suspect), "suspect");
  EXPECT_EQ(to_string(MemberState::Dead), "dead");
  EXPECT_EQ(to_string(MemberState::Left), "left");
  for (int e = 0; e < static_cast<int>(DecodeError::Count_); ++e) {
    EXPECT_NE(to_string(static_cast<DecodeError>(e)), "unknown") << e;
  }
  EXPECT_EQ(to_string(DecodeError::BadCrc), "bad_crc");
}

}  // namespace
}  // namespace mesh::swim
