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

TEST_F(LibraryLogRouteTest, NothingReachesTheLoggerOnceUnrouted) {
  std::ostringstream out;
  JsonLogger log(&out);
  { LibraryLogRoute route(&log); }
  gpr_log(GPR_ERROR, "after the route");
  GOOGLE_LOG(ERROR) << "after the route";
  EXPECT_EQ(out.str(), "");
}

}  // namespace
}  // namespace secret_resolver
