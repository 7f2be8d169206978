// Tests of VerificationKey's pool of verification contexts (verification_key.h): which keys lend
// one, that a returned context is lent again, that a discarded one is not, the idle bound, and
// that JwsSignatureValid returns a context after a forged signature.
#include "server/auth/verification_key.h"

#include <openssl/evp.h>

#include <set>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "server/auth/jws_signature.h"

namespace secret_resolver {
namespace auth {
namespace {

VerificationKey Key(KeyType type) {
  EVP_PKEY* pkey = nullptr;
  switch (type) {
    case KeyType::kRsa:
      pkey = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(2048));
      break;
    case KeyType::kEcP256:
      pkey = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
      break;
    case KeyType::kEd25519:
      pkey = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
      break;
  }
  return VerificationKey("k", type, "", VerificationKey::PkeyPtr(pkey));
}

TEST(VerificationKeyTest, RsaAndP256LendDigestVerifiersEd25519ATemplate) {
  for (KeyType type : {KeyType::kRsa, KeyType::kEcP256}) {
    SCOPED_TRACE(KeyTypeName(type));
    const VerificationKey key = Key(type);
    EXPECT_NE(key.LeaseDigestVerifier().get(), nullptr);
    EXPECT_EQ(key.verify_template(), nullptr);
  }
  const VerificationKey ed = Key(KeyType::kEd25519);
  EXPECT_EQ(ed.LeaseDigestVerifier().get(), nullptr);
  EXPECT_NE(ed.verify_template(), nullptr);
}

TEST(VerificationKeyTest, AReturnedContextIsLentAgainADiscardedOneIsNot) {
  const VerificationKey key = Key(KeyType::kEcP256);
  EVP_PKEY_CTX* first = nullptr;
  {
    VerificationKey::DigestVerifierLease lease = key.LeaseDigestVerifier();
    first = lease.get();
  }
  {
    VerificationKey::DigestVerifierLease lease = key.LeaseDigestVerifier();
    EXPECT_EQ(lease.get(), first);
    EXPECT_EQ(key.idle_verifiers(), 0u);
    lease.Discard();
    EXPECT_EQ(lease.get(), nullptr);
  }
  // The pool is empty again: the next lease is a context made for it (OpenSSL may reuse the
  // freed address, so only that it is usable is checked).
  EXPECT_EQ(key.idle_verifiers(), 0u);
  EXPECT_NE(key.LeaseDigestVerifier().get(), nullptr);
  EXPECT_EQ(key.idle_verifiers(), 1u);
}

TEST(VerificationKeyTest, AtMostKIdleVerifiersWaitInThePool) {
  const VerificationKey key = Key(KeyType::kRsa);
  const size_t held = VerificationKey::kIdleVerifiers + 3;
  std::set<EVP_PKEY_CTX*> lent;
  {
    std::vector<VerificationKey::DigestVerifierLease> leases;
    for (size_t i = 0; i < held; ++i) {
      leases.push_back(key.LeaseDigestVerifier());
      lent.insert(leases.back().get());
    }
    EXPECT_EQ(lent.size(), held);  // all at once: each its own context
    EXPECT_EQ(key.idle_verifiers(), 0u);
  }
  EXPECT_EQ(key.idle_verifiers(), VerificationKey::kIdleVerifiers);
  // All were returned; only kIdleVerifiers were kept, so that many leases at once are served
  // from the pool and the next one is made afresh.
  std::vector<VerificationKey::DigestVerifierLease> again;
  for (size_t i = 0; i < VerificationKey::kIdleVerifiers; ++i) {
    again.push_back(key.LeaseDigestVerifier());
    EXPECT_EQ(lent.count(again.back().get()), 1u);
  }
  std::set<EVP_PKEY_CTX*> distinct;
  for (const auto& lease : again) distinct.insert(lease.get());
  EXPECT_EQ(distinct.size(), VerificationKey::kIdleVerifiers);
}

// A signature that does not match leaves its context in the pool: forged tokens with a known kid
// must not make every later check set a context up again.
TEST(VerificationKeyTest, ForgedSignaturesDoNotDrainThePool) {
  for (KeyType type : {KeyType::kRsa, KeyType::kEcP256}) {
    SCOPED_TRACE(KeyTypeName(type));
    const VerificationKey key = Key(type);
    const std::string forged(type == KeyType::kRsa ? 256 : 64, '\x5a');
    for (int i = 0; i < 3; ++i) {
      EXPECT_FALSE(JwsSignatureValid(key, "header.payload", forged));
      EXPECT_EQ(key.idle_verifiers(), 1u);
    }
  }
}

}  // namespace
}  // namespace auth
}  // namespace secret_resolver
