// Tests of TokenVerifier: tokens accepted, one test per attack, claims and leeway. Every signed
// token is minted by mint_tokens.py (see token_verifier_fixture.h).
//
// No assertion here prints a token: failures show reason codes and statuses, which never hold
// token text (NoMessageContainsTheToken checks that).
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


// --- Accepted: tokens from PyJWT, all three algorithms ---

TEST_F(TokenVerifierTest, AcceptsEs256FromPyJwt) {
  ExpectCaller(VerifiedCaller(Token("es256")));
}

TEST_F(TokenVerifierTest, AcceptsRs256FromPyJwt) {
  ExpectCaller(VerifiedCaller(Token("rs256")));
}

TEST_F(TokenVerifierTest, AcceptsEdDsaFromPyJwt) {
  ExpectCaller(VerifiedCaller(Token("eddsa")));
}

TEST_F(TokenVerifierTest, AcceptsTheCallerThroughAccessPolicy) {
  absl::StatusOr<Caller> caller = VerifiedCaller(Token("eddsa"));
  ASSERT_TRUE(caller.ok()) << caller.status();
  EXPECT_TRUE(CheckStack(*caller, "stack-123", AccessPolicyOptions()).ok());
  EXPECT_TRUE(HasDecryptPermission(*caller, "anything"));
}

TEST_F(TokenVerifierTest, AcceptsVariantsOfValidClaimsAndHeaders) {
  for (const char* name :
       {"aud_string", "typ_upper", "typ_media_type", "no_nbf_iat", "whole_float_exp", "exp_23h"}) {
    SCOPED_TRACE(name);
    EXPECT_EQ(ReasonFor(name), "accepted");
  }
}

TEST_F(TokenVerifierTest, MissingPermissionsMeansNone) {
  absl::StatusOr<Caller> caller = VerifiedCaller(Token("no_permissions"));
  ASSERT_TRUE(caller.ok()) << caller.status();
  EXPECT_THAT(caller->permissions, IsEmpty());
  EXPECT_FALSE(HasDecryptPermission(*caller, "db-password"));
}

TEST_F(TokenVerifierTest, MissingTypIsRejectedUnlessAllowed) {
  EXPECT_EQ(ReasonFor("no_typ"), "wrong_type");
  TokenVerifierOptions options = Options();
  options.allow_missing_typ = true;
  auto lenient = MakeVerifier(options);
  EXPECT_EQ(Reason(*lenient, Token("no_typ")), "accepted");
  EXPECT_EQ(Reason(*lenient, Token("typ_jwt")), "wrong_type") << "a present typ must be at+jwt";
}

// --- One test per attack ---

TEST_F(TokenVerifierTest, RejectsAlgNone) {
  ASSERT_TRUE(Parts(Token("alg_none"))[2].empty());  // really unsigned
  EXPECT_EQ(ReasonFor("alg_none"), "bad_alg");
}

TEST_F(TokenVerifierTest, RejectsHs256SignedWithThePublicKey) {
  EXPECT_EQ(ReasonFor("hs256_public_key"), "bad_alg");
  EXPECT_EQ(ReasonFor("hs256_public_key_ec"), "bad_alg");
}

TEST_F(TokenVerifierTest, RejectsAlgNotMatchingTheKeyType) {
  for (const char* name : {"es256_on_rsa_kid", "es256_on_ed_kid", "rs256_on_ec_kid",
                           "rs256_on_ed_kid", "eddsa_on_rsa_kid", "eddsa_on_ec_kid"}) {
    SCOPED_TRACE(name);
    EXPECT_EQ(ReasonFor(name), "bad_alg");
  }
}

TEST_F(TokenVerifierTest, RejectsAlgOutsideTheAllowList) {
  for (const char* name : {"rs384", "ps256", "es384"}) {
    SCOPED_TRACE(name);
    EXPECT_EQ(ReasonFor(name), "bad_alg");
  }
}

TEST_F(TokenVerifierTest, RejectsAlgDifferentFromTheJwkAlg) {
  nlohmann::json rsa = minted_->public_jwks.at("rsa");
  rsa["alg"] = "RS512";  // the issuer says this key signs RS512 only
  ASSERT_TRUE(WriteFileAtomically(jwks_path_, nlohmann::json{{"keys", {rsa}}}.dump()).ok());
  ASSERT_TRUE(source_->Reload().ok());
  EXPECT_EQ(ReasonFor("rs256"), "bad_alg");
}

TEST_F(TokenVerifierTest, RejectsMissingKid) { EXPECT_EQ(ReasonFor("missing_kid"), "missing_kid"); }

TEST_F(TokenVerifierTest, RejectsUnknownKid) { EXPECT_EQ(ReasonFor("unknown_kid"), "unknown_kid"); }

TEST_F(TokenVerifierTest, RejectsBadSignature) {
  for (const char* name :
       {"tampered_es256", "tampered_rs256", "tampered_eddsa", "other_key_same_kid"}) {
    SCOPED_TRACE(name);
    EXPECT_EQ(ReasonFor(name), "bad_signature");
  }
}

// Each key lends pooled OpenSSL contexts for RS256 and ES256 (verification_key.h): a context
// goes back after a signature that did not match, and a key's contexts pass between threads.
TEST_F(TokenVerifierTest, PooledVerificationContextsStayCorrectAcrossFailuresAndThreads) {
  TokenVerifierOptions options = Options();
  options.cache_capacity = 0;  // every call checks a signature
  std::unique_ptr<TokenVerifier> verifier = MakeVerifier(options);
  ASSERT_NE(verifier, nullptr);
  const std::pair<const char*, const char*> kinds[] = {
      {"es256", "accepted"}, {"tampered_es256", "bad_signature"},
      {"rs256", "accepted"}, {"tampered_rs256", "bad_signature"},
      {"eddsa", "accepted"}, {"tampered_eddsa", "bad_signature"},
      {"other_key_same_kid", "bad_signature"}};
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 40; ++i) {
        const auto& [name, want] = kinds[(i + t) % (sizeof(kinds) / sizeof(kinds[0]))];
        if (Reason(*verifier, Token(name)) != want) wrong.fetch_add(1);
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(verifier->stats().signature_checks, 160u);
}

TEST_F(TokenVerifierTest, RejectsSignatureOfTheWrongLength) {
  // A DER ECDSA signature or a truncated one is not a JOSE signature, even if it would verify.
  std::vector<std::string> p = Parts(Token("es256"));
  std::string sig = *Base64UrlDecode(p[2]);
  for (const std::string& bad : {sig.substr(0, 63), sig + std::string(1, '\0'), std::string()}) {
    EXPECT_EQ(Reason(*verifier_, absl::StrCat(p[0], ".", p[1], ".", Base64UrlEncode(bad))),
              "bad_signature");
  }
  std::vector<std::string> r = Parts(Token("rs256"));
  std::string rsa_sig = *Base64UrlDecode(r[2]);
  EXPECT_EQ(Reason(*verifier_, absl::StrCat(r[0], ".", r[1], ".",
                                            Base64UrlEncode(std::string(1, '\0') + rsa_sig))),
            "bad_signature");
}

TEST_F(TokenVerifierTest, RejectsExpired) { EXPECT_EQ(ReasonFor("expired"), "expired"); }

TEST_F(TokenVerifierTest, RejectsNbfInTheFuture) {
  EXPECT_EQ(ReasonFor("nbf_future"), "not_yet_valid");
}

TEST_F(TokenVerifierTest, RejectsIatInTheFuture) {
  EXPECT_EQ(ReasonFor("iat_future"), "not_yet_valid");
}

TEST_F(TokenVerifierTest, RejectsWrongIssuer) {
  EXPECT_EQ(ReasonFor("wrong_iss"), "wrong_issuer");
  EXPECT_EQ(ReasonFor("no_iss"), "wrong_issuer");
}

TEST_F(TokenVerifierTest, RejectsAudienceWithoutOurs) {
  EXPECT_EQ(ReasonFor("aud_without_ours"), "wrong_audience");
  EXPECT_EQ(ReasonFor("aud_string_other"), "wrong_audience");
  EXPECT_EQ(ReasonFor("no_aud"), "wrong_audience");
}

TEST_F(TokenVerifierTest, RejectsWrongTyp) {
  EXPECT_EQ(ReasonFor("typ_jwt"), "wrong_type");
  EXPECT_EQ(ReasonFor("typ_id_token"), "wrong_type");  // Grafana ID tokens are typ "jwt"
}

TEST_F(TokenVerifierTest, AcceptsATokenJustUnder16KiB) {
  ASSERT_GT(Token("big_but_fine").size(), 15u * 1024);
  ASSERT_LE(Token("big_but_fine").size(), 16u * 1024);
  EXPECT_EQ(ReasonFor("big_but_fine"), "accepted");
}

TEST_F(TokenVerifierTest, RejectsTokenOver16KiB) {
  ASSERT_GT(Token("too_large").size(), 16u * 1024);
  EXPECT_EQ(ReasonFor("too_large"), "too_large");
  EXPECT_EQ(verifier_->stats().signature_checks, 0u);
  // The same token is otherwise valid: only its size is wrong.
  TokenVerifierOptions options = Options();
  options.max_token_bytes = 64 * 1024;
  EXPECT_EQ(Reason(*MakeVerifier(options), Token("too_large")), "accepted");
}

TEST_F(TokenVerifierTest, RejectsMalformedBase64Url) {
  std::vector<std::string> p = Parts(Token("es256"));
  auto join = [](absl::string_view a, absl::string_view b, absl::string_view c) {
    return absl::StrCat(a, ".", b, ".", c);
  };
  std::string header_std_alphabet = p[0];
  header_std_alphabet[3] = '+';
  std::string payload_std_alphabet = p[1];
  payload_std_alphabet[5] = '/';
  const std::vector<std::string> cases = {
      join(header_std_alphabet, p[1], p[2]),
      join(p[0], payload_std_alphabet, p[2]),
      join(p[0] + "=", p[1], p[2]),    // padding
      join(p[0], p[1] + "==", p[2]),   // padding
      join(p[0], p[1], p[2] + "="),    // padding
      join(p[0], p[1], p[2] + "AAA"),  // a length no encoding has
      join(p[0], " " + p[1], p[2]),    // whitespace
      join(p[0], p[1], p[2] + "*"),
      join("", p[1], p[2]),
      absl::StrCat(p[0], ".", p[1]),                        // two parts
      absl::StrCat(p[0], ".", p[1], ".", p[2], ".", p[2]),  // four parts
      "",
      "..",
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE(absl::StrCat("case ", i));
    EXPECT_EQ(Reason(*verifier_, cases[i]), "malformed");
  }
}

// Whitespace and control bytes are judged by the verifier, for tokens not in its cache, eight
// bytes at a time: every byte value at every position of the word and of the tail must be
// judged as a plain loop would judge it.
TEST_F(TokenVerifierTest, WhitespaceOrControlAnywhereIsMalformed) {
  for (int byte = 0; byte < 256; ++byte) {
    const bool bad = byte <= 0x20 || byte == 0x7f;
    for (size_t length : {1, 7, 8, 9, 16, 19}) {
      for (size_t at = 0; at < length; ++at) {
        std::string token(length, 'a');
        token[at] = static_cast<char>(byte);
        const absl::Status status = verifier_->Verify(token).caller.status();
        ASSERT_EQ(AuthFailureOf(status), AuthFailure::kMalformed);
        EXPECT_EQ(absl::StrContains(status.message(), "whitespace"), bad)
            << "byte " << byte << " at " << at << " of " << length;
      }
    }
  }
  // A verified token with a byte added is not a cache hit.
  const std::string token = Token("es256");
  ExpectCaller(VerifiedCaller(token));
  for (absl::string_view extra : {" x", "\tx", "\x7f"}) {
    EXPECT_EQ(Reason(*verifier_, absl::StrCat(token, extra)), "malformed") << extra.size();
  }
}

// A credential header carrying more than one word is refused, whichever header it is in.
TEST_F(TokenVerifierTest, CredentialOfTwoWordsIsRefused) {
  const std::string token = Token("es256");
  ExpectCaller(VerifiedCaller(token));  // cached: the second word must still count
  for (const auto& [direct, authorization] :
       std::vector<std::pair<std::optional<std::string>, std::optional<std::string>>>{
           {std::nullopt, absl::StrCat("Bearer ", token, " ", token)},
           {absl::StrCat(token, " x"), std::nullopt},
           {token, absl::StrCat("Bearer ", token, " x")}}) {
    absl::StatusOr<absl::string_view> credential = CredentialFromMetadata(direct, authorization);
    const absl::Status status =
        credential.ok() ? verifier_->Verify(*credential).caller.status() : credential.status();
    EXPECT_EQ(status.code(), absl::StatusCode::kUnauthenticated);
    EXPECT_NE(AuthFailureOf(status), AuthFailure::kNone);
  }
}

TEST_F(TokenVerifierTest, RejectsNonCanonicalBase64Url) {
  // The ES256 signature is 64 bytes: 86 characters whose last carries 4 unused bits. Setting
  // one spells the same bytes a second way, which must not be accepted.
  std::vector<std::string> p = Parts(Token("es256"));
  ASSERT_EQ(p[2].size(), 86u);
  std::string sig = p[2];
  const std::string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  sig.back() = alphabet[alphabet.find(sig.back()) | 1];
  ASSERT_NE(sig, p[2]);
  EXPECT_EQ(Reason(*verifier_, absl::StrCat(p[0], ".", p[1], ".", sig)), "malformed");
}

TEST_F(TokenVerifierTest, RejectsMalformedJson) {
  std::vector<std::string> p = Parts(Token("es256"));
  auto with_header = [&](absl::string_view header_json) {
    return absl::StrCat(Base64UrlEncode(header_json), ".", p[1], ".", p[2]);
  };
  const std::vector<std::string> headers = {
      R"({"alg":"ES256","kid":"ec","typ":"at+jwt")",  // truncated
      R"(["ES256"])",
      R"("ES256")",
      R"({"alg":"none","alg":"ES256","kid":"ec","typ":"at+jwt"})",  // duplicate member
      "{\"alg\":\"ES256\",\"kid\":\"ec\",\"typ\":\"at+jwt\"}\xff",
  };
  for (const std::string& h : headers) {
    SCOPED_TRACE(h);
    EXPECT_EQ(Reason(*verifier_, with_header(h)), "malformed");
  }
  // Signed claim sets that are not one JSON object with unique members.
  for (const char* name : {"payload_not_json", "payload_array", "payload_duplicate_iss"}) {
    SCOPED_TRACE(name);
    EXPECT_EQ(ReasonFor(name), "malformed");
  }
}

TEST_F(TokenVerifierTest, RejectsBothHeadersPresentAndDifferent) {
  auto credential = CredentialFromMetadata(Token("es256"), absl::StrCat("Bearer ", Token("eddsa")));
  EXPECT_EQ(credential.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(AuthFailureOf(credential.status()), AuthFailure::kConflictingCredentials);
}

TEST_F(TokenVerifierTest, RejectsWeakRsaKey) { EXPECT_EQ(ReasonFor("rsa1024"), "weak_key"); }

TEST_F(TokenVerifierTest, RejectsCritHeader) { EXPECT_EQ(ReasonFor("crit"), "malformed"); }

TEST_F(TokenVerifierTest, RejectsMissingExp) { EXPECT_EQ(ReasonFor("no_exp"), "missing_claim"); }

// A token without a namespace or service identity verifies (Grafana's decrypt API answers it
// "not authorized" per name), but ResolveSecrets refuses it as missing_claim.
TEST_F(TokenVerifierTest, IdentityClaimsAreRequiredForResolvingOnly) {
  for (const char* name : {"no_namespace", "no_service_identity", "service_identity_two",
                           "service_identity_empty_array", "service_identity_blank"}) {
    SCOPED_TRACE(name);
    absl::StatusOr<Caller> caller = VerifiedCaller(Token(name));
    ASSERT_TRUE(caller.ok()) << caller.status();
    const absl::Status resolving = ClaimsForResolving(*caller);
    EXPECT_EQ(resolving.code(), absl::StatusCode::kUnauthenticated);
    EXPECT_EQ(AuthFailureOf(resolving), AuthFailure::kMissingClaim);
  }
  absl::StatusOr<Caller> complete = VerifiedCaller(Token("es256"));
  ASSERT_TRUE(complete.ok());
  EXPECT_TRUE(ClaimsForResolving(*complete).ok());
}

TEST_F(TokenVerifierTest, ReadsIdentityClaimsFromTheTopLevelOnly) {
  // authlib's AccessTokenClaims are top-level members; an `ext` object is not consulted.
  absl::StatusOr<Caller> caller = VerifiedCaller(Token("claims_under_ext"));
  ASSERT_TRUE(caller.ok()) << caller.status();
  EXPECT_THAT(caller->token_namespace, IsEmpty());
  EXPECT_THAT(caller->service_identity, IsEmpty());
}

TEST_F(TokenVerifierTest, ServiceIdentityIsAStringOrOneElementArrayTrimmed) {
  for (const char* name : {"service_identity_array", "service_identity_padded"}) {
    SCOPED_TRACE(name);
    absl::StatusOr<Caller> caller = VerifiedCaller(Token(name));
    ASSERT_TRUE(caller.ok()) << caller.status();
    EXPECT_EQ(caller->service_identity, "grafana-workflows");
  }
}

TEST_F(TokenVerifierTest, DelegatedTokensCarryNoPermissions) {
  for (const char* name :
       {"act_user", "act_service_account_by_sub", "act_nested_user"}) {
    SCOPED_TRACE(name);
    absl::StatusOr<Caller> caller = VerifiedCaller(Token(name));
    ASSERT_TRUE(caller.ok()) << caller.status();
    EXPECT_THAT(caller->permissions, IsEmpty());
    EXPECT_FALSE(HasAnyDecryptPermission(*caller));
  }
  // Only the innermost actor counts, and an access policy there is not a delegation.
  for (const char* name : {"act_access_policy", "act_user_outer_policy_inner"}) {
    SCOPED_TRACE(name);
    absl::StatusOr<Caller> caller = VerifiedCaller(Token(name));
    ASSERT_TRUE(caller.ok()) << caller.status();
    EXPECT_TRUE(HasDecryptPermission(*caller, "db-password"));
  }
}

TEST_F(TokenVerifierTest, ExpMustBeWholeSecondsWithinTheMaximumLifetime) {
  for (const char* name : {"fractional_exp", "exp_1e30", "exp_past_int64"}) {
    SCOPED_TRACE(name);
    EXPECT_EQ(ReasonFor(name), "malformed");
  }
  EXPECT_EQ(ReasonFor("exp_25h"), "too_long_lived");
  EXPECT_EQ(ReasonFor("exp_year_33658"), "too_long_lived");
  TokenVerifierOptions options = Options();
  options.max_token_lifetime = absl::Hours(26);
  auto longer = MakeVerifier(options);
  EXPECT_EQ(Reason(*longer, Token("exp_25h")), "accepted");
  options.max_token_lifetime = absl::Hours(22);
  auto shorter = MakeVerifier(options);
  EXPECT_EQ(Reason(*shorter, Token("exp_23h")), "too_long_lived");
}

TEST_F(TokenVerifierTest, AcceptsAnyConfiguredAudience) {
  EXPECT_EQ(ReasonFor("grafana_audience"), "wrong_audience");
  TokenVerifierOptions options = Options();
  options.audiences.push_back("secret.grafana.app");
  auto both = MakeVerifier(options);
  EXPECT_EQ(Reason(*both, Token("grafana_audience")), "accepted");
  EXPECT_EQ(Reason(*both, Token("es256")), "accepted");
  EXPECT_EQ(Reason(*both, Token("aud_without_ours")), "wrong_audience");
}

TEST_F(TokenVerifierTest, AlgorithmsCanBeNarrowed) {
  TokenVerifierOptions options = Options();
  options.algorithms = {"ES256"};
  auto es256_only = MakeVerifier(options);
  EXPECT_EQ(Reason(*es256_only, Token("es256")), "accepted");
  EXPECT_EQ(Reason(*es256_only, Token("rs256")), "bad_alg");
  EXPECT_EQ(Reason(*es256_only, Token("eddsa")), "bad_alg");
}

TEST_F(TokenVerifierTest, RejectsClaimsOfTheWrongType) {
  for (const char* name :
       {"permissions_string", "permissions_mixed", "exp_string", "namespace_number",
        "service_identity_number", "service_identity_array_number", "act_string",
        "act_sub_number"}) {
    SCOPED_TRACE(name);
    EXPECT_EQ(ReasonFor(name), "malformed");
  }
}

TEST_F(TokenVerifierTest, NoMessageContainsTheToken) {
  for (const auto& [name, token] : minted_->tokens) {
    absl::StatusOr<Caller> caller = VerifiedCaller(token);
    if (caller.ok()) continue;
    const std::string message = caller.status().ToString();
    for (const std::string& part : Parts(token)) {
      if (part.size() < 8) continue;
      EXPECT_THAT(message, Not(HasSubstr(part))) << "token " << name;
    }
  }
}

// --- Leeway ---

TEST_F(TokenVerifierTest, ExpiryLeewayEdges) {
  TokenVerifierOptions options = Options();
  options.cache_capacity = 0;
  auto verifier = MakeVerifier(options);
  clock_.SetTime(absl::FromUnixSeconds(kExp + 59));
  EXPECT_EQ(Reason(*verifier, Token("es256")), "accepted");
  clock_.SetTime(absl::FromUnixSeconds(kExp + 60));
  EXPECT_EQ(Reason(*verifier, Token("es256")), "expired");

  options.leeway = absl::ZeroDuration();
  auto strict = MakeVerifier(options);
  clock_.SetTime(absl::FromUnixSeconds(kExp) - absl::Milliseconds(1));
  EXPECT_EQ(Reason(*strict, Token("es256")), "accepted");
  clock_.SetTime(absl::FromUnixSeconds(kExp));
  EXPECT_EQ(Reason(*strict, Token("es256")), "expired");
}

TEST_F(TokenVerifierTest, NotBeforeAndIssuedAtLeewayEdges) {
  EXPECT_EQ(ReasonFor("nbf_at_leeway"), "accepted");
  EXPECT_EQ(ReasonFor("iat_at_leeway"), "accepted");
  EXPECT_EQ(ReasonFor("nbf_past_leeway"), "not_yet_valid");
  clock_.Advance(absl::Seconds(1));
  EXPECT_EQ(ReasonFor("nbf_past_leeway"), "accepted");
}

TEST_F(TokenVerifierTest, RejectsBadOptions) {
  TokenVerifierOptions options = Options();
  options.issuer.clear();
  EXPECT_EQ(TokenVerifier::Create(options, source_.get()).status().code(),
            absl::StatusCode::kInvalidArgument);
  options = Options();
  options.audiences.clear();
  EXPECT_EQ(TokenVerifier::Create(options, source_.get()).status().code(),
            absl::StatusCode::kInvalidArgument);
  options = Options();
  options.audiences.push_back("");
  EXPECT_EQ(TokenVerifier::Create(options, source_.get()).status().code(),
            absl::StatusCode::kInvalidArgument);
  options = Options();
  options.algorithms = {"HS256"};
  EXPECT_EQ(TokenVerifier::Create(options, source_.get()).status().code(),
            absl::StatusCode::kInvalidArgument);
  options = Options();
  options.max_token_lifetime = absl::ZeroDuration();
  EXPECT_EQ(TokenVerifier::Create(options, source_.get()).status().code(),
            absl::StatusCode::kInvalidArgument);
  options = Options();
  options.leeway = absl::Seconds(-1);
  EXPECT_EQ(TokenVerifier::Create(options, source_.get()).status().code(),
            absl::StatusCode::kInvalidArgument);
  options = Options();
  options.clock = nullptr;
  EXPECT_EQ(TokenVerifier::Create(options, source_.get()).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(TokenVerifier::Create(Options(), nullptr).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace auth
}  // namespace secret_resolver
