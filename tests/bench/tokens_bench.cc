// New tokens against the signature's own ceiling (issue 20 item 1): every call carries a token
// the verifier has not seen, pre-minted (thousands per algorithm, by mint_tokens.py: PyJWT, not
// the code under test), for ES256, RS256 and EdDSA. Measured per round, interleaved:
//   - the ceiling: `openssl speed -seconds S ecdsap256 rsa2048 ed25519`, verify/s of one core
//     (openssl divides by its user CPU time);
//   - in process: TokenVerifier::Verify (FileJwksSource, the real clock, a fresh verifier and so
//     an empty token cache for each pass over the tokens) on one thread, passes repeated for as
//     many CPU seconds as openssl speed runs, tokens per second of that thread's CPU time;
//   - end to end: the real sidecar binary (fresh each round, so no token is cached; the secret is
//     warm) over its Unix socket, ResolveSecrets with one reference, from client threads; calls
//     per second of the sidecar's CPU time (all its threads, from /proc/PID/task/*/schedstat).
//   - the same end to end with one cached token for every call: what a call costs the sidecar
//     apart from verifying a new token, which bounds the end-to-end ratio.
// Ratio = verifications per CPU second / openssl verify/s: the fraction of one core's signature
// ceiling the path reaches (target >= 0.8). Prints every round, then medians and ranges. One
// untimed in-process pass per algorithm comes first, so that no round pays for the heap's growth.
//
//   bazel run -c opt //tests/bench:tokens_bench -- [TOKENS_PER_ALG [ROUNDS [SECONDS]]]
//   (or: tools/dev bench tokens)
#include <dirent.h>
#include <sys/types.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "nlohmann/json.hpp"
#include "resolver/clock.h"
#include "resolver/secret_bytes.h"
#include "resolver/secret_store.h"
#include "resolver/sqlite/sqlite_secret_store.h"
#include "secretresolver/v1/resolver.grpc.pb.h"
#include "server/auth/file_jwks_source.h"
#include "server/auth/token_verifier.h"
#include "tests/integration/sidecar_process.h"
#include "tests/server/auth/token_minter.h"

namespace secret_resolver {
namespace {

constexpr char kStack[] = "stacks-1";
constexpr char kService[] = "bench";
constexpr char kSecretName[] = "bench/token-secret";
constexpr int kClientThreads = 4;

struct Algorithm {
  const char* alg;
  const char* key;            // mint_tokens.py's key name, also the kid
  const char* openssl_label;  // how `openssl speed` names the line
};
constexpr Algorithm kAlgorithms[] = {
    {"ES256", "ec", "ecdsa (nistp256)"},
    {"RS256", "rsa", "rsa 2048 bits"},
    {"EdDSA", "ed", "EdDSA (Ed25519)"},
};
constexpr int kAlgorithmCount = sizeof(kAlgorithms) / sizeof(kAlgorithms[0]);

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "tokens_bench: %s\n", what.c_str());
  std::exit(1);
}

double ThreadCpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// CPU time of every thread of `pid`, in nanosecond resolution (the first field of each thread's
// schedstat), where /proc/PID/stat counts 10 ms ticks.
double ProcessCpuSeconds(pid_t pid) {
  const std::string dir = absl::StrCat("/proc/", pid, "/task");
  DIR* tasks = opendir(dir.c_str());
  if (tasks == nullptr) Die("cannot read " + dir);
  double total = 0;
  while (dirent* entry = readdir(tasks)) {
    if (entry->d_name[0] == '.') continue;
    std::ifstream in(absl::StrCat(dir, "/", entry->d_name, "/schedstat"));
    double ns = 0;
    if (in >> ns) total += ns * 1e-9;
  }
  closedir(tasks);
  return total;
}

// verify/s per algorithm from one `openssl speed` run, in kAlgorithms' order.
std::vector<double> OpensslVerifyPerSecond(int seconds) {
  const std::string command =
      absl::StrCat("openssl speed -seconds ", seconds, " ecdsap256 rsa2048 ed25519 2>/dev/null");
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) Die("cannot run openssl speed");
  std::string output;
  char buffer[4096];
  while (size_t n = fread(buffer, 1, sizeof(buffer), pipe)) output.append(buffer, n);
  if (pclose(pipe) != 0) Die("openssl speed failed");
  std::vector<double> out(kAlgorithmCount, 0);
  for (absl::string_view line : absl::StrSplit(output, '\n')) {
    for (int a = 0; a < kAlgorithmCount; ++a) {
      if (line.find(kAlgorithms[a].openssl_label) == absl::string_view::npos) continue;
      // "... sign verify sign/s verify/s": the last column.
      std::vector<absl::string_view> fields = absl::StrSplit(line, ' ', absl::SkipEmpty());
      if (fields.empty() || !absl::SimpleAtod(fields.back(), &out[a])) {
        Die("cannot parse openssl speed's line for " + std::string(kAlgorithms[a].alg));
      }
    }
  }
  for (int a = 0; a < kAlgorithmCount; ++a) {
    if (out[a] <= 0) Die("openssl speed printed no verify/s for " + std::string(kAlgorithms[a].alg));
  }
  return out;
}

// tokens[a][i]: distinct tokens (a unique `jti`) for algorithm a, valid for an hour.
std::vector<std::vector<std::string>> MintAll(const std::string& dir, int per_alg,
                                              std::string* jwks) {
  const int64_t now = absl::ToUnixSeconds(absl::Now());
  nlohmann::json specs = nlohmann::json::object();
  for (int a = 0; a < kAlgorithmCount; ++a) {
    for (int i = 0; i <= per_alg; ++i) {  // one more: the warm-up call's
      specs[absl::StrCat(kAlgorithms[a].key, "-", i)] = {
          {"key", kAlgorithms[a].key},
          {"claims",
           {{"iss", testing::kIssuer},
            {"aud", testing::kAudience},
            {"iat", now},
            {"nbf", now},
            {"exp", now + 3600},
            {"jti", absl::StrCat("bench-", a, "-", i)},
            {"namespace", kStack},
            {"serviceIdentity", kService},
            {"permissions", {"secret.grafana.app/securevalues:decrypt"}}}}};
    }
  }
  absl::StatusOr<auth::testing::MintedTokens> minted = auth::testing::MintTokens(dir, specs);
  if (!minted.ok()) Die(std::string(minted.status().message()));
  *jwks = auth::testing::JwksDocument(*minted, {"ec", "rsa", "ed"});
  std::vector<std::vector<std::string>> tokens(kAlgorithmCount);
  for (int a = 0; a < kAlgorithmCount; ++a) {
    for (int i = 0; i <= per_alg; ++i) {
      tokens[a].push_back(minted->tokens.at(absl::StrCat(kAlgorithms[a].key, "-", i)));
    }
  }
  return tokens;
}

// Tokens verified per second of this thread's CPU time: passes over `tokens`, each by a fresh
// verifier (so every token is new to it), until the passes have taken `seconds` of CPU, as long
// as openssl speed measures (one pass of a few thousand RS256 tokens is under 0.1 s, too short
// to stand beside a 2 s ceiling on a shared machine).
double InProcessRate(const std::string& jwks_path, const std::vector<std::string>& tokens,
                     double seconds) {
  double cpu = 0;
  size_t verified = 0;
  do {
    auth::JwksFileOptions source_options;
    source_options.path = jwks_path;
    source_options.clock = Clock::Real();
    absl::StatusOr<std::unique_ptr<auth::FileJwksSource>> source =
        auth::FileJwksSource::Create(source_options);
    if (!source.ok()) Die(std::string(source.status().message()));
    auth::TokenVerifierOptions options;
    options.issuer = testing::kIssuer;
    options.audiences = {testing::kAudience};
    options.clock = Clock::Real();
    absl::StatusOr<std::unique_ptr<auth::TokenVerifier>> verifier =
        auth::TokenVerifier::Create(options, source->get());
    if (!verifier.ok()) Die(std::string(verifier.status().message()));
    const double start = ThreadCpuSeconds();
    for (size_t i = 1; i < tokens.size(); ++i) {  // tokens[0] is the warm-up call's
      if (!(*verifier)->Verify(tokens[i]).caller.ok()) Die("a minted token did not verify");
    }
    cpu += ThreadCpuSeconds() - start;
    if ((*verifier)->stats().signature_checks != tokens.size() - 1) Die("a token was not new");
    verified += tokens.size() - 1;
  } while (cpu < seconds);
  return static_cast<double>(verified) / cpu;
}

bool ResolveOnce(secretresolver::v1::SecretResolver::Stub* stub, const std::string& token) {
  grpc::ClientContext context;
  context.AddMetadata("authorization", "Bearer " + token);
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  secretresolver::v1::ResolveSecretsRequest request;
  request.set_stack(kStack);
  (*request.mutable_refs())["s"] = absl::StrCat("secret://", kSecretName);
  secretresolver::v1::ResolveSecretsResponse response;
  const grpc::Status status = stub->ResolveSecrets(&context, request, &response);
  return status.ok() && response.results().at("s").has_secret();
}

struct EndToEnd {
  double per_cpu_second;  // calls per second of the sidecar's CPU time
  double per_second;      // calls per second of wall time
};

// Calls with every token of `tokens` after the first, from kClientThreads threads.
EndToEnd EndToEndRate(const testing::SidecarProcess& sidecar,
                      const std::vector<std::unique_ptr<secretresolver::v1::SecretResolver::Stub>>& stubs,
                      const std::vector<std::string>& tokens) {
  std::atomic<size_t> next{1};
  std::atomic<bool> failed{false};
  const double cpu_start = ProcessCpuSeconds(sidecar.pid());
  const absl::Time wall_start = absl::Now();
  std::vector<std::thread> threads;
  for (int t = 0; t < kClientThreads; ++t) {
    threads.emplace_back([&, t] {
      for (size_t i = next++; i < tokens.size(); i = next++) {
        if (!ResolveOnce(stubs[t].get(), tokens[i])) failed = true;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  const double wall = absl::ToDoubleSeconds(absl::Now() - wall_start);
  const double cpu = ProcessCpuSeconds(sidecar.pid()) - cpu_start;
  if (failed) Die("an end-to-end call failed");
  const double calls = static_cast<double>(tokens.size() - 1);
  return {calls / cpu, calls / wall};
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

void Summarize(const char* what, const std::vector<double>& ratios) {
  std::printf("  %-12s median %.2fx (%.2f-%.2f)\n", what, Median(ratios),
              *std::min_element(ratios.begin(), ratios.end()),
              *std::max_element(ratios.begin(), ratios.end()));
}

}  // namespace
}  // namespace secret_resolver

int main(int argc, char** argv) {
  using namespace secret_resolver;  // NOLINT: a benchmark's main
  const int per_alg = argc > 1 ? std::atoi(argv[1]) : 3000;
  const int rounds = argc > 2 ? std::atoi(argv[2]) : 5;
  const int seconds = argc > 3 ? std::atoi(argv[3]) : 2;
  if (per_alg <= 0 || rounds <= 0 || seconds <= 0) Die("usage: [TOKENS_PER_ALG [ROUNDS [SECONDS]]]");

  absl::StatusOr<testing::SidecarState> state =
      testing::SidecarState::Create("logging:\n  level: warning\n  audit: false\n");
  if (!state.ok()) Die(std::string(state.status().message()));
  std::string jwks;
  const std::vector<std::vector<std::string>> tokens =
      MintAll(state->dir + "/minted", per_alg, &jwks);
  if (!auth::testing::WriteFileAtomically(state->jwks_file, jwks).ok()) Die("cannot write JWKS");
  {
    absl::StatusOr<std::unique_ptr<SqliteSecretStore>> store =
        SqliteSecretStore::Open(state->store_path, &state->key_ring);
    if (!store.ok()) Die(std::string(store.status().message()));
    SecretWrite write;
    write.stack = kStack;
    write.name = kSecretName;
    write.decrypters = {kService};
    write.actor = "bench";
    write.value = SecretBytes(std::string(32, 'v'));
    if (!(*store)->Put(write).ok()) Die("cannot store the secret");
  }
  std::printf("%d new tokens per algorithm per round, %d rounds, openssl speed -seconds %d; "
              "%d client threads; %u cores\n",
              per_alg, rounds, seconds, kClientThreads, std::thread::hardware_concurrency());

  std::vector<std::vector<double>> in_process(kAlgorithmCount), end_to_end(kAlgorithmCount);
  std::vector<std::vector<double>> ceilings(kAlgorithmCount);
  std::vector<double> warm_calls;
  for (int a = 0; a < kAlgorithmCount; ++a) InProcessRate(state->jwks_file, tokens[a], 0);
  for (int round = 0; round < rounds; ++round) {
    const std::vector<double> ceiling = OpensslVerifyPerSecond(seconds);
    absl::StatusOr<std::unique_ptr<testing::SidecarProcess>> sidecar =
        testing::SidecarProcess::Start(*state);
    if (!sidecar.ok()) Die(std::string(sidecar.status().message()));
    std::vector<std::unique_ptr<secretresolver::v1::SecretResolver::Stub>> stubs;
    for (int t = 0; t < kClientThreads; ++t) {
      grpc::ChannelArguments args;
      args.SetInt("secret_resolver.bench.channel", t);  // one connection per thread
      stubs.push_back(secretresolver::v1::SecretResolver::NewStub(grpc::CreateCustomChannel(
          (*sidecar)->target(), grpc::InsecureChannelCredentials(), args)));
    }
    // Warms the connections and the secret's cache entry with tokens the runs do not use.
    for (int t = 0; t < kClientThreads; ++t) {
      if (!ResolveOnce(stubs[t].get(), tokens[t % kAlgorithmCount][0])) Die("warm-up call failed");
    }
    for (int a = 0; a < kAlgorithmCount; ++a) {
      const double local = InProcessRate(state->jwks_file, tokens[a], seconds);
      const EndToEnd remote = EndToEndRate(**sidecar, stubs, tokens[a]);
      in_process[a].push_back(local / ceiling[a]);
      end_to_end[a].push_back(remote.per_cpu_second / ceiling[a]);
      ceilings[a].push_back(ceiling[a]);
      std::printf("round %d %-5s openssl %8.0f verify/s | in process %8.0f/s CPU = %.2fx | "
                  "end to end %8.0f/s sidecar CPU = %.2fx (%6.0f calls/s wall)\n",
                  round + 1, kAlgorithms[a].alg, ceiling[a], local, local / ceiling[a],
                  remote.per_cpu_second, remote.per_cpu_second / ceiling[a], remote.per_second);
      std::fflush(stdout);
    }
    const EndToEnd warm =
        EndToEndRate(**sidecar, stubs, std::vector<std::string>(tokens[0].size(), tokens[0][0]));
    warm_calls.push_back(warm.per_cpu_second);
    std::printf("round %d cached token: end to end %8.0f/s sidecar CPU (%6.0f calls/s wall)\n",
                round + 1, warm.per_cpu_second, warm.per_second);
    if ((*sidecar)->Terminate() != 0) Die("the sidecar did not exit cleanly");
  }
  std::printf("\nratio to openssl speed's verify/s on one core (target >= 0.80x):\n");
  for (int a = 0; a < kAlgorithmCount; ++a) {
    std::printf("%s (openssl median %.0f verify/s)\n", kAlgorithms[a].alg, Median(ceilings[a]));
    Summarize("in process", in_process[a]);
    Summarize("end to end", end_to_end[a]);
    // A new-token call costs a cached-token call plus one verification at best.
    const double bound = 1 / (1 + Median(ceilings[a]) / Median(warm_calls));
    std::printf("  %-12s %.2fx if verifying cost exactly openssl's time\n", "bound", bound);
  }
  std::printf("cached token (median): %.0f calls per second of sidecar CPU\n", Median(warm_calls));
  return 0;
}
