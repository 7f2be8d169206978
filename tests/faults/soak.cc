// The soak (`tools/dev soak [MINUTES]`, not in CI): the real sidecar on an embedded store under
// a mixed load for MINUTES minutes (cache hits, misses of secrets that expired from the cache,
// unknown names, bad tokens), its RSS and the cache's bytes (secret_resolver_cache_bytes, from
// the admin port) sampled every 10 s to a CSV; at the end a summary of the calls and whether RSS
// stayed flat (max - min within 5% of the minimum) after the warm-up.
//
// Run from the runfiles root (tools/dev does), where server/secret-resolver is the binary
// built with this one:
//   soak --minutes=10 --csv=/path/to/soak_rss.csv [--callers=4] [--warmup_minutes=2]
// Exit status: 0 when RSS was flat, 1 when it was not, 2 on a set-up error.
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "resolver/sqlite/sqlite_secret_store.h"
#include "tests/faults/fault_env.h"
#include "tests/faults/fault_fixture.h"
#include "tests/faults/load_driver.h"
#include "tests/integration/sidecar_process.h"

ABSL_FLAG(double, minutes, 10, "how long the load runs");
ABSL_FLAG(double, warmup_minutes, -1,
          "RSS before this is not judged (default: 2 minutes, or a fifth of a shorter run)");
ABSL_FLAG(int, callers, 4, "concurrent callers");
ABSL_FLAG(std::string, csv, "",
          "where the series goes (elapsed_s,rss_kib,calls,cache_bytes)");

namespace secret_resolver {
namespace testing {
namespace {

constexpr int kHot = 20;      // asked over and over: cache hits
constexpr int kWarm = 2000;   // cycled through: each expires (TTL 10 s) before it comes back
constexpr absl::Duration kSample = absl::Seconds(10);

std::string HotName(int64_t i) { return absl::StrCat("soak/hot-", i % kHot); }
std::string WarmName(int64_t i) { return absl::StrCat("soak/warm-", i % kWarm); }

int Soak() {
  const absl::Duration duration = absl::Minutes(absl::GetFlag(FLAGS_minutes));
  absl::Duration warmup = absl::Minutes(absl::GetFlag(FLAGS_warmup_minutes));
  if (warmup < absl::ZeroDuration()) warmup = std::min(absl::Minutes(2), duration / 5);

  absl::StatusOr<SidecarState> state =
      SidecarState::Create("cache:\n  ttl: 10s\n  refresh_ahead: 1s\n  refresh_jitter: 1s\n"
                           "admin:\n  enabled: true\n  address: 127.0.0.1:0\n");
  if (!state.ok()) {
    std::cerr << "soak: " << state.status() << "\n";
    return 2;
  }
  {
    absl::StatusOr<std::unique_ptr<SqliteSecretStore>> store =
        SqliteSecretStore::Open(state->store_path, &state->key_ring);
    if (!store.ok()) {
      std::cerr << "soak: " << store.status() << "\n";
      return 2;
    }
    for (int i = 0; i < kHot + kWarm; ++i) {
      const std::string name = i < kHot ? HotName(i) : WarmName(i - kHot);
      // Random-looking stand-in values of a realistic size; never credentials.
      if (!WriteSecret(**store, name, absl::StrCat(name, std::string(64, 'v'))).ok()) {
        std::cerr << "soak: cannot write " << name << "\n";
        return 2;
      }
    }
  }
  absl::StatusOr<std::unique_ptr<SidecarProcess>> sidecar = SidecarProcess::Start(*state);
  if (!sidecar.ok()) {
    std::cerr << "soak: " << sidecar.status() << "\n";
    return 2;
  }
  const pid_t pid = (*sidecar)->pid();
  const std::string admin = (*sidecar)->ServingAddress("admin");
  const std::string token = state->Token(kFaultStack, kFaultService, absl::Hours(2));

  // Of every 10 calls: 6 hits, 2 misses, 1 unknown name, 1 bad token.
  LoadOptions options;
  options.target = (*sidecar)->target();
  options.callers = absl::GetFlag(FLAGS_callers);
  options.keep_records = false;
  options.next = [&token](int caller, int64_t n) {
    LoadRequest next;
    next.token = token;
    const int64_t i = n * 131 + caller;
    switch (n % 10) {
      case 0: case 1: case 2: case 3: case 4: case 5:
        next.kind = "hit";
        next.request = RequestFor({HotName(i), HotName(i + 1), HotName(i + 2)});
        break;
      case 6: case 7:
        next.kind = "miss";
        next.request = RequestFor({WarmName(i)});
        break;
      case 8:
        next.kind = "unknown";
        next.request = RequestFor({absl::StrCat("soak/unknown-", caller, "-", n)});
        break;
      default:
        next.kind = "bad_token";
        next.token = "not-a-token";
        next.request = RequestFor({HotName(i)});
    }
    return next;
  };

  std::ofstream csv;
  if (!absl::GetFlag(FLAGS_csv).empty()) {
    csv.open(absl::GetFlag(FLAGS_csv), std::ios::trunc);
    csv << "elapsed_s,rss_kib,calls,cache_bytes\n";
  }
  std::cout << absl::StrFormat("soak: %d callers for %s, warm-up %s, sidecar pid %d\n",
                               options.callers, absl::FormatDuration(duration),
                               absl::FormatDuration(warmup), pid);
  LoadDriver load(options);
  const absl::Time start = absl::Now();
  load.Start();
  std::vector<int64_t> judged;
  for (absl::Duration elapsed = absl::ZeroDuration(); elapsed <= duration; elapsed += kSample) {
    absl::SleepFor(start + elapsed - absl::Now());
    const int64_t rss = RssKib(pid);
    const int64_t calls = load.Summary().calls;
    absl::StatusOr<HttpAnswer> metrics = HttpGet(admin, "/metrics", absl::Seconds(5));
    const double cache_bytes =
        metrics.ok() ? MetricSum(metrics->body, "secret_resolver_cache_bytes") : -1;
    const double seconds = absl::ToDoubleSeconds(elapsed);
    if (csv.is_open()) {
      csv << absl::StrFormat("%.0f,%d,%d,%.0f\n", seconds, rss, calls, cache_bytes) << std::flush;
    }
    std::cout << absl::StrFormat("  %5.0f s  RSS %7d KiB  %9d calls  cache %9.0f bytes\n",
                                 seconds, rss, calls, cache_bytes)
              << std::flush;
    if (elapsed >= warmup) judged.push_back(rss);
    if (rss < 0) break;  // the sidecar is gone
  }
  load.Stop();
  const LoadSummary summary = load.Summary();
  const bool alive = (*sidecar)->pid() > 0 && RssKib(pid) > 0;
  const int exit_status = (*sidecar)->Terminate();
  const std::string log_bytes = std::to_string(std::filesystem::file_size(state->dir + "/sidecar.log"));

  std::cout << absl::StrFormat("calls %d (%.0f/s), overruns %d, max latency %s\n", summary.calls,
                               summary.calls / absl::ToDoubleSeconds(duration), summary.overruns,
                               absl::FormatDuration(summary.max_latency));
  for (const auto& [kind, count] : summary.by_kind) std::cout << "  " << kind << " " << count;
  std::cout << "\n  call codes:";
  for (const auto& [code, count] : summary.by_code) std::cout << " " << code << "=" << count;
  std::cout << "\n  ref codes:";
  for (const auto& [code, count] : summary.ref_codes) std::cout << " " << code << "=" << count;
  std::cout << "\n  sidecar log " << log_bytes << " bytes, exit status " << exit_status << "\n";

  std::filesystem::remove_all(state->dir);
  std::filesystem::remove_all(std::filesystem::path(state->socket_path).parent_path());
  if (!alive || judged.empty()) {
    std::cout << "RSS: NOT FLAT (the sidecar died or no sample after the warm-up)\n";
    return 1;
  }
  const int64_t low = *std::min_element(judged.begin(), judged.end());
  const int64_t high = *std::max_element(judged.begin(), judged.end());
  const double spread = 100.0 * (high - low) / low;
  // Growth per minute between two samples, over the first and the second half after warm-up: a
  // leak keeps its pace, an allocator settling slows down.
  auto drift = [&](size_t from, size_t to) {
    return to <= from ? 0.0
                      : (judged[to] - judged[from]) / absl::ToDoubleMinutes(kSample * (to - from));
  };
  const size_t mid = judged.size() / 2;
  const bool flat = spread <= 5.0;
  std::cout << absl::StrFormat(
      "RSS after warm-up: %d..%d KiB over %d samples, spread %.1f%%, drift %+.0f KiB/min "
      "(first half %+.0f, second half %+.0f): %s\n",
      low, high, judged.size(), spread, drift(0, judged.size() - 1), drift(0, mid),
      drift(mid, judged.size() - 1), flat ? "FLAT (within 5%)" : "NOT FLAT");
  return flat ? 0 : 1;
}

}  // namespace
}  // namespace testing
}  // namespace secret_resolver

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return secret_resolver::testing::Soak();
}
