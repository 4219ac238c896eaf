// Node certificates (mesh/node_cert.hpp): issued by a trust key, read back
// only under that key, for the node and CURVE key they name, until they
// expire; anything else is refused and says why.
#include "mesh/node_cert.hpp"

#include <gtest/gtest.h>

#include <string>

#include "mesh/base64.hpp"

namespace mesh {
namespace {

constexpr char kCurveKey[] = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7";
constexpr std::int64_t kNow = 1'800'000'000;

struct Trust {
  ed25519::Seed seed = *ed25519::random_seed();
  ed25519::PublicKey pub = *ed25519::public_key(seed);
};

NodeCert cert_for(const std::string& name) {
  return NodeCert{name, kCurveKey, {"acme", "eu"}, kNow + 3600};
}

TEST(NodeCert, IssuedAndReadBack) {
  const Trust trust;
  const std::string text = issue_cert(cert_for("n1"), trust.seed);
  EXPECT_TRUE(text.starts_with(kCertPrefix));
  CertCheck check{};
  const auto read = open_cert(text, trust.pub, "n1", kCurveKey, kNow, check);
  EXPECT_EQ(check, CertCheck::Ok);
  ASSERT_TRUE(read.has_value());
  EXPECT_EQ(*read, cert_for("n1"));
}

TEST(NodeCert, RefusedUnlessEverythingHolds) {
  const Trust trust;
  const Trust other;
  const std::string text = issue_cert(cert_for("n1"), trust.seed);
  CertCheck check{};
  EXPECT_FALSE(open_cert(text, other.pub, "n1", kCurveKey, kNow, check).has_value());
  EXPECT_EQ(check, CertCheck::BadSignature);
  EXPECT_TRUE(open_cert(text, trust.pub, "n2", kCurveKey, kNow, check).has_value());
  EXPECT_EQ(check, CertCheck::WrongNode);
  open_cert(text, trust.pub, "n1", "another-key", kNow, check);
  EXPECT_EQ(check, CertCheck::WrongKey);
  open_cert(text, trust.pub, "n1", kCurveKey, kNow + 3600, check);
  EXPECT_EQ(check, CertCheck::Expired);
  EXPECT_EQ(to_string(CertCheck::Expired), "expired");

  // One byte changed anywhere in the signed part: not the trust key's.
  auto raw = *decode_base64(text.substr(kCertPrefix.size()));
  for (std::size_t i = 0; i < raw.size(); i += 7) {
    auto bent = raw;
    bent[i] ^= 0x01;
    const std::string changed = std::string(kCertPrefix) + encode_base64(bent);
    EXPECT_NE(open_cert(changed, trust.pub, "n1", kCurveKey, kNow, check).has_value() && check == CertCheck::Ok,
              true)
        << "byte " << i;
  }
  for (const std::string junk : {"", "meshcert1.", "meshcert1.!!!", "meshcert2.AAAA", "meshcert1.kA=="}) {
    EXPECT_FALSE(open_cert(junk, trust.pub, "n1", kCurveKey, kNow, check).has_value()) << junk;
    EXPECT_EQ(check, CertCheck::Malformed) << junk;
  }
}

TEST(NodeCert, TrustKeysAsText) {
  const Trust trust;
  const auto seed_text = encode_base64(std::vector<std::uint8_t>(trust.seed.begin(), trust.seed.end()));
  EXPECT_EQ(parse_trust_seed(seed_text), trust.seed);
  EXPECT_FALSE(parse_trust_seed("c2hvcnQ=").has_value());
  EXPECT_FALSE(parse_trust_key("not base64").has_value());
}

}  // namespace
}  // namespace mesh
