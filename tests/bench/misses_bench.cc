// Cache misses at the store's own ceiling (issue 20 item 2): N distinct secrets (default
// 100,000), each requested once through the real sidecar over gRPC (its cache cold for every
// one of them), on SQLite and on PostgreSQL, against the same store's Get-plus-decrypt loop in
// this process over the same secrets. Measured in chunks of N / CHUNKS secrets, interleaved:
//   - ceiling: SecretStore::Get of each secret of the chunk, one after another, on a store with
//     its data-key cache (resolver/crypto/data_key_cache.h), Gets per second (and this thread's
//     CPU time per Get, steadier than wall time on a loaded machine);
//   - no data-key cache: the same loop on a store whose data-key cache is off (capacity 0), so
//     every Get unwraps its stack's data key as before the cache; the two loops alternate which
//     goes first, since the first one warms the operating system's page cache for the second;
//   - end to end: ResolveSecrets with one reference to each secret of the chunk, from 4 client
//     threads over the sidecar's Unix socket (one valid token, verified once), calls per second.
// Ratios: end to end / ceiling (target >= 0.7) and no-cache loop / ceiling. Prints every chunk,
// then medians and ranges.
//
//   bazel run -c opt //tests/bench:misses_bench -- [SECRETS [CHUNKS]]
//   (or: tools/dev bench misses)
#include <time.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "resolver/crypto/key_ring.h"
#include "resolver/postgres/postgres_pool.h"
#include "resolver/postgres/postgres_secret_store.h"
#include "resolver/secret_bytes.h"
#include "resolver/secret_store.h"
#include "resolver/sqlite/sqlite_secret_store.h"
#include "secretresolver/v1/resolver.grpc.pb.h"
#include "tests/integration/sidecar_process.h"
#include "tests/testing/postgres_server.h"

namespace secret_resolver {
namespace {

constexpr char kStack[] = "stacks-1";
constexpr char kService[] = "bench";
constexpr int kClientThreads = 4;
constexpr int kWriterThreads = 8;

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "misses_bench: %s\n", what.c_str());
  std::exit(1);
}

std::string Name(int i) { return absl::StrCat("bench/miss-", i); }

void Populate(SecretStore* store, int n) {
  std::atomic<int> next{0};
  std::atomic<bool> failed{false};
  std::vector<std::thread> writers;
  for (int t = 0; t < kWriterThreads; ++t) {
    writers.emplace_back([&] {
      for (int i = next++; i < n; i = next++) {
        SecretWrite write;
        write.stack = kStack;
        write.name = Name(i);
        write.decrypters = {kService};
        write.actor = "bench";
        write.value = SecretBytes(absl::StrCat("value-", i, "-", std::string(40, 'v')));
        if (!store->Put(write).ok()) failed = true;
      }
    });
  }
  for (std::thread& writer : writers) writer.join();
  if (failed) Die("populating the store failed");
}

double ThreadCpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

struct Loop {
  double per_second;       // Gets per second of wall time
  double cpu_us_per_get;   // this thread's CPU time per Get
};

// Gets over secrets [begin, end), one after another.
Loop LoopRate(SecretStore* store, int begin, int end) {
  const absl::Time start = absl::Now();
  const double cpu_start = ThreadCpuSeconds();
  for (int i = begin; i < end; ++i) {
    absl::StatusOr<StoredSecret> secret = store->Get(kStack, Name(i));
    if (!secret.ok()) Die("Get failed: " + secret.status().ToString());
  }
  const double cpu = ThreadCpuSeconds() - cpu_start;
  return {(end - begin) / absl::ToDoubleSeconds(absl::Now() - start), cpu * 1e6 / (end - begin)};
}

// ResolveSecrets calls per second over secrets [begin, end), from kClientThreads threads.
double EndToEndRate(
    const std::vector<std::unique_ptr<secretresolver::v1::SecretResolver::Stub>>& stubs,
    const std::string& token, int begin, int end) {
  std::atomic<int> next{begin};
  std::atomic<bool> failed{false};
  const absl::Time start = absl::Now();
  std::vector<std::thread> threads;
  for (int t = 0; t < kClientThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = next++; i < end; i = next++) {
        grpc::ClientContext context;
        context.AddMetadata("authorization", "Bearer " + token);
        context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
        secretresolver::v1::ResolveSecretsRequest request;
        request.set_stack(kStack);
        (*request.mutable_refs())["s"] = absl::StrCat("secret://", Name(i));
        secretresolver::v1::ResolveSecretsResponse response;
        if (!stubs[t]->ResolveSecrets(&context, request, &response).ok() ||
            !response.results().at("s").has_secret()) {
          failed = true;
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  if (failed) Die("an end-to-end call failed");
  return (end - begin) / absl::ToDoubleSeconds(absl::Now() - start);
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

void Summarize(const char* what, const std::vector<double>& v) {
  std::printf("  %-34s median %.2fx (%.2f-%.2f)\n", what, Median(v),
              *std::min_element(v.begin(), v.end()), *std::max_element(v.begin(), v.end()));
}

// Opens a second store of the same backend with the given data-key cache capacity.
using StoreOpener = std::function<std::unique_ptr<SecretStore>(size_t data_key_cache_capacity)>;

void Run(const char* backend, const testing::SidecarState& state, const StoreOpener& open, int n,
         int chunks) {
  std::unique_ptr<SecretStore> cached = open(kDefaultDataKeyCacheCapacity);
  std::unique_ptr<SecretStore> uncached = open(0);
  const absl::Time populate_start = absl::Now();
  Populate(cached.get(), n);
  std::printf("%s: %d secrets populated in %.1f s (%d writer threads)\n", backend, n,
              absl::ToDoubleSeconds(absl::Now() - populate_start), kWriterThreads);

  absl::StatusOr<std::unique_ptr<testing::SidecarProcess>> sidecar =
      testing::SidecarProcess::Start(state);
  if (!sidecar.ok()) Die(std::string(sidecar.status().message()));
  std::vector<std::unique_ptr<secretresolver::v1::SecretResolver::Stub>> stubs;
  for (int t = 0; t < kClientThreads; ++t) {
    grpc::ChannelArguments args;
    args.SetInt("secret_resolver.bench.channel", t);  // one connection per thread
    stubs.push_back(secretresolver::v1::SecretResolver::NewStub(grpc::CreateCustomChannel(
        (*sidecar)->target(), grpc::InsecureChannelCredentials(), args)));
  }
  const std::string token = state.Token(kStack, kService);
  // Warms the connections and the token's verification on a secret outside the measured range.
  if (EndToEndRate(stubs, token, n - 1, n) <= 0) Die("warm-up failed");

  std::vector<double> end_to_end, without_cache, cpu_saved;
  const int chunk = (n - 1) / chunks;
  for (int c = 0; c < chunks; ++c) {
    const int begin = c * chunk, end = begin + chunk;
    Loop ceiling, no_cache;
    if (c % 2 == 0) {
      ceiling = LoopRate(cached.get(), begin, end);
      no_cache = LoopRate(uncached.get(), begin, end);
    } else {
      no_cache = LoopRate(uncached.get(), begin, end);
      ceiling = LoopRate(cached.get(), begin, end);
    }
    const double remote = EndToEndRate(stubs, token, begin, end);
    end_to_end.push_back(remote / ceiling.per_second);
    without_cache.push_back(no_cache.per_second / ceiling.per_second);
    cpu_saved.push_back(no_cache.cpu_us_per_get - ceiling.cpu_us_per_get);
    std::printf("%s chunk %2d: store loop %7.0f/s (%5.1f us CPU/Get), without data-key cache "
                "%7.0f/s (%5.1f us) = %.2fx | end to end %7.0f/s = %.2fx\n",
                backend, c + 1, ceiling.per_second, ceiling.cpu_us_per_get, no_cache.per_second,
                no_cache.cpu_us_per_get, no_cache.per_second / ceiling.per_second, remote,
                remote / ceiling.per_second);
    std::fflush(stdout);
  }
  if ((*sidecar)->Terminate() != 0) Die("the sidecar did not exit cleanly");
  std::printf("%s, %d chunks of %d secrets:\n", backend, chunks, chunk);
  Summarize("end to end / store loop", end_to_end);
  Summarize("loop without data-key cache / with", without_cache);
  std::printf("  %-34s median %.1f us (%.1f-%.1f)\n", "CPU per Get the data-key cache saves",
              Median(cpu_saved), *std::min_element(cpu_saved.begin(), cpu_saved.end()),
              *std::max_element(cpu_saved.begin(), cpu_saved.end()));
}

}  // namespace
}  // namespace secret_resolver

int main(int argc, char** argv) {
  using namespace secret_resolver;  // NOLINT: a benchmark's main
  const int n = argc > 1 ? std::atoi(argv[1]) : 100000;
  const int chunks = argc > 2 ? std::atoi(argv[2]) : 10;
  if (n < 2 || chunks <= 0 || chunks >= n) Die("usage: [SECRETS [CHUNKS]]");
  const char* const kQuiet = "logging:\n  level: warning\n  audit: false\n";

  {
    absl::StatusOr<testing::SidecarState> state = testing::SidecarState::Create(kQuiet);
    if (!state.ok()) Die(std::string(state.status().message()));
    Run("sqlite", *state,
        [&](size_t capacity) -> std::unique_ptr<SecretStore> {
          SqliteStoreOptions options;
          options.data_key_cache_capacity = capacity;
          auto store = SqliteSecretStore::Open(state->store_path, &state->key_ring, options);
          if (!store.ok()) Die(std::string(store.status().message()));
          return *std::move(store);
        },
        n, chunks);
  }
  {
    absl::StatusOr<std::unique_ptr<PostgresServer>> server = PostgresServer::Start();
    if (!server.ok()) Die(std::string(server.status().message()));
    absl::StatusOr<testing::SidecarState> state =
        testing::SidecarState::Create(kQuiet, (*server)->dsn());
    if (!state.ok()) Die(std::string(state.status().message()));
    Run("postgres", *state,
        [&](size_t capacity) -> std::unique_ptr<SecretStore> {
          PostgresPoolOptions pool;
          pool.dsn = (*server)->dsn();
          pool.max_connections = kWriterThreads;
          PostgresStoreOptions options;
          options.data_key_cache_capacity = capacity;
          options.allow_insecure = true;
          auto store = PostgresSecretStore::Open(pool, &state->key_ring, options);
          if (!store.ok()) Die(std::string(store.status().message()));
          return *std::move(store);
        },
        n, chunks);
  }
  return 0;
}
