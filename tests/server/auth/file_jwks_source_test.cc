// Tests of FileJwksSource: loading, change detection, rotation and broken files.
#include "server/auth/file_jwks_source.h"

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/server/auth/jwks_fixture.h"
#include "tests/server/auth/token_minter.h"

namespace secret_resolver {
namespace auth {
namespace {

using ::secret_resolver::auth::testing::JwksDocument;
using ::secret_resolver::auth::testing::JwksTest;
using ::secret_resolver::auth::testing::WriteFileAtomically;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

TEST_F(JwksTest, FileSourceRequiresAReadableFile) {
  JwksFileOptions options;
  options.path = dir_ + "/absent.json";
  options.clock = &clock_;
  EXPECT_EQ(FileJwksSource::Create(options).status().code(), absl::StatusCode::kNotFound);
  options.clock = nullptr;
  EXPECT_EQ(FileJwksSource::Create(options).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(JwksTest, FileSourceRejectsAMalformedFirstDocument) {
  ASSERT_TRUE(WriteFileAtomically(path_, "{").ok());
  JwksFileOptions options;
  options.path = path_;
  options.clock = &clock_;
  EXPECT_EQ(FileJwksSource::Create(options).status().code(), absl::StatusCode::kInvalidArgument);
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

// A wall clock set back (an NTP step) does not hold back the next check for as long as the step.
TEST_F(JwksTest, FileSourceChecksAfterTheClockWasSetBack) {
  auto source = FileSource({"ec"});
  ASSERT_NE(source, nullptr);
  ASSERT_TRUE(WriteFileAtomically(path_, JwksDocument(*minted_, {"ec2"})).ok());
  clock_.Advance(-absl::Hours(1));
  EXPECT_TRUE(source->Lookup("ec2").ok());
  EXPECT_EQ(source->stats().loads, 2u);
  // And then the interval holds again, from the new time.
  ASSERT_TRUE(WriteFileAtomically(path_, JwksDocument(*minted_, {"ec"})).ok());
  clock_.Advance(absl::Milliseconds(999));
  EXPECT_EQ(source->Lookup("ec").status().code(), absl::StatusCode::kNotFound);
  clock_.Advance(absl::Milliseconds(1));
  EXPECT_TRUE(source->Lookup("ec").ok());
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

// A rotation whose document holds one key the parser rejects still rotates: the bad key is
// skipped, logged through the hook without its material, and counted.
TEST_F(JwksTest, OneBadKeyDoesNotBlockARotation) {
  ASSERT_TRUE(WriteFileAtomically(path_, JwksDocument(*minted_, {"ec"})).ok());
  std::vector<std::string> logged;
  JwksFileOptions options;
  options.path = path_;
  options.clock = &clock_;
  options.on_skipped_key = [&logged](absl::string_view reason) {
    logged.emplace_back(reason);
  };
  auto source = FileJwksSource::Create(options);
  ASSERT_TRUE(source.ok()) << source.status();

  nlohmann::json bad = Jwk("ed");
  bad["x"] = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";  // 43 bytes
  ASSERT_TRUE(WriteFileAtomically(path_, Doc({Jwk("ec2"), bad})).ok());
  clock_.Advance(absl::Seconds(1));
  EXPECT_TRUE((*source)->Lookup("ec2").ok()) << "the good key of the new document is in";
  EXPECT_EQ((*source)->Lookup("ec").status().code(), absl::StatusCode::kNotFound)
      << "the previous set is gone";
  const JwksSourceStats stats = (*source)->stats();
  EXPECT_EQ(stats.skipped_keys, 1u);
  EXPECT_EQ(stats.load_failures, 0u);
  EXPECT_EQ(stats.key_count, 1u);
  ASSERT_EQ(logged.size(), 1u);
  EXPECT_EQ(logged[0], "keys[1].x: not 32 bytes");
}

TEST_F(JwksTest, EveryFileLoadOutcomeReachesTheLoadHook) {
  nlohmann::json bad = Jwk("ed");
  bad["x"] = "AAAA";
  ASSERT_TRUE(WriteFileAtomically(path_, Doc({Jwk("ec"), bad})).ok());
  std::vector<std::pair<absl::StatusCode, size_t>> seen;
  std::vector<std::vector<std::string>> kids;
  JwksFileOptions options;
  options.path = path_;
  options.clock = &clock_;
  options.on_load = [&seen, &kids](const JwksLoad& load) {
    seen.emplace_back(load.status.code(), load.skipped_keys);
    kids.push_back(load.kids);
  };
  auto source = FileJwksSource::Create(options);
  ASSERT_TRUE(source.ok()) << source.status();
  ASSERT_TRUE(WriteFileAtomically(path_, "{").ok());
  clock_.Advance(absl::Seconds(1));
  EXPECT_TRUE((*source)->Lookup("ec").ok());
  ASSERT_TRUE(WriteFileAtomically(path_, JwksDocument(*minted_, {"ec"})).ok());
  clock_.Advance(absl::Seconds(1));
  EXPECT_TRUE((*source)->Lookup("ec").ok());
  EXPECT_THAT(seen, ElementsAre(std::make_pair(absl::StatusCode::kOk, size_t{1}),
                                std::make_pair(absl::StatusCode::kInvalidArgument, size_t{0}),
                                std::make_pair(absl::StatusCode::kOk, size_t{0})));
  EXPECT_THAT(kids, ElementsAre(ElementsAre("ec"), IsEmpty(), ElementsAre("ec")));
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

}  // namespace
}  // namespace auth
}  // namespace secret_resolver
