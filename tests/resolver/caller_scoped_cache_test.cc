// SecretCache in front of a store whose answers depend on the caller (CallerScopedReads, as the
// upstream store's): entries per caller identity, invalidation across identities, a refusal
// dropping that caller's entry, refreshes made without a caller's token; a store whose answers
// do not depend on the caller ignoring it; and the Resolver passing the caller's credential,
// remembered only for the stack the token speaks for.
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "resolver/redaction.h"
#include "resolver/resolver.h"
#include "resolver/secret_cache.h"
#include "tests/fakes/fake_clock.h"
#include "tests/fakes/fake_secret_store.h"

namespace secret_resolver {
namespace {

using ::testing::ElementsAre;

constexpr char kStack[] = "stacks-1";

// The fake store, answering per caller: records "identity/token" per read, refuses the
// identities in `denied` (once the fake's failure knobs let a read through) and gives each
// answer the decrypters {identity}.
class CallerScopedFake : public FakeSecretStore, public CallerScopedReads {
 public:
  CallerScopedReads* caller_scoped_reads() override { return this; }
  void NoteCredential(absl::string_view stack, absl::string_view identity,
                      absl::string_view token, absl::Time) override {
    std::lock_guard<std::mutex> lock(mu_);
    noted_.push_back(absl::StrCat(stack, "/", identity, "/", token));
  }
  absl::StatusOr<StoredSecret> GetFor(absl::string_view identity, absl::string_view token,
                                      absl::string_view stack, absl::string_view name) override {
    absl::StatusOr<StoredSecret> secret = Get(stack, name);  // the failure knobs first
    std::lock_guard<std::mutex> lock(mu_);
    reads_.push_back(absl::StrCat(identity, "/", token));
    if (!secret.ok()) return secret;
    if (denied_.contains(identity)) return absl::PermissionDeniedError("not authorized");
    secret->decrypters = {std::string(identity)};
    return secret;
  }

  void Deny(absl::string_view identity) {
    std::lock_guard<std::mutex> lock(mu_);
    denied_.insert(std::string(identity));
  }
  std::vector<std::string> reads() {
    std::lock_guard<std::mutex> lock(mu_);
    return reads_;
  }
  std::vector<std::string> noted() {
    std::lock_guard<std::mutex> lock(mu_);
    return noted_;
  }

 private:
  std::mutex mu_;
  std::vector<std::string> reads_;
  std::vector<std::string> noted_;
  absl::flat_hash_set<std::string> denied_;
};

void PutValue(FakeSecretStore& store, const std::string& name) {
  SecretWrite write;
  write.stack = kStack;
  write.name = name;
  write.decrypters = {"a", "b"};
  write.actor = "test";
  write.value = SecretBytes("planted-value");
  ASSERT_TRUE(store.Put(write).ok());
}

absl::StatusOr<CachedSecret> GetAs(SecretCache& cache, const CacheCaller& caller,
                                   absl::string_view name) {
  absl::StatusOr<CachedSecret> found;
  cache.GetAll(kStack, absl::MakeConstSpan(&name, 1), {}, absl::MakeSpan(&found, 1),
               absl::InfiniteFuture(), &caller);
  return found;
}

class CallerScopedCacheTest : public ::testing::Test {
 protected:
  CacheOptions Options() {
    CacheOptions options;
    options.clock = &clock_;
    options.ttl = absl::Seconds(10);
    options.refresh_ahead = absl::ZeroDuration();
    options.refresh_jitter = absl::ZeroDuration();
    options.max_stale = absl::Minutes(15);
    return options;
  }

  FakeClock clock_;
  CallerScopedFake store_;
  const CacheCaller a_{"a", "token-a"};
  const CacheCaller b_{"b", "token-b"};
};

TEST_F(CallerScopedCacheTest, KeepsEntriesPerCallerIdentity) {
  PutValue(store_, "x");
  SecretCache cache(&store_, Options());
  ASSERT_TRUE(GetAs(cache, a_, "x").ok());
  absl::StatusOr<CachedSecret> hit = GetAs(cache, a_, "x");
  ASSERT_TRUE(hit.ok());
  EXPECT_EQ(hit->outcome, CacheOutcome::kHit);
  absl::StatusOr<CachedSecret> other = GetAs(cache, b_, "x");
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(other->outcome, CacheOutcome::kMiss);
  EXPECT_THAT(*other->value->decrypters, ElementsAre("b"));
  EXPECT_THAT(store_.reads(), ElementsAre("a/token-a", "b/token-b"));
  // The fast path answers per identity too.
  absl::string_view name = "x";
  absl::StatusOr<CachedSecret> fast;
  const CacheCaller c{"c", "token-c"};
  EXPECT_FALSE(cache.GetAllIfCached(kStack, absl::MakeConstSpan(&name, 1), {},
                                    absl::MakeSpan(&fast, 1), &c));
  EXPECT_TRUE(cache.GetAllIfCached(kStack, absl::MakeConstSpan(&name, 1), {},
                                   absl::MakeSpan(&fast, 1), &b_));
}

TEST_F(CallerScopedCacheTest, InvalidateDropsTheEntryOfEveryIdentity) {
  PutValue(store_, "x");
  SecretCache cache(&store_, Options());
  ASSERT_TRUE(GetAs(cache, a_, "x").ok());
  ASSERT_TRUE(GetAs(cache, b_, "x").ok());
  cache.Invalidate(kStack, "x");
  EXPECT_EQ(GetAs(cache, a_, "x")->outcome, CacheOutcome::kMiss);
  EXPECT_EQ(GetAs(cache, b_, "x")->outcome, CacheOutcome::kMiss);
  EXPECT_EQ(store_.reads().size(), 4u);
}

TEST_F(CallerScopedCacheTest, ARefusalDropsThatCallersEntrySoItIsNeverServedStale) {
  PutValue(store_, "x");
  SecretCache cache(&store_, Options());
  ASSERT_TRUE(GetAs(cache, a_, "x").ok());
  ASSERT_TRUE(GetAs(cache, b_, "x").ok());
  clock_.Advance(absl::Seconds(11));
  store_.Deny("a");
  EXPECT_EQ(GetAs(cache, a_, "x").status().code(), absl::StatusCode::kPermissionDenied);
  // The store goes down: b still gets its old value (stale), a does not.
  store_.set_error(absl::UnavailableError("down"));
  EXPECT_EQ(GetAs(cache, a_, "x").status().code(), absl::StatusCode::kUnavailable);
  absl::StatusOr<CachedSecret> stale = GetAs(cache, b_, "x");
  ASSERT_TRUE(stale.ok()) << stale.status();
  EXPECT_EQ(stale->outcome, CacheOutcome::kStale);
}

TEST_F(CallerScopedCacheTest, RefreshesAskWithoutACallersToken) {
  PutValue(store_, "x");
  CacheOptions options = Options();
  options.refresh_ahead = absl::Seconds(5);
  options.refresh_executor = [](std::function<void()> task) { task(); };
  SecretCache cache(&store_, std::move(options));
  ASSERT_TRUE(GetAs(cache, a_, "x").ok());
  clock_.Advance(absl::Seconds(6));
  ASSERT_TRUE(GetAs(cache, a_, "x").ok());  // a hit that schedules the refresh
  EXPECT_THAT(store_.reads(), ElementsAre("a/token-a", "a/"));
}

TEST(UnscopedCacheTest, AStoreWhoseAnswersDoNotDependOnTheCallerSharesOneEntry) {
  FakeSecretStore store;
  PutValue(store, "x");
  SecretCache cache(&store, CacheOptions{});
  const CacheCaller a{"a", "token-a"};
  const CacheCaller b{"b", "token-b"};
  ASSERT_TRUE(GetAs(cache, a, "x").ok());
  absl::StatusOr<CachedSecret> other = GetAs(cache, b, "x");
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(other->outcome, CacheOutcome::kHit);
  EXPECT_EQ(store.get_calls(), 1);
}

// A Resolver over a cache over a caller-scoped store holding secret `x`.
class CallerScopedResolverTest : public ::testing::Test {
 protected:
  CallerScopedResolverTest() { PutValue(store, "x"); }

  static ResolverOptions OptionsFor(SecretStore* store) {
    ResolverOptions options;
    options.store = store;
    return options;
  }

  CallerScopedFake store;
  std::unique_ptr<RedactionTokens> tokens =
      *RedactionTokens::Create(kDefaultPlaceholderFormat, SecretBytes(std::string(32, 'f')));
  SecretCache cache{&store, CacheOptions{}};
  Resolver resolver{&cache, tokens.get(), OptionsFor(&store)};
};

TEST_F(CallerScopedResolverTest, PassesTheCredentialAndRemembersItOnlyForItsOwnStack) {
  Caller caller;
  caller.token_namespace = "stack-1";  // the same stack as stacks-1
  caller.service_identity = "a";
  caller.permissions = {std::string(kDecryptAllPermission)};

  ResolveRequest request;
  request.stack = "stack-1";
  request.refs.emplace_back("ref", "secret://x");
  request.credential = "token-a";
  absl::StatusOr<ResolveResults> results = resolver.Resolve(caller, request);
  ASSERT_TRUE(results.ok()) << results.status();
  ASSERT_TRUE((*results)[0].status.ok()) << (*results)[0].status;
  EXPECT_THAT(store.reads(), ElementsAre("a/token-a"));
  EXPECT_THAT(store.noted(), ElementsAre("stacks-1/a/token-a"));

  // Under Grafana's rules a token for another namespace is refused per name: nothing is read,
  // and the token is not remembered for that stack.
  ResolveRequest other;
  other.stack = "stacks-2";
  other.rules = RequestRules::kGrafanaDecrypt;
  other.refs.emplace_back("x", "secret://x");
  other.credential = "token-a";
  results = resolver.Resolve(caller, other);
  ASSERT_TRUE(results.ok()) << results.status();
  EXPECT_EQ((*results)[0].status.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(store.reads(), ElementsAre("a/token-a"));
  EXPECT_THAT(store.noted(), ElementsAre("stacks-1/a/token-a"));
}

TEST_F(CallerScopedResolverTest, RemembersOnlyATokenThatMayDecryptEverySecretOfTheStack) {
  // A token limited to `x`: it may read x now, but a refresh of another name with it would be
  // refused, and a refusal drops the entry.
  Caller limited;
  limited.token_namespace = "stacks-1";
  limited.service_identity = "a";
  limited.permissions = {"secret.grafana.app/securevalues/x:decrypt"};
  ResolveRequest request;
  request.stack = "stacks-1";
  request.refs.emplace_back("ref", "secret://x");
  request.credential = "token-limited";
  absl::StatusOr<ResolveResults> results = resolver.Resolve(limited, request);
  ASSERT_TRUE(results.ok()) << results.status();
  ASSERT_TRUE((*results)[0].status.ok()) << (*results)[0].status;
  EXPECT_THAT(store.reads(), ElementsAre("a/token-limited"));
  EXPECT_TRUE(store.noted().empty());

  // A delegated token carries no permission (the verifier gives the Caller none): refused
  // whole, and not remembered either.
  Caller delegated;
  delegated.token_namespace = "stacks-1";
  delegated.service_identity = "a";
  request.credential = "token-delegated";
  results = resolver.Resolve(delegated, request);
  EXPECT_EQ(results.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(store.noted().empty());
}

}  // namespace
}  // namespace secret_resolver
