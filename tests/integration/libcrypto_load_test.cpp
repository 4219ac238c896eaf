// AES-GCM's libcrypto is opened when a keyring first holds a key, not at
// start (swim/driver/src/aes_gcm.cpp): a process that links mesh_swim and
// uses no gossip key never maps it, and one that does gets a working
// keyring. Also the error when the library cannot be opened.
#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "aes_gcm.hpp"
#include "mesh/swim/membership.hpp"

namespace mesh::swim {
namespace {

bool libcrypto_mapped() {
  std::ifstream maps("/proc/self/maps");
  for (std::string line; std::getline(maps, line);) {
    if (line.find("/libcrypto.so") != std::string::npos) return true;
  }
  return false;
}

// Read before main, so before any test of this binary used a keyring.
const bool g_mapped_at_start = libcrypto_mapped();

Bytes b(std::string_view s) { return Bytes(s.begin(), s.end()); }

TEST(LibcryptoOnDemand, NotMappedUntilAKeyIsUsedThenTheRingWorks) {
  EXPECT_FALSE(g_mapped_at_start) << "something linked libcrypto into this test";
  const Keyring off;
  EXPECT_FALSE(off.enabled());
  EXPECT_TRUE(off.encrypt(b("x"), {}).empty());
  EXPECT_TRUE(Keyring::decode_base64_key("MDEyMzQ1Njc4OWFiY2RlZg=="));
  // A test run on its own (ctest runs each in a process of its own) shows
  // that a ring without keys and base64 decoding load nothing.
  if (!g_mapped_at_start && ::testing::UnitTest::GetInstance()->test_to_run_count() == 1) {
    EXPECT_FALSE(libcrypto_mapped());
  }

  for (const Bytes& key : {b("0123456789abcdef"), b("0123456789abcdef01234567"),
                           b("0123456789abcdef0123456789abcdef")}) {
    const Keyring ring({key});
    EXPECT_TRUE(libcrypto_mapped());
    const Bytes sealed = ring.encrypt(b("memberlist ping payload"), b("ad"));
    ASSERT_EQ(sealed.size(), Keyring::overhead() + 23) << key.size();
    const auto opened = ring.decrypt(sealed, b("ad"));
    ASSERT_TRUE(opened);
    EXPECT_EQ(*opened, b("memberlist ping payload"));
    EXPECT_FALSE(ring.decrypt(sealed, b("other ad")));
  }
  EXPECT_EQ(detail::load_aes_gcm(), std::nullopt);
}

TEST(LibcryptoOnDemand, ALibraryThatCannotBeOpenedIsNamedInTheError) {
  const auto why = detail::probe_aes_gcm("libmesh-no-such-crypto.so.0");
  ASSERT_TRUE(why);
  EXPECT_NE(why->find("libmesh-no-such-crypto.so.0"), std::string::npos) << *why;
  EXPECT_NE(why->find("could not be loaded"), std::string::npos) << *why;
  // A library that opens but lacks the functions: libc has none of them.
  const auto lacks = detail::probe_aes_gcm("libc.so.6");
  ASSERT_TRUE(lacks);
  EXPECT_NE(lacks->find("lacks EVP_CIPHER_CTX_new"), std::string::npos) << *lacks;
  // The real one is still there for everyone else.
  EXPECT_EQ(detail::load_aes_gcm(), std::nullopt);
  EXPECT_EQ(std::string(detail::libcrypto_soname()).rfind("libcrypto.so.", 0), 0U);
}

}  // namespace
}  // namespace mesh::swim
