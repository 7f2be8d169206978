// RedactLogs against the library it wraps (issue 18 item 6): 32 MiB of log text (1% of lines
// carrying one of 10 secrets of 16-64 bytes, raw or base64), redacted
//   - BM_LibraryStream: in process, by client::RedactionStream fed 64 KiB chunks (with
//     EmitDecided after each, as the sidecar does), the baseline;
//   - BM_RedactLogs/N: through the real sidecar binary (SidecarProcess, the SQLite store) over
//     its Unix socket, by the client library's RemoteRedaction in chunks of N bytes.
// Both outputs are checked once against Redactor::RedactAll of the whole text before timing. The
// ratio table divides the library's time by the stream's: the stream's throughput as a fraction
// of the library's (the target is at least 0.5).
//
//   bazel run -c opt //tests/bench:redact_logs_bench      (or: tools/dev bench redact_logs)
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include <benchmark/benchmark.h>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "client/redactor/redactor.h"
#include "client/secret_resolver_client.h"
#include "resolver/secret_bytes.h"
#include "resolver/secret_store.h"
#include "resolver/sqlite/sqlite_secret_store.h"
#include "tests/bench/ratio_reporter.h"
#include "tests/integration/sidecar_process.h"

namespace secret_resolver {
namespace {

constexpr size_t kTextBytes = size_t{32} << 20;
constexpr size_t kLibraryChunkBytes = size_t{64} << 10;
constexpr int kSecrets = 10;
constexpr char kStack[] = "stacks-1";
constexpr char kService[] = "bench";

struct World {
  std::unique_ptr<testing::SidecarState> state;
  std::unique_ptr<testing::SidecarProcess> sidecar;
  std::unique_ptr<client::SecretResolverClient> client;
  std::map<std::string, std::string> refs;
  std::string text;
  std::string expected;
  std::shared_ptr<const client::Redactor> redactor;
};

std::string FakeValue(std::mt19937_64& rng) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.+/=!@#$%&*";
  const size_t length = std::uniform_int_distribution<size_t>(16, 64)(rng);
  std::string value;
  for (size_t i = 0; i < length; ++i) {
    value.push_back(
        kAlphabet[std::uniform_int_distribution<size_t>(0, sizeof(kAlphabet) - 2)(rng)]);
  }
  return value;
}

World* BuildWorld() {
  auto world = std::make_unique<World>();
  absl::StatusOr<testing::SidecarState> state = testing::SidecarState::Create(
      "logging:\n  level: warning\n  audit: false\nlimits:\n  max_message_bytes: 4194304\n");
  if (!state.ok()) {
    std::fprintf(stderr, "state: %s\n", state.status().ToString().c_str());
    return nullptr;
  }
  world->state = std::make_unique<testing::SidecarState>(*std::move(state));
  std::mt19937_64 rng(18);
  std::vector<std::string> values;
  {
    absl::StatusOr<std::unique_ptr<SqliteSecretStore>> store =
        SqliteSecretStore::Open(world->state->store_path, &world->state->key_ring);
    if (!store.ok()) return nullptr;
    for (int i = 0; i < kSecrets; ++i) {
      SecretWrite write;
      write.stack = kStack;
      write.name = absl::StrCat("bench/secret-", i);
      write.decrypters = {kService};
      write.actor = "bench";
      values.push_back(FakeValue(rng));
      write.value = SecretBytes(values.back());
      if (!(*store)->Put(write).ok()) return nullptr;
      world->refs[absl::StrCat("s", i)] = absl::StrCat("secret://bench/secret-", i);
    }
  }
  absl::StatusOr<std::unique_ptr<testing::SidecarProcess>> sidecar =
      testing::SidecarProcess::Start(*world->state);
  if (!sidecar.ok()) {
    std::fprintf(stderr, "sidecar: %s\n", sidecar.status().ToString().c_str());
    return nullptr;
  }
  world->sidecar = *std::move(sidecar);
  client::ClientOptions options;
  options.target = world->sidecar->target();
  const std::string token = world->state->Token(kStack, kService);
  options.token_provider = [token]() -> absl::StatusOr<std::string> { return token; };
  world->client = *client::SecretResolverClient::Create(std::move(options));

  // Placeholders as the sidecar makes them (the default format).
  std::vector<client::RedactionSecret> secrets;
  for (int i = 0; i < kSecrets; ++i) {
    secrets.push_back({SecretBytes(values[i]), absl::StrCat("***SECRET_REDACTED:s", i, "***")});
  }
  world->redactor = client::Redactor::Create(std::move(secrets));
  world->text.reserve(kTextBytes + 256);
  for (uint64_t line = 0; world->text.size() < kTextBytes; ++line) {
    absl::StrAppend(&world->text, "{\"ts\":\"2026-12-06T07:", line % 60, ":", line % 59,
                    "Z\",\"level\":\"info\",\"step\":", line % 97,
                    ",\"msg\":\"request served\",\"bytes\":", (line * 7919) % 100000);
    if (rng() % 100 == 0) {
      const std::string& value = values[rng() % kSecrets];
      absl::StrAppend(&world->text, ",\"auth\":\"",
                      rng() % 2 == 0 ? value : absl::Base64Escape(value), "\"");
    }
    world->text += "}\n";
  }
  world->expected = world->redactor->RedactAll(world->text);
  return world.release();
}

World& TheWorld() {
  static World* const world = BuildWorld();
  if (world == nullptr) std::abort();
  return *world;
}

std::string LibraryStream(const World& world) {
  std::string out;
  out.reserve(world.text.size());
  client::RedactionStream stream(world.redactor, [&out](absl::string_view piece) {
    out.append(piece.data(), piece.size());
  });
  for (size_t at = 0; at < world.text.size(); at += kLibraryChunkBytes) {
    stream.Write(absl::string_view(world.text).substr(at, kLibraryChunkBytes));
    stream.EmitDecided();
  }
  stream.Flush();
  return out;
}

absl::StatusOr<std::string> RemoteStream(World& world, size_t chunk_bytes) {
  std::string out;
  out.reserve(world.text.size());
  absl::StatusOr<std::unique_ptr<client::RemoteRedaction>> stream = world.client->RedactLogs(
      kStack, world.refs, [&out](absl::string_view piece) { out.append(piece.data(), piece.size()); });
  if (!stream.ok()) return stream.status();
  for (size_t at = 0; at < world.text.size(); at += chunk_bytes) {
    if (absl::Status s = (*stream)->Write(absl::string_view(world.text).substr(at, chunk_bytes));
        !s.ok()) {
      break;
    }
  }
  if (absl::Status s = (*stream)->Finish(); !s.ok()) return s;
  return out;
}

void BM_LibraryStream(benchmark::State& state) {
  const World& world = TheWorld();
  if (LibraryStream(world) != world.expected) state.SkipWithError("library output differs");
  for (auto _ : state) benchmark::DoNotOptimize(LibraryStream(world).data());
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * world.text.size()));
}
BENCHMARK(BM_LibraryStream)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_RedactLogs(benchmark::State& state) {
  World& world = TheWorld();
  const size_t chunk = static_cast<size_t>(state.range(0));
  absl::StatusOr<std::string> checked = RemoteStream(world, chunk);
  if (!checked.ok() || *checked != world.expected) {
    state.SkipWithError("RedactLogs output differs from the library's, or the stream failed");
    return;
  }
  for (auto _ : state) {
    absl::StatusOr<std::string> out = RemoteStream(world, chunk);
    if (!out.ok()) {
      state.SkipWithError("the stream failed");
      return;
    }
    benchmark::DoNotOptimize(out->data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * world.text.size()));
}
BENCHMARK(BM_RedactLogs)
    ->Arg(64 << 10)
    ->Arg(256 << 10)
    ->Arg(1 << 20)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
}  // namespace secret_resolver

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  // Ratio = library time / stream time: the stream's throughput as a fraction of the library's.
  secret_resolver::RatioReporter reporter({
      {"BM_LibraryStream/real_time", "BM_RedactLogs/65536/real_time"},
      {"BM_LibraryStream/real_time", "BM_RedactLogs/262144/real_time"},
      {"BM_LibraryStream/real_time", "BM_RedactLogs/1048576/real_time"},
  });
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return 0;
}
