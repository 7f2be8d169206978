// Log redactor benchmarks (client/redactor): 64 MiB of log text (JSON and plain lines, 1% of
// lines carrying a secret in some encoding), redacted with 100 and with 10 secrets of 16-64
// bytes and all their patterns (client/redactor/patterns.h), by
//   - BM_Redactor: Redactor::RedactAll on the whole text;
//   - BM_RedactorStream: RedactionStream fed in 64 KiB chunks;
//   - BM_Hyperscan: Hyperscan block mode, compiled (hs_compile_lit_multi) on the same patterns;
//   - BM_NaiveMemmem: one memmem loop per pattern;
//   - BM_CopyOnly: copying the text, the floor for any redactor that writes a new buffer.
// Every engine produces the same redacted text (checked once before timing, leftmost-longest
// resolution shared by the baselines), so the figures compare like with like. The ratio table
// divides each baseline's time by the redactor's: above 1 means the redactor is faster.
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include <benchmark/benchmark.h>
#include <hs/hs.h>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/redactor/patterns.h"
#include "client/redactor/redactor.h"
#include "tests/bench/ratio_reporter.h"

namespace secret_resolver::client {
namespace {

constexpr size_t kTextBytes = size_t{64} << 20;
constexpr size_t kChunkBytes = size_t{64} << 10;

struct Match {
  size_t start;
  size_t length;
  uint32_t pattern;
};

// One benchmark world: fake secrets, their patterns, the log text, and every engine built.
struct World {
  std::vector<std::string> values;  // fake secret values
  std::vector<std::string> placeholders;
  std::vector<std::string> patterns;     // distinct, over all secrets
  std::vector<uint32_t> pattern_secret;  // pattern -> secret index
  std::string text;
  std::string expected;  // the redacted text, as every engine must produce it
  std::shared_ptr<const Redactor> redactor;
  hs_database_t* database = nullptr;
  hs_scratch_t* scratch = nullptr;
};

std::string FakeValue(std::mt19937_64& rng) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.+/=!@#$%&*\"\\ ";
  const size_t length = std::uniform_int_distribution<size_t>(16, 64)(rng);
  std::string value;
  for (size_t i = 0; i < length; ++i) {
    value.push_back(
        kAlphabet[std::uniform_int_distribution<size_t>(0, sizeof(kAlphabet) - 2)(rng)]);
  }
  return value;
}

// A form of `value` as some logger would write it.
std::string PlantedForm(std::mt19937_64& rng, const std::string& value) {
  switch (std::uniform_int_distribution<int>(0, 6)(rng)) {
    case 0:
      return value;
    case 1:
      return absl::Base64Escape(value);
    case 2:
      return absl::WebSafeBase64Escape(value);
    case 3:  // inside a larger base64 blob, at offset 1 or 2
      return absl::Base64Escape(absl::StrCat(rng() % 2 == 0 ? "u:" : "u", value, "\n"));
    case 4: {
      std::string out;
      for (unsigned char c : value) {
        if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
          out.push_back(static_cast<char>(c));
        } else {
          absl::StrAppendFormat(&out, "%%%02X", c);
        }
      }
      return out;
    }
    default: {
      std::string out;
      for (char c : value) {
        if (c == '"' || c == '\\') out.push_back('\\');
        out.push_back(c);
      }
      return out;
    }
  }
}

std::string LogText(std::mt19937_64& rng, const std::vector<std::string>& values) {
  static const char* const kLevels[] = {"info", "info", "info", "debug", "warn", "error"};
  static const char* const kSteps[] = {"http-request", "transform", "notify-slack", "db-query",
                                       "wait",         "checkout",  "deploy"};
  static const char* const kMessages[] = {"request completed",    "step started",
                                          "step finished",        "retrying after backoff",
                                          "cache miss, fetching", "rendered template with 3 inputs",
                                          "connection reused"};
  std::string text;
  text.reserve(kTextBytes + 4096);
  for (uint64_t line = 0; text.size() < kTextBytes; ++line) {
    const uint64_t r = rng();
    const int ms = static_cast<int>(r % 1000);
    const char* level = kLevels[(r >> 10) % 6];
    const char* step = kSteps[(r >> 13) % 7];
    const char* message = kMessages[(r >> 16) % 7];
    std::string secret;
    if ((r >> 20) % 100 == 0) {
      secret = PlantedForm(rng, values[(r >> 27) % values.size()]);
    }
    if ((r >> 40) % 2 == 0) {
      absl::StrAppendFormat(
          &text,
          "{\"ts\":\"2026-11-29T09:%02d:%02d.%03dZ\",\"level\":\"%s\",\"logger\":\"workflow.step\","
          "\"run\":\"run-%016x\",\"step\":\"%s\",\"msg\":\"%s\",\"status\":%d,\"latency_ms\":%d",
          line / 60 % 60, line % 60, ms, level, step, message, 200 + (r >> 44) % 4 * 100,
          (r >> 50) % 900, (r * 0x9E3779B97F4A7C15ull));
      if (!secret.empty()) absl::StrAppend(&text, ",\"authorization\":\"Bearer ", secret, "\"");
      text.append("}\n");
    } else {
      absl::StrAppendFormat(&text,
                            "2026-11-29 09:%02d:%02d.%03d %-5s [worker-%d] step=%s %s in %dms "
                            "url=https://api.example.com/v1/items?page=%d bytes=%d",
                            line / 60 % 60, line % 60, ms, level, static_cast<int>(r >> 52) % 8,
                            step, message, (r >> 50) % 900, (r >> 36) % 50, (r >> 24) % 65536);
      if (!secret.empty()) absl::StrAppend(&text, " token=", secret);
      text.push_back('\n');
    }
  }
  return text;
}

// Leftmost-longest over all matches, as the redactor resolves them.
void ApplyMatches(const World& world, std::vector<Match>* matches, std::string* out) {
  std::sort(matches->begin(), matches->end(), [](const Match& a, const Match& b) {
    return a.start != b.start ? a.start < b.start : a.length > b.length;
  });
  size_t cursor = 0;
  for (const Match& match : *matches) {
    if (match.start < cursor) continue;
    out->append(world.text, cursor, match.start - cursor);
    out->append(world.placeholders[world.pattern_secret[match.pattern]]);
    cursor = match.start + match.length;
  }
  out->append(world.text, cursor, std::string::npos);
}

void RedactNaive(const World& world, std::string* out) {
  std::vector<Match> matches;
  const char* text = world.text.data();
  const size_t size = world.text.size();
  for (uint32_t p = 0; p < world.patterns.size(); ++p) {
    const std::string& pattern = world.patterns[p];
    const char* at = text;
    while (true) {
      const size_t left = size - static_cast<size_t>(at - text);
      const void* found = memmem(at, left, pattern.data(), pattern.size());
      if (found == nullptr) break;
      const char* hit = static_cast<const char*>(found);
      matches.push_back(Match{static_cast<size_t>(hit - text), pattern.size(), p});
      at = hit + 1;
    }
  }
  ApplyMatches(world, &matches, out);
}

struct HyperscanContext {
  const World* world;
  std::vector<Match>* matches;
};

int OnHyperscanMatch(unsigned int id, unsigned long long from, unsigned long long to,
                     unsigned int flags, void* context) {
  auto* c = static_cast<HyperscanContext*>(context);
  const size_t length = c->world->patterns[id].size();
  c->matches->push_back(Match{static_cast<size_t>(to) - length, length, id});
  return 0;
}

void RedactHyperscan(const World& world, std::string* out) {
  std::vector<Match> matches;
  HyperscanContext context{&world, &matches};
  if (hs_scan(world.database, world.text.data(), static_cast<unsigned int>(world.text.size()), 0,
              world.scratch, OnHyperscanMatch, &context) != HS_SUCCESS) {
    std::fprintf(stderr, "hs_scan failed\n");
    std::abort();
  }
  ApplyMatches(world, &matches, out);
}

void RedactStream(const World& world, std::string* out) {
  RedactionStream stream(world.redactor, [out](absl::string_view redacted) {
    out->append(redacted.data(), redacted.size());
  });
  const absl::string_view text = world.text;
  for (size_t i = 0; i < text.size(); i += kChunkBytes) stream.Write(text.substr(i, kChunkBytes));
  stream.Flush();
}

World* BuildWorld(int secrets) {
  auto* world = new World();
  std::mt19937_64 rng(20261129 + secrets);
  std::vector<RedactionSecret> redaction_secrets;
  for (int i = 0; i < secrets; ++i) {
    world->values.push_back(FakeValue(rng));
    world->placeholders.push_back(absl::StrCat("***SECRET_REDACTED:bench-", i, "***"));
    redaction_secrets.push_back(
        RedactionSecret{SecretBytes(world->values.back()), world->placeholders.back()});
    for (const SecretBytes& pattern : DeriveRedactionPatterns(world->values.back())) {
      const std::string text(pattern.reveal());
      if (std::find(world->patterns.begin(), world->patterns.end(), text) !=
          world->patterns.end()) {
        continue;
      }
      world->patterns.push_back(text);
      world->pattern_secret.push_back(static_cast<uint32_t>(i));
    }
  }
  world->redactor = Redactor::Create(std::move(redaction_secrets));
  world->text = LogText(rng, world->values);

  std::vector<const char*> expressions;
  std::vector<size_t> lengths;
  std::vector<unsigned int> flags(world->patterns.size(), 0);
  std::vector<unsigned int> ids;
  for (uint32_t p = 0; p < world->patterns.size(); ++p) {
    expressions.push_back(world->patterns[p].data());
    lengths.push_back(world->patterns[p].size());
    ids.push_back(p);
  }
  hs_compile_error_t* error = nullptr;
  if (hs_compile_lit_multi(expressions.data(), flags.data(), ids.data(), lengths.data(),
                           static_cast<unsigned int>(expressions.size()), HS_MODE_BLOCK, nullptr,
                           &world->database, &error) != HS_SUCCESS) {
    std::fprintf(stderr, "hs_compile_lit_multi failed: %s\n", error->message);
    std::abort();
  }
  if (hs_alloc_scratch(world->database, &world->scratch) != HS_SUCCESS) std::abort();

  // Every engine must produce the same text; say only whether it does.
  const std::string expected = world->redactor->RedactAll(world->text);
  std::string out;
  RedactHyperscan(*world, &out);
  const bool hyperscan_same = out == expected;
  out.clear();
  RedactStream(*world, &out);
  const bool stream_same = out == expected;

  size_t redacted_lines = 0;
  for (size_t at = expected.find("***SECRET_REDACTED:"); at != std::string::npos;
       at = expected.find("***SECRET_REDACTED:", at + 1)) {
    ++redacted_lines;
  }
  std::printf(
      "world %d secrets: %zu patterns (longest %zu bytes), %zu MiB text, %zu "
      "placeholders written; output of hyperscan %s, stream %s\n",
      secrets, world->patterns.size(), world->redactor->max_pattern_length(),
      world->text.size() >> 20, redacted_lines, hyperscan_same ? "identical" : "DIFFERS",
      stream_same ? "identical" : "DIFFERS");
  if (!hyperscan_same || !stream_same) std::abort();
  world->expected = expected;
  return world;
}

const World& TheWorld(int secrets) {
  static World* const hundred = BuildWorld(100);
  static World* const ten = BuildWorld(10);
  return secrets == 100 ? *hundred : *ten;
}

// The floor for any redactor that writes a new buffer: copying the text.
void BM_CopyOnly(benchmark::State& state) {
  const World& world = TheWorld(static_cast<int>(state.range(0)));
  std::string out;
  out.assign(world.text.size() + world.text.size() / 8, ' ');  // touch the pages once
  for (auto _ : state) {
    out.clear();
    out.append(world.text);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * world.text.size()));
}
BENCHMARK(BM_CopyOnly)->Arg(100)->Unit(benchmark::kMillisecond);

void BM_Redactor(benchmark::State& state) {
  const World& world = TheWorld(static_cast<int>(state.range(0)));
  std::string out;
  out.assign(world.text.size() + world.text.size() / 8, ' ');  // touch the pages once
  for (auto _ : state) {
    out.clear();
    world.redactor->RedactAllTo(world.text, &out);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * world.text.size()));
}
BENCHMARK(BM_Redactor)->Arg(100)->Arg(10)->Unit(benchmark::kMillisecond);

void BM_RedactorStream(benchmark::State& state) {
  const World& world = TheWorld(static_cast<int>(state.range(0)));
  std::string out;
  out.assign(world.text.size() + world.text.size() / 8, ' ');  // touch the pages once
  for (auto _ : state) {
    out.clear();
    RedactStream(world, &out);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * world.text.size()));
}
BENCHMARK(BM_RedactorStream)->Arg(100)->Arg(10)->Unit(benchmark::kMillisecond);

void BM_Hyperscan(benchmark::State& state) {
  const World& world = TheWorld(static_cast<int>(state.range(0)));
  std::string out;
  out.assign(world.text.size() + world.text.size() / 8, ' ');  // touch the pages once
  for (auto _ : state) {
    out.clear();
    RedactHyperscan(world, &out);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * world.text.size()));
}
BENCHMARK(BM_Hyperscan)->Arg(100)->Arg(10)->Unit(benchmark::kMillisecond);

void BM_NaiveMemmem(benchmark::State& state) {
  const World& world = TheWorld(static_cast<int>(state.range(0)));
  std::string out;
  out.assign(world.text.size() + world.text.size() / 8, ' ');  // touch the pages once
  for (auto _ : state) {
    out.clear();
    RedactNaive(world, &out);
    benchmark::DoNotOptimize(out.data());
  }
  if (out != world.expected) state.SkipWithError("memmem output differs from the redactor's");
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * world.text.size()));
}
BENCHMARK(BM_NaiveMemmem)->Arg(100)->Arg(10)->Iterations(1)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace secret_resolver::client

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  // Ratio = baseline time / redactor time: how many times faster the redactor is.
  secret_resolver::RatioReporter reporter({
      {"BM_Hyperscan/100", "BM_Redactor/100"},
      {"BM_Hyperscan/10", "BM_Redactor/10"},
      {"BM_NaiveMemmem/100/iterations:1", "BM_Redactor/100"},
      {"BM_NaiveMemmem/10/iterations:1", "BM_Redactor/10"},
      {"BM_RedactorStream/100", "BM_Redactor/100"},
      {"BM_RedactorStream/10", "BM_Redactor/10"},
  });
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return 0;
}
