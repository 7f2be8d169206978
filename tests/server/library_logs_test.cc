// gRPC's and protobuf's own messages through a LibraryLogRoute: JSON lines while it exists, and
// not after.
#include "server/library_logs.h"

#include <sstream>
#include <string>
#include <vector>

#include <google/protobuf/stubs/logging.h>
#include <grpc/grpc.h>
#include <grpc/support/log.h>
#include <gtest/gtest.h>

#include "absl/strings/str_split.h"
#include "nlohmann/json.hpp"

namespace secret_resolver {
namespace {

std::vector<nlohmann::json> Lines(const std::string& text) {
  std::vector<nlohmann::json> lines;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    lines.push_back(nlohmann::json::parse(line));  // throws, failing the test, if not JSON
  }
  return lines;
}

// gRPC applies its log verbosity (errors, by default) once initialized, as in the sidecar.
class LibraryLogRouteTest : public ::testing::Test {
 protected:
  LibraryLogRouteTest() { grpc_init(); }
  ~LibraryLogRouteTest() override { grpc_shutdown(); }
};

TEST_F(LibraryLogRouteTest, BothLibrariesWriteJsonLinesWhileRouted) {
  std::ostringstream out;
  JsonLogger log(&out);
  {
    LibraryLogRoute route(&log);
    gpr_log(GPR_ERROR, "grpc says %d", 7);
    GOOGLE_LOG(ERROR) << "protobuf says \"hi\"";
    GOOGLE_LOG(WARNING) << "protobuf warns";
  }
  const std::vector<nlohmann::json> lines = Lines(out.str());
  ASSERT_EQ(lines.size(), 3u) << out.str();
  EXPECT_EQ(lines[0]["level"], "error");
  EXPECT_EQ(lines[0]["msg"], "grpc says 7");
  EXPECT_EQ(lines[0]["source"], "grpc");
  EXPECT_TRUE(lines[0]["line"].is_number());
  EXPECT_EQ(lines[1]["level"], "error");
  EXPECT_EQ(lines[1]["msg"], "protobuf says \"hi\"");
  EXPECT_EQ(lines[1]["source"], "protobuf");
  EXPECT_EQ(lines[2]["level"], "warning");
}

TEST_F(LibraryLogRouteTest, AMessageBeforeDyingIsWrittenAtOnce) {
  // A logger that would otherwise hold its lines for an hour.
  JsonLoggerOptions options;
  options.flush_interval = absl::Hours(1);
  std::ostringstream out;
  JsonLogger log(&out, options);
  LibraryLogRoute route(&log);
  gpr_log(GPR_ERROR, "an ordinary error");
  gpr_log(GPR_ERROR, "assertion failed: what GPR_ASSERT logs before it aborts");
  // Written by now (the writer is idle until the hour is up, so `out` may be read).
  const std::vector<nlohmann::json> lines = Lines(out.str());
  ASSERT_EQ(lines.size(), 2u) << out.str();
  EXPECT_FALSE(lines[0].contains("fatal"));
  EXPECT_EQ(lines[1]["fatal"], true);
}

TEST_F(LibraryLogRouteTest, BothLibrariesWriteTheirOwnTextOnceUnrouted) {
  std::ostringstream out;
  JsonLogger log(&out);
  { LibraryLogRoute route(&log); }
  ::testing::internal::CaptureStderr();
  gpr_log(GPR_ERROR, "grpc after the route");
  GOOGLE_LOG(ERROR) << "protobuf after the route";
  const std::string text = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(out.str(), "");
  EXPECT_NE(text.find("grpc after the route"), std::string::npos) << text;
  EXPECT_NE(text.find("protobuf after the route"), std::string::npos) << text;
  EXPECT_EQ(text.find("\"source\""), std::string::npos) << text;
}

}  // namespace
}  // namespace secret_resolver
