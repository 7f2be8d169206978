// Tests of JWKS parsing. Keys come from mint_tokens.py (python3-cryptography), not from the
// code under test.
#include "server/auth/jwks_parser.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_replace.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/server/auth/jwks_fixture.h"

namespace secret_resolver {
namespace auth {
namespace {

using ::secret_resolver::auth::testing::JwksDocument;
using ::secret_resolver::auth::testing::JwksTest;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

TEST_F(JwksTest, ParsesAllThreeKeyTypes) {
  auto set = ParseJwks(JwksDocument(*minted_, {"ec", "rsa", "ed", "rsa1024"}));
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_THAT(set->keys.kids(), ElementsAre("ec", "ed", "rsa", "rsa1024"));
  EXPECT_EQ(set->keys.Find("ec")->type(), KeyType::kEcP256);
  EXPECT_EQ(set->keys.Find("rsa")->type(), KeyType::kRsa);
  EXPECT_EQ(set->keys.Find("ed")->type(), KeyType::kEd25519);
  EXPECT_EQ(set->keys.Find("rsa")->bits(), 2048);
  EXPECT_EQ(set->keys.Find("rsa1024")->bits(), 1024);  // kept: the verifier rejects it as weak
  EXPECT_EQ(set->keys.Find("missing"), nullptr);
}

TEST_F(JwksTest, RecordsTheJwkAlg) {
  nlohmann::json ec = Jwk("ec");
  ec["alg"] = "ES256";
  auto set = ParseJwks(Doc({ec, Jwk("rsa")}));
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_EQ(set->keys.Find("ec")->alg(), "ES256");
  EXPECT_EQ(set->keys.Find("rsa")->alg(), "");
}

TEST_F(JwksTest, NamesTheIndexOfABadBase64UrlMember) {
  nlohmann::json bad = Jwk("ed");
  bad["x"] = "not*base64url";
  auto set = ParseJwks(Doc({Jwk("ec"), Jwk("rsa"), bad}));
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_THAT(set->skipped, ElementsAre("keys[2].x: invalid base64url"));
}

TEST_F(JwksTest, RejectsPaddedBase64Url) {
  nlohmann::json bad = Jwk("ec");
  bad["x"] = bad["x"].get<std::string>() + "=";
  auto set = ParseJwks(Doc({bad}));
  EXPECT_EQ(set.status().message(), "jwks: no usable key (keys[0].x: invalid base64url)");
}

// One malformed key does not block a rotation: it is skipped, with its reason (never its
// material), and the rest of the document loads.
TEST_F(JwksTest, SkipsMalformedEntriesAndLoadsTheRest) {
  struct Case {
    std::string label;
    nlohmann::json key;
    std::string message;
  };
  nlohmann::json short_x = Jwk("ec");
  short_x["x"] = "AAAA";
  nlohmann::json no_y = Jwk("ec");
  no_y.erase("y");
  nlohmann::json off_curve = Jwk("ec");
  off_curve["y"] = off_curve["x"];  // (x, x) is, with overwhelming odds, not on P-256
  nlohmann::json ed_long = Jwk("ed");
  ed_long["x"] = Jwk("ec")["x"].get<std::string>() + "AAAA";
  nlohmann::json kid_number = Jwk("ec");
  kid_number["kid"] = 7;
  nlohmann::json kid_empty = Jwk("ec");
  kid_empty["kid"] = "";
  nlohmann::json even_e = Jwk("rsa");
  even_e["e"] = "AQAC";
  nlohmann::json n_number = Jwk("rsa");
  n_number["n"] = 12345;
  nlohmann::json no_kty = Jwk("ec");
  no_kty.erase("kty");
  std::vector<Case> cases = {
      {"short x", short_x, "keys[1].x: not 32 bytes"},
      {"no y", no_y, "keys[1].y: missing"},
      {"off curve", off_curve, "keys[1]"},
      {"long ed25519 x", ed_long, "keys[1].x: not 32 bytes"},
      {"kid not a string", kid_number, "keys[1].kid: not a string"},
      {"kid empty", kid_empty, "keys[1].kid: empty"},
      {"even e", even_e, "keys[1].e: not a usable public exponent"},
      {"n not a string", n_number, "keys[1].n: not a string"},
      {"no kty", no_kty, "keys[1].kty: missing"},
      {"not an object", nlohmann::json("ec"), "keys[1]: not an object"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.label);
    auto set = ParseJwks(Doc({Jwk("rsa"), c.key}));
    ASSERT_TRUE(set.ok()) << set.status();
    EXPECT_THAT(set->keys.kids(), ElementsAre("rsa"));
    EXPECT_EQ(set->skipped_count, 1u);
    ASSERT_EQ(set->skipped.size(), 1u);
    EXPECT_THAT(set->skipped[0], HasSubstr(c.message));
    for (const char* member : {"x", "y", "n"}) {
      if (!c.key.is_object() || !c.key.contains(member) || !c.key[member].is_string()) continue;
      const std::string material = c.key[member].get<std::string>();
      if (material.size() >= 8) {
        EXPECT_THAT(set->skipped[0], Not(HasSubstr(material)));
      }
    }
  }
  // A document with nothing usable is refused whole, naming why each entry was skipped.
  for (const Case& c : cases) {
    SCOPED_TRACE(c.label);
    auto set = ParseJwks(Doc({c.key}));
    EXPECT_EQ(set.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(set.status().message(), HasSubstr("no usable key"));
    EXPECT_THAT(set.status().message(), HasSubstr(absl::StrReplaceAll(c.message, {{"[1]", "[0]"}})));
  }
}

TEST_F(JwksTest, RejectsMalformedDocuments) {
  for (const std::string& doc :
       {std::string("not json"), std::string("[]"), std::string("{}"),
        std::string(R"({"keys": {}})"), std::string(R"({"keys": [], "keys": []})")}) {
    SCOPED_TRACE(doc);
    EXPECT_EQ(ParseJwks(doc).status().code(), absl::StatusCode::kInvalidArgument);
  }
}

TEST_F(JwksTest, RejectsDuplicateKid) {
  nlohmann::json again = Jwk("ec2");
  again["kid"] = "ec";
  auto set = ParseJwks(Doc({Jwk("ec"), again}));
  EXPECT_EQ(set.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(set.status().message(), HasSubstr("keys[1].kid: duplicate key id"));

  // Beside a good key, neither key under the shared id is used.
  set = ParseJwks(Doc({Jwk("ec"), again, Jwk("ed")}));
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_THAT(set->keys.kids(), ElementsAre("ed"));
  EXPECT_THAT(set->skipped,
              ElementsAre("keys[0].kid: duplicate key id", "keys[1].kid: duplicate key id"));
}

TEST_F(JwksTest, SkipsKeysItCannotUse) {
  nlohmann::json enc = Jwk("rsa");
  enc["use"] = "enc";
  enc["kid"] = "enc";
  nlohmann::json no_kid = Jwk("ec2");
  no_kid.erase("kid");
  nlohmann::json p384 = Jwk("ec2");
  p384["crv"] = "P-384";
  p384["kid"] = "p384";
  nlohmann::json x25519 = Jwk("ed");
  x25519["crv"] = "X25519";
  x25519["kid"] = "x25519";
  nlohmann::json sign_only = Jwk("ed");
  sign_only["key_ops"] = {"sign"};
  sign_only["kid"] = "sign-only";
  nlohmann::json verify_ops = Jwk("ed");
  verify_ops["key_ops"] = {"verify"};
  nlohmann::json oct = {{"kty", "oct"}, {"kid", "hmac"}, {"k", "c2VjcmV0"}};
  auto set = ParseJwks(Doc({enc, no_kid, p384, x25519, sign_only, oct, verify_ops, Jwk("ec")}));
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_THAT(set->keys.kids(), ElementsAre("ec", "ed"));
  EXPECT_EQ(set->skipped_count, 0u) << "keys of other kinds are not ours, not errors";
}

TEST_F(JwksTest, DocumentWithoutAUsableKeyIsRefused) {
  auto set = ParseJwks(R"({"keys": []})");
  EXPECT_EQ(set.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(set.status().message(), "jwks: no usable key");
}

TEST_F(JwksTest, CountsEverySkippedKeyButKeepsSixteenReasons) {
  std::vector<nlohmann::json> keys = {Jwk("ec")};
  for (int i = 0; i < 20; ++i) {
    nlohmann::json bad = Jwk("ed");
    bad["kid"] = "bad-" + std::to_string(i);
    bad["x"] = "AAAA";
    keys.push_back(bad);
  }
  auto set = ParseJwks(Doc(keys));
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_EQ(set->skipped_count, 20u);
  EXPECT_EQ(set->skipped.size(), 16u);
}

}  // namespace
}  // namespace auth
}  // namespace secret_resolver
