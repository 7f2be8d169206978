#include "tests/resolver/storage_contract/store_contract.h"

#include <algorithm>
#include <atomic>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "resolver/secret_bytes.h"
#include "resolver/secret_validation.h"
#include "tests/testing/change_recorder.h"
#include "tests/testing/status_matchers.h"

namespace secret_resolver {

std::string StoreContractParamName(const ::testing::TestParamInfo<StoreContractParam>& info) {
  return info.param.name;
}

void PrintTo(const StoreContractParam& param, std::ostream* os) { *os << param.name; }

void StoreContractTest::SetUp() {
  store_ = GetParam().factory();
  ASSERT_NE(store_, nullptr) << "the store factory failed";
}

namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

constexpr char kStack[] = "stacks-123";
// Easy to spot if an error message echoed a value.
constexpr char kMarker[] = "VALUE-MARKER";

SecretWrite Write(absl::string_view name, absl::string_view value,
                  std::vector<std::string> decrypters = {"grafana-workflows"},
                  absl::string_view stack = kStack) {
  SecretWrite write;
  write.stack = std::string(stack);
  write.name = std::string(name);
  write.decrypters = std::move(decrypters);
  write.description = absl::StrCat("description of ", name);
  write.actor = "user:alice";
  write.value = SecretBytes(value);
  return write;
}

// Returns the version the store assigned, failing the test if Put fails.
int64_t MustPut(SecretStore& store, const SecretWrite& write) {
  absl::StatusOr<int64_t> version = store.Put(write);
  EXPECT_TRUE(version.ok()) << version.status();
  return version.ok() ? *version : -1;
}

std::vector<std::string> Names(const std::vector<SecretMetadata>& list) {
  std::vector<std::string> names;
  for (const SecretMetadata& meta : list) names.push_back(meta.name);
  return names;
}

TEST_P(StoreContractTest, PutThenGetReturnsValueVersionAndDecrypters) {
  EXPECT_EQ(MustPut(*store_, Write("api-token", "s3cret", {"grafana-workflows", "runner"})), 1);
  absl::StatusOr<StoredSecret> got = store_->Get(kStack, "api-token");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->stack, kStack);
  EXPECT_EQ(got->name, "api-token");
  EXPECT_EQ(got->version, 1);
  EXPECT_THAT(got->decrypters, ElementsAre("grafana-workflows", "runner"));
  EXPECT_TRUE(got->value.Equals("s3cret"));
}

TEST_P(StoreContractTest, GetOfUnknownSecretIsNotFound) {
  MustPut(*store_, Write("present", "v"));
  EXPECT_THAT(store_->Get(kStack, "absent"), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(store_->Get("stacks-999", "present"), StatusIs(absl::StatusCode::kNotFound));
}

// A stack or name no secret can have is the caller's mistake: INVALID_ARGUMENT naming the
// field, from every store, before the backend is touched (resolver/secret_store.h).
TEST_P(StoreContractTest, KeysNoSecretCanHaveAreInvalidArgumentForGetDeleteAndList) {
  MustPut(*store_, Write("present", "v"));
  const std::string nul_name("a\0b", 3);
  for (const auto& [stack, name, field] :
       {std::make_tuple(std::string(kStack), std::string("/leading-slash"), "name"),
        std::make_tuple(std::string(kStack), std::string("Upper"), "name"),
        std::make_tuple(std::string(kStack), std::string(""), "name"),
        std::make_tuple(std::string(kStack), nul_name, "name"),
        std::make_tuple(std::string(kStack), std::string(254, 'a'), "name"),
        std::make_tuple(std::string(""), std::string("present"), "stack"),
        std::make_tuple(std::string("Stacks_1"), std::string("present"), "stack")}) {
    EXPECT_THAT(store_->Get(stack, name),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(field)))
        << "Get " << stack << "/" << name;
    EXPECT_THAT(store_->Delete(stack, name, "user:bob"),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(field)))
        << "Delete " << stack << "/" << name;
  }
  EXPECT_THAT(store_->List("UPPER"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("stack")));
  EXPECT_THAT(store_->List(""), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(store_->Get(kStack, "present"), IsOk());
}

TEST_P(StoreContractTest, EveryPutMakesANewVersionAndGetReturnsTheNewest) {
  EXPECT_EQ(MustPut(*store_, Write("api-token", "one", {"a"})), 1);
  EXPECT_EQ(MustPut(*store_, Write("api-token", "two", {"b"})), 2);
  EXPECT_EQ(MustPut(*store_, Write("api-token", "three", {"c", "d"})), 3);
  absl::StatusOr<StoredSecret> got = store_->Get(kStack, "api-token");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->version, 3);
  EXPECT_TRUE(got->value.Equals("three"));
  EXPECT_THAT(got->decrypters, ElementsAre("c", "d"));
}

TEST_P(StoreContractTest, SecretsAndStacksHaveSeparateVersions) {
  EXPECT_EQ(MustPut(*store_, Write("shared-name", "in-123", {"a"}, "stacks-123")), 1);
  EXPECT_EQ(MustPut(*store_, Write("shared-name", "in-123-v2", {"a"}, "stacks-123")), 2);
  EXPECT_EQ(MustPut(*store_, Write("shared-name", "in-456", {"a"}, "stacks-456")), 1);
  EXPECT_EQ(MustPut(*store_, Write("other-name", "other", {"a"}, "stacks-123")), 1);
  absl::StatusOr<StoredSecret> a = store_->Get("stacks-123", "shared-name");
  absl::StatusOr<StoredSecret> b = store_->Get("stacks-456", "shared-name");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->version, 2);
  EXPECT_TRUE(a->value.Equals("in-123-v2"));
  EXPECT_EQ(b->version, 1);
  EXPECT_TRUE(b->value.Equals("in-456"));
}

TEST_P(StoreContractTest, DeleteMakesTheSecretNotFoundAndLeavesOthers) {
  MustPut(*store_, Write("doomed", "v1"));
  MustPut(*store_, Write("doomed", "v2"));
  MustPut(*store_, Write("kept", "k"));
  ASSERT_TRUE(store_->Delete(kStack, "doomed", "user:bob").ok());
  EXPECT_THAT(store_->Get(kStack, "doomed"), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_TRUE(store_->Get(kStack, "kept").ok());
  EXPECT_THAT(store_->Delete(kStack, "doomed", "user:bob"), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(store_->Delete(kStack, "never-existed", "user:bob"),
              StatusIs(absl::StatusCode::kNotFound));
}

TEST_P(StoreContractTest, PutAfterDeleteResolvesAgainWithAHigherVersion) {
  MustPut(*store_, Write("phoenix", "old"));
  MustPut(*store_, Write("phoenix", "older"));
  ASSERT_TRUE(store_->Delete(kStack, "phoenix", "user:bob").ok());
  EXPECT_EQ(MustPut(*store_, Write("phoenix", "reborn")), 3);
  absl::StatusOr<StoredSecret> got = store_->Get(kStack, "phoenix");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->version, 3);
  EXPECT_TRUE(got->value.Equals("reborn"));
}

TEST_P(StoreContractTest, GetVersionReturnsExactlyThatVersionWithItsOwnDecrypters) {
  MustPut(*store_, Write("rotated", "first", {"svc-a"}));
  MustPut(*store_, Write("rotated", "second", {"svc-a", "svc-b"}));
  MustPut(*store_, Write("rotated", "third", {"svc-b"}));
  for (const auto& [version, value] : std::vector<std::pair<int64_t, std::string>>{
           {1, "first"}, {2, "second"}, {3, "third"}}) {
    absl::StatusOr<StoredSecret> got = store_->GetVersion(kStack, "rotated", version);
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(got->version, version);
    EXPECT_EQ(got->name, "rotated");
    EXPECT_TRUE(got->value.Equals(value)) << version;
  }
  absl::StatusOr<StoredSecret> first = store_->GetVersion(kStack, "rotated", 1);
  ASSERT_TRUE(first.ok());
  EXPECT_THAT(first->decrypters, ElementsAre("svc-a"));
  EXPECT_THAT(store_->GetVersion(kStack, "rotated", 4),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("version 4")));
  EXPECT_THAT(store_->GetVersion(kStack, "never-existed", 1),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(store_->GetVersion(kStack, "rotated", 0),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("version")));
  EXPECT_THAT(store_->GetVersion(kStack, "rotated", -1),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("version")));
  EXPECT_THAT(store_->GetVersion("Not A Stack", "rotated", 1),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("stack")));
  EXPECT_THAT(store_->GetVersion(kStack, "Bad/Name", 1),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("name")));
}

TEST_P(StoreContractTest, DeletedSecretsVersionsAreNotFoundUntilItIsPutAgain) {
  MustPut(*store_, Write("doomed", "v1"));
  MustPut(*store_, Write("doomed", "v2"));
  ASSERT_TRUE(store_->Delete(kStack, "doomed", "user:bob").ok());
  EXPECT_THAT(store_->GetVersion(kStack, "doomed", 1), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(store_->GetVersion(kStack, "doomed", 2), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(store_->GetMetadata(kStack, "doomed"), StatusIs(absl::StatusCode::kNotFound));
  MustPut(*store_, Write("doomed", "v3"));
  absl::StatusOr<StoredSecret> old = store_->GetVersion(kStack, "doomed", 1);
  ASSERT_TRUE(old.ok()) << old.status();
  EXPECT_TRUE(old->value.Equals("v1"));
}

TEST_P(StoreContractTest, GetMetadataDescribesWhatGetReturnsWithoutTheValue) {
  MustPut(*store_, Write("described", "old", {"svc-a"}));
  MustPut(*store_, Write("described", kMarker, {"grafana-workflows", "k6"}));
  MustPut(*store_, Write("described", "other stack", {"x"}, "stacks-124"));
  absl::StatusOr<SecretMetadata> meta = store_->GetMetadata(kStack, "described");
  ASSERT_TRUE(meta.ok()) << meta.status();
  EXPECT_EQ(meta->stack, kStack);
  EXPECT_EQ(meta->name, "described");
  EXPECT_EQ(meta->version, 2);
  EXPECT_THAT(meta->decrypters, ElementsAre("grafana-workflows", "k6"));
  EXPECT_EQ(meta->description, "description of described");
  EXPECT_EQ(meta->updated_by, "user:alice");
  absl::StatusOr<StoredSecret> got = store_->Get(kStack, "described");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->version, meta->version);
  EXPECT_EQ(got->decrypters, meta->decrypters);
  EXPECT_THAT(store_->GetMetadata(kStack, "never-existed"),
              StatusIs(absl::StatusCode::kNotFound, Not(HasSubstr(kMarker))));
  EXPECT_THAT(store_->GetMetadata("Not A Stack", "described"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("stack")));
  EXPECT_THAT(store_->GetMetadata(kStack, "Bad/Name"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("name")));
}

TEST_P(StoreContractTest, ListGivesNewestActiveVersionsSortedByName) {
  const absl::Time before = absl::Now() - absl::Seconds(1);
  MustPut(*store_, Write("zeta", "z"));
  MustPut(*store_, Write("alpha", "a1", {"x"}));
  MustPut(*store_, Write("alpha", "a2", {"y", "z"}));
  MustPut(*store_, Write("mid/nested", "m"));
  MustPut(*store_, Write("deleted", "d"));
  MustPut(*store_, Write("elsewhere", "e", {"x"}, "stacks-456"));
  ASSERT_TRUE(store_->Delete(kStack, "deleted", "user:bob").ok());

  absl::StatusOr<std::vector<SecretMetadata>> list = store_->List(kStack);
  ASSERT_TRUE(list.ok()) << list.status();
  EXPECT_THAT(Names(*list), ElementsAre("alpha", "mid/nested", "zeta"));
  const SecretMetadata& alpha = (*list)[0];
  EXPECT_EQ(alpha.stack, kStack);
  EXPECT_EQ(alpha.version, 2);
  EXPECT_THAT(alpha.decrypters, ElementsAre("y", "z"));
  EXPECT_EQ(alpha.description, "description of alpha");
  EXPECT_EQ(alpha.updated_by, "user:alice");
  EXPECT_GE(alpha.updated_at, before);
  EXPECT_LE(alpha.updated_at, absl::Now() + absl::Seconds(1));

  absl::StatusOr<std::vector<SecretMetadata>> empty = store_->List("stacks-789");
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_THAT(*empty, IsEmpty());
}

TEST_P(StoreContractTest, EmptyDecrypterListRoundTrips) {
  MustPut(*store_, Write("nobody-may-decrypt", "v", {}));
  absl::StatusOr<StoredSecret> got = store_->Get(kStack, "nobody-may-decrypt");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_THAT(got->decrypters, IsEmpty());
}

TEST_P(StoreContractTest, ValuesAreBinarySafeUpToTheLimit) {
  std::string binary("\0\x01\xff\n\r\"'\\", 8);
  std::string largest(kMaxValueBytes, '\0');
  for (size_t i = 0; i < largest.size(); ++i) largest[i] = static_cast<char>(i * 7);
  MustPut(*store_, Write("binary", binary));
  MustPut(*store_, Write("largest", largest));
  MustPut(*store_, Write("smallest", "x"));
  for (const auto& [name, value] : {std::pair<std::string, std::string>{"binary", binary},
                                    {"largest", largest},
                                    {"smallest", "x"}}) {
    absl::StatusOr<StoredSecret> got = store_->Get(kStack, name);
    ASSERT_TRUE(got.ok()) << name << ": " << got.status();
    EXPECT_TRUE(got->value.Equals(value)) << name;
  }
}

TEST_P(StoreContractTest, NamesWithSegmentsAndDotsWork) {
  for (const char* name : {"workflows/http/auth-token", "a.b-c/d0", "x", "a/b/c/d/e"}) {
    EXPECT_EQ(MustPut(*store_, Write(name, name)), 1) << name;
    absl::StatusOr<StoredSecret> got = store_->Get(kStack, name);
    ASSERT_TRUE(got.ok()) << name << ": " << got.status();
    EXPECT_TRUE(got->value.Equals(name));
  }
}

TEST_P(StoreContractTest, InvalidWritesAreInvalidArgumentNamingTheFieldAndStoreNothing) {
  struct Case {
    std::string label;
    SecretWrite write;
    std::string field;
  };
  std::vector<Case> cases;
  auto add = [&](std::string label, SecretWrite write, std::string field) {
    cases.push_back(Case{std::move(label), std::move(write), std::move(field)});
  };
  add("empty stack", Write("n", kMarker, {"a"}, ""), "stack");
  add("upper-case stack", Write("n", kMarker, {"a"}, "Stacks-1"), "stack");
  add("empty name", Write("", kMarker), "name");
  add("upper-case name", Write("Api-token", kMarker), "name");
  add("leading slash", Write("/api-token", kMarker), "name");
  add("empty segment", Write("a//b", kMarker), "name");
  add("percent escape", Write("a%2fb", kMarker), "name");
  add("name too long", Write(std::string(254, 'a'), kMarker), "name");
  add("empty value", Write("n", ""), "value");
  add("oversize value", Write("n", absl::StrCat(kMarker, std::string(kMaxValueBytes, 'v'))),
      "value");
  std::vector<std::string> too_many;
  for (size_t i = 0; i <= kMaxDecrypters; ++i) too_many.push_back(absl::StrCat("svc-", i));
  add("too many decrypters", Write("n", kMarker, too_many), "decrypters");
  add("bad decrypter", Write("n", kMarker, {"ok", "-bad"}), "decrypters[1]");
  add("duplicate decrypter", Write("n", kMarker, {"same", "same"}), "decrypters[1]");
  SecretWrite long_description = Write("n", kMarker);
  long_description.description = std::string(kMaxDescriptionLength + 1, 'd');
  add("long description", std::move(long_description), "description");

  for (const Case& c : cases) {
    absl::StatusOr<int64_t> version = store_->Put(c.write);
    EXPECT_THAT(version, StatusIs(absl::StatusCode::kInvalidArgument,
                                  ::testing::AllOf(HasSubstr(c.field), Not(HasSubstr(kMarker)))))
        << c.label;
  }
  absl::StatusOr<std::vector<SecretMetadata>> list = store_->List(kStack);
  ASSERT_TRUE(list.ok());
  EXPECT_THAT(*list, IsEmpty());
}

TEST_P(StoreContractTest, RejectedUpdateLeavesThePreviousVersion) {
  MustPut(*store_, Write("stable", "good"));
  EXPECT_THAT(store_->Put(Write("stable", "")), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(store_->Put(Write("stable", "v", {"-bad"})),
              StatusIs(absl::StatusCode::kInvalidArgument));
  absl::StatusOr<StoredSecret> got = store_->Get(kStack, "stable");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->version, 1);
  EXPECT_TRUE(got->value.Equals("good"));
  EXPECT_EQ(MustPut(*store_, Write("stable", "better")), 2);
}

TEST_P(StoreContractTest, ConcurrentWritersGetDistinctIncreasingVersionsAndReadersNeverGoBack) {
  constexpr int kWriters = 3;
  constexpr int kPutsPerWriter = 15;
  constexpr int kReaders = 2;
  MustPut(*store_, Write("contended", "w-initial"));

  std::vector<std::vector<int64_t>> versions(kWriters);
  std::atomic<bool> writers_done{false};
  std::atomic<int> reader_failures{0};
  std::vector<std::thread> readers;
  for (int r = 0; r < kReaders; ++r) {
    readers.emplace_back([&] {
      int64_t last = 0;
      while (!writers_done.load()) {
        absl::StatusOr<StoredSecret> got = store_->Get(kStack, "contended");
        // Each value names its writer and that writer's put number: it must start with "w-".
        if (!got.ok() || got->version < last || got->value.reveal().substr(0, 2) != "w-") {
          reader_failures.fetch_add(1);
          return;
        }
        last = got->version;
      }
    });
  }
  std::vector<std::thread> writers;
  for (int w = 0; w < kWriters; ++w) {
    writers.emplace_back([&, w] {
      for (int i = 0; i < kPutsPerWriter; ++i) {
        absl::StatusOr<int64_t> version =
            store_->Put(Write("contended", absl::StrCat("w-", w, "-", i)));
        versions[w].push_back(version.ok() ? *version : -1);
      }
    });
  }
  for (std::thread& t : writers) t.join();
  writers_done = true;
  for (std::thread& t : readers) t.join();

  EXPECT_EQ(reader_failures.load(), 0);
  std::set<int64_t> all;
  for (const std::vector<int64_t>& mine : versions) {
    EXPECT_TRUE(std::is_sorted(mine.begin(), mine.end()));
    all.insert(mine.begin(), mine.end());
  }
  // Versions 2..N+1, each exactly once: no lost update, no duplicate, no failure (-1).
  ASSERT_EQ(all.size(), static_cast<size_t>(kWriters * kPutsPerWriter));
  EXPECT_EQ(*all.begin(), 2);
  EXPECT_EQ(*all.rbegin(), kWriters * kPutsPerWriter + 1);
  absl::StatusOr<StoredSecret> final_value = store_->Get(kStack, "contended");
  ASSERT_TRUE(final_value.ok());
  EXPECT_EQ(final_value->version, kWriters * kPutsPerWriter + 1);
}

// Every store reports its own writes through Watch: the fake at once, SQLite on its next poll
// (about 100 ms), PostgreSQL when the NOTIFY arrives. The wait is bounded, not a sleep.
TEST_P(StoreContractTest, WatchReportsPutsAndDeletesByStackAndName) {
  auto recorder = std::make_shared<ChangeRecorder>();
  ASSERT_TRUE(
      store_->Watch([recorder](const SecretChange& change) { recorder->Add(change); }).ok());
  MustPut(*store_, Write("watched", kMarker));
  MustPut(*store_, Write("watched", kMarker, {"a"}, "stacks-456"));
  EXPECT_TRUE(recorder->WaitFor(kStack, "watched", 1, absl::Now() + absl::Seconds(2)))
      << "the put was not reported within 2 s";
  EXPECT_TRUE(recorder->WaitFor("stacks-456", "watched", 1, absl::Now() + absl::Seconds(2)));
  ASSERT_TRUE(store_->Delete(kStack, "watched", "user:bob").ok());
  EXPECT_TRUE(recorder->WaitFor(kStack, "watched", 2, absl::Now() + absl::Seconds(2)))
      << "the delete was not reported within 2 s";
  for (const SecretChange& change : recorder->changes()) {
    if (change.resync) continue;
    EXPECT_EQ(change.name, "watched");
    EXPECT_THAT(change.stack, Not(HasSubstr(kMarker)));
  }
}

}  // namespace
}  // namespace secret_resolver
