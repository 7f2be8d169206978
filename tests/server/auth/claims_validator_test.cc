// Tests of ValidateClaims on claim sets given directly as JSON (the signed-token path through
// the verifier is in token_verifier_test.cc), and of ClaimsForResolving.
#include "server/auth/claims_validator.h"

#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "server/auth/auth_failure.h"

namespace secret_resolver {
namespace auth {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

constexpr int64_t kNow = 1700000000;

ClaimsPolicy Policy() {
  ClaimsPolicy policy;
  policy.issuer = "https://issuer.test/";
  policy.audiences = {"secret-resolver", "secret.grafana.app"};
  return policy;
}

nlohmann::json Claims() {
  return {{"iss", "https://issuer.test/"},
          {"aud", "secret.grafana.app"},
          {"exp", kNow + 600},
          {"nbf", kNow - 10},
          {"iat", kNow - 20},
          {"namespace", "stacks-1"},
          {"serviceIdentity", {" grafana-workflows "}},
          {"permissions", {"secret.grafana.app/securevalues:decrypt"}}};
}

std::string Reason(const nlohmann::json& claims) {
  absl::StatusOr<ValidatedClaims> got =
      ValidateClaims(claims.dump(), Policy(), absl::FromUnixSeconds(kNow));
  return got.ok() ? "accepted" : std::string(AuthFailureReason(AuthFailureOf(got.status())));
}

TEST(ValidateClaimsTest, ReadsTheCallerAndItsValidity) {
  absl::StatusOr<ValidatedClaims> got =
      ValidateClaims(Claims().dump(), Policy(), absl::FromUnixSeconds(kNow));
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->caller.token_namespace, "stacks-1");
  EXPECT_EQ(got->caller.service_identity, "grafana-workflows");
  EXPECT_THAT(got->caller.permissions, ElementsAre("secret.grafana.app/securevalues:decrypt"));
  EXPECT_EQ(got->expires, absl::FromUnixSeconds(kNow + 600));
  EXPECT_EQ(got->valid_from, absl::FromUnixSeconds(kNow - 10));
  EXPECT_TRUE(ClaimsForResolving(got->caller).ok());
}

TEST(ValidateClaimsTest, EachRuleHasItsReason) {
  struct Case {
    const char* label;
    nlohmann::json patch;
    const char* reason;
  };
  const Case cases[] = {
      {"no exp", {{"exp", nullptr}}, "missing_claim"},
      {"expired", {{"exp", kNow - 60}}, "expired"},
      {"beyond lifetime", {{"exp", kNow + 25 * 3600}}, "too_long_lived"},
      {"fractional exp", {{"exp", kNow + 0.5}}, "malformed"},
      {"nbf ahead", {{"nbf", kNow + 61}}, "not_yet_valid"},
      {"iat not a number", {{"iat", "now"}}, "malformed"},
      {"other issuer", {{"iss", "https://other.test/"}}, "wrong_issuer"},
      {"other audience", {{"aud", {"grafana"}}}, "wrong_audience"},
      {"audience not a string", {{"aud", 7}}, "malformed"},
      {"permissions not a list", {{"permissions", "x"}}, "malformed"},
      {"act not an object", {{"act", "user:1"}}, "malformed"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.label);
    nlohmann::json claims = Claims();
    claims.merge_patch(c.patch);
    EXPECT_EQ(Reason(claims), c.reason);
  }
  EXPECT_EQ(Reason(nlohmann::json::array()), "malformed");
}

TEST(ValidateClaimsTest, DelegatedTokenKeepsNoPermissions) {
  nlohmann::json claims = Claims();
  claims["act"] = {{"sub", "service-account:3"}};
  absl::StatusOr<ValidatedClaims> got =
      ValidateClaims(claims.dump(), Policy(), absl::FromUnixSeconds(kNow));
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_THAT(got->caller.permissions, IsEmpty());
}

// The claim set is read in one pass without a document (claims_validator.cc); it must hold
// ParseStrictJson's rules wherever they apply, members no check reads included.
TEST(ValidateClaimsTest, ReadsStrictlyWithoutADocument) {
  const std::string good = Claims().dump();
  const std::string body = good.substr(1, good.size() - 2);  // the members, without braces
  const auto reason = [](const std::string& text) {
    absl::StatusOr<ValidatedClaims> got =
        ValidateClaims(text, Policy(), absl::FromUnixSeconds(kNow));
    return got.ok() ? "accepted" : std::string(AuthFailureReason(AuthFailureOf(got.status())));
  };
  EXPECT_EQ(reason(good), "accepted");
  for (const std::string& bad : {
           "{" + body + R"(,"iss":"https://issuer.test/"})",         // a checked claim twice
           "{" + body + R"(,"jti":1,"jti":1})",                        // an unread member twice
           "{" + body + R"(,"x":{"deep":[{"a":1,"a":2}]}})",           // twice, deep inside one
           "{" + body + R"(,"act":{"sub":"a","sub":"b"}})",            // twice in an actor
           "{" + body + R"(,"x":1} )" + "{}",                          // trailing text
           "{" + body + ",\"x\":\"\xff\"}",                         // invalid UTF-8
           "{" + body + R"(,"x":1,})",                                 // a trailing comma
           "{" + body + "} // comment",
       }) {
    SCOPED_TRACE(bad);
    EXPECT_EQ(reason(bad), "malformed");
  }
  // Thirty-two open containers (the object itself and 31 arrays) are allowed; 33 are not.
  EXPECT_EQ(reason("{" + body + R"(,"x":)" + std::string(31, '[') + std::string(31, ']') + "}"),
            "accepted");
  EXPECT_EQ(reason("{" + body + R"(,"x":)" + std::string(32, '[') + std::string(32, ']') + "}"),
            "malformed");
  // The same member name in sibling objects, or at two depths, is no repetition.
  EXPECT_EQ(reason("{" + body + R"(,"x":{"iss":1},"y":{"iss":2,"z":{"iss":3}}})"), "accepted");
}

TEST(ValidateClaimsTest, ActChainRules) {
  // `act` nested `depth` times, innermost `inner`.
  const auto chain = [](int depth, nlohmann::json inner) {
    nlohmann::json act = std::move(inner);
    for (int i = 1; i < depth; ++i) act = {{"sub", "service:x"}, {"act", act}};
    nlohmann::json claims = Claims();
    claims["act"] = act;
    return claims;
  };
  const nlohmann::json user = {{"type", "user"}};
  EXPECT_EQ(Reason(chain(16, user)), "accepted");
  EXPECT_EQ(Reason(chain(17, user)), "malformed");
  EXPECT_EQ(Reason(chain(16, {{"sub", "user:1"}, {"act", nullptr}})), "accepted");
  EXPECT_EQ(Reason(chain(3, nullptr)), "accepted");  // a null link ends the chain
  EXPECT_EQ(Reason(chain(3, 5)), "malformed");
  EXPECT_EQ(Reason(chain(3, nlohmann::json::array({user}))), "malformed");
  EXPECT_EQ(Reason(chain(3, {{"type", 7}})), "malformed");  // the innermost's type is read
  // An outer actor's type and sub are not read; only the innermost actor decides.
  nlohmann::json claims = Claims();
  claims["act"] = {{"type", 7}, {"sub", false}, {"act", {{"sub", "service:2"}}}};
  absl::StatusOr<ValidatedClaims> got =
      ValidateClaims(claims.dump(), Policy(), absl::FromUnixSeconds(kNow));
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_THAT(got->caller.permissions, ElementsAre("secret.grafana.app/securevalues:decrypt"));
  claims["act"]["act"] = {{"sub", "user:2"}, {"x", {{"act", {{"type", 1}}}}}};
  got = ValidateClaims(claims.dump(), Policy(), absl::FromUnixSeconds(kNow));
  ASSERT_TRUE(got.ok()) << got.status();  // an `act` below another member is not a link
  EXPECT_THAT(got->caller.permissions, IsEmpty());
}

TEST(ValidateClaimsTest, ClaimTypes) {
  const auto with = [](const char* name, nlohmann::json value) {
    nlohmann::json claims = Claims();
    claims[name] = std::move(value);
    return claims;
  };
  using nlohmann::json;
  EXPECT_EQ(Reason(with("aud", {"grafana", "secret-resolver"})), "accepted");
  EXPECT_EQ(Reason(with("aud", {"secret-resolver", 1})), "malformed");
  EXPECT_EQ(Reason(with("aud", {"secret-resolver", json::array()})), "malformed");
  EXPECT_EQ(Reason(with("aud", {"secret-resolver", json::object()})), "malformed");
  EXPECT_EQ(Reason(with("aud", json::array())), "wrong_audience");
  EXPECT_EQ(Reason(with("aud", json::object())), "malformed");
  EXPECT_EQ(Reason(with("aud", nullptr)), "wrong_audience");
  EXPECT_EQ(Reason(with("exp", nullptr)), "malformed");
  EXPECT_EQ(Reason(with("exp", {kNow + 600})), "malformed");
  EXPECT_EQ(Reason(with("exp", true)), "malformed");
  EXPECT_EQ(Reason(with("nbf", nullptr)), "malformed");
  EXPECT_EQ(Reason(with("iss", nullptr)), "wrong_issuer");
  EXPECT_EQ(Reason(with("iss", json::object())), "malformed");
  EXPECT_EQ(Reason(with("namespace", 3)), "malformed");
  EXPECT_EQ(Reason(with("permissions", {"a", nullptr})), "malformed");
  EXPECT_EQ(Reason(with("permissions", {json::array({"a"})})), "malformed");
  EXPECT_EQ(Reason(with("permissions", nullptr)), "accepted");
  EXPECT_EQ(Reason(with("serviceIdentity", {1})), "malformed");
  EXPECT_EQ(Reason(with("serviceIdentity", json::object())), "malformed");
  for (const json& no_single_identity : {json::array(), json({"a", "b"}), json(nullptr)}) {
    absl::StatusOr<ValidatedClaims> got = ValidateClaims(
        with("serviceIdentity", no_single_identity).dump(), Policy(), absl::FromUnixSeconds(kNow));
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(got->caller.service_identity, "");
  }
  // Large-integer and float spellings of exp, as nlohmann's lexer types them.
  EXPECT_EQ(Reason(with("exp", static_cast<double>(kNow + 600))), "accepted");
  EXPECT_EQ(Reason(with("exp", 18446744073709551615ULL)), "malformed");
  EXPECT_EQ(Reason(with("nbf", -5)), "accepted");
}

TEST(ClaimsForResolvingTest, NeedsNamespaceAndServiceIdentity) {
  Caller caller;
  caller.service_identity = "grafana-workflows";
  EXPECT_EQ(AuthFailureOf(ClaimsForResolving(caller)), AuthFailure::kMissingClaim);
  caller.token_namespace = "stacks-1";
  caller.service_identity.clear();
  EXPECT_EQ(AuthFailureOf(ClaimsForResolving(caller)), AuthFailure::kMissingClaim);
}

}  // namespace
}  // namespace auth
}  // namespace secret_resolver
