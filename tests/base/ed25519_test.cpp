// mesh/ed25519.hpp (libsodium underneath): RFC 8032's test vectors, so
// that keys, signatures and certificates made before (with OpenSSL) and
// after stay the same bytes; the SHA-256 of derived_seed against FIPS
// 180-2's vector; and what verify refuses.
#include "mesh/ed25519.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace mesh::ed25519 {
namespace {

std::vector<std::uint8_t> hex(std::string_view h) {
  std::vector<std::uint8_t> out;
  for (std::size_t i = 0; i + 1 < h.size(); i += 2)
    out.push_back(static_cast<std::uint8_t>(std::stoi(std::string(h.substr(i, 2)), nullptr, 16)));
  return out;
}

template <std::size_t N>
std::array<std::uint8_t, N> hex_array(std::string_view h) {
  const auto v = hex(h);
  std::array<std::uint8_t, N> out{};
  EXPECT_EQ(v.size(), N);
  std::copy_n(v.begin(), std::min(N, v.size()), out.begin());
  return out;
}

struct Vector {
  const char* seed;
  const char* public_key;
  const char* message;
  const char* signature;
};

// RFC 8032 section 7.1, TEST 1, 2 and 3.
constexpr Vector kVectors[] = {
    {"9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
     "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
     "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b"
     "46bd25bf5f0595bbe24655141438e7a100b"},
    {"4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
     "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
     "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11"
     "d8c387b2eaeb4302aeeb00d291612bb0c00"},
    {"c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
     "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
     "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc"
     "6594a7c15e9716ed28dc027beceea1ec40a"},
};

TEST(Ed25519, Rfc8032Vectors) {
  for (const Vector& v : kVectors) {
    const Seed seed = hex_array<32>(v.seed);
    const auto pub = public_key(seed);
    ASSERT_TRUE(pub);
    EXPECT_EQ(*pub, hex_array<32>(v.public_key)) << v.seed;
    const auto message = hex(v.message);
    const auto sig = sign(seed, message);
    ASSERT_TRUE(sig);
    EXPECT_EQ(*sig, hex_array<64>(v.signature)) << v.seed;
    EXPECT_TRUE(verify(*pub, message, *sig));
  }
}

TEST(Ed25519, VerifyRefusesWhatWasNotSigned) {
  const Vector& v = kVectors[2];
  const auto pub = hex(v.public_key);
  auto message = hex(v.message);
  auto sig = hex(v.signature);
  ASSERT_TRUE(verify(pub, message, sig));
  message[0] ^= 1;
  EXPECT_FALSE(verify(pub, message, sig));
  message[0] ^= 1;
  sig[5] ^= 0x10;
  EXPECT_FALSE(verify(pub, message, sig));
  sig[5] ^= 0x10;
  EXPECT_FALSE(verify(hex(kVectors[0].public_key), message, sig));  // another key
  EXPECT_FALSE(verify(std::span(pub).first(31), message, sig));     // wrong sizes
  EXPECT_FALSE(verify(pub, message, std::span(sig).first(63)));
}

TEST(Ed25519, DerivedSeedIsSha256OfTheMaterial) {
  const std::string abc = "abc";  // FIPS 180-2, appendix B.1
  const std::vector<std::uint8_t> material(abc.begin(), abc.end());
  EXPECT_EQ(derived_seed(material),
            hex_array<32>("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
  EXPECT_EQ(derived_seed({}),
            hex_array<32>("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
}

TEST(Ed25519, RandomSeedsDifferAndSign) {
  const auto a = random_seed();
  const auto b = random_seed();
  ASSERT_TRUE(a && b);
  EXPECT_NE(*a, *b);
  const std::vector<std::uint8_t> message = {1, 2, 3};
  const auto sig = sign(*a, message);
  const auto pub = public_key(*a);
  ASSERT_TRUE(sig && pub);
  EXPECT_TRUE(verify(*pub, message, *sig));
}

}  // namespace
}  // namespace mesh::ed25519
