#include "server/json_log.h"

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "resolver/secret_bytes.h"
#include "tests/fakes/fake_clock.h"

namespace secret_resolver {
namespace {

using Json = nlohmann::ordered_json;  // keeps the key order of the line
using ::testing::ElementsAre;

// The API gives no way to log secret bytes, or a pointer to them (which must not turn into
// `true`).
static_assert(!std::is_constructible_v<LogField, const char*, const SecretBytes&>);
static_assert(!std::is_constructible_v<LogField, const char*, SecretBytes&&>);
static_assert(!std::is_constructible_v<LogField, const char*, const SecretBytes*>);
static_assert(!std::is_constructible_v<LogField, const char*, const void*>);
static_assert(std::is_constructible_v<LogField, const char*, bool>);

// Splits the output into lines, checking that each is one complete JSON object.
std::vector<Json> ParseLines(const std::string& text) {
  std::vector<Json> objects;
  if (text.empty()) return objects;
  EXPECT_EQ(text.back(), '\n');
  std::vector<std::string> lines = absl::StrSplit(text, '\n');
  lines.pop_back();
  for (const std::string& line : lines) {
    for (char c : line) {
      EXPECT_GE(static_cast<unsigned char>(c), 0x20) << "raw control character in: " << line;
    }
    Json object = Json::parse(line, nullptr, /*allow_exceptions=*/false);
    EXPECT_TRUE(object.is_object()) << "not a JSON object: " << line;
    objects.push_back(object);
  }
  return objects;
}

// The text of the file at `path`, read through a stream of its own (not the logger's FILE),
// once it holds at least `at_least` bytes or `limit` has passed.
std::string WaitForFileText(const std::string& path, size_t at_least, absl::Duration limit) {
  std::string text;
  const absl::Time give_up = absl::Now() + limit;
  while (text.size() < at_least && absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(10));
    std::ifstream in(path);
    text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  return text;
}

class JsonLogTest : public ::testing::Test {
 protected:
  JsonLoggerOptions Options() {
    JsonLoggerOptions options;
    options.clock = &clock_;
    return options;
  }

  FakeClock clock_;  // 2023-11-14T22:13:20Z
  std::ostringstream out_;
};

TEST_F(JsonLogTest, WritesTimeLevelMessageAndTypedFields) {
  JsonLogger logger(&out_, Options());
  clock_.Advance(absl::Milliseconds(1234));
  logger.Info("serving", {{"unix", "/run/sr.sock"},
                          {"port", 50051},
                          {"max_bytes", uint64_t{1} << 40},
                          {"negative", -3},
                          {"share", 0.25},
                          {"tls", false},
                          {"grace", absl::Milliseconds(1500)},
                          {"error", absl::NotFoundError("no such secret")},
                          {"name", std::string("db-password")}});
  std::vector<Json> lines = ParseLines(out_.str());
  ASSERT_EQ(lines.size(), 1u);
  const Json& line = lines[0];
  EXPECT_EQ(line["time"], "2023-11-14T22:13:21.234Z");
  EXPECT_EQ(line["level"], "info");
  EXPECT_EQ(line["msg"], "serving");
  EXPECT_EQ(line["unix"], "/run/sr.sock");
  EXPECT_TRUE(line["port"].is_number_integer());
  EXPECT_EQ(line["port"], 50051);
  EXPECT_EQ(line["max_bytes"].get<uint64_t>(), uint64_t{1} << 40);
  EXPECT_EQ(line["negative"], -3);
  EXPECT_TRUE(line["share"].is_number_float());
  EXPECT_EQ(line["share"], 0.25);
  EXPECT_TRUE(line["tls"].is_boolean());
  EXPECT_EQ(line["tls"], false);
  EXPECT_EQ(line["grace"], 1500.0);
  EXPECT_EQ(line["error"], "NOT_FOUND: no such secret");
  EXPECT_EQ(line["name"], "db-password");
  // time, level and msg come first, so lines read well in a terminal.
  EXPECT_EQ(out_.str().rfind("{\"time\":\"2023-11-14T22:13:21.234Z\",\"level\":\"info\","
                             "\"msg\":\"serving\",",
                             0),
            0u);
}

TEST_F(JsonLogTest, LevelsAreFiltered) {
  JsonLoggerOptions options = Options();
  options.min_level = LogLevel::kWarning;
  JsonLogger logger(&out_, options);
  logger.Debug("d");
  logger.Info("i");
  logger.Warning("w");
  logger.Error("e");
  logger.set_min_level(LogLevel::kDebug);
  logger.Debug("d2");
  std::vector<Json> lines = ParseLines(out_.str());
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0]["level"], "warning");
  EXPECT_EQ(lines[1]["level"], "error");
  EXPECT_EQ(lines[2]["level"], "debug");
  EXPECT_EQ(lines[2]["msg"], "d2");
}

TEST_F(JsonLogTest, ControlCharactersQuotesAndBackslashesAreEscaped) {
  JsonLogger logger(&out_, Options());
  const std::string nasty =
      std::string("line1\nline2\r\t\x01\x1f \"quoted\" back\\slash") + std::string(1, '\0') + "end";
  logger.Error(nasty, {{"field", nasty}});
  const std::string text = out_.str();
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 1) << "a message broke the line";
  EXPECT_NE(text.find("\\u0001"), std::string::npos);
  EXPECT_NE(text.find("\\u0000"), std::string::npos);
  std::vector<Json> lines = ParseLines(text);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0]["msg"].get<std::string>(), nasty);
  EXPECT_EQ(lines[0]["field"].get<std::string>(), nasty);
}

TEST_F(JsonLogTest, InvalidUtf8IsReplacedNotThrown) {
  JsonLogger logger(&out_, Options());
  logger.Info("bad \xff\xfe bytes", {{"k", "\xc3"}});
  std::vector<Json> lines = ParseLines(out_.str());
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0]["msg"], "bad \xEF\xBF\xBD\xEF\xBF\xBD bytes");
}

TEST_F(JsonLogTest, ReservedKeysDoNotOverwriteTheHeader) {
  JsonLogger logger(&out_, Options());
  logger.Info("real", {{"msg", "fake"}, {"level", "error"}, {"time", 0}});
  std::vector<Json> lines = ParseLines(out_.str());
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0]["msg"], "real");
  EXPECT_EQ(lines[0]["level"], "info");
  EXPECT_EQ(lines[0]["time"], "2023-11-14T22:13:20.000Z");
  EXPECT_EQ(lines[0]["field_msg"], "fake");
  EXPECT_EQ(lines[0]["field_level"], "error");
  EXPECT_EQ(lines[0]["field_time"], 0);
}

TEST_F(JsonLogTest, AuditLineHasEveryField) {
  JsonLogger logger(&out_, Options());
  AuditRecord record;
  record.stack = "stack-1";
  record.caller = "grafana-workflows";
  record.ref_key = "DB_PASSWORD";
  record.secret_name = "db-password";
  record.version = 7;
  record.decision = AuditDecision::kAllowed;
  record.code = absl::StatusCode::kOk;
  record.cache = "hit";
  record.latency_ms = 0.42;
  logger.LogAudit(record);

  record.time = absl::FromUnixSeconds(1600000000) + absl::Milliseconds(5);
  record.decision = AuditDecision::kDenied;
  record.code = absl::StatusCode::kPermissionDenied;
  record.version = 0;
  record.cache = "";
  logger.LogAudit(record);

  std::vector<Json> lines = ParseLines(out_.str());
  ASSERT_EQ(lines.size(), 2u);
  std::vector<std::string> keys;
  for (const auto& item : lines[0].items()) keys.push_back(item.key());
  EXPECT_THAT(keys, ElementsAre("time", "level", "msg", "stack", "caller", "ref_key", "secret",
                                "version", "decision", "code", "cache", "latency_ms"));
  EXPECT_EQ(lines[0]["time"], "2023-11-14T22:13:20.000Z");
  EXPECT_EQ(lines[0]["level"], "info");
  EXPECT_EQ(lines[0]["msg"], "audit");
  EXPECT_EQ(lines[0]["stack"], "stack-1");
  EXPECT_EQ(lines[0]["caller"], "grafana-workflows");
  EXPECT_EQ(lines[0]["ref_key"], "DB_PASSWORD");
  EXPECT_EQ(lines[0]["secret"], "db-password");
  EXPECT_EQ(lines[0]["version"], 7);
  EXPECT_EQ(lines[0]["decision"], "allowed");
  EXPECT_EQ(lines[0]["code"], "OK");
  EXPECT_EQ(lines[0]["cache"], "hit");
  EXPECT_DOUBLE_EQ(lines[0]["latency_ms"].get<double>(), 0.42);

  EXPECT_EQ(lines[1]["time"], "2020-09-13T12:26:40.005Z");
  EXPECT_EQ(lines[1]["decision"], "denied");
  EXPECT_EQ(lines[1]["code"], "PERMISSION_DENIED");
  EXPECT_EQ(lines[1]["version"], 0);
  EXPECT_EQ(lines[1]["cache"], "");
}

// Audit lines format the logger's time from a per-thread cache of the current second: every
// line must still show the clock's own millisecond, within a second, across one, before 1970,
// and a clock at infinity must not spoil the cache.
TEST_F(JsonLogTest, AuditTimeIsTheClocksToTheMillisecond) {
  JsonLogger logger(&out_, Options());
  const std::vector<absl::Time> times = {
      absl::FromUnixMillis(1700000000000), absl::FromUnixMillis(1700000000001),
      absl::FromUnixMillis(1700000000999), absl::FromUnixMillis(1700000001000),
      absl::FromUnixMillis(1700000001042), absl::FromUnixMillis(1699999999500),
      absl::FromUnixMillis(-1),            absl::FromUnixMillis(-1000),
      absl::FromUnixMillis(-999),          absl::FromUnixMillis(-1001),
      absl::InfiniteFuture(),              absl::InfiniteFuture(),
      absl::FromUnixMillis(1700000000002)};
  for (absl::Time time : times) {
    clock_.SetTime(time);
    logger.LogAudit(AuditRecord());
  }
  std::vector<Json> lines = ParseLines(out_.str());
  ASSERT_EQ(lines.size(), times.size());
  for (size_t i = 0; i < times.size(); ++i) {
    EXPECT_EQ(lines[i]["time"], FormatLogTime(times[i])) << "line " << i;
  }
}

// Records of one batch that share time, stack and caller share the start of their line, and
// those that share a latency share its text; a record that differs must still show its own.
TEST_F(JsonLogTest, AuditBatchLinesEachShowTheirOwnHead) {
  JsonLogger logger(&out_, Options());
  std::vector<AuditRecord> records(5);
  for (AuditRecord& record : records) {
    record.stack = "stacks-1";
    record.caller = "grafana-workflows";
  }
  records[0].ref_key = "a";
  records[1].ref_key = "b";
  records[2].ref_key = "c";
  records[2].caller = "k6";
  records[3].ref_key = "d";
  records[3].stack = "stacks-2";
  records[3].caller = "k6";
  records[4].ref_key = "e";
  records[4].stack = "stacks-2";
  records[4].caller = "k6";
  records[4].time = absl::FromUnixMillis(5);
  for (size_t i = 0; i < records.size(); ++i) records[i].latency_ms = i == 1 ? 1.5 : 0.25;
  logger.LogAudit(records);

  std::vector<Json> lines = ParseLines(out_.str());
  ASSERT_EQ(lines.size(), 5u);
  const std::vector<std::vector<std::string>> want = {
      {"a", "stacks-1", "grafana-workflows"}, {"b", "stacks-1", "grafana-workflows"},
      {"c", "stacks-1", "k6"},                {"d", "stacks-2", "k6"},
      {"e", "stacks-2", "k6"}};
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(lines[i]["ref_key"], want[i][0]) << "line " << i;
    EXPECT_EQ(lines[i]["stack"], want[i][1]) << "line " << i;
    EXPECT_EQ(lines[i]["caller"], want[i][2]) << "line " << i;
  }
  EXPECT_EQ(lines[3]["time"], "2023-11-14T22:13:20.000Z");
  EXPECT_EQ(lines[4]["time"], "1970-01-01T00:00:00.005Z");
  for (size_t i = 0; i < lines.size(); ++i) {
    EXPECT_DOUBLE_EQ(lines[i]["latency_ms"].get<double>(), i == 1 ? 1.5 : 0.25) << "line " << i;
  }
}

TEST_F(JsonLogTest, AuditBatchEscapesEveryStringField) {
  JsonLogger logger(&out_, Options());
  std::vector<AuditRecord> records(3);
  records[0].caller = "quote\" backslash\\ tab\t newline\n bell\x07";
  records[0].ref_key = "caf\xc3\xa9";  // valid UTF-8
  records[1].ref_key = "bad\xff\xfe";  // invalid UTF-8: replaced, never raw
  const std::string with_nul("nul\0inside", 10);
  records[1].secret_name = with_nul;
  records[2].stack = "stacks-3";
  logger.LogAudit(records);

  std::vector<Json> lines = ParseLines(out_.str());
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0]["caller"], "quote\" backslash\\ tab\t newline\n bell\x07");
  EXPECT_EQ(lines[0]["ref_key"], "caf\xc3\xa9");
  EXPECT_EQ(lines[1]["ref_key"], "bad\xef\xbf\xbd\xef\xbf\xbd");
  EXPECT_EQ(lines[1]["secret"], std::string("nul\0inside", 10));
  EXPECT_EQ(lines[2]["stack"], "stacks-3");
  EXPECT_EQ(lines[0]["time"], lines[2]["time"]);
}

// Audit lines copy plain text as it is and escape the rest: every byte value, at every position
// of strings of several lengths, must come out of the line as it went in (a lone byte of 0x80
// and above, invalid UTF-8, as the replacement character).
TEST_F(JsonLogTest, AuditEscapingJudgesEveryByteAtEveryPosition) {
  JsonLogger logger(&out_, Options());
  std::vector<std::string> keys;
  std::vector<std::string> want;
  for (int byte = 0; byte < 256; ++byte) {
    for (size_t length : {1, 7, 8, 9, 16, 19}) {
      for (size_t at = 0; at < length; ++at) {
        std::string key(length, 'a');
        key[at] = static_cast<char>(byte);
        keys.push_back(key);
        want.push_back(byte < 0x80 ? key
                                   : absl::StrCat(key.substr(0, at), "\xef\xbf\xbd",
                                                  key.substr(at + 1)));
      }
    }
  }
  std::vector<AuditRecord> records(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) records[i].ref_key = keys[i];
  logger.LogAudit(records);

  std::vector<Json> lines = ParseLines(out_.str());
  ASSERT_EQ(lines.size(), keys.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    ASSERT_EQ(lines[i]["ref_key"], want[i]) << "record " << i;
  }
}

TEST_F(JsonLogTest, AuditCodeIsAbslsNameForEveryCode) {
  JsonLogger logger(&out_, Options());
  const std::vector<int> codes = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, -1};
  std::vector<AuditRecord> records(codes.size());
  for (size_t i = 0; i < codes.size(); ++i) {
    records[i].code = static_cast<absl::StatusCode>(codes[i]);
  }
  logger.LogAudit(records);

  std::vector<Json> lines = ParseLines(out_.str());
  ASSERT_EQ(lines.size(), records.size());
  for (size_t i = 0; i < codes.size(); ++i) {
    EXPECT_EQ(lines[i]["code"], absl::StatusCodeToString(static_cast<absl::StatusCode>(codes[i])))
        << "code " << codes[i];
  }
  EXPECT_EQ(lines[16]["code"], "UNAUTHENTICATED");
}

TEST_F(JsonLogTest, BufferedLinesAreWrittenByFlushAndByTheDestructor) {
  JsonLoggerOptions options = Options();
  options.flush_interval = absl::Hours(1);  // only Flush() and the destructor write
  {
    JsonLogger logger(&out_, options);
    logger.Info("one");
    logger.LogAudit(AuditRecord());
    EXPECT_EQ(out_.str(), "");
    logger.Flush();
    std::vector<Json> lines = ParseLines(out_.str());
    ASSERT_EQ(lines.size(), 2u);
    EXPECT_EQ(lines[0]["msg"], "one");
    EXPECT_EQ(lines[1]["msg"], "audit");
    logger.Info("two");
  }
  std::vector<Json> lines = ParseLines(out_.str());
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[2]["msg"], "two");
}

TEST_F(JsonLogTest, FlushForWritesTheBufferedLinesWithinItsBound) {
  JsonLoggerOptions options = Options();
  options.flush_interval = absl::Hours(1);  // only a flush writes
  JsonLogger logger(&out_, options);
  logger.Info("buffered before the exit");
  EXPECT_EQ(out_.str(), "");
  EXPECT_TRUE(logger.FlushFor(absl::Seconds(5)));
  std::vector<Json> lines = ParseLines(out_.str());
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0]["msg"], "buffered before the exit");
}

TEST_F(JsonLogTest, BufferedLinesAreWrittenWithinTheInterval) {
  const std::string path = absl::StrCat(std::getenv("TEST_TMPDIR"), "/interval.log");
  FILE* file = std::fopen(path.c_str(), "w");
  ASSERT_NE(file, nullptr);
  JsonLoggerOptions options = Options();
  options.flush_interval = absl::Milliseconds(10);
  std::string text;
  {
    JsonLogger logger(file, options);
    logger.Info("soon");
    // No Flush(): only the writer thread can have written it.
    text = WaitForFileText(path, 1, absl::Seconds(1));
  }
  std::fclose(file);
  EXPECT_EQ(ParseLines(text).size(), 1u);
}

// A busy logger writes a chunk as soon as it is buffered, not a burst per interval: with an
// interval of an hour, lines past kWriteChunkBytes still reach the file.
TEST_F(JsonLogTest, AChunkOfLinesIsWrittenWithoutWaitingForTheInterval) {
  const std::string path = absl::StrCat(std::getenv("TEST_TMPDIR"), "/chunk.log");
  FILE* file = std::fopen(path.c_str(), "w");
  ASSERT_NE(file, nullptr);
  JsonLoggerOptions options = Options();
  options.flush_interval = absl::Hours(1);
  std::string text;
  {
    JsonLogger logger(file, options);
    AuditRecord record;
    record.stack = "stacks-1";
    record.ref_key = "k";
    // Two chunks' worth of lines (each is over 100 bytes), well below the 4 MiB bound.
    for (size_t i = 0; i < 2 * kWriteChunkBytes / 100; ++i) logger.LogAudit(record);
    // Only the writer thread can write them before the interval: wait for a whole chunk (a
    // write may be seen part done).
    text = WaitForFileText(path, kWriteChunkBytes, absl::Seconds(10));
  }
  std::fclose(file);
  EXPECT_GE(text.size(), kWriteChunkBytes);
}

TEST_F(JsonLogTest, FullBufferMakesCallersWaitInsteadOfDroppingLines) {
  JsonLoggerOptions options = Options();
  options.flush_interval = absl::Milliseconds(1);
  options.max_buffered_bytes = 64;  // smaller than one line
  constexpr int kThreads = 4;
  constexpr int kPerThread = 200;
  {
    JsonLogger logger(&out_, options);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&logger] {
        for (int i = 0; i < kPerThread; ++i) logger.LogAudit(AuditRecord());
      });
    }
    for (std::thread& thread : threads) thread.join();
  }
  EXPECT_EQ(ParseLines(out_.str()).size(), static_cast<size_t>(kThreads * kPerThread));
}

TEST_F(JsonLogTest, AuditLinesIgnoreTheLevelButCanBeTurnedOff) {
  JsonLoggerOptions options = Options();
  options.min_level = LogLevel::kError;
  {
    JsonLogger logger(&out_, options);
    logger.LogAudit(AuditRecord());
  }
  EXPECT_EQ(ParseLines(out_.str()).size(), 1u);
  options.audit = false;
  std::ostringstream quiet;
  JsonLogger logger(&quiet, options);
  logger.LogAudit(AuditRecord());
  EXPECT_EQ(quiet.str(), "");
}

TEST_F(JsonLogTest, WritesToAFile) {
  FILE* file = std::tmpfile();
  ASSERT_NE(file, nullptr);
  {
    JsonLogger logger(file, Options());
    logger.Info("one");
    logger.Warning("two", {{"n", 2}});
  }
  std::rewind(file);
  std::string text;
  char buffer[256];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof(buffer), file)) > 0) text.append(buffer, n);
  std::fclose(file);
  std::vector<Json> lines = ParseLines(text);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[1]["msg"], "two");
  EXPECT_EQ(lines[1]["n"], 2);
}

TEST_F(JsonLogTest, ConcurrentLinesNeverInterleave) {
  JsonLogger logger(&out_, Options());
  constexpr int kThreads = 8;
  constexpr int kPerThread = 200;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&logger, t] {
      const std::string padding(100 + t * 10, 'x');
      for (int i = 0; i < kPerThread; ++i) {
        logger.Info("tick", {{"thread", t}, {"i", i}, {"padding", padding}});
        AuditRecord record;
        record.stack = "s";
        logger.LogAudit(record);
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  std::vector<Json> lines = ParseLines(out_.str());
  EXPECT_EQ(lines.size(), 2u * kThreads * kPerThread);
}

TEST(LogLevelTest, NamesRoundTrip) {
  for (LogLevel level : {LogLevel::kDebug, LogLevel::kInfo, LogLevel::kWarning, LogLevel::kError}) {
    absl::StatusOr<LogLevel> parsed = ParseLogLevel(LogLevelName(level));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, level);
  }
  EXPECT_EQ(ParseLogLevel("verbose").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(LogTimeTest, Rfc3339UtcWithMilliseconds) {
  EXPECT_EQ(FormatLogTime(absl::FromUnixSeconds(0)), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(FormatLogTime(absl::FromUnixMillis(1700000000999)), "2023-11-14T22:13:20.999Z");
}

}  // namespace
}  // namespace secret_resolver
