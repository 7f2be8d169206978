// Tests of JWKS parsing and of JwksSource from a file and from a local HTTP server. Keys come
// from mint_tokens.py (python3-cryptography), not from the code under test.
#include "server/auth/jwks.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/fakes/fake_clock.h"
#include "tests/server/auth/jwks_http_server.h"
#include "tests/server/auth/token_minter.h"

namespace secret_resolver {
namespace auth {
namespace {

using ::secret_resolver::auth::testing::JwksDocument;
using ::secret_resolver::auth::testing::JwksHttpServer;
using ::secret_resolver::auth::testing::MintedTokens;
using ::secret_resolver::auth::testing::MintTokens;
using ::secret_resolver::auth::testing::TempDir;
using ::secret_resolver::auth::testing::WriteFileAtomically;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

class JwksTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto minted = MintTokens(TempDir("jwks_keys"), nlohmann::json::object());
    if (minted.ok()) {
      minted_ = new MintedTokens(*std::move(minted));
    } else {
      mint_error_ = new absl::Status(minted.status());
    }
  }

  static void TearDownTestSuite() {
    delete minted_;
    minted_ = nullptr;
    delete mint_error_;
    mint_error_ = nullptr;
  }

  void SetUp() override {
    ASSERT_NE(minted_, nullptr) << *mint_error_;
    const std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    dir_ = TempDir(name);
    path_ = dir_ + "/jwks.json";
  }

  // keys.json's JWK for `name`, to edit.
  static nlohmann::json Jwk(const std::string& name) { return minted_->public_jwks.at(name); }

  static std::string Doc(std::vector<nlohmann::json> keys) {
    return nlohmann::json{{"keys", keys}}.dump();
  }

  std::unique_ptr<JwksSource> FileSource(const std::vector<std::string>& keys) {
    EXPECT_TRUE(WriteFileAtomically(path_, JwksDocument(*minted_, keys)).ok());
    JwksFileOptions options;
    options.path = path_;
    options.clock = &clock_;
    auto source = JwksSource::FromFile(options);
    EXPECT_TRUE(source.ok()) << source.status();
    return source.ok() ? *std::move(source) : nullptr;
  }

  static MintedTokens* minted_;
  static absl::Status* mint_error_;
  FakeClock clock_;
  std::string dir_;
  std::string path_;
};

MintedTokens* JwksTest::minted_ = nullptr;
absl::Status* JwksTest::mint_error_ = nullptr;

// --- Parsing ---

TEST_F(JwksTest, ParsesAllThreeKeyTypes) {
  auto set = ParseJwks(JwksDocument(*minted_, {"ec", "rsa", "ed", "rsa1024"}));
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_THAT(set->kids(), ElementsAre("ec", "ed", "rsa", "rsa1024"));
  EXPECT_EQ(set->Find("ec")->type(), KeyType::kEcP256);
  EXPECT_EQ(set->Find("rsa")->type(), KeyType::kRsa);
  EXPECT_EQ(set->Find("ed")->type(), KeyType::kEd25519);
  EXPECT_EQ(set->Find("rsa")->bits(), 2048);
  EXPECT_EQ(set->Find("rsa1024")->bits(), 1024);  // kept: the verifier rejects it as weak
  EXPECT_EQ(set->Find("missing"), nullptr);
}

TEST_F(JwksTest, RecordsTheJwkAlg) {
  nlohmann::json ec = Jwk("ec");
  ec["alg"] = "ES256";
  auto set = ParseJwks(Doc({ec, Jwk("rsa")}));
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_EQ(set->Find("ec")->alg(), "ES256");
  EXPECT_EQ(set->Find("rsa")->alg(), "");
}

TEST_F(JwksTest, NamesTheIndexOfABadBase64UrlMember) {
  nlohmann::json bad = Jwk("ed");
  bad["x"] = "not*base64url";
  auto set = ParseJwks(Doc({Jwk("ec"), Jwk("rsa"), bad}));
  EXPECT_EQ(set.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(set.status().message(), "keys[2].x: invalid base64url");
}

TEST_F(JwksTest, RejectsPaddedBase64Url) {
  nlohmann::json bad = Jwk("ec");
  bad["x"] = bad["x"].get<std::string>() + "=";
  auto set = ParseJwks(Doc({bad}));
  EXPECT_EQ(set.status().message(), "keys[0].x: invalid base64url");
}

TEST_F(JwksTest, RejectsMalformedEntries) {
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
    EXPECT_EQ(set.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(set.status().message(), HasSubstr(c.message));
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
  EXPECT_EQ(set.status().message(), "keys[1].kid: duplicate key id");
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
  EXPECT_THAT(set->kids(), ElementsAre("ec", "ed"));
}

TEST_F(JwksTest, EmptyKeySetIsValid) {
  auto set = ParseJwks(R"({"keys": []})");
  ASSERT_TRUE(set.ok());
  EXPECT_EQ(set->size(), 0u);
}

// --- File source ---

TEST_F(JwksTest, FileSourceRequiresAReadableFile) {
  JwksFileOptions options;
  options.path = dir_ + "/absent.json";
  options.clock = &clock_;
  EXPECT_EQ(JwksSource::FromFile(options).status().code(), absl::StatusCode::kNotFound);
  options.clock = nullptr;
  EXPECT_EQ(JwksSource::FromFile(options).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(JwksTest, FileSourceRejectsAMalformedFirstDocument) {
  ASSERT_TRUE(WriteFileAtomically(path_, "{").ok());
  JwksFileOptions options;
  options.path = path_;
  options.clock = &clock_;
  EXPECT_EQ(JwksSource::FromFile(options).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(JwksTest, FileSourceReloadsAfterRotationAtMostOncePerSecond) {
  auto source = FileSource({"ec"});
  ASSERT_NE(source, nullptr);
  EXPECT_TRUE(source->Lookup("ec").ok());
  EXPECT_EQ(source->Lookup("ec2").status().code(), absl::StatusCode::kNotFound);

  // Rotate: ec2 in, ec out.
  ASSERT_TRUE(WriteFileAtomically(path_, JwksDocument(*minted_, {"ec2"})).ok());
  clock_.Advance(absl::Milliseconds(999));
  EXPECT_EQ(source->Lookup("ec2").status().code(), absl::StatusCode::kNotFound)
      << "checked again within the interval";
  EXPECT_TRUE(source->Lookup("ec").ok());

  clock_.Advance(absl::Milliseconds(1));
  EXPECT_TRUE(source->Lookup("ec2").ok());
  EXPECT_EQ(source->Lookup("ec").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(source->stats().loads, 2u);
}

TEST_F(JwksTest, FileSourceDoesNotRereadAnUnchangedFile) {
  auto source = FileSource({"ec"});
  ASSERT_NE(source, nullptr);
  for (int i = 0; i < 5; ++i) {
    clock_.Advance(absl::Seconds(2));
    EXPECT_TRUE(source->Lookup("ec").ok());
  }
  EXPECT_EQ(source->stats().loads, 1u);
}

TEST_F(JwksTest, FileSourceNoticesAnInPlaceRewrite) {
  auto source = FileSource({"ec"});
  ASSERT_NE(source, nullptr);
  // Same inode, new size and mtime.
  {
    std::string doc = JwksDocument(*minted_, {"ec", "ed"});
    FILE* f = fopen(path_.c_str(), "w");
    ASSERT_NE(f, nullptr);
    fwrite(doc.data(), 1, doc.size(), f);
    fclose(f);
  }
  clock_.Advance(absl::Seconds(1));
  EXPECT_TRUE(source->Lookup("ed").ok());
}

TEST_F(JwksTest, ExplicitReloadIgnoresTheInterval) {
  auto source = FileSource({"ec"});
  ASSERT_NE(source, nullptr);
  ASSERT_TRUE(WriteFileAtomically(path_, JwksDocument(*minted_, {"ec", "rsa"})).ok());
  EXPECT_TRUE(source->Reload().ok());
  EXPECT_TRUE(source->Lookup("rsa").ok());
}

TEST_F(JwksTest, FileSourceKeepsOldKeysWhenTheNewFileIsBroken) {
  auto source = FileSource({"ec"});
  ASSERT_NE(source, nullptr);
  ASSERT_TRUE(WriteFileAtomically(path_, R"({"keys": [{"kty": "EC", "crv": "P-256",
      "kid": "x", "x": "!", "y": "!"}]})")
                  .ok());
  clock_.Advance(absl::Seconds(1));
  EXPECT_TRUE(source->Lookup("ec").ok());
  JwksSourceStats stats = source->stats();
  EXPECT_EQ(stats.load_failures, 1u);
  EXPECT_THAT(stats.last_error, HasSubstr("keys[0].x: invalid base64url"));
  EXPECT_EQ(source->Reload().code(), absl::StatusCode::kInvalidArgument);

  // A broken file is not reread every interval, only once it changes.
  clock_.Advance(absl::Seconds(1));
  EXPECT_TRUE(source->Lookup("ec").ok());
  EXPECT_EQ(source->stats().load_failures, 2u);  // the explicit Reload() above, no more

  ASSERT_TRUE(unlink(path_.c_str()) == 0);
  clock_.Advance(absl::Seconds(1));
  EXPECT_TRUE(source->Lookup("ec").ok()) << "a deleted file keeps the keys";
  EXPECT_THAT(source->stats().last_error, HasSubstr("does not exist"));
}

// --- URL source ---

class JwksUrlTest : public JwksTest {
 protected:
  void SetUp() override {
    JwksTest::SetUp();
    ASSERT_TRUE(server_.Start().ok());
    server_.SetResponse(200, JwksDocument(*minted_, {"ec"}));
  }

  JwksUrlOptions Options() {
    JwksUrlOptions options;
    options.url = server_.url();
    options.clock = &clock_;
    options.allow_insecure_http = true;
    options.refresh_interval = absl::Minutes(5);
    options.min_refetch_interval = absl::Seconds(30);
    return options;
  }

  std::unique_ptr<JwksSource> UrlSource(JwksUrlOptions options) {
    auto source = JwksSource::FromUrl(options);
    EXPECT_TRUE(source.ok()) << source.status();
    return source.ok() ? *std::move(source) : nullptr;
  }

  JwksHttpServer server_;
};

TEST_F(JwksUrlTest, RequiresHttpsUnlessInsecureHttpIsAllowed) {
  JwksUrlOptions options = Options();
  options.allow_insecure_http = false;
  auto source = JwksSource::FromUrl(options);
  EXPECT_EQ(source.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(source.status().message(), HasSubstr("https"));
  EXPECT_EQ(server_.requests(), 0);

  options.url = "file:///etc/passwd";
  EXPECT_EQ(JwksSource::FromUrl(options).status().code(), absl::StatusCode::kInvalidArgument);
  options.allow_insecure_http = true;
  EXPECT_EQ(JwksSource::FromUrl(options).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(JwksUrlTest, FetchesAtStart) {
  auto source = UrlSource(Options());
  ASSERT_NE(source, nullptr);
  EXPECT_TRUE(source->has_keys());
  EXPECT_TRUE(source->Lookup("ec").ok());
  EXPECT_EQ(server_.requests(), 1);
  EXPECT_EQ(source->stats().fetches, 1u);
}

TEST_F(JwksUrlTest, RefreshesOnItsPeriod) {
  auto source = UrlSource(Options());
  ASSERT_NE(source, nullptr);
  server_.SetResponse(200, JwksDocument(*minted_, {"rsa"}));

  clock_.Advance(absl::Minutes(5) - absl::Seconds(1));
  EXPECT_TRUE(source->Lookup("ec").ok());
  EXPECT_EQ(server_.requests(), 1);

  clock_.Advance(absl::Seconds(1));
  EXPECT_TRUE(source->Lookup("rsa").ok());
  EXPECT_EQ(source->Lookup("ec").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(server_.requests(), 2);
}

TEST_F(JwksUrlTest, RefetchesOnUnknownKidAtMostOncePer30Seconds) {
  auto source = UrlSource(Options());
  ASSERT_NE(source, nullptr);
  server_.SetResponse(200, JwksDocument(*minted_, {"ec", "ec2"}));

  // Just fetched at start: an unknown kid does not refetch yet.
  EXPECT_EQ(source->Lookup("ec2").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(server_.requests(), 1);

  clock_.Advance(absl::Seconds(30));
  EXPECT_TRUE(source->Lookup("ec2").ok());
  EXPECT_EQ(server_.requests(), 2);

  // A flood of made-up kids costs at most one fetch per interval.
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(source->Lookup("made-up-" + std::to_string(i)).status().code(),
              absl::StatusCode::kNotFound);
    clock_.Advance(absl::Seconds(1));
  }
  EXPECT_EQ(server_.requests(), 2);
  clock_.Advance(absl::Seconds(10));
  EXPECT_EQ(source->Lookup("made-up").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(server_.requests(), 3);
}

TEST_F(JwksUrlTest, RateLimitIsConfigurable) {
  JwksUrlOptions options = Options();
  options.min_refetch_interval = absl::Seconds(5);
  auto source = UrlSource(options);
  ASSERT_NE(source, nullptr);
  clock_.Advance(absl::Seconds(5));
  EXPECT_FALSE(source->Lookup("unknown").ok());
  EXPECT_EQ(server_.requests(), 2);
}

TEST_F(JwksUrlTest, KeepsOldKeysWhenAFetchFails) {
  auto source = UrlSource(Options());
  ASSERT_NE(source, nullptr);

  server_.SetResponse(500, "oops");
  EXPECT_EQ(source->Reload().code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(source->Lookup("ec").ok());
  EXPECT_THAT(source->stats().last_error, HasSubstr("HTTP status 500"));

  server_.SetResponse(200, "not json");
  EXPECT_EQ(source->Reload().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(source->Lookup("ec").ok());

  server_.SetResponse(200, JwksDocument(*minted_, {"ed"}));
  EXPECT_TRUE(source->Reload().ok());
  EXPECT_TRUE(source->Lookup("ed").ok());
  EXPECT_TRUE(source->stats().last_error.empty());
}

TEST_F(JwksUrlTest, StartsEmptyWhenTheFirstFetchFailsAndRetriesLater) {
  server_.SetResponse(503, "");
  auto source = UrlSource(Options());
  ASSERT_NE(source, nullptr);
  EXPECT_FALSE(source->has_keys());
  EXPECT_FALSE(source->stats().last_error.empty());

  server_.SetResponse(200, JwksDocument(*minted_, {"ec"}));
  EXPECT_FALSE(source->Lookup("ec").ok()) << "retry is rate-limited";
  clock_.Advance(absl::Seconds(30));
  EXPECT_TRUE(source->Lookup("ec").ok());
  EXPECT_EQ(server_.requests(), 2);
}

TEST_F(JwksUrlTest, RejectsAnOversizedDocument) {
  JwksUrlOptions options = Options();
  options.max_document_bytes = 64;
  auto source = UrlSource(options);
  ASSERT_NE(source, nullptr);
  EXPECT_FALSE(source->has_keys());
  EXPECT_THAT(source->stats().last_error, HasSubstr("response over 64 bytes"));
}

TEST_F(JwksUrlTest, FetchTimesOut) {
  auto source = UrlSource(Options());
  ASSERT_NE(source, nullptr);
  JwksUrlOptions options = Options();
  options.fetch_timeout = absl::Milliseconds(200);
  server_.SetHanging(true);
  auto hanging = UrlSource(options);  // its first fetch times out
  ASSERT_NE(hanging, nullptr);
  EXPECT_FALSE(hanging->has_keys());
  EXPECT_THAT(hanging->stats().last_error, HasSubstr("jwks fetch"));
  server_.SetHanging(false);
  EXPECT_TRUE(source->Lookup("ec").ok()) << "other sources are unaffected";
}

}  // namespace
}  // namespace auth
}  // namespace secret_resolver
