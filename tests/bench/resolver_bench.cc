// Resolver core benchmarks, each printed beside a baseline measured in the same run:
//   - a cache hit for a 3-reference request (1 and 2 threads) against three plain
//     absl::flat_hash_map lookups, and the whole Resolver::Resolve call for the same request;
//   - secret URI parsing against copying the name out of the URI;
//   - rendering a step input with three references against absl::StrReplaceAll doing the same
//     substitutions.
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <benchmark/benchmark.h>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "resolver/expression.h"
#include "resolver/redaction.h"
#include "resolver/resolver.h"
#include "resolver/secret_cache.h"
#include "resolver/secret_uri.h"
#include "tests/bench/ratio_reporter.h"
#include "tests/fakes/fake_secret_store.h"

namespace secret_resolver {
namespace {

constexpr char kStack[] = "stacks-1";
constexpr int kSecrets = 1000;
const char* const kNames[] = {"workflows/http/auth-token", "workflows/db/password",
                              "workflows/slack/webhook"};

std::string NameOf(int i) { return absl::StrCat("workflows/bench/secret-", i); }

// Everything the hit-path benchmarks share: a store of kSecrets secrets behind a warm cache.
struct World {
  World() {
    for (int i = 0; i < kSecrets + 3; ++i) {
      SecretWrite write;
      write.stack = kStack;
      write.name = i < kSecrets ? NameOf(i) : kNames[i - kSecrets];
      write.decrypters = {"grafana-workflows"};
      write.actor = "bench";
      write.value = SecretBytes(absl::StrCat("bench-value-", i, "-0123456789abcdef"));
      if (!store.Put(write).ok()) std::abort();
      baseline.emplace(write.name, std::make_shared<const std::string>(write.name));
    }
    tokens = *RedactionTokens::Create(kDefaultPlaceholderFormat,
                                      SecretBytes(std::string(32, 'k')));
    CacheOptions options;
    options.ttl = absl::Hours(24);
    options.fingerprint = Resolver::FingerprintFunction(tokens.get());
    cache = std::make_unique<SecretCache>(&store, std::move(options));
    resolver = std::make_unique<Resolver>(cache.get(), tokens.get(), ResolverOptions{});
    caller.token_namespace = kStack;
    caller.service_identity = "grafana-workflows";
    caller.permissions = {std::string(kDecryptAllPermission)};
    request.stack = kStack;
    for (const char* name : kNames) uris.push_back(absl::StrCat("secret://", name));
    request.refs = {{"auth_token", uris[0]}, {"db_password", uris[1]}, {"slack_webhook", uris[2]}};
    if (!resolver->Resolve(caller, request).ok()) std::abort();  // warms the cache
  }

  FakeSecretStore store;
  absl::flat_hash_map<std::string, std::shared_ptr<const std::string>> baseline;
  std::unique_ptr<RedactionTokens> tokens;
  std::unique_ptr<SecretCache> cache;
  std::unique_ptr<Resolver> resolver;
  Caller caller;
  std::vector<std::string> uris;  // viewed by `request`
  ResolveRequest request;
};

World& TheWorld() {
  static World* const world = new World();
  return *world;
}

void BM_MapLookup3(benchmark::State& state) {
  World& world = TheWorld();
  for (auto _ : state) {
    for (const char* name : kNames) {
      auto it = world.baseline.find(absl::string_view(name));
      std::shared_ptr<const std::string> value = it->second;
      benchmark::DoNotOptimize(value);
    }
  }
}
BENCHMARK(BM_MapLookup3)->Threads(1)->Threads(2);

void BM_CacheHit3(benchmark::State& state) {
  World& world = TheWorld();
  for (auto _ : state) {
    for (const char* name : kNames) {
      absl::StatusOr<CachedSecret> hit = world.cache->Get(kStack, name);
      benchmark::DoNotOptimize(hit);
    }
  }
}
BENCHMARK(BM_CacheHit3)->Threads(1)->Threads(2);

void BM_ResolveHit3(benchmark::State& state) {
  World& world = TheWorld();
  for (auto _ : state) {
    absl::StatusOr<ResolveResults> results = world.resolver->Resolve(world.caller, world.request);
    benchmark::DoNotOptimize(results);
  }
}
BENCHMARK(BM_ResolveHit3)->Threads(1)->Threads(2);

constexpr absl::string_view kUri = "secret://workflows/http/auth-token";

void BM_CopyNameBaseline(benchmark::State& state) {
  for (auto _ : state) {
    std::string name(kUri.substr(kSecretScheme.size()));
    benchmark::DoNotOptimize(name);
  }
}
BENCHMARK(BM_CopyNameBaseline);

void BM_ParseSecretUri(benchmark::State& state) {
  for (auto _ : state) {
    absl::StatusOr<absl::string_view> name = ParseSecretUri(kUri);
    benchmark::DoNotOptimize(name);
  }
}
BENCHMARK(BM_ParseSecretUri);

// A step input of about 1 KiB with three references, as a workflow's HTTP step might have.
std::string StepInput() {
  std::string text = R"({"url": "https://api.example.com/v1/items", "method": "POST", )";
  absl::StrAppend(&text, R"("headers": {"Authorization": "Bearer ${resources.secret.auth_token}", )",
                  R"("X-Db": "${resources.secret["db-password"]}"}, "body": ")");
  text.append(800, 'x');
  absl::StrAppend(&text, R"(", "hook": "${ resources.secret.slack_webhook }"})");
  return text;
}

void BM_StrReplaceAllBaseline(benchmark::State& state) {
  const std::string text = StepInput();
  for (auto _ : state) {
    std::string out = absl::StrReplaceAll(
        text, {{"${resources.secret.auth_token}", "value-one-0123456789"},
               {"${resources.secret[\"db-password\"]}", "value-two-0123456789"},
               {"${ resources.secret.slack_webhook }", "value-three-0123456789"}});
    benchmark::DoNotOptimize(out);
  }
}
BENCHMARK(BM_StrReplaceAllBaseline);

void BM_RenderSecretReferences(benchmark::State& state) {
  const std::string text = StepInput();
  const absl::flat_hash_map<std::string, std::string> values = {
      {"auth_token", "value-one-0123456789"},
      {"db-password", "value-two-0123456789"},
      {"slack_webhook", "value-three-0123456789"}};
  const SecretLookup lookup = [&values](absl::string_view key) -> std::optional<absl::string_view> {
    auto it = values.find(key);
    if (it == values.end()) return std::nullopt;
    return absl::string_view(it->second);
  };
  for (auto _ : state) {
    absl::StatusOr<SecretBytes> out = RenderSecretReferences(text, lookup);
    benchmark::DoNotOptimize(out);
  }
}
BENCHMARK(BM_RenderSecretReferences);

}  // namespace
}  // namespace secret_resolver

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  secret_resolver::RatioReporter reporter({
      {"BM_CacheHit3/threads:1", "BM_MapLookup3/threads:1"},
      {"BM_CacheHit3/threads:2", "BM_MapLookup3/threads:2"},
      {"BM_ResolveHit3/threads:1", "BM_MapLookup3/threads:1"},
      {"BM_ResolveHit3/threads:2", "BM_MapLookup3/threads:2"},
      {"BM_ParseSecretUri", "BM_CopyNameBaseline"},
      {"BM_RenderSecretReferences", "BM_StrReplaceAllBaseline"},
  });
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return 0;
}
