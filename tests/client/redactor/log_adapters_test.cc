// Tests of the logger adapters: the redacting std::ostream/streambuf and the line sink.
#include "client/redactor/log_adapters.h"

#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "tests/client/redactor/redactor_testing.h"

namespace secret_resolver::client {
namespace {

using testing::Contains;
using testing::MakeRedactor;
using testing::SameText;

constexpr absl::string_view kToken = "TEST-FAKE-TOKEN-0123456789";

std::shared_ptr<const Redactor> TokenRedactor() {
  return MakeRedactor({{std::string(kToken), "[token]"},
                       {"TEST-FAKE-KEY-LINE-ONE\nTEST-FAKE-KEY-LINE-TWO", "[key]"}});
}

class RecordingLineSink : public LineSink {
 public:
  void WriteLine(absl::string_view line) override { lines.emplace_back(line); }
  std::vector<std::string> lines;
};

TEST(RedactingOstreamTest, RedactsValueSplitAcrossInsertions) {
  std::ostringstream downstream;
  {
    RedactingOstream os(TokenRedactor(), downstream);
    os << "token=" << kToken.substr(0, 10) << kToken.substr(10) << " n=" << 42 << '\n';
  }
  EXPECT_TRUE(SameText(downstream.str(), "token=[token] n=42\n"));
}

TEST(RedactingOstreamTest, FlushForwardsEverythingWritten) {
  std::ostringstream downstream;
  RedactingOstream os(TokenRedactor(), downstream);
  os << "a " << kToken << std::endl;
  EXPECT_TRUE(SameText(downstream.str(), "a [token]\n"));
  os << "partial TEST-FAKE" << std::flush;
  EXPECT_TRUE(SameText(downstream.str(), "a [token]\npartial TEST-FAKE"));
}

TEST(RedactingOstreamTest, LargeWritesBypassTheBuffer) {
  std::ostringstream downstream;
  std::string text;
  for (int i = 0; i < 2000; ++i) absl::StrAppend(&text, "line ", i, " ", kToken, "\n");
  {
    RedactingOstream os(TokenRedactor(), downstream);
    os.write(text.data(), static_cast<std::streamsize>(text.size()));
    EXPECT_TRUE(os.good());
  }
  EXPECT_FALSE(Contains(downstream.str(), kToken));
  EXPECT_TRUE(SameText(downstream.str(), TokenRedactor()->RedactAll(text)));
}

TEST(RedactingStreambufTest, WorksUnderAPlainOstream) {
  std::ostringstream downstream;
  {
    RedactingStreambuf buf(TokenRedactor(), downstream.rdbuf());
    std::ostream os(&buf);
    for (char c : absl::StrCat("x ", kToken, " y")) os.put(c);
  }
  EXPECT_TRUE(SameText(downstream.str(), "x [token] y"));
}

TEST(RedactingLineSinkTest, RedactsEachLine) {
  RecordingLineSink downstream;
  RedactingLineSink sink(TokenRedactor(), &downstream);
  sink.WriteLine(absl::StrCat("{\"msg\":\"", kToken, "\"}"));
  sink.WriteLine("nothing here");
  sink.WriteLine("TEST-FAKE-KEY-LINE-ONE");  // a line of a multi-line value, on its own
  ASSERT_EQ(downstream.lines.size(), 3u);
  EXPECT_TRUE(SameText(downstream.lines[0], "{\"msg\":\"[token]\"}"));
  EXPECT_TRUE(SameText(downstream.lines[1], "nothing here"));
  EXPECT_TRUE(SameText(downstream.lines[2], "[key]"));
}

}  // namespace
}  // namespace secret_resolver::client
