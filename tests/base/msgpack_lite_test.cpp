// mesh::mp against msgpack-c: what the writer produces unpacks to the same
// values, each in its smallest form, and the reader takes back what
// msgpack-c packs, negative integers and floats included.
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <msgpack.hpp>
#include <string>
#include <vector>

#include "mesh/msgpack_lite.hpp"

namespace mesh::mp {
namespace {

msgpack::object_handle unpack(const Bytes& b) {
  return msgpack::unpack(reinterpret_cast<const char*>(b.data()), b.size());
}

template <class T>
Bytes packed(const T& v) {
  msgpack::sbuffer buf;
  msgpack::pack(buf, v);
  return Bytes(buf.data(), buf.data() + buf.size());
}

TEST(MsgpackLite, WriterMatchesMsgpackC) {
  for (std::int64_t v : {std::int64_t{0}, std::int64_t{127}, std::int64_t{128}, std::int64_t{65535},
                         std::int64_t{1} << 40, std::int64_t{-1}, std::int64_t{-32}, std::int64_t{-33},
                         std::numeric_limits<std::int64_t>::min()}) {
    Bytes out;
    Writer(out).sint(v);
    EXPECT_EQ(unpack(out).get().as<std::int64_t>(), v) << v;
    if (v >= 0) {
      EXPECT_EQ(out, packed(static_cast<std::uint64_t>(v))) << v;  // the smallest form
    }
  }
  for (std::size_t n : {std::size_t{0}, std::size_t{31}, std::size_t{32}, std::size_t{255}, std::size_t{256},
                        std::size_t{70000}}) {
    const std::string s(n, 'x');
    Bytes out;
    Writer(out).str(s);
    EXPECT_EQ(out, packed(s)) << n;  // msgpack-c writes str8 too
    Bytes bin;
    Writer(bin).bin(Bytes(n, 7));
    const auto h = unpack(bin);
    ASSERT_EQ(h.get().type, msgpack::type::BIN) << n;
    EXPECT_EQ(h.get().via.bin.size, n);
  }
  Bytes out;
  Writer w(out);
  w.array_header(17);
  for (int i = 0; i < 16; ++i) w.f64(i + 0.5);
  w.map_header(0);
  const auto h = unpack(out);
  ASSERT_EQ(h.get().type, msgpack::type::ARRAY);
  ASSERT_EQ(h.get().via.array.size, 17u);
  EXPECT_DOUBLE_EQ(h.get().via.array.ptr[15].as<double>(), 15.5);
  EXPECT_EQ(h.get().via.array.ptr[16].type, msgpack::type::MAP);
}

TEST(MsgpackLite, ReaderTakesSignedIntegersFloatsTextAndBin) {
  for (std::int64_t v : {std::int64_t{5}, std::int64_t{-5}, std::int64_t{-200}, std::int64_t{-70000},
                         std::int64_t{-5000000000}, std::numeric_limits<std::int64_t>::min()}) {
    const Bytes b = packed(v);
    Reader r(b);
    const auto i = r.integer();
    ASSERT_TRUE(i) << v;
    EXPECT_EQ(i->negative, v < 0);
    const std::uint64_t magnitude = v < 0 ? 0 - static_cast<std::uint64_t>(v) : static_cast<std::uint64_t>(v);
    EXPECT_EQ(i->magnitude, magnitude) << v;
    EXPECT_TRUE(r.at_end());
  }
  {
    const Bytes b = packed(std::numeric_limits<std::uint64_t>::max());
    const auto i = Reader(b).integer();
    ASSERT_TRUE(i);
    EXPECT_FALSE(i->negative);
    EXPECT_EQ(i->magnitude, std::numeric_limits<std::uint64_t>::max());
  }
  EXPECT_DOUBLE_EQ(*Reader(packed(2.5f)).floating(), 2.5);  // a float32, widened
  EXPECT_DOUBLE_EQ(*Reader(packed(-1e300)).floating(), -1e300);
  EXPECT_FALSE(Reader(packed(3)).floating());  // an integer is not a float

  const Bytes text = packed(std::string(300, 'a'));
  EXPECT_EQ(Reader(text).text()->size(), 300u);
  EXPECT_FALSE(Reader(text).bin());
  const Bytes bin = packed(std::vector<char>{1, 2});  // msgpack-c packs it as bin
  EXPECT_FALSE(Reader(bin).text());
  EXPECT_EQ(Reader(bin).bin()->size(), 2u);
  EXPECT_EQ(Reader(bin).str()->size(), 2u);  // str() takes every family
}

TEST(MsgpackLite, ReaderNeverReadsPastTheEnd) {
  // Each cut short by one byte.
  for (const Bytes& whole : {packed(std::string(40, 'b')), packed(std::int64_t{-70000}), packed(1.25)}) {
    const Bytes cut(whole.begin(), whole.end() - 1);
    Reader a(cut);
    Reader b(cut);
    Reader c(cut);
    EXPECT_FALSE(a.text());
    EXPECT_FALSE(b.integer());
    EXPECT_FALSE(c.floating());
  }
}

}  // namespace
}  // namespace mesh::mp
