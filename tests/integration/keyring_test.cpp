// The keyring against vectors produced by Go: a throwaway program that
// calls crypto/aes + cipher.NewGCM exactly as memberlist's security.go
// encryptPayload does, with the fixed nonce 00 01 .. 0b. Only the resulting
// bytes are kept here.
#include <gtest/gtest.h>

#include <string>

#include "mesh/swim/membership.hpp"
#include "stream_frame.hpp"

namespace mesh::swim {
namespace {

Bytes b(std::string_view s) { return Bytes(s.begin(), s.end()); }

const Bytes kKey16 = b("0123456789abcdef");
const Bytes kKey24 = b("0123456789abcdef01234567");
const Bytes kKey32 = b("0123456789abcdef0123456789abcdef");
const std::uint8_t kNonce[12] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
const std::string kMsg = "memberlist ping payload";  // 23 bytes

// encryptPayload(1, key16, "memberlist ping payload", nil)
const Bytes kGoV1Key16 = {
    0x01, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x90, 0x5a,
    0xa9, 0x7f, 0x7b, 0x06, 0x57, 0x5f, 0x9b, 0x52, 0x27, 0x6a, 0xa9, 0xf5, 0xd7, 0x0d, 0x70,
    0xb6, 0x2e, 0x96, 0x68, 0xd2, 0x2e, 0xf6, 0x87, 0xc4, 0x02, 0x09, 0x3d, 0xd2, 0xda, 0x44,
    0xa6, 0xb6, 0xeb, 0x04, 0x49, 0xaf, 0x0d};
// encryptPayload(0, key16, same): PKCS7-padded to 32 bytes.
const Bytes kGoV0Key16 = {
    0x00, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x90,
    0x5a, 0xa9, 0x7f, 0x7b, 0x06, 0x57, 0x5f, 0x9b, 0x52, 0x27, 0x6a, 0xa9, 0xf5, 0xd7,
    0x0d, 0x70, 0xb6, 0x2e, 0x96, 0x68, 0xd2, 0x2e, 0x42, 0x7e, 0x60, 0xe3, 0xfa, 0xe6,
    0xa2, 0xa2, 0x65, 0x4e, 0x65, 0xb3, 0x21, 0x22, 0x62, 0x92, 0x97, 0x46, 0x5e, 0x7f,
    0xd0, 0x80, 0x46, 0xfe, 0x69};
// encryptPayload(0, key24, "sixteen byte msg"): a whole block of padding.
const Bytes kGoV0Key24Block = {
    0x00, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0xdc,
    0x72, 0xda, 0x47, 0xfc, 0x97, 0x2e, 0xdf, 0x7e, 0xf1, 0x67, 0x64, 0x99, 0xeb, 0xef,
    0x6f, 0xe2, 0xe9, 0x29, 0x04, 0x59, 0xd2, 0xaa, 0xed, 0xb3, 0x85, 0x4e, 0xaf, 0x59,
    0x42, 0x10, 0x37, 0xb8, 0x05, 0x4f, 0x60, 0x5f, 0xce, 0x84, 0xad, 0xb9, 0xfd, 0x98,
    0xbe, 0x20, 0xd2, 0x8e, 0x70};
// encryptPayload(1, key32, same)
const Bytes kGoV1Key32 = {
    0x01, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x40, 0x80,
    0xd6, 0x1e, 0xbc, 0x6a, 0xbe, 0xc5, 0xdb, 0xa8, 0x51, 0xce, 0x18, 0xa1, 0xb6, 0x24, 0x96,
    0x69, 0x7a, 0xeb, 0x53, 0xdd, 0x10, 0x41, 0xa1, 0xbe, 0xc7, 0x62, 0x9e, 0xe4, 0xff, 0x01,
    0x4d, 0xb1, 0xab, 0xee, 0xcf, 0x9a, 0x0c};
// encryptLocalState framing: [10][len 52][vsn 1 payload with aad = first 5 bytes]
const Bytes kGoStreamKey32 = {
    0x0a, 0x00, 0x00, 0x00, 0x34, 0x01, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07,
    0x08, 0x09, 0x0a, 0x0b, 0x40, 0x80, 0xd6, 0x1e, 0xbc, 0x6a, 0xbe, 0xc5, 0xdb, 0xa8,
    0x51, 0xce, 0x18, 0xa1, 0xb6, 0x24, 0x96, 0x69, 0x7a, 0xeb, 0x53, 0xdd, 0x10, 0x47,
    0x16, 0x0a, 0x8c, 0x77, 0x72, 0xbe, 0x10, 0x11, 0x29, 0xad, 0x82, 0x10, 0x88, 0xcc,
    0x7e};

TEST(Keyring, MatchesGoWithFixedNonce) {
  EXPECT_EQ(detail::encrypt_with_nonce(kKey16, kNonce, as_bytes(kMsg), {}, 1), kGoV1Key16);
  EXPECT_EQ(detail::encrypt_with_nonce(kKey16, kNonce, as_bytes(kMsg), {}, 0), kGoV0Key16);
  EXPECT_EQ(detail::encrypt_with_nonce(kKey24, kNonce, as_bytes("sixteen byte msg"), {}, 0),
            kGoV0Key24Block);
  EXPECT_EQ(detail::encrypt_with_nonce(kKey32, kNonce, as_bytes(kMsg), {}, 1), kGoV1Key32);
  const ByteView header(kGoStreamKey32.data(), detail::kStreamHeaderSize);
  Bytes stream(header.begin(), header.end());
  const Bytes body = detail::encrypt_with_nonce(kKey32, kNonce, as_bytes(kMsg), header, 1);
  stream.insert(stream.end(), body.begin(), body.end());
  EXPECT_EQ(stream, kGoStreamKey32);
  EXPECT_EQ(detail::encrypted_length(1, kMsg.size()), 0x34u);
}

TEST(Keyring, DecryptsGoVectors) {
  Keyring ring({kKey16});
  auto v1 = ring.decrypt(kGoV1Key16, {});
  ASSERT_TRUE(v1);
  EXPECT_EQ(as_string_view(*v1), kMsg);
  auto v0 = ring.decrypt(kGoV0Key16, {});
  ASSERT_TRUE(v0);
  EXPECT_EQ(as_string_view(*v0), kMsg);

  auto v0_block = Keyring({kKey24}).decrypt(kGoV0Key24Block, {});
  ASSERT_TRUE(v0_block);
  EXPECT_EQ(as_string_view(*v0_block), "sixteen byte msg");

  const ByteView frame(kGoStreamKey32);
  auto s = Keyring({kKey32}).decrypt(frame.subspan(detail::kStreamHeaderSize),
                                     frame.first(detail::kStreamHeaderSize));
  ASSERT_TRUE(s);
  EXPECT_EQ(as_string_view(*s), kMsg);
  // The length is authenticated: the same body under another header fails.
  Bytes other_header(frame.begin(), frame.begin() + detail::kStreamHeaderSize);
  other_header[4] ^= 1;
  EXPECT_FALSE(Keyring({kKey32}).decrypt(frame.subspan(detail::kStreamHeaderSize), other_header));
}

TEST(Keyring, RoundTripBothVersionsAllKeySizes) {
  for (const Bytes& key : {kKey16, kKey24, kKey32}) {
    Keyring ring({key});
    for (std::uint8_t vsn : {std::uint8_t{0}, std::uint8_t{1}}) {
      for (std::size_t n : {0u, 1u, 15u, 16u, 17u, 1371u}) {
        Bytes plain(n);
        for (std::size_t i = 0; i < n; ++i) plain[i] = static_cast<std::uint8_t>(i * 7u);
        const Bytes sealed = ring.encrypt(plain, as_bytes("aad"), vsn);
        ASSERT_FALSE(sealed.empty());
        EXPECT_EQ(sealed[0], vsn);
        EXPECT_EQ(sealed.size(), detail::encrypted_length(vsn, n));
        EXPECT_LE(sealed.size(), n + Keyring::overhead(vsn));
        auto back = ring.decrypt(sealed, as_bytes("aad"));
        ASSERT_TRUE(back) << "vsn " << int(vsn) << " n " << n;
        EXPECT_EQ(*back, plain);
      }
    }
  }
}

TEST(Keyring, NoncesDiffer) {
  Keyring ring({kKey16});
  EXPECT_NE(ring.encrypt(as_bytes(kMsg), {}), ring.encrypt(as_bytes(kMsg), {}));
}

TEST(Keyring, WrongKeyFails) {
  Keyring ring({kKey16});
  Keyring other({kKey32});
  const Bytes sealed = ring.encrypt(as_bytes(kMsg), {});
  EXPECT_FALSE(other.decrypt(sealed, {}));
  EXPECT_FALSE(other.decrypt(kGoV1Key16, {}));
  // Wrong additional data fails too.
  EXPECT_FALSE(ring.decrypt(sealed, as_bytes("x")));
}

TEST(Keyring, EveryKeyIsTriedPrimaryEncrypts) {
  Keyring both({kKey32, kKey16});
  auto plain = both.decrypt(kGoV1Key16, {});
  ASSERT_TRUE(plain);
  EXPECT_EQ(as_string_view(*plain), kMsg);
  // The first key encrypts: a ring with only the second cannot read it.
  EXPECT_FALSE(Keyring({kKey16}).decrypt(both.encrypt(as_bytes(kMsg), {}), {}));
  EXPECT_TRUE(Keyring({kKey32}).decrypt(both.encrypt(as_bytes(kMsg), {}), {}));
}

TEST(Keyring, TamperedByteFails) {
  Keyring ring({kKey16});
  for (const Bytes& vec : {kGoV1Key16, kGoV0Key16}) {
    for (std::size_t i = 1; i < vec.size(); ++i) {
      Bytes bad = vec;
      bad[i] ^= 0x40;
      EXPECT_FALSE(ring.decrypt(bad, {})) << "byte " << i;
    }
  }
}

TEST(Keyring, RejectsShortAndUnknownVersions) {
  Keyring ring({kKey16});
  EXPECT_FALSE(ring.decrypt({}, {}));
  EXPECT_FALSE(ring.decrypt(Bytes(28, 1), {}));  // below vsn 1's minimum of 29
  Bytes vsn0_short(44, 0);                       // vsn 0 needs 45
  EXPECT_FALSE(ring.decrypt(vsn0_short, {}));
  Bytes bad_vsn = kGoV1Key16;
  bad_vsn[0] = 2;
  EXPECT_FALSE(ring.decrypt(bad_vsn, {}));
  EXPECT_TRUE(ring.encrypt(as_bytes(kMsg), {}, 2).empty());
  EXPECT_TRUE(Keyring().encrypt(as_bytes(kMsg), {}).empty());
  EXPECT_FALSE(Keyring().decrypt(kGoV1Key16, {}));
}

TEST(Keyring, OverheadMatchesMemberlist) {
  EXPECT_EQ(Keyring::overhead(1), 29u);
  EXPECT_EQ(Keyring::overhead(0), 45u);
}

TEST(Keyring, KeySizes) {
  EXPECT_THROW(Keyring({Bytes(15)}), std::invalid_argument);
  EXPECT_THROW(Keyring({kKey16, Bytes(33)}), std::invalid_argument);
  EXPECT_NO_THROW(Keyring({kKey16, kKey24, kKey32}));
}

TEST(Keyring, Base64Keys) {
  // `serf keygen` prints 32 bytes in standard base64.
  auto k = Keyring::decode_base64_key("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=");
  ASSERT_TRUE(k);
  EXPECT_EQ(*k, kKey32);
  k = Keyring::decode_base64_key("MDEyMzQ1Njc4OWFiY2RlZg==");
  ASSERT_TRUE(k);
  EXPECT_EQ(*k, kKey16);
  k = Keyring::decode_base64_key("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3");
  ASSERT_TRUE(k);
  EXPECT_EQ(*k, kKey24);
  // 31 bytes: well-formed base64, but not a key size.
  EXPECT_FALSE(Keyring::decode_base64_key("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZQ=="));
  EXPECT_FALSE(Keyring::decode_base64_key("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY"));  // unpadded
  EXPECT_FALSE(Keyring::decode_base64_key("MDEyMzQ1Njc4OWFiY2RlZg=A"));
  EXPECT_FALSE(Keyring::decode_base64_key("MDEyMzQ1Njc4OWFiY2RlZ!=="));
  EXPECT_FALSE(Keyring::decode_base64_key("MDEy=zQ1Njc4OWFiY2RlZg=="));
  EXPECT_FALSE(Keyring::decode_base64_key(""));
}

}  // namespace
}  // namespace mesh::swim
