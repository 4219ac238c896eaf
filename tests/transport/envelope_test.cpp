// The envelope codec: round trips, the pinned wire bytes, every way a frame
// can be refused, and decode fed truncated, mutated and random bytes.
//
// Frames that our encoder cannot produce are built with msgpack-c's packer,
// an encoder written independently of ours.

#include "mesh/transport/envelope.hpp"
#include "test_seeds.hpp"

#include <gtest/gtest.h>
#include <msgpack.hpp>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <limits>
#include <map>
#include <new>
#include <random>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

// ---------------------------------------------------------------------------
// Counting global allocation functions, for the zero-allocation check. They
// count and forward to malloc/free, so ASan still sees every block (through
// its malloc interceptor); they replace operator new for the whole test
// binary, which is harmless.
namespace {
std::atomic<std::size_t> g_allocations{0};

void* counted_malloc(std::size_t n) noexcept {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  return std::malloc(n == 0 ? 1 : n);
}

void* counted_aligned(std::size_t n, std::align_val_t al) noexcept {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  const auto a = static_cast<std::size_t>(al);
  const std::size_t rounded = (n == 0 ? a : (n + a - 1) / a * a);  // aligned_alloc wants a multiple
  return std::aligned_alloc(a, rounded);
}

// Out of line: inlined into operator delete, a direct free() of memory
// that came from operator new draws -Wmismatched-new-delete.
[[gnu::noinline]] void counted_free(void* p) noexcept { std::free(p); }

void* or_throw(void* p) {
  if (p == nullptr) throw std::bad_alloc();
  return p;
}
}  // namespace

void* operator new(std::size_t n) { return or_throw(counted_malloc(n)); }
void* operator new[](std::size_t n) { return or_throw(counted_malloc(n)); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept { return counted_malloc(n); }
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept { return counted_malloc(n); }
void* operator new(std::size_t n, std::align_val_t al) { return or_throw(counted_aligned(n, al)); }
void* operator new[](std::size_t n, std::align_val_t al) { return or_throw(counted_aligned(n, al)); }
void* operator new(std::size_t n, std::align_val_t al, const std::nothrow_t&) noexcept {
  return counted_aligned(n, al);
}
void* operator new[](std::size_t n, std::align_val_t al, const std::nothrow_t&) noexcept {
  return counted_aligned(n, al);
}
void operator delete(void* p) noexcept { counted_free(p); }
void operator delete[](void* p) noexcept { counted_free(p); }
void operator delete(void* p, std::size_t) noexcept { counted_free(p); }
void operator delete[](void* p, std::size_t) noexcept { counted_free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { counted_free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { counted_free(p); }
void operator delete(void* p, std::align_val_t) noexcept { counted_free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { counted_free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { counted_free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { counted_free(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { counted_free(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { counted_free(p); }

namespace mesh::transport {

void PrintTo(const MessageId& id, std::ostream* os) { *os << id.to_string(); }

namespace {

using Bytes = std::vector<std::uint8_t>;

Bytes bytes_of(std::string_view s) { return Bytes(s.begin(), s.end()); }

std::string hex(std::span<const std::uint8_t> b) {
  std::string s;
  char buf[3];
  for (std::uint8_t c : b) {
    std::snprintf(buf, sizeof buf, "%02x", c);
    s += buf;
  }
  return s;
}

Bytes msgpack_map_bytes() {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  pk.pack_map(2);
  pk.pack(std::string("trace"));
  pk.pack(std::string("abc123"));
  pk.pack(std::string("hops"));
  pk.pack(3);
  return Bytes(buf.data(), buf.data() + buf.size());
}

Envelope sample() {
  Envelope e;
  e.id = MessageId{0x1122334455667788ull, 0x99aabbccddeeff00ull};
  e.type = MessageType::Response;
  e.priority = Priority::Urgent;
  e.correlation = MessageId{0x0102030405060708ull, 0x090a0b0c0d0e0f10ull};
  e.sender_agent = "planner";
  e.sender_node = "node-1";
  e.target = "executor";
  e.created_ms = 1'718'000'000'123;
  e.deadline_ms = 1'718'000'005'123;
  e.error = ErrorCode::None;
  e.context = msgpack_map_bytes();
  e.payload = bytes_of("\x92\x01\xa3" "abc");
  return e;
}

void expect_same(const EnvelopeView& v, const Envelope& e) {
  EXPECT_EQ(v.id, e.id);
  EXPECT_EQ(v.type, e.type);
  EXPECT_EQ(v.priority, e.priority);
  EXPECT_EQ(v.correlation, e.correlation);
  EXPECT_EQ(v.sender_agent, e.sender_agent);
  EXPECT_EQ(v.sender_node, e.sender_node);
  EXPECT_EQ(v.target, e.target);
  EXPECT_EQ(v.created_ms, e.created_ms);
  EXPECT_EQ(v.deadline_ms, e.deadline_ms);
  EXPECT_EQ(v.error, e.error);
  EXPECT_EQ(Bytes(v.context.begin(), v.context.end()), e.context);
  EXPECT_EQ(Bytes(v.payload.begin(), v.payload.end()), e.payload);
}

bool same_view(const EnvelopeView& a, const EnvelopeView& b) {
  return a.id == b.id && a.type == b.type && a.priority == b.priority &&
         a.correlation == b.correlation && a.sender_agent == b.sender_agent &&
         a.sender_node == b.sender_node && a.target == b.target && a.created_ms == b.created_ms &&
         a.deadline_ms == b.deadline_ms && a.error == b.error &&
         std::ranges::equal(a.context, b.context) && std::ranges::equal(a.payload, b.payload);
}

void expect_round_trip(const Envelope& e) {
  const Bytes frame = encode(e);
  const DecodeResult r = decode(frame);
  ASSERT_TRUE(r.ok()) << to_string(r.error);
  expect_same(r.view, e);
  Envelope owned = r.view.to_owned();
  EXPECT_EQ(encode(owned), frame);
}

// ---------------------------------------------------------------------------
// Hand-built frames: the thirteen default fields, any of which can be
// replaced by other msgpack, more or fewer elements, and bytes after the
// array.

using FieldWriter = std::function<void(msgpack::packer<msgpack::sbuffer>&, msgpack::sbuffer&)>;

FieldWriter raw(Bytes b) {
  return [b](msgpack::packer<msgpack::sbuffer>&, msgpack::sbuffer& buf) {
    buf.write(reinterpret_cast<const char*>(b.data()), b.size());
  };
}
FieldWriter uint_field(std::uint64_t v) {
  return [v](msgpack::packer<msgpack::sbuffer>& pk, msgpack::sbuffer&) { pk.pack_uint64(v); };
}
FieldWriter int_field(std::int64_t v) {
  return [v](msgpack::packer<msgpack::sbuffer>& pk, msgpack::sbuffer&) { pk.pack_int64(v); };
}
FieldWriter str_field(std::string s) {
  return [s](msgpack::packer<msgpack::sbuffer>& pk, msgpack::sbuffer&) { pk.pack(s); };
}
FieldWriter bin_field(Bytes b) {
  return [b](msgpack::packer<msgpack::sbuffer>& pk, msgpack::sbuffer&) {
    pk.pack_bin(static_cast<std::uint32_t>(b.size()));
    pk.pack_bin_body(reinterpret_cast<const char*>(b.data()), static_cast<std::uint32_t>(b.size()));
  };
}

const Bytes kHandId = {0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8,
                       0xb1, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8};
const MessageId kHandIdValue{0xa1a2a3a4a5a6a7a8ull, 0xb1b2b3b4b5b6b7b8ull};

FieldWriter default_field(std::size_t index) {
  switch (index) {
    case 0: return uint_field(1);
    case 1: return uint_field(static_cast<std::uint64_t>(MessageType::Request));
    case 2: return uint_field(0);
    case 3: return bin_field(kHandId);
    case 4: return raw({0xc0});
    case 5: return str_field("agent");
    case 6: return str_field("node");
    case 7: return str_field("");
    case 8: return int_field(1'700'000'000'000);
    case 9: return int_field(0);
    case 10: return uint_field(0);
    case 11: return bin_field({});
    case 12: return bin_field(bytes_of("hi"));
    default: return nullptr;
  }
}

Bytes hand_frame(const std::map<std::size_t, FieldWriter>& overrides = {},
                 std::uint32_t count = 13, Bytes trailing = {}) {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  pk.pack_array(count);
  // Past the thirteen defaults only the overrides are written, so that a
  // huge declared count does not mean a huge frame.
  const std::size_t last = overrides.empty() ? 0 : overrides.rbegin()->first + 1;
  const std::size_t written = std::min<std::size_t>(count, std::max<std::size_t>(13, last));
  for (std::size_t i = 0; i < written; ++i) {
    const auto it = overrides.find(i);
    FieldWriter w = it != overrides.end() ? it->second : default_field(i);
    if (w) w(pk, buf);  // an element with no writer is left missing (truncated frame)
  }
  Bytes out(buf.data(), buf.data() + buf.size());
  out.insert(out.end(), trailing.begin(), trailing.end());
  return out;
}

Bytes nested_arrays(std::size_t depth) {
  Bytes b(depth, 0x91);  // [[[...]]]
  b.push_back(0x01);
  return b;
}

Bytes nested_maps(std::size_t depth) {
  Bytes b;
  for (std::size_t i = 0; i < depth; ++i) {
    b.push_back(0x81);
    b.push_back(0xa1);
    b.push_back('k');
  }
  b.push_back(0x01);
  return b;
}

// ---------------------------------------------------------------------------

TEST(MessageId, ToStringIsLowercaseHexHiThenLo) {
  const MessageId id{0x0102030405060708ull, 0x090a0b0c0d0e0fabull};
  EXPECT_EQ(id.to_string(), "0102030405060708090a0b0c0d0e0fab");
  EXPECT_EQ(MessageId{}.to_string(), std::string(32, '0'));
}

TEST(MessageId, ParseRoundTrips) {
  for (const MessageId id : {MessageId{}, MessageId{1, 2}, MessageId{~0ull, ~0ull},
                             MessageId{0xdeadbeefcafef00dull, 0x0123456789abcdefull}}) {
    const auto parsed = MessageId::parse(id.to_string());
    ASSERT_TRUE(parsed.has_value()) << id.to_string();
    EXPECT_EQ(*parsed, id);
  }
  EXPECT_EQ(MessageId::parse("DEADBEEFCAFEF00D0123456789ABCDEF"),
            (MessageId{0xdeadbeefcafef00dull, 0x0123456789abcdefull}));
}

TEST(MessageId, ParseRejectsBadHex) {
  for (const std::string_view bad : std::vector<std::string_view>{"", "0", "0102030405060708090a0b0c0d0e0f1", "0102030405060708090a0b0c0d0e0f1011",
        "0102030405060708090a0b0c0d0e0f1g", "0x02030405060708090a0b0c0d0e0f10",
        " 102030405060708090a0b0c0d0e0f10", "01020304-0506-0708-090a-0b0c0d0e", "+102030405060708090a0b0c0d0e0f10",
        std::string_view("0102030405060708\0" "90a0b0c0d0e0f10", 32)}) {
    EXPECT_FALSE(MessageId::parse(bad).has_value()) << "'" << bad << "'";
  }
}

TEST(EnvelopeNames, EveryValueHasADistinctName) {
  std::unordered_set<std::string_view> names;
  for (int i = 0; i <= 4; ++i) names.insert(to_string(static_cast<MessageType>(i)));
  EXPECT_EQ(names.size(), 5u);
  names.clear();
  for (int i = 0; i <= 17; ++i) names.insert(to_string(static_cast<ErrorCode>(i)));
  EXPECT_EQ(names.size(), 18u);
  EXPECT_EQ(to_string(ErrorCode::TargetUnknown), "target_unknown");
  EXPECT_EQ(to_string(ErrorCode::TurnLimit), "turn_limit");
  names.clear();
  for (int i = 0; i <= 3; ++i) names.insert(to_string(static_cast<Priority>(i)));
  EXPECT_EQ(names.size(), 4u);
  EXPECT_EQ(to_string(Priority::Urgent), "urgent");
  EXPECT_EQ(to_string(DecodeError::BadVersion), "bad_version");
  EXPECT_NE(to_string(MessageType::Request), to_string(static_cast<MessageType>(77)));
}

// ---------------------------------------------------------------------------
// Round trips

TEST(EnvelopeCodec, RoundTripsEveryField) { expect_round_trip(sample()); }

TEST(EnvelopeCodec, AbsentAndPresentCorrelation) {
  Envelope e = sample();
  e.correlation.reset();
  expect_round_trip(e);
  EXPECT_FALSE(decode(encode(e)).view.correlation.has_value());
  e.correlation = MessageId{};  // present, even though all zero
  expect_round_trip(e);
  EXPECT_TRUE(decode(encode(e)).view.correlation.has_value());
}

TEST(EnvelopeCodec, EmptyAndNonEmptyContextAndPayload) {
  Envelope e = sample();
  e.context.clear();
  e.payload.clear();
  expect_round_trip(e);
  e.context = msgpack_map_bytes();
  expect_round_trip(e);
  e.context.clear();
  e.payload = bytes_of("x");
  expect_round_trip(e);
  EXPECT_TRUE(Envelope{}.context.empty());
  expect_round_trip(Envelope{});
}

TEST(EnvelopeCodec, EveryTypePriorityAndErrorCode) {
  Envelope e = sample();
  for (int t = 0; t <= 4; ++t) {
    for (int p = 0; p <= 1; ++p) {
      for (int c = 0; c <= 11; ++c) {
        e.type = static_cast<MessageType>(t);
        e.priority = static_cast<Priority>(p);
        e.error = static_cast<ErrorCode>(c);
        expect_round_trip(e);
      }
    }
  }
}

TEST(EnvelopeCodec, IntegerAndLengthBoundaries) {
  Envelope e = sample();
  for (const std::int64_t v :
       {std::numeric_limits<std::int64_t>::min(), std::int64_t{-2147483649LL},
        std::int64_t{-2147483648LL}, std::int64_t{-32769}, std::int64_t{-32768},
        std::int64_t{-129}, std::int64_t{-128}, std::int64_t{-33}, std::int64_t{-32},
        std::int64_t{-1}, std::int64_t{0}, std::int64_t{127}, std::int64_t{128},
        std::int64_t{255}, std::int64_t{256}, std::int64_t{65535}, std::int64_t{65536},
        std::int64_t{4294967295LL}, std::int64_t{4294967296LL},
        std::numeric_limits<std::int64_t>::max()}) {
    e.created_ms = v;
    e.deadline_ms = -v / 2;
    expect_round_trip(e);
  }
  for (const std::size_t n : {0u, 31u, 32u, 255u, 256u, 65535u, 65536u, 70000u}) {
    e.sender_agent.assign(n, 'a');
    e.target.assign(n / 2, 't');
    e.payload.assign(n, 0x5a);
    expect_round_trip(e);
  }
}

// Our encoder writes the bytes msgpack-c's packer writes for the same values.
TEST(EnvelopeCodec, MatchesMsgpackCPacker) {
  Envelope e = sample();
  for (const std::size_t n : {0u, 5u, 31u, 32u, 255u, 256u, 65535u, 65536u}) {
    for (const std::int64_t t : {std::int64_t{-40000}, std::int64_t{-5}, std::int64_t{200},
                                 std::int64_t{1'718'000'000'123}}) {
      e.sender_node.assign(n, 'n');
      e.payload.assign(n, 0x01);
      e.created_ms = t;
      e.correlation = n % 2 == 0 ? std::optional<MessageId>{} : e.id;
      msgpack::sbuffer buf;
      msgpack::packer<msgpack::sbuffer> pk(buf);
      auto pack_id = [&](const MessageId& id) {
        char raw16[16];
        for (int i = 0; i < 8; ++i) {
          raw16[i] = static_cast<char>(id.hi >> (56 - 8 * i));
          raw16[8 + i] = static_cast<char>(id.lo >> (56 - 8 * i));
        }
        pk.pack_bin(16);
        pk.pack_bin_body(raw16, 16);
      };
      auto pack_bytes = [&](const Bytes& b) {
        pk.pack_bin(static_cast<std::uint32_t>(b.size()));
        pk.pack_bin_body(reinterpret_cast<const char*>(b.data()),
                         static_cast<std::uint32_t>(b.size()));
      };
      pk.pack_array(13);
      pk.pack_uint64(1);
      pk.pack_uint64(static_cast<std::uint64_t>(e.type));
      pk.pack_uint64(static_cast<std::uint64_t>(e.priority));
      pack_id(e.id);
      if (e.correlation) {
        pack_id(*e.correlation);
      } else {
        pk.pack_nil();
      }
      pk.pack(e.sender_agent);
      pk.pack(e.sender_node);
      pk.pack(e.target);
      pk.pack_int64(e.created_ms);
      pk.pack_int64(e.deadline_ms);
      pk.pack_uint64(static_cast<std::uint64_t>(e.error));
      pack_bytes(e.context);
      pack_bytes(e.payload);
      EXPECT_EQ(encode(e), Bytes(buf.data(), buf.data() + buf.size())) << "n=" << n << " t=" << t;
    }
  }
}

// msgpack-c reads our frames as the thirteen-element array of the table.
TEST(EnvelopeCodec, MsgpackCReadsTheTable) {
  const Envelope e = sample();
  const Bytes frame = encode(e);
  const msgpack::object_handle oh =
      msgpack::unpack(reinterpret_cast<const char*>(frame.data()), frame.size());
  const msgpack::object& o = oh.get();
  ASSERT_EQ(o.type, msgpack::type::ARRAY);
  ASSERT_EQ(o.via.array.size, 13u);
  const msgpack::object* f = o.via.array.ptr;
  EXPECT_EQ(f[0].as<std::uint64_t>(), kEnvelopeVersion);
  EXPECT_EQ(f[1].as<int>(), static_cast<int>(e.type));
  EXPECT_EQ(f[2].as<int>(), static_cast<int>(e.priority));
  EXPECT_EQ(f[3].type, msgpack::type::BIN);
  EXPECT_EQ(f[3].via.bin.size, 16u);
  EXPECT_EQ(f[4].type, msgpack::type::BIN);
  EXPECT_EQ(f[5].as<std::string>(), e.sender_agent);
  EXPECT_EQ(f[6].as<std::string>(), e.sender_node);
  EXPECT_EQ(f[7].as<std::string>(), e.target);
  EXPECT_EQ(f[8].as<std::int64_t>(), e.created_ms);
  EXPECT_EQ(f[9].as<std::int64_t>(), e.deadline_ms);
  EXPECT_EQ(f[10].as<int>(), 0);
  EXPECT_EQ(f[11].type, msgpack::type::BIN);
  EXPECT_EQ(f[12].type, msgpack::type::BIN);
}

// flags is a fourteenth element, sent only when set: a frame without it is
// byte for byte what it was, one with it decodes back, and a reader that
// knows thirteen fields (msgpack-c here) reads the rest unchanged.
TEST(EnvelopeCodec, FlagsAreAppendedOnlyWhenSet) {
  Envelope e = sample();
  const Bytes plain = encode(e);
  e.flags = kFlagBroadcast;
  const Bytes flagged = encode(e);
  EXPECT_EQ(flagged.size(), plain.size() + 1);
  const DecodeResult r = decode(flagged);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.view.flags, kFlagBroadcast);
  EXPECT_EQ(r.view.to_owned().flags, kFlagBroadcast);
  EXPECT_EQ(decode(plain).view.flags, 0);
  const msgpack::object_handle oh =
      msgpack::unpack(reinterpret_cast<const char*>(flagged.data()), flagged.size());
  ASSERT_EQ(oh.get().via.array.size, 14u);
  EXPECT_EQ(oh.get().via.array.ptr[13].as<int>(), kFlagBroadcast);
  EXPECT_EQ(oh.get().via.array.ptr[5].as<std::string>(), e.sender_agent);
}

// thread is a fifteenth element, after flags (0 when unset); an element 14
// of another type is a later field, skipped, and the frame stays valid.
TEST(EnvelopeCodec, ThreadFollowsFlagsWhenSet) {
  Envelope e = sample();
  e.thread = bytes_of("\x81\xa1t\x01");
  const Bytes framed = encode(e);
  const DecodeResult r = decode(framed);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.view.flags, 0);
  EXPECT_EQ(Bytes(r.view.thread.begin(), r.view.thread.end()), e.thread);
  EXPECT_EQ(r.view.to_owned().thread, e.thread);
  const msgpack::object_handle oh = msgpack::unpack(reinterpret_cast<const char*>(framed.data()), framed.size());
  ASSERT_EQ(oh.get().via.array.size, 15u);
  EXPECT_EQ(oh.get().via.array.ptr[13].as<int>(), 0);
  EXPECT_EQ(oh.get().via.array.ptr[14].type, msgpack::type::BIN);

  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  pk.pack_array(15);
  for (std::uint32_t i = 0; i < 13; ++i) pk.pack(oh.get().via.array.ptr[i]);
  pk.pack(0);
  pk.pack(std::string("a later field"));
  const Bytes other(reinterpret_cast<const std::uint8_t*>(buf.data()),
                    reinterpret_cast<const std::uint8_t*>(buf.data()) + buf.size());
  const DecodeResult later = decode(other);
  ASSERT_TRUE(later.ok());
  EXPECT_TRUE(later.view.thread.empty());
}

TEST(EnvelopeCodec, ViewPointsIntoTheFrame) {
  const Bytes frame = encode(sample());
  const DecodeResult r = decode(frame);
  ASSERT_TRUE(r.ok());
  const auto inside = [&](const void* p) {
    const auto* b = static_cast<const std::uint8_t*>(p);
    return b >= frame.data() && b < frame.data() + frame.size();
  };
  EXPECT_TRUE(inside(r.view.sender_agent.data()));
  EXPECT_TRUE(inside(r.view.target.data()));
  EXPECT_TRUE(inside(r.view.context.data()));
  EXPECT_TRUE(inside(r.view.payload.data()));
}

TEST(EnvelopeCodec, EncodeClearsAndReusesTheVector) {
  Bytes out(100, 0xee);
  encode(sample(), out);
  EXPECT_EQ(out, encode(sample()));
  const auto* data = out.data();
  Envelope small = sample();
  small.payload.clear();
  encode(small, out);
  EXPECT_EQ(out.data(), data) << "a smaller envelope reuses the capacity";
  EXPECT_EQ(out, encode(small));
}

TEST(EnvelopeCodec, OneMebibytePayload) {
  Envelope e = sample();
  e.payload.resize(1u << 20);
  std::mt19937 rng(7);
  for (auto& b : e.payload) b = static_cast<std::uint8_t>(rng());
  expect_round_trip(e);
}

TEST(EnvelopeCodec, MaxFrameSizeBoundary) {
  Envelope e = sample();
  e.payload.assign(1u << 20, 0x33);
  const std::size_t overhead = encode(e).size() - e.payload.size();  // bin32 header from here on
  e.payload.assign(kDefaultMaxFrameBytes - overhead, 0x33);
  Bytes frame = encode(e);
  ASSERT_EQ(frame.size(), kDefaultMaxFrameBytes);
  EXPECT_TRUE(decode(frame).ok());

  e.payload.push_back(0x33);
  frame = encode(e);
  ASSERT_EQ(frame.size(), kDefaultMaxFrameBytes + 1);
  const DecodeResult r = decode(frame);
  EXPECT_EQ(r.error, DecodeError::Oversized);
  // The head is still read, so that an oversized request can be answered.
  EXPECT_EQ(r.salvaged_type, e.type);
  EXPECT_EQ(r.salvaged_id, e.id);

  const Bytes small = encode(sample());
  EXPECT_TRUE(decode(small, small.size()).ok());
  EXPECT_EQ(decode(small, small.size() - 1).error, DecodeError::Oversized);
  EXPECT_EQ(decode(small, 0).error, DecodeError::Oversized);
  EXPECT_EQ(decode(small, 0).salvaged_id, sample().id);
}

// ---------------------------------------------------------------------------
// The wire format, byte for byte.

TEST(EnvelopeWire, SmallEnvelopeBytes) {
  Envelope e;
  e.id = MessageId{0x0102030405060708ull, 0x090a0b0c0d0e0f10ull};
  e.type = MessageType::Request;
  e.priority = Priority::Normal;
  e.sender_agent = "a";
  e.sender_node = "n";
  e.target = "";
  e.created_ms = 1000;
  e.deadline_ms = 0;
  e.payload = {0xc0};
  const std::string expected =
      "9d"                                        // array of 13
      "01"                                        // version 1
      "01"                                        // type Request
      "01"                                        // priority Normal
      "c410" "0102030405060708090a0b0c0d0e0f10"   // id: bin 16, hi then lo
      "c0"                                        // correlation: nil
      "a161"                                      // sender_agent "a"
      "a16e"                                      // sender_node "n"
      "a0"                                        // target ""
      "cd03e8"                                    // created_ms 1000 (uint16)
      "00"                                        // deadline_ms 0
      "00"                                        // error None
      "c400"                                      // context: empty bin
      "c401c0";                                   // payload: bin [0xc0]
  EXPECT_EQ(hex(encode(e)), expected);
}

TEST(EnvelopeWire, ErrorEnvelopeBytes) {
  Envelope e;
  e.id = MessageId{0, 1};
  e.type = MessageType::Error;
  e.correlation = MessageId{~0ull, 2};
  e.sender_node = "x";
  e.target = "t";
  e.created_ms = -1;
  e.deadline_ms = 0x100000000LL;
  e.error = ErrorCode::TargetUnknown;
  e.context = {0x81, 0xa1, 'k', 0x01};  // {"k": 1}
  const std::string expected =
      "9d" "01" "03" "01"
      "c410" "00000000000000000000000000000001"
      "c410" "ffffffffffffffff0000000000000002"   // correlation
      "a0" "a178" "a174"
      "ff"                                        // created_ms -1 (negative fixint)
      "cf0000000100000000"                        // deadline_ms 2^32 (uint64)
      "07"                                        // TargetUnknown
      "c40481a16b01"                              // context
      "c400";                                     // payload
  EXPECT_EQ(hex(encode(e)), expected);
  const Bytes frame = encode(e);
  const DecodeResult r = decode(frame);
  ASSERT_TRUE(r.ok());
  expect_same(r.view, e);
}

// ---------------------------------------------------------------------------
// Refusals

TEST(EnvelopeDecode, HandFrameIsValid) {
  const Bytes frame = hand_frame();
  const DecodeResult r = decode(frame);
  ASSERT_TRUE(r.ok()) << to_string(r.error);
  EXPECT_EQ(r.view.id, kHandIdValue);
  EXPECT_EQ(r.view.type, MessageType::Request);
  EXPECT_EQ(r.view.payload.size(), 2u);
  EXPECT_EQ(r.salvaged_id, kHandIdValue);
}

struct MalformedCase {
  const char* name;
  Bytes frame;
  bool salvageable;
};

std::vector<MalformedCase> malformed_cases() {
  const Bytes deep_context = nested_maps(40);
  return {
      {"empty frame", {}, false},
      {"nil", {0xc0}, false},
      {"map instead of array", {0x80}, false},
      {"empty array", {0x90}, false},
      {"version as str", hand_frame({{0, str_field("1")}}), true},
      {"version negative", hand_frame({{0, int_field(-1)}}), true},
      {"type 5", hand_frame({{1, uint_field(5)}}), false},
      {"type as str", hand_frame({{1, str_field("request")}}), false},
      {"priority 4", hand_frame({{2, uint_field(4)}}), true},
      {"priority -1", hand_frame({{2, int_field(-1)}}), true},
      {"id 15 bytes", hand_frame({{3, bin_field(Bytes(15, 1))}}), false},
      {"id 17 bytes", hand_frame({{3, bin_field(Bytes(17, 1))}}), false},
      {"id as str", hand_frame({{3, str_field("0123456789abcdef")}}), false},
      {"correlation 15 bytes", hand_frame({{4, bin_field(Bytes(15, 1))}}), true},
      {"correlation 17 bytes", hand_frame({{4, bin_field(Bytes(17, 1))}}), true},
      {"correlation false", hand_frame({{4, raw({0xc2})}}), true},
      {"sender_agent as bin", hand_frame({{5, bin_field(bytes_of("agent"))}}), true},
      {"sender_node as int", hand_frame({{6, uint_field(6)}}), true},
      {"target nil", hand_frame({{7, raw({0xc0})}}), true},
      {"created_ms float", hand_frame({{8, raw({0xcb, 0, 0, 0, 0, 0, 0, 0, 0})}}), true},
      {"created_ms above int64", hand_frame({{8, uint_field(~0ull)}}), true},
      {"deadline_ms as str", hand_frame({{9, str_field("0")}}), true},
      {"error code 18", hand_frame({{10, uint_field(18)}}), true},
      {"error code 256", hand_frame({{10, uint_field(256)}}), true},
      {"context as str", hand_frame({{11, str_field("")}}), true},
      {"context holding an array", hand_frame({{11, bin_field({0x90})}}), true},
      {"context holding an int", hand_frame({{11, bin_field({0x01})}}), true},
      {"context holding nil", hand_frame({{11, bin_field({0xc0})}}), true},
      {"context map truncated", hand_frame({{11, bin_field({0x81, 0xa1, 'k'})}}), true},
      {"context map16 claims more", hand_frame({{11, bin_field({0xde, 0xff, 0xff})}}), true},
      {"context map then a byte", hand_frame({{11, bin_field({0x80, 0x00})}}), true},
      {"context two maps", hand_frame({{11, bin_field({0x80, 0x80})}}), true},
      {"context with 0xc1", hand_frame({{11, bin_field({0x81, 0xc1, 0x01})}}), true},
      {"context nested too deep", hand_frame({{11, bin_field(deep_context)}}), true},
      {"payload as str", hand_frame({{12, str_field("hi")}}), true},
      {"payload as array", hand_frame({{12, raw({0x91, 0x01})}}), true},
      {"payload bin32 claims 4 GiB", hand_frame({{12, raw({0xc6, 0xff, 0xff, 0xff, 0xff, 0x00})}}),
       true},
      {"12 elements", hand_frame({}, 12), true},
      {"4 elements", hand_frame({}, 4), true},
      {"3 elements", hand_frame({}, 3), false},
      {"array32 claims 4G elements", hand_frame({}, 0xffffffffu), true},
      {"13th element missing", hand_frame({{12, nullptr}}), true},
      {"extra element missing", hand_frame({}, 14), true},
      {"extra element nested too deep", hand_frame({{13, raw(nested_arrays(100))}}, 14), true},
      {"extra element 0xc1", hand_frame({{13, raw({0xc1})}}, 14), true},
      {"extra element truncated str", hand_frame({{13, raw({0xa5, 'a'})}}, 14), true},
      {"trailing byte", hand_frame({}, 13, {0x00}), true},
      {"trailing array", hand_frame({}, 13, {0x90}), true},
  };
}

TEST(EnvelopeDecode, MalformedFramesAreRefused) {
  for (const MalformedCase& c : malformed_cases()) {
    SCOPED_TRACE(c.name);
    const DecodeResult r = decode(c.frame);
    EXPECT_EQ(r.error, DecodeError::Malformed) << to_string(r.error) << " " << hex(c.frame);
    if (c.salvageable) {
      EXPECT_EQ(r.salvaged_type, MessageType::Request);
      EXPECT_EQ(r.salvaged_id, kHandIdValue);
    } else {
      EXPECT_FALSE(r.salvaged_type.has_value());
      EXPECT_FALSE(r.salvaged_id.has_value());
    }
  }
}

TEST(EnvelopeDecode, SalvagesABrokenRequest) {
  // A request whose payload is a str rather than a bin: refused, but its
  // sender can be told why.
  const DecodeResult r = decode(hand_frame({{12, str_field("not bin")}}));
  EXPECT_EQ(r.error, DecodeError::Malformed);
  ASSERT_TRUE(r.salvaged_type.has_value());
  EXPECT_EQ(*r.salvaged_type, MessageType::Request);
  ASSERT_TRUE(r.salvaged_id.has_value());
  EXPECT_EQ(*r.salvaged_id, kHandIdValue);
}

TEST(EnvelopeDecode, BadVersionIsSalvaged) {
  for (const std::uint64_t v : {std::uint64_t{0}, std::uint64_t{2}, std::uint64_t{1000}}) {
    SCOPED_TRACE(v);
    DecodeResult r = decode(hand_frame({{0, uint_field(v)}}));
    EXPECT_EQ(r.error, DecodeError::BadVersion);
    EXPECT_EQ(r.salvaged_type, MessageType::Request);
    EXPECT_EQ(r.salvaged_id, kHandIdValue);
    // Another version may lay out the rest differently: still BadVersion.
    r = decode(hand_frame({{0, uint_field(v)}, {12, str_field("x")}}, 20));
    EXPECT_EQ(r.error, DecodeError::BadVersion);
    EXPECT_EQ(r.salvaged_id, kHandIdValue);
    r = decode(hand_frame({{0, uint_field(v)}}, 2));
    EXPECT_EQ(r.error, DecodeError::BadVersion);
    EXPECT_FALSE(r.salvaged_id.has_value());
  }
}

TEST(EnvelopeDecode, ExtraElementsAreIgnored) {
  msgpack::sbuffer extra;
  msgpack::packer<msgpack::sbuffer> pk(extra);
  pk.pack_map(1);
  pk.pack(std::string("v2"));
  pk.pack_array(2);
  pk.pack(1.5);
  pk.pack_ext(3, 7);
  pk.pack_ext_body("abc", 3);
  const Bytes map(extra.data(), extra.data() + extra.size());
  const Bytes frame = hand_frame(
      {{13, raw(map)}, {14, str_field("later")}, {15, raw(nested_arrays(10))}, {16, raw({0xc3})}},
      17);
  const DecodeResult r = decode(frame);
  ASSERT_TRUE(r.ok()) << to_string(r.error);
  EXPECT_EQ(r.view.id, kHandIdValue);
  EXPECT_EQ(r.view.sender_agent, "agent");
  EXPECT_EQ(std::string_view(reinterpret_cast<const char*>(r.view.payload.data()),
                             r.view.payload.size()),
            "hi");
}

TEST(EnvelopeDecode, ContextMayHoldAnyMsgpack) {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  pk.pack_map(10);
  pk.pack(std::string("f32")); pk.pack_float(1.25f);
  pk.pack(std::string("f64")); pk.pack_double(-2.5);
  pk.pack(std::string("neg")); pk.pack_int64(std::numeric_limits<std::int64_t>::min());
  pk.pack(std::string("big")); pk.pack_uint64(~0ull);
  pk.pack(std::string("bools")); pk.pack_array(3); pk.pack_true(); pk.pack_false(); pk.pack_nil();
  pk.pack(std::string(40, 's')); pk.pack(std::string(300, 'v'));
  pk.pack(std::string("bin")); pk.pack_bin(2); pk.pack_bin_body("\x00\x01", 2);
  pk.pack(std::string("ext")); pk.pack_ext(20, 1); pk.pack_ext_body(std::string(20, 'e').data(), 20);
  pk.pack(std::string("fixext")); pk.pack_ext(4, 2); pk.pack_ext_body("abcd", 4);
  pk.pack(7); pk.pack_map(1); pk.pack(1); pk.pack_array(1); pk.pack_map(0);
  Envelope e = sample();
  e.context.assign(buf.data(), buf.data() + buf.size());
  expect_round_trip(e);
  e.context = nested_maps(20);
  expect_round_trip(e);
  e.context = {0xde, 0x00, 0x00};  // map16 of 0
  expect_round_trip(e);
}

// ---------------------------------------------------------------------------
// Hostile input

TEST(EnvelopeDecode, EveryTruncationFails) {
  const Envelope e = sample();
  const Bytes frame = encode(e);
  constexpr std::size_t kHeadBytes = 1 + 1 + 1 + 1 + 18;  // array .. id
  for (std::size_t n = 0; n < frame.size(); ++n) {
    SCOPED_TRACE(n);
    const DecodeResult r = decode(std::span(frame).first(n));
    EXPECT_EQ(r.error, DecodeError::Malformed);
    EXPECT_EQ(r.salvaged_id.has_value(), n >= kHeadBytes);
    if (n >= kHeadBytes) {
      EXPECT_EQ(r.salvaged_id, e.id);
    }
  }
  EXPECT_TRUE(decode(frame).ok());
}

// If a frame decodes, the view must encode to a frame that decodes to the
// same view (the decoder accepted only what the format can express).
void check_accepted(const DecodeResult& r) {
  if (!r.ok()) return;
  const Bytes again = encode(r.view.to_owned());
  const DecodeResult r2 = decode(again);
  ASSERT_TRUE(r2.ok()) << to_string(r2.error);
  EXPECT_TRUE(same_view(r.view, r2.view));
}

TEST(EnvelopeDecode, RandomGarbageNeverCrashes) {
  const std::uint64_t seed = ::mesh::test::test_seed(0x5eed'0001);
  MESH_SEED_TRACE(seed);
  std::mt19937_64 rng(seed);
  int accepted = 0;
  for (int i = 0; i < 20000; ++i) {
    Bytes frame(rng() % 96);
    for (auto& b : frame) b = static_cast<std::uint8_t>(rng());
    // Half of them start like an envelope, to get past the first checks.
    if (i % 2 == 1 && frame.size() >= 2) {
      frame[0] = 0x9d;
      frame[1] = 0x01;
    }
    const DecodeResult r = decode(frame);
    if (r.ok()) ++accepted;
    check_accepted(r);
    if (HasFatalFailure()) return;
  }
  std::cout << "[          ] " << accepted << " of 20000 random frames decoded\n";
}

TEST(EnvelopeDecode, MutatedFramesNeverCrash) {
  const std::uint64_t seed = ::mesh::test::test_seed(0x5eed'0002);
  MESH_SEED_TRACE(seed);
  std::mt19937_64 rng(seed);
  Envelope with_extras = sample();
  with_extras.correlation.reset();
  with_extras.context.clear();
  const std::vector<Bytes> valid = {
      encode(sample()), encode(with_extras), encode(Envelope{}),
      hand_frame({{13, raw(msgpack_map_bytes())}, {14, raw(nested_arrays(5))}}, 15)};
  int accepted = 0;
  for (int i = 0; i < 20000; ++i) {
    Bytes frame = valid[rng() % valid.size()];
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int f = 0; f < flips; ++f) {
      frame[rng() % frame.size()] ^= static_cast<std::uint8_t>(1 + rng() % 255);
    }
    const DecodeResult r = decode(frame);
    if (r.ok()) ++accepted;
    check_accepted(r);
    if (HasFatalFailure()) return;
  }
  std::cout << "[          ] " << accepted << " of 20000 mutated frames decoded\n";
}

// ---------------------------------------------------------------------------

TEST(EnvelopeDecode, WellFormedFrameAllocatesNothing) {
  const std::vector<Bytes> frames = {
      encode(sample()), encode(Envelope{}),
      hand_frame({{13, raw(msgpack_map_bytes())}, {14, raw(nested_arrays(20))}}, 15)};
  for (const Bytes& frame : frames) {
    const std::size_t before = g_allocations.load();
    const DecodeResult r = decode(frame);
    const std::size_t after = g_allocations.load();
    EXPECT_TRUE(r.ok());
    EXPECT_EQ(after - before, 0u);
  }
  // The counter does count: encode allocates.
  const std::size_t before = g_allocations.load();
  const Bytes frame = encode(sample());
  EXPECT_GT(g_allocations.load() - before, 0u);
}

}  // namespace
}  // namespace mesh::transport
