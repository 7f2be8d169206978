// secretctl check end to end: the real binary on the Grafana Workflows "Manage secrets" page's
// example (tests/testdata/workflows/manage-secrets.yaml) and on broken copies of it, each
// defect expected at its exact FILE:LINE:COLUMN. No sidecar is running: check calls none.
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/tools/secretctl/secretctl_runner.h"
#include "tests/tools/secretctl/test_files.h"

namespace secret_resolver {
namespace {

using ::secret_resolver::testing::ReadFile;
using ::secret_resolver::testing::RunSecretctl;
using ::secret_resolver::testing::SecretctlResult;
using ::secret_resolver::testing::SecretctlRun;
using ::secret_resolver::testing::TestDataPath;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;

class SecretctlCheckTest : public ::testing::Test {
 protected:
  void SetUp() override {
    page_ = ReadFile(TestDataPath("workflows/manage-secrets.yaml"));
    ASSERT_THAT(page_, HasSubstr("authSecret: \"${resources.secret.api-token}\""));
    const char* tmp = std::getenv("TEST_TMPDIR");
    dir_ = tmp != nullptr ? tmp : "/tmp";
  }

  // Writes `text` as NAME.yaml and runs `secretctl check` on it.
  SecretctlResult Check(const std::string& name, const std::string& text) {
    const std::string path = absl::StrCat(dir_, "/", name, ".yaml");
    {
      std::ofstream out(path, std::ios::binary | std::ios::trunc);
      out << text;
    }
    path_ = path;
    SecretctlRun run;
    run.args = {"check", path};
    return RunSecretctl(run);
  }

  // The reported lines, each without the "PATH:" prefix, and the summary line last.
  std::vector<std::string> Findings(const SecretctlResult& r) const {
    std::vector<std::string> lines;
    for (absl::string_view line : absl::StrSplit(r.err, '\n', absl::SkipEmpty())) {
      if (absl::ConsumePrefix(&line, path_ + ":")) lines.emplace_back(line);
    }
    return lines;
  }

  // `page_` with `from` replaced by `to` (which must occur).
  std::string Broken(const std::string& from, const std::string& to) {
    EXPECT_THAT(page_, HasSubstr(from));
    return absl::StrReplaceAll(page_, {{from, to}});
  }

  std::string page_;
  std::string dir_;
  std::string path_;
};

TEST_F(SecretctlCheckTest, ThePagesExampleIsClean) {
  SecretctlRun run;
  const std::string path = TestDataPath("workflows/manage-secrets.yaml");
  run.args = {"check", path};
  const SecretctlResult r = RunSecretctl(run);
  EXPECT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(r.out, absl::StrCat(path, ": ok (1 secret reference, 1 step)\n"));
}

// The page's line 4 is `      api-token: "secret://workflows/http/auth-token"`: the quote is
// column 18, so byte 24 of the URI (the 'A') is column 18 + 1 + 24 = 43.
TEST_F(SecretctlCheckTest, MalformedUri) {
  const SecretctlResult r = Check("uri", Broken("http/auth-token", "http/Auth-token"));
  EXPECT_EQ(r.exit_code, 5) << r.Describe();
  EXPECT_THAT(Findings(r),
              ElementsAre(StartsWith("4:43: malformed URI for spec.resources.secrets key "
                                     "\"api-token\": upper-case letter 'A'")));
  EXPECT_THAT(r.err, HasSubstr("secretctl check: " + path_ + ": 1 problem (listed above)"));
  EXPECT_EQ(r.out, "");
}

// Line 9 is `        authSecret: "${resources.secret.api-token}"`: the quote is column 21,
// the '$' column 22. The defined key is then unused (line 4, column 7).
TEST_F(SecretctlCheckTest, UndefinedKey) {
  const SecretctlResult r =
      Check("undefined", Broken("${resources.secret.api-token}", "${resources.secret.api-tokn}"));
  EXPECT_EQ(r.exit_code, 5) << r.Describe();
  EXPECT_THAT(Findings(r),
              ElementsAre("4:7: unused reference: spec.resources.secrets key \"api-token\" is "
                          "used by no step's inputs",
                          "9:22: undefined reference: step \"call-api\" input \"authSecret\" uses "
                          "resources.secret key \"api-tokn\", which spec.resources.secrets does "
                          "not define"));
}

// A dotted key in dot notation: the '.' after "api" is byte 22 of the scalar, column 22 + 22.
TEST_F(SecretctlCheckTest, MalformedExpression) {
  const SecretctlResult r = Check(
      "malformed", Broken("${resources.secret.api-token}", "${resources.secret.api.token}"));
  EXPECT_EQ(r.exit_code, 5) << r.Describe();
  EXPECT_THAT(Findings(r),
              ElementsAre(StartsWith("4:7: unused reference"),
                          "9:44: malformed expression in step \"call-api\" input \"authSecret\": "
                          "'.' cannot appear in a dot-notation key ([A-Za-z_][A-Za-z0-9_-]*); use "
                          "bracket notation, resources.secret[\"key\"], for other keys"));
}

TEST_F(SecretctlCheckTest, UnusedReference) {
  const SecretctlResult r = Check(
      "unused", Broken("      api-token: \"secret://workflows/http/auth-token\"\n",
                       "      api-token: \"secret://workflows/http/auth-token\"\n"
                       "      extra-token: secret://workflows/http/extra\n"));
  EXPECT_EQ(r.exit_code, 5) << r.Describe();
  EXPECT_THAT(Findings(r), ElementsAre("5:7: unused reference: spec.resources.secrets key "
                                       "\"extra-token\" is used by no step's inputs"));
}

// Defects deep in nested inputs: a list of maps, a flow map inside it, a literal block scalar.
TEST_F(SecretctlCheckTest, DefectsInNestedInputs) {
  const SecretctlResult r = Check(
      "nested",
      Broken("        authSecret: \"${resources.secret.api-token}\"\n",
             "        authSecret: \"${resources.secret.api-token}\"\n"
             "        headers:\n"
             "          - name: Authorization\n"
             "            value: \"Bearer ${resources.secret.api-tokn}\"\n"
             "          - {name: X-Other, value: '${resources.secret[api]}'}\n"
             "        body:\n"
             "          script: |\n"
             "            first line\n"
             "              login ${resources.secret.nope}\n"));
  EXPECT_EQ(r.exit_code, 5) << r.Describe();
  // Line 12: `            value: "Bearer ${...` quote at column 20, '$' at 28.
  // Line 13: `          - {name: X-Other, value: '${resources.secret[api]}'}` quote at
  //          column 36, '$' at 37, the unquoted key's 'a' at 37 + 19 = 56.
  // Line 17: `              login ${...` in a literal block: '$' at column 21.
  EXPECT_THAT(Findings(r),
              ElementsAre(StartsWith("12:28: undefined reference: step \"call-api\" input "
                                     "\"headers[0].value\" uses resources.secret key "
                                     "\"api-tokn\""),
                          StartsWith("13:56: malformed expression in step \"call-api\" input "
                                     "\"headers[1].value\": expected a quoted key after '['"),
                          StartsWith("17:21: undefined reference: step \"call-api\" input "
                                     "\"body.script\" uses resources.secret key \"nope\"")));
}

TEST_F(SecretctlCheckTest, NotAWorkflow) {
  SecretctlResult r = Check("not-yaml", "spec: [\n");
  EXPECT_EQ(r.exit_code, 5) << r.Describe();
  EXPECT_THAT(Findings(r), ElementsAre(StartsWith("2:1: invalid workflow: not valid YAML")));
  r = Check("no-spec", "kind: Workflow\n");
  EXPECT_EQ(r.exit_code, 5) << r.Describe();
  EXPECT_THAT(Findings(r), ElementsAre(StartsWith("1:1: invalid workflow: no spec")));
}

TEST_F(SecretctlCheckTest, UsageAndUnreadableFiles) {
  SecretctlRun run;
  run.args = {"check"};
  SecretctlResult r = RunSecretctl(run);
  EXPECT_EQ(r.exit_code, 2) << r.Describe();
  EXPECT_THAT(r.err, HasSubstr("WORKFLOW.yaml is required"));
  run.args = {"check", "a.yaml", "b.yaml"};
  r = RunSecretctl(run);
  EXPECT_EQ(r.exit_code, 2) << r.Describe();
  run.args = {"check", dir_ + "/does-not-exist.yaml"};
  r = RunSecretctl(run);
  EXPECT_EQ(r.exit_code, 5) << r.Describe();
  EXPECT_THAT(r.err, HasSubstr("cannot read"));
  run.args = {"check", "--help"};
  r = RunSecretctl(run);
  EXPECT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_THAT(r.out, HasSubstr("usage: secretctl check [--stack STACK]"));
  EXPECT_THAT(r.out, HasSubstr("[--step-id ID] WORKFLOW.yaml\n"));
  run.args = {"check", dir_ + "/does-not-exist.yaml", "--address", "unix:/nowhere"};
  r = RunSecretctl(run);
  EXPECT_EQ(r.exit_code, 2) << r.Describe();
  EXPECT_THAT(r.err, HasSubstr("--address needs --stack"));
}

}  // namespace
}  // namespace secret_resolver
