// Cold start (issue 20 item 3): the real sidecar binary starts on a store of 1,000 secrets with
// an empty cache, and the moment it is ready 1,000 callers each ask for a different secret, each
// with a token of its own that the sidecar has never seen, each on a connection of its own, all
// at once (one ResolveSecrets call per caller over the Unix socket, with the client library's
// default deadline of 5 s). Every call must end OK before its deadline. Printed per run: how
// many ended with each status, p50/p99 of the calls' latencies (from each call's start to its
// answer) and the time from the first call's start until the last answer, beside 1,000
// sequential Get calls on the same store in this process, the ceiling for loading the secrets
// one by one, measured in the same run. Each run starts a fresh sidecar; SQLite first, then a
// throwaway PostgreSQL server (--stores=sqlite,postgres).
//
//   bazel run -c opt //tests/bench:coldstart_bench      (or: tools/dev bench coldstart)
//
// Nothing here prints a value or a token.
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "resolver/secret_bytes.h"
#include "resolver/secret_store.h"
#include "resolver/store/store_config.h"
#include "resolver/store/store_url.h"
#include "secretresolver/v1/resolver.grpc.pb.h"
#include "tests/integration/sidecar_process.h"
#include "tests/testing/postgres_server.h"

ABSL_FLAG(int, callers, 1000, "Concurrent callers, each asking for a different secret.");
ABSL_FLAG(int, channels, 0, "Connections the callers share (0: one per caller).");
ABSL_FLAG(int, runs, 3, "Fresh sidecars started per store.");
ABSL_FLAG(int, deadline_ms, 5000, "Each call's deadline (the client library's default).");
ABSL_FLAG(std::string, stores, "sqlite,postgres", "Stores to measure: sqlite, postgres.");
ABSL_FLAG(std::string, extra_yaml, "", "Appended to the sidecar's config (e.g. limits).");

namespace secret_resolver {
namespace {

using secretresolver::v1::ResolveSecretsRequest;
using secretresolver::v1::ResolveSecretsResponse;
using secretresolver::v1::SecretResolver;

constexpr char kStack[] = "stacks-1";
constexpr char kService[] = "grafana-workflows";

std::string Name(int i) { return absl::StrCat("cold/s-", i); }

double Percentile(std::vector<double> sorted, double p) {
  std::sort(sorted.begin(), sorted.end());
  if (sorted.empty()) return 0;
  const size_t i = std::min(sorted.size() - 1, static_cast<size_t>(p * sorted.size()));
  return sorted[i];
}

// Callers' file descriptors: one connection each, in this process and in the sidecar (which
// inherits the limit).
void RaiseFileLimit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }
}

struct Call {
  grpc::ClientContext context;
  ResolveSecretsResponse response;
  grpc::Status status;
  std::unique_ptr<grpc::ClientAsyncResponseReader<ResolveSecretsResponse>> reader;
  absl::Time sent;
  absl::Time answered;
  bool all_resolved = false;
};

struct RunResult {
  std::map<std::string, int> outcomes;  // status (or "OK, a ref failed") -> calls
  int past_deadline = 0;                // answered OK after the call's deadline
  double p50_ms = 0;
  double p99_ms = 0;
  double last_ms = 0;  // first call sent to last call answered
};

// Starts every caller's call as fast as one thread can, then collects the answers.
RunResult Burst(const std::string& target, const std::vector<std::string>& tokens) {
  const int callers = static_cast<int>(tokens.size());
  const int channel_count =
      absl::GetFlag(FLAGS_channels) > 0 ? absl::GetFlag(FLAGS_channels) : callers;
  std::vector<std::unique_ptr<SecretResolver::Stub>> stubs;
  for (int c = 0; c < channel_count; ++c) {
    grpc::ChannelArguments args;
    args.SetInt("grpc.use_local_subchannel_pool", 1);  // a connection per channel
    stubs.push_back(SecretResolver::NewStub(
        grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args)));
  }
  const absl::Duration deadline = absl::Milliseconds(absl::GetFlag(FLAGS_deadline_ms));
  grpc::CompletionQueue queue;
  std::vector<std::unique_ptr<Call>> calls(callers);
  std::vector<ResolveSecretsRequest> requests(callers);
  for (int i = 0; i < callers; ++i) {
    requests[i].set_stack(kStack);
    (*requests[i].mutable_refs())["value"] = absl::StrCat("secret://", Name(i));
    calls[i] = std::make_unique<Call>();
    calls[i]->context.AddMetadata("authorization", "Bearer " + tokens[i]);
  }
  const absl::Time first = absl::Now();
  for (int i = 0; i < callers; ++i) {
    Call& call = *calls[i];
    call.sent = absl::Now();
    call.context.set_deadline(absl::ToChronoTime(call.sent + deadline));
    call.reader = stubs[i % channel_count]->AsyncResolveSecrets(&call.context, requests[i],
                                                                &queue);
    call.reader->Finish(&call.response, &call.status, &call);
  }
  for (int done = 0; done < callers; ++done) {
    void* tag = nullptr;
    bool ok = false;
    if (!queue.Next(&tag, &ok)) break;
    Call* call = static_cast<Call*>(tag);
    call->answered = absl::Now();
    call->all_resolved = call->status.ok() && call->response.results_size() > 0;
    for (const auto& [key, result] : call->response.results()) {
      call->all_resolved = call->all_resolved && result.has_secret();
    }
  }
  RunResult result;
  std::vector<double> latencies;
  absl::Time last = first;
  for (const auto& call : calls) {
    std::string outcome = call->status.ok()
                              ? (call->all_resolved ? "OK" : "OK, but the ref failed")
                              : absl::StrCat("code ", call->status.error_code());
    ++result.outcomes[outcome];
    if (call->status.ok() && call->answered > call->sent + deadline) ++result.past_deadline;
    latencies.push_back(absl::ToDoubleMilliseconds(call->answered - call->sent));
    last = std::max(last, call->answered);
  }
  result.p50_ms = Percentile(latencies, 0.50);
  result.p99_ms = Percentile(latencies, 0.99);
  result.last_ms = absl::ToDoubleMilliseconds(last - first);
  queue.Shutdown();
  return result;
}

bool Serving(const std::string& target) {
  auto stub = grpc::health::v1::Health::NewStub(
      grpc::CreateChannel(target, grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(100));
  grpc::health::v1::HealthCheckResponse response;
  return stub->Check(&context, grpc::health::v1::HealthCheckRequest(), &response).ok() &&
         response.status() == grpc::health::v1::HealthCheckResponse::SERVING;
}

// The same burst against the empty async handler (tests/bench/sidecar/empty_server.cc: the same
// proto and gRPC settings, a fixed answer, no token, cache or store): what accepting the
// connections and serving the calls costs gRPC on this machine alone.
absl::StatusOr<RunResult> EmptyHandlerBurst(const std::string& dir,
                                            const std::vector<std::string>& tokens) {
  const std::string socket = dir + "/empty.sock";
  unlink(socket.c_str());
  const pid_t pid = fork();
  if (pid == 0) {
    freopen("/dev/null", "w", stdout);
    const std::string flag = "--unix_socket=" + socket;
    execl("tests/bench/sidecar/empty_server", "empty_server", "--api=async", flag.c_str(),
          nullptr);
    _exit(127);
  }
  const absl::Time start = absl::Now();
  bool ready = false;
  while (!ready && absl::Now() - start < absl::Seconds(10)) {
    ready = access(socket.c_str(), F_OK) == 0 && Serving("unix:" + socket);
    if (!ready) absl::SleepFor(absl::Milliseconds(1));
  }
  absl::StatusOr<RunResult> result = absl::UnavailableError("the empty handler did not serve");
  if (ready) result = Burst("unix:" + socket, tokens);
  kill(pid, SIGTERM);
  waitpid(pid, nullptr, 0);
  return result;
}

std::string Outcomes(const RunResult& result) {
  std::string outcomes;
  for (const auto& [outcome, count] : result.outcomes) {
    absl::StrAppend(&outcomes, outcomes.empty() ? "" : ", ", outcome, ": ", count);
  }
  return outcomes;
}

// Writes the secrets and times 1,000 sequential Gets of them: the ceiling.
absl::StatusOr<double> PopulateAndRead(const testing::SidecarState& state,
                                       const std::string& store_url, int secrets) {
  absl::StatusOr<StoreConfig> config = ParseStoreUrl(store_url);
  if (!config.ok()) return config.status();
  absl::StatusOr<std::unique_ptr<EncryptedSecretStore>> store =
      OpenSecretStore(*config, &state.key_ring);
  if (!store.ok()) return store.status();
  for (int i = 0; i < secrets; ++i) {
    SecretWrite write;
    write.stack = kStack;
    write.name = Name(i);
    write.decrypters = {kService};
    write.actor = "bench";
    write.value = SecretBytes(absl::StrCat("cold-value-", i, "-0123456789abcdef"));
    if (absl::StatusOr<int64_t> v = (*store)->Put(write); !v.ok()) return v.status();
  }
  const absl::Time start = absl::Now();
  for (int i = 0; i < secrets; ++i) {
    if (absl::StatusOr<StoredSecret> got = (*store)->Get(kStack, Name(i)); !got.ok()) {
      return got.status();
    }
  }
  return absl::ToDoubleMilliseconds(absl::Now() - start);
}

int Measure(const std::string& store_name, const std::string& postgres_dsn) {
  const int callers = absl::GetFlag(FLAGS_callers);
  absl::StatusOr<testing::SidecarState> state =
      testing::SidecarState::Create(absl::GetFlag(FLAGS_extra_yaml), postgres_dsn);
  if (!state.ok()) {
    std::fprintf(stderr, "cannot create the state: %s\n", state.status().ToString().c_str());
    return 1;
  }
  const std::string url = postgres_dsn.empty() ? absl::StrCat("sqlite:", state->store_path)
                                               : absl::StrCat("postgres:", postgres_dsn);
  absl::StatusOr<double> read_ms = PopulateAndRead(*state, url, callers);
  if (!read_ms.ok()) {
    std::fprintf(stderr, "store: %s\n", read_ms.status().ToString().c_str());
    return 1;
  }
  // A token per caller, none seen by the sidecar before: each lives a different number of
  // seconds, so no two are the same.
  std::vector<std::string> tokens;
  for (int i = 0; i < callers; ++i) {
    tokens.push_back(state->Token(kStack, kService, absl::Hours(1) + absl::Seconds(i)));
    if (tokens.back().empty()) {
      std::fprintf(stderr, "cannot mint a token\n");
      return 1;
    }
  }
  std::printf("== %s: %d callers, a secret and a new token each, %s, deadline %d ms\n",
              store_name.c_str(), callers,
              absl::GetFlag(FLAGS_channels) > 0
                  ? absl::StrCat(absl::GetFlag(FLAGS_channels), " connections").c_str()
                  : "a connection each",
              absl::GetFlag(FLAGS_deadline_ms));
  std::printf("%d sequential store reads (in process): %.1f ms\n", callers, *read_ms);
  std::fflush(stdout);
  int failures = 0;
  for (int run = 1; run <= absl::GetFlag(FLAGS_runs); ++run) {
    absl::StatusOr<std::unique_ptr<testing::SidecarProcess>> sidecar =
        testing::SidecarProcess::Start(*state);
    if (!sidecar.ok()) {
      std::fprintf(stderr, "%s\n", sidecar.status().ToString().c_str());
      return 1;
    }
    const RunResult result = Burst((*sidecar)->target(), tokens);
    (*sidecar)->Terminate();
    absl::StatusOr<RunResult> empty = EmptyHandlerBurst(state->dir, tokens);
    if (!empty.ok()) {
      std::fprintf(stderr, "%s\n", empty.status().ToString().c_str());
      return 1;
    }
    std::printf("run %d: sidecar: %s; answered after the deadline: %d\n", run,
                Outcomes(result).c_str(), result.past_deadline);
    std::printf("run %d: sidecar: p50 %.1f ms  p99 %.1f ms  last answer %.1f ms after the first "
                "call = %.2fx the sequential reads\n",
                run, result.p50_ms, result.p99_ms, result.last_ms, result.last_ms / *read_ms);
    std::printf("run %d: empty handler, same burst: %s; p50 %.1f ms  p99 %.1f ms  last answer "
                "%.1f ms; sidecar/empty handler %.2fx\n",
                run, Outcomes(*empty).c_str(), empty->p50_ms, empty->p99_ms, empty->last_ms,
                result.last_ms / empty->last_ms);
    std::fflush(stdout);  // before the next fork, which would copy what is buffered
    if (result.outcomes.size() != 1 || result.outcomes.count("OK") != 1 ||
        result.past_deadline != 0) {
      ++failures;
    }
  }
  return failures == 0 ? 0 : 1;
}

int Run() {
  RaiseFileLimit();
  int status = 0;
  for (absl::string_view store : absl::StrSplit(absl::GetFlag(FLAGS_stores), ',')) {
    if (store == "sqlite") {
      status |= Measure("SQLite", "");
    } else if (store == "postgres") {
      absl::StatusOr<std::unique_ptr<PostgresServer>> server = PostgresServer::Start();
      if (!server.ok()) {
        std::fprintf(stderr, "PostgreSQL: %s\n", server.status().ToString().c_str());
        return 1;
      }
      status |= Measure("PostgreSQL", (*server)->dsn());
    } else {
      std::fprintf(stderr, "--stores: unknown store \"%s\"\n", std::string(store).c_str());
      return 2;
    }
  }
  if (status != 0) std::printf("FAILED: a call did not end OK within its deadline\n");
  return status;
}

}  // namespace
}  // namespace secret_resolver

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return secret_resolver::Run();
}
