// Tests of TokenVerifier's verified-token cache and of key rotation under it: what a hit
// skips, what it still checks, eviction, revocation by the JWKS, and the non-blocking warm path.
// Tokens are minted by mint_tokens.py (see token_verifier_fixture.h); none is printed.
#include "server/auth/token_verifier.h"

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "resolver/access_policy.h"
#include "server/auth/auth_failure.h"
#include "server/auth/base64url.h"
#include "server/auth/claims_validator.h"
#include "server/auth/credentials.h"
#include "server/auth/token_verifier.h"
#include "server/auth/url_jwks_source.h"
#include "tests/server/auth/jwks_http_server.h"
#include "tests/server/auth/token_minter.h"
#include "tests/server/auth/token_verifier_fixture.h"

namespace secret_resolver {
namespace auth {
namespace {

using ::secret_resolver::auth::testing::AllSpecs;
using ::secret_resolver::auth::testing::ExpectCaller;
using ::secret_resolver::auth::testing::JwksDocument;
using ::secret_resolver::auth::testing::JwksHttpServer;
using ::secret_resolver::auth::testing::kAudience;
using ::secret_resolver::auth::testing::kDecryptAll;
using ::secret_resolver::auth::testing::kExp;
using ::secret_resolver::auth::testing::kIssuer;
using ::secret_resolver::auth::testing::kNow;
using ::secret_resolver::auth::testing::Parts;
using ::secret_resolver::auth::testing::Reason;
using ::secret_resolver::auth::testing::TokenVerifierTest;
using ::secret_resolver::auth::testing::WriteFileAtomically;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

// --- The verified-token cache ---

// The cache hashes only a token's length and signature tail: a token that differs from a
// cached one anywhere else must still be a miss, and be refused.
TEST_F(TokenVerifierTest, TokenDifferingOnlyBeforeItsTailIsNotACacheHit) {
  const std::string token = Token("es256");
  ExpectCaller(VerifiedCaller(token));
  std::vector<std::string> p = Parts(token);
  std::string altered_payload = p[1];
  altered_payload[2] = altered_payload[2] == 'A' ? 'B' : 'A';
  const std::string altered = absl::StrCat(p[0], ".", altered_payload, ".", p[2]);
  // Compared without printing: test output never shows a token.
  ASSERT_EQ(altered.size(), token.size());
  ASSERT_TRUE(altered.substr(altered.size() - 32) == token.substr(token.size() - 32));
  EXPECT_FALSE(VerifiedCaller(altered).ok());
  EXPECT_EQ(verifier_->stats().cache_hits, 0u);
  EXPECT_EQ(verifier_->stats().cache_misses, 2u);
}

TEST_F(TokenVerifierTest, SecondVerifySkipsTheSignature) {
  ExpectCaller(VerifiedCaller(Token("es256")));
  ExpectCaller(VerifiedCaller(Token("es256")));
  TokenVerifierStats stats = verifier_->stats();
  EXPECT_EQ(stats.signature_checks, 1u);
  EXPECT_EQ(stats.cache_hits, 1u);
  EXPECT_EQ(stats.cache_misses, 1u);
  EXPECT_EQ(stats.cache_size, 1u);
  EXPECT_EQ(verifier_->cache_size(), 1u);
}

TEST_F(TokenVerifierTest, CachedTokenIsRejectedOnceExpired) {
  EXPECT_EQ(ReasonFor("es256"), "accepted");
  clock_.SetTime(absl::FromUnixSeconds(kExp + 59));
  EXPECT_EQ(ReasonFor("es256"), "accepted");
  clock_.SetTime(absl::FromUnixSeconds(kExp + 60));
  EXPECT_EQ(ReasonFor("es256"), "expired");
  EXPECT_EQ(verifier_->stats().signature_checks, 1u) << "the hits did not verify again";
  EXPECT_EQ(verifier_->cache_size(), 0u);
}

TEST_F(TokenVerifierTest, FailedTokensAreNotCached) {
  EXPECT_EQ(ReasonFor("tampered_es256"), "bad_signature");
  EXPECT_EQ(ReasonFor("tampered_es256"), "bad_signature");
  EXPECT_EQ(verifier_->stats().signature_checks, 2u);
  EXPECT_EQ(verifier_->cache_size(), 0u);
}

TEST_F(TokenVerifierTest, CacheEvictsTheEntryNearestExpiryAtCapacity) {
  TokenVerifierOptions options = Options();
  options.cache_capacity = 2;
  auto verifier = MakeVerifier(options);
  for (const char* name : {"exp_800", "es256", "exp_700"}) {
    EXPECT_EQ(Reason(*verifier, Token(name)), "accepted");
  }
  EXPECT_EQ(verifier->cache_size(), 2u);
  EXPECT_EQ(verifier->stats().signature_checks, 3u);
  // es256 (exp +600) was nearest expiry when exp_700 arrived.
  EXPECT_EQ(Reason(*verifier, Token("exp_800")), "accepted");
  EXPECT_EQ(Reason(*verifier, Token("exp_700")), "accepted");
  EXPECT_EQ(verifier->stats().signature_checks, 3u);
  EXPECT_EQ(Reason(*verifier, Token("es256")), "accepted");
  EXPECT_EQ(verifier->stats().signature_checks, 4u);
  EXPECT_EQ(verifier->cache_size(), 2u);
}

// The cache holds the tokens themselves, so it is bounded in bytes as well as in entries.
TEST_F(TokenVerifierTest, CacheEvictsTheEntryNearestExpiryAtItsByteBound) {
  TokenVerifierOptions options = Options();
  options.cache_max_bytes = Token("exp_800").size() + Token("es256").size() + 1;
  ASSERT_LT(options.cache_max_bytes, Token("exp_800").size() + Token("es256").size() +
                                         Token("exp_700").size());
  auto verifier = MakeVerifier(options);
  for (const char* name : {"exp_800", "es256", "exp_700"}) {
    EXPECT_EQ(Reason(*verifier, Token(name)), "accepted");
  }
  EXPECT_EQ(verifier->cache_size(), 2u);
  // es256 (exp +600) was nearest expiry when exp_700 arrived.
  EXPECT_EQ(Reason(*verifier, Token("exp_800")), "accepted");
  EXPECT_EQ(Reason(*verifier, Token("exp_700")), "accepted");
  EXPECT_EQ(verifier->stats().signature_checks, 3u);

  // A token longer than the whole bound is verified every time, and evicts nothing.
  options.cache_max_bytes = Token("es256").size() - 1;
  auto small = MakeVerifier(options);
  EXPECT_EQ(Reason(*small, Token("es256")), "accepted");
  EXPECT_EQ(Reason(*small, Token("es256")), "accepted");
  EXPECT_EQ(small->stats().signature_checks, 2u);
  EXPECT_EQ(small->cache_size(), 0u);
}

TEST_F(TokenVerifierTest, ExpiredEntriesMakeRoomFirst) {
  TokenVerifierOptions options = Options();
  options.cache_capacity = 2;
  auto verifier = MakeVerifier(options);
  EXPECT_EQ(Reason(*verifier, Token("es256")), "accepted");
  EXPECT_EQ(Reason(*verifier, Token("exp_800")), "accepted");
  clock_.SetTime(absl::FromUnixSeconds(kExp + 60));  // es256 expired, exp_800 not
  EXPECT_EQ(Reason(*verifier, Token("exp_700")), "accepted");
  EXPECT_EQ(verifier->cache_size(), 2u);
  EXPECT_EQ(Reason(*verifier, Token("exp_800")), "accepted");
  EXPECT_EQ(verifier->stats().signature_checks, 3u);
}

TEST_F(TokenVerifierTest, CacheCanBeDisabled) {
  TokenVerifierOptions options = Options();
  options.cache_capacity = 0;
  auto verifier = MakeVerifier(options);
  EXPECT_EQ(Reason(*verifier, Token("es256")), "accepted");
  EXPECT_EQ(Reason(*verifier, Token("es256")), "accepted");
  EXPECT_EQ(verifier->stats().signature_checks, 2u);
  EXPECT_EQ(verifier->cache_size(), 0u);
}

TEST_F(TokenVerifierTest, RemovingAKeyRevokesItsCachedTokens) {
  EXPECT_EQ(ReasonFor("es256"), "accepted");
  ASSERT_TRUE(WriteJwks({"rsa", "ed"}).ok());
  clock_.Advance(absl::Seconds(1));
  EXPECT_EQ(ReasonFor("es256"), "unknown_kid");
  EXPECT_EQ(verifier_->cache_size(), 0u);
}

// The non-blocking path never loads keys: it answers from the cache, or verifies a new token
// in full when its key is loaded and no reload is due, and never vouches for a token whose key
// a reload replaced.
TEST_F(TokenVerifierTest, VerifyWithoutBlockingNeverLoadsKeys) {
  std::optional<TokenVerification> fresh = verifier_->VerifyWithoutBlocking(Token("es256"));
  ASSERT_TRUE(fresh.has_value()) << "a new token whose key is loaded is verified here";
  ASSERT_TRUE(fresh->caller.ok());
  EXPECT_EQ((*fresh->caller)->service_identity, "grafana-workflows");
  EXPECT_EQ(verifier_->stats().signature_checks, 1u);
  std::optional<TokenVerification> bad = verifier_->VerifyWithoutBlocking(Token("tampered_es256"));
  ASSERT_TRUE(bad.has_value());
  EXPECT_EQ(bad->failure, AuthFailure::kBadSignature);
  std::optional<TokenVerification> warm = verifier_->VerifyWithoutBlocking(Token("es256"));
  ASSERT_TRUE(warm.has_value());
  ASSERT_TRUE(warm->caller.ok());
  EXPECT_EQ(verifier_->stats().signature_checks, 2u) << "the second answer came from the cache";

  // The file changes (same keys and one more): until the reload is due, the cache answers; then
  // the warm path gives up, and after the reload the old key object no longer vouches.
  ASSERT_TRUE(WriteJwks({"ec", "ec2", "rsa", "ed"}).ok());
  EXPECT_TRUE(verifier_->VerifyWithoutBlocking(Token("es256")).has_value());
  clock_.Advance(absl::Seconds(1));
  EXPECT_FALSE(verifier_->VerifyWithoutBlocking(Token("es256")).has_value()) << "reload due";
  EXPECT_EQ(ReasonFor("ec2"), "accepted");  // loads the new file
  EXPECT_EQ(verifier_->stats().signature_checks, 3u);
  // The reload replaced the key object under "ec": the cached entry no longer vouches, and the
  // token is verified again, here, by the key now published.
  std::optional<TokenVerification> again = verifier_->VerifyWithoutBlocking(Token("es256"));
  ASSERT_TRUE(again.has_value()) << "key replaced, new key loaded";
  EXPECT_TRUE(again->caller.ok());
  EXPECT_EQ(verifier_->stats().signature_checks, 4u) << "es256 verified again, once";
  EXPECT_TRUE(verifier_->VerifyWithoutBlocking(Token("es256")).has_value());
  EXPECT_EQ(verifier_->stats().signature_checks, 4u);

  // Its key removed, a cached token is refused by the full check and leaves the cache; the
  // non-blocking path leaves a kid it does not know to Verify(), which may load keys.
  ASSERT_TRUE(WriteJwks({"rsa", "ed"}).ok());
  clock_.Advance(absl::Seconds(1));
  EXPECT_EQ(ReasonFor("es256"), "unknown_kid");
  EXPECT_FALSE(verifier_->VerifyWithoutBlocking(Token("es256")).has_value());
}

TEST_F(TokenVerifierTest, ConcurrentVerifiesAgree) {
  const std::vector<std::string> good = {"es256", "rs256", "eddsa", "aud_string"};
  const std::vector<std::string> bad = {"tampered_es256", "alg_none", "expired"};
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 25; ++i) {
        for (const std::string& name : good) {
          if (!VerifiedCaller(Token(name)).ok()) ++wrong;
        }
        for (const std::string& name : bad) {
          if (VerifiedCaller(Token(name)).ok()) ++wrong;
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(verifier_->cache_size(), good.size());
}

// --- Key rotation ---

TEST_F(TokenVerifierTest, JwksFileRotationNeedsNoRestart) {
  EXPECT_EQ(ReasonFor("ec2"), "unknown_kid");
  ASSERT_TRUE(WriteJwks({"ec", "ec2", "rsa", "ed"}).ok());
  EXPECT_EQ(ReasonFor("ec2"), "unknown_kid") << "the file is looked at once per second";
  clock_.Advance(absl::Seconds(1));
  EXPECT_EQ(ReasonFor("ec2"), "accepted");
  EXPECT_EQ(ReasonFor("es256"), "accepted");
}

// When the file's reload falls due, callers that find another thread loading must not refuse a
// token of a key that load brings: each waits for it rather than answering unknown_kid.
TEST_F(TokenVerifierTest, JwksFileRotationIsSeenByEveryConcurrentCaller) {
  for (int round = 0; round < 20; ++round) {
    SCOPED_TRACE(round);
    ASSERT_TRUE(WriteJwks({"ec", "rsa", "ed"}).ok());
    clock_.Advance(absl::Seconds(1));
    EXPECT_EQ(ReasonFor("es256"), "accepted");
    ASSERT_TRUE(WriteJwks({"ec", "ec2", "rsa", "ed"}).ok());
    clock_.Advance(absl::Seconds(1));
    std::atomic<int> refused{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 8; ++t) {
      threads.emplace_back([&] {
        if (ReasonFor("ec2") != "accepted") refused.fetch_add(1);
      });
    }
    for (std::thread& thread : threads) thread.join();
    EXPECT_EQ(refused.load(), 0);
  }
}

TEST_F(TokenVerifierTest, JwksUrlRefetchOnUnknownKidIsRateLimited) {
  JwksHttpServer server;
  ASSERT_TRUE(server.Start().ok());
  server.SetResponse(200, JwksDocument(*minted_, {"ec"}));
  JwksUrlOptions url;
  url.url = server.url();
  url.clock = &clock_;
  url.allow_insecure_http = true;
  auto source = UrlJwksSource::Create(url);
  ASSERT_TRUE(source.ok()) << source.status();
  auto verifier = TokenVerifier::Create(Options(), source->get());
  ASSERT_TRUE(verifier.ok()) << verifier.status();

  EXPECT_EQ(Reason(**verifier, Token("es256")), "accepted");
  server.SetResponse(200, JwksDocument(*minted_, {"ec", "ec2"}));  // the issuer rotates
  EXPECT_EQ(Reason(**verifier, Token("ec2")), "unknown_kid") << "fetched less than 30 s ago";
  EXPECT_EQ(server.requests(), 1);
  clock_.Advance(absl::Seconds(30));
  EXPECT_EQ(Reason(**verifier, Token("ec2")), "unknown_kid") << "answered before the refetch";
  (*source)->WaitUntilIdle();
  EXPECT_EQ(Reason(**verifier, Token("ec2")), "accepted");
  EXPECT_EQ(server.requests(), 2);
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(Reason(**verifier, Token("unknown_kid")), "unknown_kid");
  }
  (*source)->WaitUntilIdle();
  EXPECT_EQ(server.requests(), 2);
  clock_.Advance(absl::Seconds(30));
  EXPECT_EQ(Reason(**verifier, Token("unknown_kid")), "unknown_kid");
  (*source)->WaitUntilIdle();
  EXPECT_EQ(server.requests(), 3);
}

// No verification waits for a JWKS fetch (issue 14, item 7): while a refetch hangs at the
// issuer, every concurrent verification of a token with an unknown kid is answered unknown_kid,
// and all of them finish before that fetch does. Without the fix, they queue behind the fetch
// (or make it), and finish only once it times out, after it is counted.
TEST_F(TokenVerifierTest, UnknownKidDuringAJwksFetchIsAnsweredAtOnce) {
  JwksHttpServer server;
  ASSERT_TRUE(server.Start().ok());
  server.SetResponse(200, JwksDocument(*minted_, {"ec"}));
  JwksUrlOptions url;
  url.url = server.url();
  url.clock = &clock_;
  url.allow_insecure_http = true;
  url.fetch_timeout = absl::Seconds(30);
  auto source = UrlJwksSource::Create(url);
  ASSERT_TRUE(source.ok()) << source.status();
  auto verifier = TokenVerifier::Create(Options(), source->get());
  ASSERT_TRUE(verifier.ok()) << verifier.status();
  EXPECT_EQ(Reason(**verifier, Token("es256")), "accepted");

  server.SetResponse(200, JwksDocument(*minted_, {"ec", "ec2"}));
  server.SetHanging(true);
  clock_.Advance(absl::Seconds(30));
  EXPECT_EQ(Reason(**verifier, Token("ec2")), "unknown_kid");  // starts the refetch
  server.WaitForRequests(2);  // the refetch is now in flight, held by the server

  constexpr int kCallers = 8;
  std::atomic<int> unknown{0};
  std::vector<std::thread> callers;
  for (int i = 0; i < kCallers; ++i) {
    callers.emplace_back([&] {
      if (Reason(**verifier, Token(i % 2 == 0 ? "ec2" : "unknown_kid")) == "unknown_kid") {
        unknown.fetch_add(1);
      }
    });
  }
  for (std::thread& caller : callers) caller.join();
  const JwksSourceStats during = (*source)->stats();
  EXPECT_EQ(unknown.load(), kCallers);
  EXPECT_EQ(during.loads + during.load_failures, 1u) << "the refetch had not finished";
  EXPECT_EQ(server.requests(), 2) << "one refetch for them all";
  EXPECT_EQ(Reason(**verifier, Token("es256")), "accepted") << "known keys still verify";

  server.SetHanging(false);
  (*source)->WaitUntilIdle();
  EXPECT_EQ(Reason(**verifier, Token("ec2")), "accepted") << "the refetch brought the new key";
}

}  // namespace
}  // namespace auth
}  // namespace secret_resolver
