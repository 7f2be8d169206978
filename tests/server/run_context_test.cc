// The run context's checks (server/run_context.h): what reaches an audit line, and what is
// dropped.
#include "server/run_context.h"

#include <string>

#include <gtest/gtest.h>

namespace secret_resolver {
namespace {

constexpr char kTraceparent[] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

RunContext Of(std::optional<absl::string_view> run, std::optional<absl::string_view> step,
              std::optional<absl::string_view> traceparent) {
  RunMetadata metadata;
  metadata.run_id = run;
  metadata.step_id = step;
  metadata.traceparent = traceparent;
  return RunContextOf(metadata);
}

TEST(RunContextTest, ValidValuesAreKept) {
  const RunContext context = Of("run-2026.12:06_a", "step-1", kTraceparent);
  EXPECT_EQ(context.run_id, "run-2026.12:06_a");
  EXPECT_EQ(context.step_id, "step-1");
  EXPECT_EQ(context.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(context.span_id, "00f067aa0ba902b7");
  EXPECT_EQ(context.dropped, "");
  const RunContext longest = Of(std::string(kMaxRunIdBytes, 'r'), std::nullopt, std::nullopt);
  EXPECT_EQ(longest.run_id.size(), kMaxRunIdBytes);
}

TEST(RunContextTest, NothingSentIsNothingDropped) {
  const RunContext context = Of(std::nullopt, std::nullopt, std::nullopt);
  EXPECT_TRUE(context.run_id.empty());
  EXPECT_TRUE(context.trace_id.empty());
  EXPECT_EQ(context.dropped, "");
}

TEST(RunContextTest, InvalidIdsAreDroppedAndNamed) {
  for (const std::string& bad : {std::string(), std::string(kMaxRunIdBytes + 1, 'r'),
                                 std::string("run 1"), std::string("run\"1"),
                                 std::string("r\xc3\xa9"), std::string("run/1")}) {
    const RunContext context = Of(bad, bad, std::nullopt);
    EXPECT_TRUE(context.run_id.empty()) << bad;
    EXPECT_TRUE(context.step_id.empty()) << bad;
    EXPECT_EQ(context.dropped, "x-workflow-run-id,x-workflow-step-id") << bad;
  }
  EXPECT_EQ(Of("ok", "bad id", std::nullopt).dropped, "x-workflow-step-id");
}

TEST(RunContextTest, TraceparentFollowsW3C) {
  for (const std::string& bad : {
           std::string("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),  // version
           std::string("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),  // zero trace
           std::string("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"),  // zero span
           std::string("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"),  // upper case
           std::string("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g"),  // flags
           std::string("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7"),     // short
           std::string(kTraceparent) + "-extra",
           std::string("00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01"),
       }) {
    const RunContext context = Of(std::nullopt, std::nullopt, bad);
    EXPECT_TRUE(context.trace_id.empty()) << bad;
    EXPECT_TRUE(context.span_id.empty()) << bad;
    EXPECT_EQ(context.dropped, "traceparent") << bad;
  }
}

TEST(RunContextTest, AHeaderSentTwiceWithDifferentValuesIsDropped) {
  RunMetadata metadata;
  metadata.run_id = "run-1";
  metadata.run_id_repeated = true;
  metadata.traceparent = kTraceparent;
  metadata.traceparent_repeated = true;
  const RunContext context = RunContextOf(metadata);
  EXPECT_TRUE(context.run_id.empty());
  EXPECT_TRUE(context.trace_id.empty());
  EXPECT_EQ(context.dropped, "x-workflow-run-id,traceparent");
}

}  // namespace
}  // namespace secret_resolver
