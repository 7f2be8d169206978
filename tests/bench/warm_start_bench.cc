// Warm start (cache.prefetch, issue 18 item 5): how long the real sidecar binary takes from fork
// to its first SERVING health answer on the embedded SQLite store
//   - without prefetch (the baseline start-up),
//   - with 1,000 secrets in cache.prefetch (ready only once all are loaded),
// beside 1,000 sequential Get calls on the same store file in this process, the floor for
// loading them one by one. Each figure is the median of 5 runs; the last lines print what the
// prefetch adds to start-up and its ratio to the sequential reads. docs/BENCHMARKS.md has the
// figures.
//
//   bazel run -c opt //tests/bench:warm_start_bench      (or: tools/dev bench warm_start)
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "resolver/secret_bytes.h"
#include "resolver/secret_store.h"
#include "resolver/sqlite/sqlite_secret_store.h"
#include "tests/integration/sidecar_process.h"

namespace secret_resolver {
namespace {

constexpr int kSecrets = 1000;
constexpr int kRuns = 5;
constexpr char kStack[] = "stacks-1";

std::string Name(int i) { return absl::StrCat("bench/s-", i); }

bool Serving(const std::string& socket) {
  auto stub = grpc::health::v1::Health::NewStub(
      grpc::CreateChannel("unix:" + socket, grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(100));
  grpc::health::v1::HealthCheckResponse response;
  return stub->Check(&context, grpc::health::v1::HealthCheckRequest(), &response).ok() &&
         response.status() == grpc::health::v1::HealthCheckResponse::SERVING;
}

double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

// Fork to the first SERVING answer, in milliseconds; -1 on failure. The log goes to `log_path`.
double StartToReady(const testing::SidecarState& state, const std::string& log_path) {
  unlink(state.socket_path.c_str());
  const absl::Time start = absl::Now();
  const pid_t pid = fork();
  if (pid == 0) {
    freopen(log_path.c_str(), "w", stderr);
    const std::string config = "--config=" + state.config_file;
    execl("server/secret-resolver", "secret-resolver", config.c_str(), nullptr);
    _exit(127);
  }
  bool ready = false;
  while (!ready && absl::Now() - start < absl::Seconds(60)) {
    if (access(state.socket_path.c_str(), F_OK) == 0) ready = Serving(state.socket_path);
    if (!ready) absl::SleepFor(absl::Microseconds(500));
  }
  const absl::Duration took = absl::Now() - start;
  kill(pid, SIGTERM);
  waitpid(pid, nullptr, 0);
  return ready ? absl::ToDoubleMilliseconds(took) : -1;
}

int Run() {
  std::string prefetch = absl::StrCat("cache:\n  prefetch:\n    - stack: ", kStack,
                                      "\n      names:\n");
  for (int i = 0; i < kSecrets; ++i) absl::StrAppend(&prefetch, "        - ", Name(i), "\n");
  const std::string quiet = "logging:\n  audit: false\n";
  absl::StatusOr<testing::SidecarState> warm = testing::SidecarState::Create(prefetch + quiet);
  absl::StatusOr<testing::SidecarState> cold = testing::SidecarState::Create(quiet);
  if (!warm.ok() || !cold.ok()) {
    std::fprintf(stderr, "cannot create the state directories\n");
    return 1;
  }
  std::vector<double> reads;
  {
    absl::StatusOr<std::unique_ptr<SqliteSecretStore>> store =
        SqliteSecretStore::Open(warm->store_path, &warm->key_ring);
    if (!store.ok()) return 1;
    for (int i = 0; i < kSecrets; ++i) {
      SecretWrite write;
      write.stack = kStack;
      write.name = Name(i);
      write.decrypters = {"bench"};
      write.actor = "bench";
      write.value = SecretBytes(absl::StrCat("bench-value-", i, "-0123456789abcdef"));
      if (!(*store)->Put(write).ok()) return 1;
    }
    for (int run = 0; run < kRuns; ++run) {
      const absl::Time start = absl::Now();
      for (int i = 0; i < kSecrets; ++i) {
        if (!(*store)->Get(kStack, Name(i)).ok()) return 1;
      }
      reads.push_back(absl::ToDoubleMilliseconds(absl::Now() - start));
    }
  }
  std::vector<double> cold_ms;
  std::vector<double> warm_ms;
  const std::string warm_log = warm->dir + "/sidecar.log";
  for (int run = 0; run < kRuns; ++run) {  // alternating, so drift hits both alike
    cold_ms.push_back(StartToReady(*cold, cold->dir + "/sidecar.log"));
    warm_ms.push_back(StartToReady(*warm, warm_log));
    if (cold_ms.back() < 0 || warm_ms.back() < 0) {
      std::fprintf(stderr, "a sidecar did not become ready within 60 s\n");
      return 1;
    }
  }
  std::ifstream in(warm_log);
  const std::string log((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (!absl::StrContains(log, absl::StrCat("\"loaded\":", kSecrets, ","))) {
    std::fprintf(stderr, "the prefetch did not load every secret:\n%s\n", log.c_str());
    return 1;
  }
  const double read_ms = Median(reads);
  const double cold_ready = Median(cold_ms);
  const double warm_ready = Median(warm_ms);
  std::printf("%d sequential store reads (SQLite, in process): %8.1f ms\n", kSecrets, read_ms);
  std::printf("start-to-ready, no prefetch:                    %8.1f ms\n", cold_ready);
  std::printf("start-to-ready, %d secrets prefetched:        %8.1f ms\n", kSecrets, warm_ready);
  std::printf("prefetch adds:                                  %8.1f ms = %.2fx the sequential "
              "reads\n",
              warm_ready - cold_ready, (warm_ready - cold_ready) / read_ms);
  return 0;
}

}  // namespace
}  // namespace secret_resolver

int main() { return secret_resolver::Run(); }
