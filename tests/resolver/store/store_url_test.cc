// The store factory: which URLs open which store, that no message or description shows a
// PostgreSQL password, and the KEK-loading helper.
#include "resolver/store/store_url.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "resolver/crypto/key_ring.h"
#include "resolver/secret_bytes.h"
#include "resolver/store/kek_source.h"

namespace secret_resolver {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kPassword[] = "pw-hunter2-do-not-print";

TEST(ParseStoreUrlTest, SqliteAndPostgresUrls) {
  absl::StatusOr<StoreUrl> url = ParseStoreUrl("sqlite:/var/lib/secrets.db");
  ASSERT_TRUE(url.ok()) << url.status();
  EXPECT_EQ(url->kind, StoreKind::kSqlite);
  EXPECT_EQ(url->location, "/var/lib/secrets.db");

  url = ParseStoreUrl("postgres:host=db dbname=secrets");
  ASSERT_TRUE(url.ok()) << url.status();
  EXPECT_EQ(url->kind, StoreKind::kPostgres);
  EXPECT_EQ(url->location, "host=db dbname=secrets");

  url = ParseStoreUrl("postgresql://resolver@db/secrets");
  ASSERT_TRUE(url.ok()) << url.status();
  EXPECT_EQ(url->kind, StoreKind::kPostgres);
  EXPECT_EQ(url->location, "postgresql://resolver@db/secrets");

  url = ParseStoreUrl("postgres:");
  ASSERT_TRUE(url.ok()) << url.status();
  EXPECT_EQ(url->location, "");
}

TEST(ParseStoreUrlTest, BadUrlsAreInvalidArgumentsThatNeverQuoteTheRest) {
  EXPECT_EQ(ParseStoreUrl("secrets.db").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseStoreUrl("sqlite:").status().code(), absl::StatusCode::kInvalidArgument);

  absl::Status status = ParseStoreUrl(absl::StrCat("mysql:password=", kPassword)).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("\"mysql\""));
  EXPECT_THAT(status.message(), Not(HasSubstr(kPassword)));

  status = ParseStoreUrl(absl::StrCat("user ", kPassword, ":x")).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), Not(HasSubstr(kPassword)));
}

TEST(DescribeStoreUrlTest, NeverShowsThePassword) {
  EXPECT_EQ(DescribeStoreUrl("sqlite:/x/s.db"), "sqlite:/x/s.db");
  const std::string described = DescribeStoreUrl(
      absl::StrCat("postgres:host=db port=5433 dbname=secrets user=r password=", kPassword));
  EXPECT_THAT(described, HasSubstr("host=db"));
  EXPECT_THAT(described, HasSubstr("dbname=secrets"));
  EXPECT_THAT(described, Not(HasSubstr(kPassword)));
  EXPECT_THAT(DescribeStoreUrl(absl::StrCat("postgresql://r:", kPassword, "@db/secrets")),
              Not(HasSubstr(kPassword)));
  EXPECT_EQ(DescribeStoreUrl("nope"), "(invalid store URL)");
}

class OpenSecretStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = std::getenv("TEST_TMPDIR");
    std::string pattern = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/store-url-XXXXXX");
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    absl::StatusOr<SecretBytes> kek = KeyRing::GenerateKek();
    ASSERT_TRUE(kek.ok());
    ASSERT_TRUE(ring_.Add("kek-1", *std::move(kek)).ok());
  }

  std::string dir_;
  KeyRing ring_;
};

TEST_F(OpenSecretStoreTest, OpensAnSqliteStoreAndRewrapsItsKeys) {
  absl::StatusOr<std::unique_ptr<SecretStore>> store =
      OpenSecretStore(absl::StrCat("sqlite:", dir_, "/s.db"), &ring_);
  ASSERT_TRUE(store.ok()) << store.status();
  SecretWrite write;
  write.stack = "stacks-1";
  write.name = "api";
  write.actor = "test";
  write.value = SecretBytes("v");
  ASSERT_TRUE((*store)->Put(write).ok());

  absl::StatusOr<int64_t> rewrapped = RewrapDataKeys(**store, "kek-1");
  ASSERT_TRUE(rewrapped.ok()) << rewrapped.status();
  EXPECT_EQ(*rewrapped, 0);  // already wrapped by kek-1
  EXPECT_EQ(RewrapDataKeys(**store, "kek-missing").status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(OpenSecretStoreTest, ErrorsKeepTheirCodes) {
  EXPECT_EQ(OpenSecretStore("oracle:x", &ring_).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(OpenSecretStore(absl::StrCat("sqlite:", dir_, "/no/dir/s.db"), &ring_).status().code(),
            absl::StatusCode::kUnavailable);
  unsetenv("SECRET_RESOLVER_POSTGRES_DSN");
  EXPECT_EQ(OpenSecretStore("postgres:", &ring_).status().code(),
            absl::StatusCode::kFailedPrecondition);
  const absl::Status unreachable =
      OpenSecretStore(
          absl::StrCat("postgres:host=", dir_, "/no-socket dbname=x password=", kPassword), &ring_)
          .status();
  EXPECT_EQ(unreachable.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(unreachable.message(), Not(HasSubstr(kPassword)));
}

TEST(LoadKeyRingTest, FromAFileOrAnEnvironmentVariable) {
  absl::StatusOr<SecretBytes> kek = KeyRing::GenerateKek();
  ASSERT_TRUE(kek.ok());
  absl::StatusOr<SecretBytes> entry = KeyRing::FormatEntry("kek-env", *kek);
  ASSERT_TRUE(entry.ok());
  ASSERT_EQ(setenv("STORE_URL_TEST_KEK", std::string(entry->reveal()).c_str(), 1), 0);
  absl::StatusOr<KeyRing> ring = LoadKeyRing(KekSource{"", "STORE_URL_TEST_KEK"});
  ASSERT_TRUE(ring.ok()) << ring.status();
  EXPECT_EQ(ring->active_id(), "kek-env");

  const char* tmp = std::getenv("TEST_TMPDIR");
  const std::string path = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/kek-file-test");
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(write(fd, entry->reveal().data(), entry->size()), static_cast<ssize_t>(entry->size()));
  close(fd);
  ring = LoadKeyRing(KekSource{path, ""});
  ASSERT_TRUE(ring.ok()) << ring.status();
  EXPECT_EQ(ring->active_id(), "kek-env");

  ASSERT_EQ(chmod(path.c_str(), 0644), 0);
  EXPECT_EQ(LoadKeyRing(KekSource{path, ""}).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(LoadKeyRing(KekSource{path, "STORE_URL_TEST_KEK"}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(LoadKeyRing(KekSource{}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(LoadKeyRing(KekSource{"", "STORE_URL_TEST_UNSET"}).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace secret_resolver
