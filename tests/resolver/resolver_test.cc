// Resolver end to end over the real cache, policy and redaction code, with the in-memory fake
// store and a fake clock.
#include "resolver/resolver.h"

#include <atomic>
#include <deque>
#include <map>
#include <memory>
#include <thread>
#include <vector>
#include <string>
#include <utility>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "tests/fakes/fake_clock.h"
#include "tests/fakes/fake_secret_store.h"

namespace secret_resolver {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kStack[] = "stacks-123";
constexpr char kService[] = "grafana-workflows";
constexpr char kValue[] = "planted-value-1f0c2e";  // a stand-in credential

// A request viewing `stack` and `refs`, which must outlive its use.
ResolveRequest ViewOf(absl::string_view stack, const std::map<std::string, std::string>& refs) {
  ResolveRequest request;
  request.stack = stack;
  for (const auto& [key, uri] : refs) request.refs.emplace_back(key, uri);
  return request;
}

// The result for ref key `key`; fails the test (and answers an empty result) if there is none.
const RefResult& Of(const ResolveResults& results, absl::string_view key) {
  static const RefResult kNone;
  for (const RefResult& result : results) {
    if (result.key == key) return result;
  }
  ADD_FAILURE() << "no result for ref key " << key;
  return kNone;
}

class ResolverTest : public ::testing::Test {
 protected:
  ResolverTest() {
    clock_.SetTime(absl::FromUnixSeconds(1'800'000'000));
    Put("workflows/http/auth-token", kValue, {kService});
    Put("workflows/db/password", "db-value-77aa", {kService, "k6"});
    Put("other-team/key", "other-value-9x", {"another-service"});
    Put("nobody/key", "nobody-value-3q", {});
    tokens_ = *RedactionTokens::Create(kDefaultPlaceholderFormat,
                                       SecretBytes(std::string(32, 'f')));
    CacheOptions cache_options;
    cache_options.clock = &clock_;
    cache_options.refresh_executor = [](std::function<void()> task) { task(); };
    cache_options.fingerprint = Resolver::FingerprintFunction(tokens_.get());
    cache_ = std::make_unique<SecretCache>(&store_, std::move(cache_options));
    resolver_ = std::make_unique<Resolver>(cache_.get(), tokens_.get(), ResolverOptions{});
    caller_.token_namespace = kStack;
    caller_.service_identity = kService;
    caller_.permissions = {std::string(kDecryptAllPermission)};
  }

  void Put(const std::string& name, const std::string& value,
           std::vector<std::string> decrypters, const std::string& stack = kStack) {
    SecretWrite write;
    write.stack = stack;
    write.name = name;
    write.decrypters = std::move(decrypters);
    write.actor = "test";
    write.value = SecretBytes(value);
    ASSERT_TRUE(store_.Put(write).ok());
  }

  // A request for `refs` in kStack; the fixture keeps the strings it views.
  ResolveRequest Request(std::map<std::string, std::string> refs) {
    return ViewOf(kStack, kept_.emplace_back(std::move(refs)));
  }

  std::deque<std::map<std::string, std::string>> kept_;
  FakeClock clock_;
  FakeSecretStore store_;
  std::unique_ptr<RedactionTokens> tokens_;
  std::unique_ptr<SecretCache> cache_;
  std::unique_ptr<Resolver> resolver_;
  Caller caller_;
};

TEST_F(ResolverTest, ResolvesWithoutBlockingOnlyWhenEveryReferenceIsCached) {
  const ResolveRequest request = Request({{"api-token", "secret://workflows/http/auth-token"},
                                          {"db", "secret://workflows/db/password"}});
  EXPECT_FALSE(resolver_->ResolveWithoutBlocking(caller_, request).has_value());
  ASSERT_TRUE(resolver_->Resolve(caller_, Request({{"k", "secret://workflows/http/auth-token"}}))
                  .ok());
  // One of the two is cached: still not answerable without the store.
  EXPECT_FALSE(resolver_->ResolveWithoutBlocking(caller_, request).has_value());
  EXPECT_EQ(store_.get_calls(), 1);

  ASSERT_TRUE(resolver_->Resolve(caller_, request).ok());
  std::optional<absl::StatusOr<ResolveResults>> cached =
      resolver_->ResolveWithoutBlocking(caller_, request);
  ASSERT_TRUE(cached.has_value());
  ASSERT_TRUE(cached->ok()) << cached->status();
  EXPECT_TRUE(Of(**cached, "db").value->value.Equals(absl::string_view("db-value-77aa")));
  EXPECT_EQ(Of(**cached, "api-token").cache_outcome, CacheOutcome::kHit);
  EXPECT_EQ(store_.get_calls(), 2);

  // Whole-call errors need no store, so they are answered.
  std::optional<absl::StatusOr<ResolveResults>> invalid =
      resolver_->ResolveWithoutBlocking(caller_, Request({}));
  ASSERT_TRUE(invalid.has_value());
  EXPECT_EQ(invalid->status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(ResolverTest, ResolvesValuesWithRedactionTokens) {
  absl::StatusOr<ResolveResults> results = resolver_->Resolve(
      caller_, Request({{"api-token", "secret://workflows/http/auth-token"},
                        {"db_password", "secret://workflows/db/password"}}));
  ASSERT_TRUE(results.ok()) << results.status();
  ASSERT_EQ(results->size(), 2u);

  const RefResult& api = Of(*results, "api-token");
  ASSERT_TRUE(api.status.ok()) << api.status;
  EXPECT_TRUE(api.value->value.Equals(absl::string_view(kValue)));
  EXPECT_EQ(api.name, "workflows/http/auth-token");
  EXPECT_EQ(api.value->version, 1);
  EXPECT_FALSE(api.stale);
  EXPECT_EQ(api.placeholder(), "***SECRET_REDACTED:api-token***");
  EXPECT_EQ(api.fingerprint(), tokens_->Fingerprint(kStack, SecretBytes(kValue)));
  EXPECT_EQ(api.cache_outcome, CacheOutcome::kMiss);

  const RefResult& db = Of(*results, "db_password");
  ASSERT_TRUE(db.status.ok()) << db.status;
  EXPECT_TRUE(db.value->value.Equals(absl::string_view("db-value-77aa")));
}

TEST_F(ResolverTest, SecondResolutionIsACacheHitAndSeesNewVersionsAfterInvalidation) {
  auto request = Request({{"k", "secret://workflows/http/auth-token"}});
  ASSERT_TRUE(resolver_->Resolve(caller_, request).ok());
  absl::StatusOr<ResolveResults> again = resolver_->Resolve(caller_, request);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(Of(*again, "k").cache_outcome, CacheOutcome::kHit);
  EXPECT_EQ(store_.get_calls(), 1);

  Put("workflows/http/auth-token", "rotated-value-5e", {kService});
  cache_->Invalidate(kStack, "workflows/http/auth-token");
  absl::StatusOr<ResolveResults> rotated = resolver_->Resolve(caller_, request);
  ASSERT_TRUE(rotated.ok());
  EXPECT_EQ(Of(*rotated, "k").value->version, 2);
  EXPECT_TRUE(Of(*rotated, "k").value->value.Equals(absl::string_view("rotated-value-5e")));
}

TEST_F(ResolverTest, TwoKeysNamingOneSecretCostOneFetch) {
  absl::StatusOr<ResolveResults> results =
      resolver_->Resolve(caller_, Request({{"a", "secret://workflows/http/auth-token"},
                                           {"b", "secret://workflows/http/auth-token"}}));
  ASSERT_TRUE(results.ok());
  EXPECT_TRUE(Of(*results, "a").status.ok());
  EXPECT_TRUE(Of(*results, "b").status.ok());
  EXPECT_EQ(Of(*results, "a").placeholder(), "***SECRET_REDACTED:a***");
  EXPECT_EQ(Of(*results, "b").placeholder(), "***SECRET_REDACTED:b***");
  EXPECT_EQ(store_.get_calls(), 1);
}

struct WholeCallCase {
  std::string label;
  std::string stack;
  std::map<std::string, std::string> refs;
  absl::StatusCode code;
  std::string message_part;
};

class ResolverWholeCallTest : public ResolverTest,
                              public ::testing::WithParamInterface<WholeCallCase> {};

TEST_P(ResolverWholeCallTest, FailsTheWholeCall) {
  const WholeCallCase& c = GetParam();
  absl::StatusOr<ResolveResults> results =
      resolver_->Resolve(caller_, ViewOf(c.stack, c.refs));
  ASSERT_EQ(results.status().code(), c.code) << results.status();
  EXPECT_THAT(results.status().message(), HasSubstr(c.message_part));
  EXPECT_EQ(store_.get_calls(), 0);
}

std::map<std::string, std::string> ManyRefs(int n) {
  std::map<std::string, std::string> refs;
  for (int i = 0; i < n; ++i) refs[absl::StrCat("k", i)] = "secret://workflows/http/auth-token";
  return refs;
}

const std::map<std::string, std::string> kOneRef = {{"k", "secret://workflows/http/auth-token"}};

INSTANTIATE_TEST_SUITE_P(
    Cases, ResolverWholeCallTest,
    ::testing::Values(
        WholeCallCase{"EmptyStack", "", kOneRef, absl::StatusCode::kInvalidArgument, "stack"},
        WholeCallCase{"MalformedStack", "Stacks_123", kOneRef,
                      absl::StatusCode::kInvalidArgument, "stack"},
        WholeCallCase{"NoRefs", kStack, {}, absl::StatusCode::kInvalidArgument, "refs"},
        WholeCallCase{"TooManyRefs", kStack, ManyRefs(129), absl::StatusCode::kInvalidArgument,
                      "limit of 128"},
        WholeCallCase{"MalformedRefKey", kStack, {{"bad key", "secret://a"}},
                      absl::StatusCode::kInvalidArgument, "key #0"},
        WholeCallCase{"EmptyRefKey", kStack, {{"", "secret://a"}},
                      absl::StatusCode::kInvalidArgument, "key #0"},
        WholeCallCase{"OtherStack", "stacks-999", kOneRef, absl::StatusCode::kPermissionDenied,
                      "stacks-999"}),
    [](const ::testing::TestParamInfo<WholeCallCase>& info) { return info.param.label; });

// Refs may come in any order (a proto map has none); results and error indexes are in key order,
// and a key given twice fails the whole call before any fetch.
TEST_F(ResolverTest, RefsInAnyOrderAndDuplicateKeys) {
  Put("db/password", kValue, {kService});
  ResolveRequest request;
  request.stack = kStack;
  request.refs = {{"zeta", "secret://db/password"}, {"alpha", "secret://Bad"}};
  absl::StatusOr<ResolveResults> results = resolver_->Resolve(caller_, request);
  ASSERT_TRUE(results.ok()) << results.status();
  ASSERT_EQ(results->size(), 2u);
  EXPECT_EQ(results->front().key, "alpha");
  EXPECT_EQ(Of(*results, "alpha").status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(Of(*results, "zeta").status.ok());

  request.refs = {{"zeta", "secret://db/password"}, {"b", "secret://x"}, {"b", "secret://y"}};
  const int fetches = store_.get_calls();
  results = resolver_->Resolve(caller_, request);
  EXPECT_EQ(results.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(results.status().message(), HasSubstr("key #1 (in sorted order) is given twice"));
  EXPECT_EQ(store_.get_calls(), fetches);
}

TEST_F(ResolverTest, AcceptsExactlyMaxRefs) {
  absl::StatusOr<ResolveResults> results = resolver_->Resolve(caller_, Request(ManyRefs(128)));
  ASSERT_TRUE(results.ok()) << results.status();
  EXPECT_EQ(results->size(), 128u);
  EXPECT_EQ(store_.get_calls(), 1);
}

TEST_F(ResolverTest, StackAndStacksAreTheSameStack) {
  caller_.token_namespace = "stack-123";
  absl::StatusOr<ResolveResults> results = resolver_->Resolve(caller_, Request(kOneRef));
  ASSERT_TRUE(results.ok()) << results.status();
  EXPECT_TRUE(Of(*results, "k").status.ok());
}

TEST_F(ResolverTest, StackSpellingsShareOneEntryAndFingerprint) {
  absl::StatusOr<ResolveResults> canonical = resolver_->Resolve(caller_, Request(kOneRef));
  absl::StatusOr<ResolveResults> alias =
      resolver_->Resolve(caller_, ViewOf("stack-123", kOneRef));
  ASSERT_TRUE(canonical.ok());
  ASSERT_TRUE(alias.ok()) << alias.status();
  ASSERT_TRUE(Of(*alias, "k").status.ok()) << Of(*alias, "k").status;
  EXPECT_EQ(Of(*alias, "k").cache_outcome, CacheOutcome::kHit);
  EXPECT_EQ(Of(*alias, "k").fingerprint(), Of(*canonical, "k").fingerprint());
  EXPECT_EQ(store_.get_calls(), 1);
}

TEST_F(ResolverTest, WildcardNamespaceOnlyWhenEnabled) {
  caller_.token_namespace = "*";
  EXPECT_EQ(resolver_->Resolve(caller_, Request(kOneRef)).status().code(),
            absl::StatusCode::kPermissionDenied);

  ResolverOptions options;
  options.access.allow_wildcard_namespace = true;
  Resolver permissive(cache_.get(), tokens_.get(), options);
  absl::StatusOr<ResolveResults> results = permissive.Resolve(caller_, Request(kOneRef));
  ASSERT_TRUE(results.ok()) << results.status();
  EXPECT_TRUE(Of(*results, "k").status.ok());
}

TEST_F(ResolverTest, NoDecryptPermissionFailsTheWholeCall) {
  caller_.permissions = {"secret.grafana.app/securevalues:read"};
  EXPECT_EQ(resolver_->Resolve(caller_, Request(kOneRef)).status().code(),
            absl::StatusCode::kPermissionDenied);
}

TEST_F(ResolverTest, PerNamePermissionCoversOnlyThatName) {
  caller_.permissions = {"secret.grafana.app/securevalues/workflows/db/password:decrypt"};
  absl::StatusOr<ResolveResults> results =
      resolver_->Resolve(caller_, Request({{"db", "secret://workflows/db/password"},
                                           {"api", "secret://workflows/http/auth-token"}}));
  ASSERT_TRUE(results.ok()) << results.status();
  EXPECT_TRUE(Of(*results, "db").status.ok());
  EXPECT_EQ(Of(*results, "api").status.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(Of(*results, "api").status.message(), "not authorized");
  EXPECT_EQ(store_.get_calls(), 1);  // no fetch for a secret the caller may not decrypt
}

TEST_F(ResolverTest, PerReferenceErrors) {
  absl::StatusOr<ResolveResults> results = resolver_->Resolve(
      caller_, Request({{"ok", "secret://workflows/http/auth-token"},
                        {"bad-uri", "secret://Workflows/x"},
                        {"missing", "secret://workflows/none"},
                        {"other", "secret://other-team/key"},
                        {"nobody", "secret://nobody/key"}}));
  ASSERT_TRUE(results.ok()) << results.status();
  EXPECT_TRUE(Of(*results, "ok").status.ok());

  const absl::Status& bad = Of(*results, "bad-uri").status;
  EXPECT_EQ(bad.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.message(), HasSubstr("byte 9"));

  EXPECT_EQ(Of(*results, "missing").status.code(), absl::StatusCode::kNotFound);

  EXPECT_EQ(Of(*results, "other").status.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(Of(*results, "other").status.message(), "not authorized");
  EXPECT_EQ(Of(*results, "other").value, nullptr);

  // An empty decrypter list denies everyone.
  EXPECT_EQ(Of(*results, "nobody").status.code(), absl::StatusCode::kPermissionDenied);
}

TEST_F(ResolverTest, DecrypterCheckRunsOnCacheHits) {
  auto request = Request({{"k", "secret://workflows/http/auth-token"}});
  ASSERT_TRUE(Of(*resolver_->Resolve(caller_, request), "k").status.ok());

  Caller intruder = caller_;
  intruder.service_identity = "Grafana-Workflows";  // case matters
  absl::StatusOr<ResolveResults> results = resolver_->Resolve(intruder, request);
  ASSERT_TRUE(results.ok());
  EXPECT_EQ(Of(*results, "k").cache_outcome, CacheOutcome::kHit);
  EXPECT_EQ(Of(*results, "k").status.code(), absl::StatusCode::kPermissionDenied);
}

TEST_F(ResolverTest, StoreErrorsBecomePerReferenceErrors) {
  store_.set_next_error(absl::UnavailableError("store down"));
  absl::StatusOr<ResolveResults> results = resolver_->Resolve(caller_, Request(kOneRef));
  ASSERT_TRUE(results.ok());
  EXPECT_EQ(Of(*results, "k").status.code(), absl::StatusCode::kUnavailable);

  store_.set_next_error(absl::DataLossError("ciphertext failed authentication"));
  results = resolver_->Resolve(caller_, Request(kOneRef));
  ASSERT_TRUE(results.ok());
  EXPECT_EQ(Of(*results, "k").status.code(), absl::StatusCode::kDataLoss);
}

TEST_F(ResolverTest, ServesStaleValueWhenStoreFailsAfterTtl) {
  ASSERT_TRUE(Of(*resolver_->Resolve(caller_, Request(kOneRef)), "k").status.ok());
  clock_.Advance(absl::Seconds(301));
  store_.set_error(absl::UnavailableError("store down"));
  absl::StatusOr<ResolveResults> results = resolver_->Resolve(caller_, Request(kOneRef));
  ASSERT_TRUE(results.ok());
  const RefResult& result = Of(*results, "k");
  ASSERT_TRUE(result.status.ok()) << result.status;
  EXPECT_TRUE(result.stale);
  EXPECT_EQ(result.cache_outcome, CacheOutcome::kStale);
  EXPECT_TRUE(result.value->value.Equals(absl::string_view(kValue)));

  clock_.Advance(absl::Minutes(16));  // past max_stale
  results = resolver_->Resolve(caller_, Request(kOneRef));
  ASSERT_TRUE(results.ok());
  EXPECT_EQ(Of(*results, "k").status.code(), absl::StatusCode::kUnavailable);
}

// With the newest version served stale, a pin above it may name a version the store has made
// since: not a definite NOT_FOUND but the store's error, which clients retry.
TEST_F(ResolverTest, APinAboveAStaleNewestVersionIsUnavailableNotNotFound) {
  ASSERT_TRUE(Of(*resolver_->Resolve(caller_, Request(kOneRef)), "k").status.ok());  // version 1
  clock_.Advance(absl::Seconds(301));
  store_.set_error(absl::UnavailableError("store down"));
  ResolveRequest request = Request(kOneRef);
  request.versions = {{"k", 2}};
  absl::StatusOr<ResolveResults> results = resolver_->Resolve(caller_, request);
  ASSERT_TRUE(results.ok()) << results.status();
  EXPECT_EQ(Of(*results, "k").status.code(), absl::StatusCode::kUnavailable)
      << Of(*results, "k").status;

  // Once the store answers, the pinned version is judged on what it holds.
  store_.set_error(absl::OkStatus());
  results = resolver_->Resolve(caller_, request);
  ASSERT_TRUE(results.ok()) << results.status();
  EXPECT_EQ(Of(*results, "k").status.code(), absl::StatusCode::kNotFound);
}

TEST_F(ResolverTest, ConcurrentCallersOfSeveralStacksSeeOnlyTheirOwnValues) {
  constexpr int kStacks = 4;
  for (int i = 0; i < kStacks; ++i) {
    Put("shared/name", absl::StrCat("value-of-stack-", i), {kService}, absl::StrCat("org-", i));
  }
  std::vector<std::thread> threads;
  std::atomic<int> mismatches{0};
  for (int t = 0; t < 16; ++t) {
    threads.emplace_back([&, t] {
      const std::string stack = absl::StrCat("org-", t % kStacks);
      Caller caller = caller_;
      caller.token_namespace = stack;
      const std::map<std::string, std::string> refs = {{"k", "secret://shared/name"}};
      for (int round = 0; round < 50; ++round) {
        absl::StatusOr<ResolveResults> results = resolver_->Resolve(caller, ViewOf(stack, refs));
        if (!results.ok() || !Of(*results, "k").status.ok() ||
            !Of(*results, "k").value->value.Equals(
                absl::StrCat("value-of-stack-", t % kStacks))) {
          mismatches.fetch_add(1);
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(mismatches.load(), 0);
  EXPECT_EQ(store_.get_calls(), kStacks);
}

TEST_F(ResolverTest, NoMessageContainsTheValue) {
  store_.set_error(absl::UnavailableError("store down"));
  absl::StatusOr<ResolveResults> failed = resolver_->Resolve(caller_, Request(kOneRef));
  store_.set_error(absl::OkStatus());
  absl::StatusOr<ResolveResults> results = resolver_->Resolve(
      caller_, Request({{"a", "secret://workflows/http/auth-token"},
                        {"b", std::string("secret://") + kValue + "X"},
                        {"c", "secret://other-team/key"}}));
  ASSERT_TRUE(results.ok());
  ASSERT_TRUE(failed.ok());
  for (const ResolveResults* set : {&*failed, &*results}) {
    for (const RefResult& result : *set) {
      const absl::string_view key = result.key;
      EXPECT_THAT(std::string(result.status.message()), Not(HasSubstr(kValue))) << key;
      EXPECT_THAT(result.placeholder(), Not(HasSubstr(kValue))) << key;
      EXPECT_THAT(result.fingerprint(), Not(HasSubstr(kValue))) << key;
    }
  }
}

// Grafana's DecryptSecureValues rules: nothing fails the call; who may act is judged before
// any lookup; each name alone.
class GrafanaRulesTest : public ResolverTest {
 protected:
  // Grafana's request for `names` in `stack`: each name its own ref key.
  ResolveRequest Decrypt(const std::vector<std::string>& names, const std::string& stack = kStack) {
    std::map<std::string, std::string> refs;
    for (const std::string& name : names) refs[name] = "secret://" + name;
    ResolveRequest request = ViewOf(stack_kept_.emplace_back(stack), kept_.emplace_back(refs));
    request.rules = RequestRules::kGrafanaDecrypt;
    return request;
  }

  std::map<std::string, absl::StatusCode> Codes(const absl::StatusOr<ResolveResults>& results) {
    std::map<std::string, absl::StatusCode> codes;
    EXPECT_TRUE(results.ok()) << results.status();
    if (!results.ok()) return codes;
    for (const RefResult& result : *results) codes[std::string(result.key)] = result.status.code();
    return codes;
  }

  std::deque<std::string> stack_kept_;
};

TEST_F(GrafanaRulesTest, JudgesEachNameAlone) {
  Put("binary", std::string("\xc3\x28 not utf-8", 14), {kService});
  const std::map<std::string, absl::StatusCode> want = {
      {"workflows/http/auth-token", absl::StatusCode::kOk},
      {"absent", absl::StatusCode::kNotFound},
      {"Bad Name", absl::StatusCode::kInvalidArgument},
      {"", absl::StatusCode::kInvalidArgument},
      {"other-team/key", absl::StatusCode::kPermissionDenied},
      {"binary", absl::StatusCode::kOutOfRange},
  };
  std::vector<std::string> names;
  for (const auto& [name, code] : want) names.push_back(name);
  const absl::StatusOr<ResolveResults> results = resolver_->Resolve(caller_, Decrypt(names));
  EXPECT_EQ(Codes(results), want);
  // The value that cannot travel as a string is not handed out at all.
  EXPECT_EQ(Of(*results, "binary").value, nullptr);
}

TEST_F(GrafanaRulesTest, NoWholeCallErrors) {
  // ResolveSecrets refuses these for the whole call; Grafana's rules do not.
  EXPECT_TRUE(resolver_->Resolve(caller_, Decrypt({})).ok());
  std::vector<std::string> many;
  for (int i = 0; i < 200; ++i) many.push_back(absl::StrCat("name-", i));  // > max_refs
  EXPECT_EQ(Codes(resolver_->Resolve(caller_, Decrypt(many))).size(), 200u);
}

TEST_F(GrafanaRulesTest, CallerWhoMayNotActIsNotAuthorizedForEveryNameBeforeAnyLookup) {
  const std::vector<std::string> names = {"workflows/http/auth-token", "absent", "Bad Name"};
  const std::map<std::string, absl::StatusCode> denied = {
      {"workflows/http/auth-token", absl::StatusCode::kPermissionDenied},
      {"absent", absl::StatusCode::kPermissionDenied},
      {"Bad Name", absl::StatusCode::kPermissionDenied}};
  Caller other_stack = caller_;
  other_stack.token_namespace = "stacks-999";
  Caller no_identity = caller_;
  no_identity.service_identity.clear();
  Caller no_permission = caller_;
  no_permission.permissions.clear();
  for (const Caller* caller : {&other_stack, &no_identity, &no_permission}) {
    EXPECT_EQ(Codes(resolver_->Resolve(*caller, Decrypt(names))), denied);
  }
  EXPECT_EQ(store_.get_calls(), 0);
}

TEST_F(GrafanaRulesTest, StackThatCannotExistIsNotFound) {
  Caller wildcard = caller_;
  wildcard.token_namespace = "*";
  ResolverOptions options;
  options.access.allow_wildcard_namespace = true;
  Resolver resolver(cache_.get(), tokens_.get(), options);
  EXPECT_EQ(Codes(resolver.Resolve(wildcard, Decrypt({"absent"}, "Not A Stack"))),
            (std::map<std::string, absl::StatusCode>{{"absent", absl::StatusCode::kNotFound}}));
  EXPECT_EQ(store_.get_calls(), 0);
}


// --- CheckReferences ---

class ResolverCheckTest : public ResolverTest {
 protected:
  ResolverCheckTest() {
    ResolverOptions options;
    options.store = &store_;
    resolver_ = std::make_unique<Resolver>(cache_.get(), tokens_.get(), options);
  }
};

TEST_F(ResolverCheckTest, ChecksEveryReferenceAsResolveWouldWithoutReadingAnyValue) {
  Put("workflows/http/auth-token", "rotated", {kService});  // version 2
  caller_.permissions = {"secret.grafana.app/securevalues/workflows/http/auth-token:decrypt",
                         "secret.grafana.app/securevalues/other-team/key:decrypt",
                         "secret.grafana.app/securevalues/missing:decrypt"};
  const ResolveRequest request = Request({{"api", "secret://workflows/http/auth-token"},
                                          {"again", "secret://workflows/http/auth-token"},
                                          {"db", "secret://workflows/db/password"},
                                          {"other", "secret://other-team/key"},
                                          {"missing", "secret://missing"},
                                          {"bad", "secret://Bad"}});
  absl::StatusOr<ResolveResults> checked = resolver_->Check(caller_, request);
  ASSERT_TRUE(checked.ok()) << checked.status();
  EXPECT_TRUE(Of(*checked, "api").status.ok());
  EXPECT_EQ(Of(*checked, "api").checked_version, 2);
  EXPECT_EQ(Of(*checked, "api").name, "workflows/http/auth-token");
  EXPECT_EQ(Of(*checked, "api").value, nullptr);
  EXPECT_EQ(Of(*checked, "again").checked_version, 2);
  // No per-name permission, a decrypter check that fails, an unknown name, a bad URI.
  EXPECT_EQ(Of(*checked, "db").status.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(Of(*checked, "other").status.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(Of(*checked, "missing").status.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Of(*checked, "bad").status.code(), absl::StatusCode::kInvalidArgument);

  // What Resolve gives for the same request, key by key.
  absl::StatusOr<ResolveResults> resolved = resolver_->Resolve(caller_, request);
  ASSERT_TRUE(resolved.ok());
  for (const RefResult& result : *resolved) {
    EXPECT_EQ(Of(*checked, result.key).status, result.status) << result.key;
  }
  // The check read metadata once per distinct name the caller may read, and no value.
  EXPECT_EQ(store_.metadata_calls(), 3);
  EXPECT_EQ(store_.get_calls(), 3);  // Resolve's fetches, none of them the check's
}

TEST_F(ResolverCheckTest, StopsAskingAnUnreachableStoreAfterTheFirstFailure) {
  Put("workflows/http/auth-token", "rotated", {kService});
  store_.set_metadata_error(absl::UnavailableError("the store is unreachable"));
  caller_.permissions = {"secret.grafana.app/securevalues/workflows/http/auth-token:decrypt",
                         "secret.grafana.app/securevalues/workflows/db/password:decrypt",
                         "secret.grafana.app/securevalues/missing:decrypt"};
  const int64_t before = store_.metadata_calls();
  absl::StatusOr<ResolveResults> checked = resolver_->Check(
      caller_, Request({{"api", "secret://workflows/http/auth-token"},
                        {"db", "secret://workflows/db/password"},
                        {"missing", "secret://missing"}}));
  ASSERT_TRUE(checked.ok()) << checked.status();
  for (const char* key : {"api", "db", "missing"}) {
    EXPECT_EQ(Of(*checked, key).status.code(), absl::StatusCode::kUnavailable) << key;
  }
  EXPECT_EQ(store_.metadata_calls() - before, 1);
}

TEST_F(ResolverCheckTest, APassedDeadlineAnswersDeadlineExceededWithoutAskingTheStore) {
  caller_.permissions = {"secret.grafana.app/securevalues/workflows/http/auth-token:decrypt",
                         "secret.grafana.app/securevalues/workflows/db/password:decrypt"};
  const int64_t before = store_.metadata_calls();
  absl::StatusOr<ResolveResults> checked =
      resolver_->Check(caller_,
                       Request({{"api", "secret://workflows/http/auth-token"},
                                {"db", "secret://workflows/db/password"}}),
                       absl::Now() - absl::Seconds(1));
  ASSERT_TRUE(checked.ok()) << checked.status();
  EXPECT_EQ(Of(*checked, "api").status.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(Of(*checked, "db").status.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(store_.metadata_calls(), before);
}

TEST_F(ResolverCheckTest, WholeCallErrorsAreResolves) {
  EXPECT_EQ(resolver_->Check(caller_, ViewOf("", {{"k", "secret://a"}})).status().code(),
            absl::StatusCode::kInvalidArgument);
  std::map<std::string, std::string> refs = {{"k", "secret://a"}};
  EXPECT_EQ(resolver_->Check(caller_, ViewOf("stacks-9", refs)).status().code(),
            absl::StatusCode::kPermissionDenied);
  caller_.permissions.clear();
  EXPECT_EQ(resolver_->Check(caller_, ViewOf(kStack, refs)).status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(store_.metadata_calls(), 0);
}

TEST_F(ResolverTest, CheckWithoutAStoreIsFailedPrecondition) {
  EXPECT_EQ(resolver_->Check(caller_, Request({{"k", "secret://workflows/db/password"}}))
                .status()
                .code(),
            absl::StatusCode::kFailedPrecondition);
}

// --- pinned versions ---

TEST_F(ResolverTest, APinnedRefResolvesThatVersionAndSaysANewerOneExists) {
  Put("workflows/http/auth-token", "second-value", {kService});  // version 2
  ResolveRequest request = Request({{"pinned", "secret://workflows/http/auth-token"},
                                    {"newest", "secret://workflows/http/auth-token"},
                                    {"current", "secret://workflows/db/password"}});
  request.versions = {{"pinned", 1}, {"current", 1}};
  absl::StatusOr<ResolveResults> results = resolver_->Resolve(caller_, request);
  ASSERT_TRUE(results.ok()) << results.status();
  const RefResult& pinned = Of(*results, "pinned");
  ASSERT_TRUE(pinned.status.ok()) << pinned.status;
  EXPECT_TRUE(pinned.value->value.Equals(absl::string_view(kValue)));
  EXPECT_EQ(pinned.value->version, 1);
  EXPECT_TRUE(pinned.superseded);
  EXPECT_EQ(pinned.fingerprint(), tokens_->Fingerprint(kStack, SecretBytes(kValue)));
  const RefResult& newest = Of(*results, "newest");
  EXPECT_TRUE(newest.value->value.Equals(absl::string_view("second-value")));
  EXPECT_FALSE(newest.superseded);
  // Pinned to the newest version: that one, not superseded.
  EXPECT_EQ(Of(*results, "current").value->version, 1);
  EXPECT_FALSE(Of(*results, "current").superseded);

  // Cached by (stack, name, version): a second call is answered without the store.
  const int64_t fetches = store_.get_calls();
  std::optional<absl::StatusOr<ResolveResults>> cached =
      resolver_->ResolveWithoutBlocking(caller_, request);
  ASSERT_TRUE(cached.has_value());
  ASSERT_TRUE(cached->ok());
  EXPECT_TRUE(Of(**cached, "pinned").value->value.Equals(absl::string_view(kValue)));
  EXPECT_EQ(store_.get_calls(), fetches);
}

TEST_F(ResolverTest, PinsAreJudgedOnTheNewestVersion) {
  Put("workflows/http/auth-token", "second-value", {"someone-else"});  // revokes us
  ResolveRequest request = Request({{"revoked", "secret://workflows/http/auth-token"},
                                    {"future", "secret://workflows/db/password"}});
  request.versions = {{"revoked", 1}, {"future", 7}};
  absl::StatusOr<ResolveResults> results = resolver_->Resolve(caller_, request);
  ASSERT_TRUE(results.ok()) << results.status();
  EXPECT_EQ(Of(*results, "revoked").status.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(Of(*results, "future").status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Of(*results, "future").status.message(), HasSubstr("version 7"));

  ASSERT_TRUE(store_.Delete(kStack, "workflows/db/password", "test").ok());
  cache_->Invalidate(kStack, "workflows/db/password");
  ResolveRequest deleted = Request({{"db", "secret://workflows/db/password"}});
  deleted.versions = {{"db", 1}};
  results = resolver_->Resolve(caller_, deleted);
  ASSERT_TRUE(results.ok());
  EXPECT_EQ(Of(*results, "db").status.code(), absl::StatusCode::kNotFound);
}

TEST_F(ResolverTest, MalformedPinsAreWholeCallErrors) {
  ResolveRequest request = Request({{"k", "secret://workflows/db/password"}});
  request.versions = {{"unknown", 1}};
  EXPECT_THAT(resolver_->Resolve(caller_, request).status().message(),
              HasSubstr("versions: key #0"));
  request.versions = {{"k", 0}};
  absl::Status zero = resolver_->Resolve(caller_, request).status();
  EXPECT_EQ(zero.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(zero.message(), HasSubstr("at least 1"));
  EXPECT_EQ(store_.get_calls(), 0);
}

}  // namespace
}  // namespace secret_resolver
