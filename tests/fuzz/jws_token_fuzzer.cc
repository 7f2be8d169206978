// Fuzz target for the JWS compact token path of TokenVerifier (server/auth/token_verifier.h):
// splitting, base64url, header and claims JSON, key lookup in a fixed JWKS, the signature
// check against real keys, and claim validation.
//
// The first input byte chooses how the rest becomes a token:
// - bit 0 clear: the rest is the token itself (the corpus holds valid tokens signed by the
//   fixed keys below, for mutations to start from);
// - bit 0 set: the rest is a claim set, or, with bit 2 set, a header, a newline and a claim set;
//   the target signs it with a fixed private key (Ed25519, or with bit 1 set P-256), so that
//   mutated claims get past the signature and reach claim validation.
//
// Invariants, checked with abort():
// - The outcome is consistent: OK exactly when the failure is kNone; otherwise UNAUTHENTICATED
//   with the failure as its payload; the message is short printable ASCII and holds no part of
//   a token (no run of 16 base64url characters).
// - A token signed by our keys and accepted validates to the same caller through
//   ValidateClaims directly, and a second Verify (a cache hit) and VerifyWithoutBlocking give
//   the very same caller.
// - Verification leaves no error on OpenSSL's thread-local queue.
// - On a signed claim set, ValidateClaims (a one-pass reader) and the document-based reference
//   it replaced (reference_claims.h) give the same status and, when OK, the same claims.
//
// The keys are the fixed test keys of tests/fuzz/fuzz_signing.h.
#include <openssl/err.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "resolver/access_policy.h"
#include "server/auth/auth_failure.h"
#include "server/auth/base64url.h"
#include "server/auth/claims_validator.h"
#include "server/auth/token_verifier.h"
#include "tests/fakes/fake_clock.h"
#include "tests/fuzz/fuzz_signing.h"
#include "tests/fuzz/reference_claims.h"

namespace {

using secret_resolver::Caller;
using secret_resolver::FakeClock;
using namespace secret_resolver::auth;  // NOLINT: the whole auth package is under test

using secret_resolver::fuzzing::FixedJwksSource;
using secret_resolver::fuzzing::kFuzzEd25519Pem;
using secret_resolver::fuzzing::kFuzzP256Pem;
using secret_resolver::fuzzing::LoadPrivateKey;
using secret_resolver::fuzzing::PkeyPtr;
using secret_resolver::fuzzing::Sign;

constexpr char kIssuer[] = "https://issuer.test/";
constexpr char kAudience[] = "secret-resolver";
constexpr int64_t kNow = 1700000000;  // the corpus's tokens are valid at this time

struct Fixture {
  Fixture()
      : ed(LoadPrivateKey(kFuzzEd25519Pem)),
        p256(LoadPrivateKey(kFuzzP256Pem)),
        source(std::make_unique<FixedJwksSource>()) {
    clock.SetTime(absl::FromUnixSeconds(kNow));
  }
  PkeyPtr ed;
  PkeyPtr p256;
  std::unique_ptr<FixedJwksSource> source;
  FakeClock clock;
};

Fixture& TheFixture() {
  static Fixture* fixture = new Fixture();
  return *fixture;
}

bool ShortPrintable(absl::string_view text) {
  if (text.size() > 300) return false;
  for (char c : text) {
    if (c < 0x20 || c > 0x7e) return false;
  }
  return true;
}

// True if `message` holds 16 base64url characters in a row. No message the verifier writes has
// (its longest such run is a word of 15), so such a run could only be copied from a token part.
// (Comparing with the token itself would blame a token that spells out part of a message.)
bool HasTokenLikeRun(absl::string_view message) {
  constexpr size_t kRun = 16;
  size_t run = 0;
  for (char c : message) {
    const bool b64 = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                     c == '-' || c == '_';
    run = b64 ? run + 1 : 0;
    if (run >= kRun) return true;
  }
  return false;
}

bool SameCaller(const Caller& a, const Caller& b) {
  return a.token_namespace == b.token_namespace && a.service_identity == b.service_identity &&
         a.permissions == b.permissions;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  Fixture& f = TheFixture();
  const uint8_t mode = data[0];
  const absl::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);

  std::string token;
  std::optional<std::string> signed_claims;
  if ((mode & 1) == 0) {
    token = std::string(rest);
  } else {
    const bool p256 = (mode & 2) != 0;
    std::string header = p256 ? R"({"alg":"ES256","kid":"ec","typ":"at+jwt"})"
                              : R"({"alg":"EdDSA","kid":"ed","typ":"at+jwt"})";
    absl::string_view claims = rest;
    if ((mode & 4) != 0) {
      const size_t newline = rest.find('\n');
      if (newline == absl::string_view::npos) return 0;
      header = std::string(rest.substr(0, newline));
      claims = rest.substr(newline + 1);
    }
    const std::string input =
        absl::StrCat(Base64UrlEncode(header), ".", Base64UrlEncode(claims));
    token = absl::StrCat(input, ".",
                         Base64UrlEncode(Sign(p256 ? f.p256.get() : f.ed.get(), p256, input)));
    signed_claims = std::string(claims);
  }

  TokenVerifierOptions options;
  options.issuer = kIssuer;
  options.audiences = {kAudience, "secret.grafana.app"};
  options.clock = &f.clock;
  options.cache_capacity = 4;
  absl::StatusOr<std::unique_ptr<TokenVerifier>> created =
      TokenVerifier::Create(options, f.source.get());
  FUZZ_CHECK(created.ok());
  TokenVerifier& verifier = **created;

  ClaimsPolicy policy;
  policy.issuer = options.issuer;
  policy.audiences = options.audiences;
  if (signed_claims.has_value()) {
    // ValidateClaims reads in one pass; the reference reads a whole document. Same verdict, same
    // message, same claims, whatever the bytes.
    const absl::StatusOr<ValidatedClaims> direct =
        ValidateClaims(*signed_claims, policy, f.clock.Now());
    const absl::StatusOr<ValidatedClaims> with_document =
        reference::ValidateClaimsWithDocument(*signed_claims, policy, f.clock.Now());
    FUZZ_CHECK(direct.status() == with_document.status());
    if (direct.ok()) {
      FUZZ_CHECK(SameCaller(direct->caller, with_document->caller));
      FUZZ_CHECK(direct->expires == with_document->expires);
      FUZZ_CHECK(direct->valid_from == with_document->valid_from);
    }
  }

  const TokenVerification result = verifier.Verify(token);
  FUZZ_CHECK(ERR_peek_error() == 0);
  if (!result.caller.ok()) {
    const absl::Status& status = result.caller.status();
    FUZZ_CHECK(result.failure != AuthFailure::kNone);
    FUZZ_CHECK(status.code() == absl::StatusCode::kUnauthenticated);
    FUZZ_CHECK(AuthFailureOf(status) == result.failure);
    FUZZ_CHECK(ShortPrintable(status.message()));
    FUZZ_CHECK(!HasTokenLikeRun(status.message()));
    return 0;
  }
  FUZZ_CHECK(result.failure == AuthFailure::kNone);
  const Caller& caller = **result.caller;

  if (signed_claims.has_value()) {
    const absl::StatusOr<ValidatedClaims> direct =
        ValidateClaims(*signed_claims, policy, f.clock.Now());
    FUZZ_CHECK(direct.ok());
    FUZZ_CHECK(SameCaller(direct->caller, caller));
  }
  const TokenVerification again = verifier.Verify(token);
  FUZZ_CHECK(again.caller.ok() && *again.caller == *result.caller);
  const std::optional<TokenVerification> warm = verifier.VerifyWithoutBlocking(token);
  FUZZ_CHECK(warm.has_value() && warm->caller.ok() && *warm->caller == *result.caller);
  FUZZ_CHECK(verifier.stats().signature_checks == 1);
  return 0;
}
