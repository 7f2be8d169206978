// secretctl resolve and render end to end: the real secretctl binary against the real sidecar
// binary (tests/integration/sidecar_process.h) on a temporary Unix socket and SQLite store, with
// development tokens. Values are compared without being printed; every output is checked for
// the test values and the token where it must not hold them.
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "resolver/secret_bytes.h"
#include "resolver/secret_store.h"
#include "resolver/sqlite/sqlite_secret_store.h"
#include "tests/integration/sidecar_process.h"
#include "tests/tools/secretctl/secretctl_runner.h"
#include "tests/tools/secretctl/test_files.h"

namespace secret_resolver {
namespace {

using ::secret_resolver::testing::ReadFile;
using ::secret_resolver::testing::RunSecretctl;
using ::secret_resolver::testing::SecretctlResult;
using ::secret_resolver::testing::SecretctlRun;
using ::secret_resolver::testing::TestDataPath;
using ::secret_resolver::testing::WriteFile;
using ::testing::AnyOf;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kStack[] = "stacks-42";
constexpr char kService[] = "grafana-workflows";
constexpr char kApiValue[] = "planted-api-token-6b1f9d";
constexpr char kDbValue[] = "planted-db-pass\"word\\c03a";
constexpr char kK6Value[] = "planted-k6-value-77";
constexpr char kRotatedOld[] = "planted-rotating-old-41";
constexpr char kRotatedNew[] = "planted-rotating-new-42";

// The Grafana Workflows "Manage secrets" page's example, verbatim; the test checks that
// tests/testdata/workflows/manage-secrets.yaml still holds exactly this.
constexpr char kManageSecretsPage[] = R"(spec:
  resources:
    secrets:
      api-token: "secret://workflows/http/auth-token"
  steps:
    - id: call-api
      type: http.call
      inputs:
        authSecret: "${resources.secret.api-token}"
)";

class SecretctlSidecarTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    absl::StatusOr<testing::SidecarState> state = testing::SidecarState::Create();
    ASSERT_TRUE(state.ok()) << state.status();
    state_ = new testing::SidecarState(*std::move(state));
    {
      absl::StatusOr<std::unique_ptr<SqliteSecretStore>> store =
          SqliteSecretStore::Open(state_->store_path, &state_->key_ring);
      ASSERT_TRUE(store.ok()) << store.status();
      Put(**store, "workflows/http/auth-token", kApiValue, {kService});
      Put(**store, "workflows/db/password", kDbValue, {kService});
      Put(**store, "k6-only", kK6Value, {"k6"});
      Put(**store, "rotating", kRotatedOld, {kService});
      Put(**store, "rotating", kRotatedNew, {kService});
    }
    absl::StatusOr<std::unique_ptr<testing::SidecarProcess>> sidecar =
        testing::SidecarProcess::Start(*state_);
    ASSERT_TRUE(sidecar.ok()) << sidecar.status();
    sidecar_ = sidecar->release();
    token_ = new std::string(state_->Token(kStack, kService));
    ASSERT_FALSE(token_->empty());
    token_file_ = new std::string(state_->dir + "/token");
    WriteFile(*token_file_, *token_ + "\n");
  }

  static void TearDownTestSuite() {
    delete sidecar_;
    delete state_;
    delete token_;
    delete token_file_;
  }

  static void Put(SecretStore& store, const std::string& name, const std::string& value,
                  std::vector<std::string> decrypters) {
    SecretWrite write;
    write.stack = kStack;
    write.name = name;
    write.decrypters = std::move(decrypters);
    write.actor = "secretctl-sidecar-test";
    write.value = SecretBytes(value);
    ASSERT_TRUE(store.Put(write).ok());
  }

  static std::vector<std::string> Hidden() {
    return {kApiValue, kDbValue, kK6Value, kRotatedOld, kRotatedNew, *token_};
  }

  // Runs secretctl with --address and (unless `with_token` is false) --token-file.
  SecretctlResult Run(std::vector<std::string> args, bool with_token = true,
                      std::map<std::string, std::string> env = {}) {
    args.push_back("--address");
    args.push_back(sidecar_->target());
    if (with_token) {
      args.push_back("--token-file");
      args.push_back(*token_file_);
    }
    SecretctlRun run;
    run.args = std::move(args);
    run.env = std::move(env);
    run.env.emplace("SECRET_RESOLVER_TOKEN", "");
    SecretctlResult result = RunSecretctl(run);
    // Nothing but stdout of resolve --reveal and render may carry a value; stderr never.
    for (const std::string& hidden : Hidden()) {
      EXPECT_FALSE(absl::StrContains(result.err, hidden)) << "a secret or token on stderr";
    }
    EXPECT_FALSE(absl::StrContains(result.out, *token_)) << "the token on stdout";
    return result;
  }

  static void ExpectNoValues(const std::string& text) {
    for (const char* value : {kApiValue, kDbValue, kK6Value}) {
      EXPECT_FALSE(absl::StrContains(text, value)) << "a value in the output";
    }
  }

  std::string WriteJson(const std::string& name, const nlohmann::json& json) {
    const std::string path = state_->dir + "/" + name;
    WriteFile(path, json.dump(), 0644);
    return path;
  }

  static testing::SidecarState* state_;
  static testing::SidecarProcess* sidecar_;
  static std::string* token_;
  static std::string* token_file_;
};

testing::SidecarState* SecretctlSidecarTest::state_ = nullptr;
testing::SidecarProcess* SecretctlSidecarTest::sidecar_ = nullptr;
std::string* SecretctlSidecarTest::token_ = nullptr;
std::string* SecretctlSidecarTest::token_file_ = nullptr;

TEST_F(SecretctlSidecarTest, ResolvePrintsMetadataButNoValues) {
  const SecretctlResult r =
      Run({"resolve", "--stack", kStack, "--ref", "api-token=secret://workflows/http/auth-token",
           "--ref", "db=secret://workflows/db/password"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe(Hidden());
  EXPECT_THAT(r.out, HasSubstr("PLACEHOLDER"));
  EXPECT_THAT(r.out, HasSubstr("***SECRET_REDACTED:api-token***"));
  EXPECT_THAT(r.out, HasSubstr("***SECRET_REDACTED:db***"));
  EXPECT_THAT(r.out, HasSubstr("workflows/http/auth-token"));
  EXPECT_THAT(r.out, HasSubstr("hmac-sha256:"));
  EXPECT_THAT(r.out, Not(HasSubstr("VALUE")));
  ExpectNoValues(r.out);
}

TEST_F(SecretctlSidecarTest, ResolveJsonRevealCarriesTheValues) {
  const SecretctlResult r =
      Run({"resolve", "--stack", kStack, "--ref", "api-token=secret://workflows/http/auth-token",
           "--ref", "db=secret://workflows/db/password", "--json", "--reveal"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe(Hidden());
  const nlohmann::json json = nlohmann::json::parse(r.out, nullptr, false);
  ASSERT_TRUE(json.is_object());
  EXPECT_EQ(json["stack"], kStack);
  const nlohmann::json& api = json["secrets"]["api-token"];
  EXPECT_EQ(api["name"], "workflows/http/auth-token");
  EXPECT_EQ(api["version"], 1);
  EXPECT_EQ(api["placeholder"], "***SECRET_REDACTED:api-token***");
  EXPECT_EQ(api["stale"], false);
  EXPECT_TRUE(api["value"].get<std::string>() == kApiValue) << "api-token value differs";
  EXPECT_TRUE(json["secrets"]["db"]["value"].get<std::string>() == kDbValue)
      << "db value differs";
}

TEST_F(SecretctlSidecarTest, ResolveJsonWithoutRevealHasNoValue) {
  const SecretctlResult r = Run(
      {"resolve", "--stack", kStack, "--ref", "api=secret://workflows/http/auth-token", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe(Hidden());
  const nlohmann::json json = nlohmann::json::parse(r.out, nullptr, false);
  ASSERT_TRUE(json.is_object());
  EXPECT_FALSE(json["secrets"]["api"].contains("value"));
  EXPECT_EQ(json["secrets"]["api"]["fingerprint"].get<std::string>().rfind("hmac-sha256:", 0),
            0u);
  ExpectNoValues(r.out);
}

TEST_F(SecretctlSidecarTest, TokenFromTheEnvironment) {
  SecretctlRun run;
  run.args = {"resolve", "--stack", kStack, "--ref", "api=secret://workflows/http/auth-token",
              "--address", sidecar_->target()};
  run.env = {{"SECRET_RESOLVER_TOKEN", *token_}};
  const SecretctlResult r = RunSecretctl(run);
  ASSERT_EQ(r.exit_code, 0) << r.Describe(Hidden());
  EXPECT_THAT(r.out, HasSubstr("***SECRET_REDACTED:api***"));
}

TEST_F(SecretctlSidecarTest, WrongStackIsDeniedWithExit8) {
  const SecretctlResult r = Run(
      {"resolve", "--stack", "stacks-43", "--ref", "api=secret://workflows/http/auth-token"});
  EXPECT_EQ(r.exit_code, 8) << r.Describe(Hidden());
  EXPECT_THAT(r.err, HasSubstr("secretctl resolve: "));
  EXPECT_THAT(r.err, HasSubstr("PERMISSION_DENIED"));
  EXPECT_TRUE(r.out.empty());
}

TEST_F(SecretctlSidecarTest, BadTokenIsUnauthenticatedWithExit8) {
  const std::string bad = state_->dir + "/bad-token";
  WriteFile(bad, "not.a.jwt\n");
  SecretctlRun run;
  run.args = {"resolve", "--stack", kStack, "--ref", "api=secret://workflows/http/auth-token",
              "--address", sidecar_->target(), "--token-file", bad};
  const SecretctlResult r = RunSecretctl(run);
  EXPECT_EQ(r.exit_code, 8) << r.Describe(Hidden());
  EXPECT_THAT(r.err, HasSubstr("UNAUTHENTICATED"));
  EXPECT_THAT(r.err, Not(HasSubstr("not.a.jwt")));
}

TEST_F(SecretctlSidecarTest, TokenIsNeverAnArgument) {
  SecretctlResult r = Run({"resolve", "--stack", kStack, "--ref", "a=secret://x"},
                          /*with_token=*/false);
  EXPECT_EQ(r.exit_code, 2) << r.Describe(Hidden());
  EXPECT_THAT(r.err, HasSubstr("--token-file"));
  r = Run({"resolve", "--stack", kStack, "--ref", "a=secret://x", "--token", "tok-in-argv-123"},
          false);
  EXPECT_EQ(r.exit_code, 2) << r.Describe(Hidden());
  EXPECT_THAT(r.err, HasSubstr("--token is not a flag"));
  EXPECT_THAT(r.err, Not(HasSubstr("tok-in-argv-123")));
}

TEST_F(SecretctlSidecarTest, PerReferenceFailuresAreListedAndSetTheExitStatus) {
  SecretctlResult r = Run({"resolve", "--stack", kStack, "--ref",
                           "api=secret://workflows/http/auth-token", "--ref",
                           "gone=secret://workflows/nothing-here"});
  EXPECT_EQ(r.exit_code, 3) << r.Describe(Hidden());
  EXPECT_THAT(r.err, HasSubstr("NOT_FOUND: ref \"gone\""));
  EXPECT_THAT(r.err, HasSubstr("1 of 2 references did not resolve"));
  EXPECT_TRUE(r.out.empty());

  // The service is not a decrypter of k6-only: per-reference PERMISSION_DENIED.
  r = Run({"resolve", "--stack", kStack, "--ref", "k6=secret://k6-only", "--reveal"});
  EXPECT_EQ(r.exit_code, 8) << r.Describe(Hidden());
  EXPECT_THAT(r.err, HasSubstr("ref \"k6\": not authorized"));
  EXPECT_TRUE(r.out.empty());
}

TEST_F(SecretctlSidecarTest, MalformedRefsExitWith5NamingTheFlag) {
  for (const char* ref : {"no-equals-sign", "bad key=secret://x", "k=http://x", "k=secret://Up"}) {
    const SecretctlResult r = Run({"resolve", "--stack", kStack, "--ref", ref});
    EXPECT_EQ(r.exit_code, 5) << ref << ": " << r.Describe(Hidden());
    EXPECT_THAT(r.err, HasSubstr("secretctl resolve: --ref #1")) << ref;
  }
  const SecretctlResult r = Run({"resolve", "--stack", kStack, "--ref", "a=secret://x", "--ref",
                                 "a=secret://y"});
  EXPECT_EQ(r.exit_code, 5) << r.Describe(Hidden());
  EXPECT_THAT(r.err, HasSubstr("given twice"));
}

TEST_F(SecretctlSidecarTest, UnreachableSidecarExitsWith6) {
  SecretctlRun run;
  run.args = {"resolve",     "--stack",        kStack, "--ref", "a=secret://x", "--address",
              "unix:/nonexistent-dir/resolver.sock", "--token-file", *token_file_, "--timeout",
              "0.5"};
  const SecretctlResult r = RunSecretctl(run);
  EXPECT_EQ(r.exit_code, 6) << r.Describe(Hidden());
  EXPECT_THAT(r.err, HasSubstr("unix:/nonexistent-dir/resolver.sock"));
  // The client retries within --timeout: on a busy machine the deadline may pass before its
  // last attempt. Either way the sidecar is unreachable, which is exit status 6.
  EXPECT_THAT(r.err, AnyOf(HasSubstr("UNAVAILABLE"), HasSubstr("DEADLINE_EXCEEDED")));
}

TEST_F(SecretctlSidecarTest, RenderResolvesOnlyUsedKeysAndPrintsRenderedInputs) {
  const std::string secrets =
      WriteJson("secrets.json", {{"api_token", "secret://workflows/http/auth-token"},
                                 {"db-password", "secret://workflows/db/password"},
                                 {"k6", "secret://k6-only"}});  // unused: would be denied
  const std::string inputs = WriteJson(
      "inputs.json", {{"header", "Bearer ${resources.secret.api_token}"},
                      {"body", "{\"password\": \"${resources.secret[\"db-password\"]}\"}"},
                      {"plain", "no secret, ${env.USER} untouched"}});
  const SecretctlResult r =
      Run({"render", "--stack", kStack, "--secrets", secrets, "--inputs", inputs});
  ASSERT_EQ(r.exit_code, 0) << r.Describe(Hidden());
  const nlohmann::json json = nlohmann::json::parse(r.out, nullptr, false);
  ASSERT_TRUE(json.is_object());
  EXPECT_TRUE(json["inputs"]["header"].get<std::string>() ==
              std::string("Bearer ") + kApiValue)
      << "header differs";
  EXPECT_TRUE(json["inputs"]["body"].get<std::string>() ==
              std::string("{\"password\": \"") + kDbValue + "\"}")
      << "body differs";
  EXPECT_EQ(json["inputs"]["plain"], "no secret, ${env.USER} untouched");
  ASSERT_EQ(json["secrets"].size(), 2u);
  EXPECT_EQ(json["secrets"]["api_token"]["placeholder"], "***SECRET_REDACTED:api_token***");
  EXPECT_EQ(json["secrets"]["db-password"]["version"], 1);
  EXPECT_FALSE(json["secrets"].contains("k6"));
}

TEST_F(SecretctlSidecarTest, RenderUnknownKeyNamesTheInputAndKey) {
  const std::string secrets =
      WriteJson("secrets2.json", {{"api_token", "secret://workflows/http/auth-token"}});
  const std::string inputs =
      WriteJson("inputs2.json", {{"url", "https://x/?t=${resources.secret.typo_key}"}});
  const SecretctlResult r =
      Run({"render", "--stack", kStack, "--secrets", secrets, "--inputs", inputs});
  EXPECT_EQ(r.exit_code, 5) << r.Describe(Hidden());
  EXPECT_THAT(r.err, HasSubstr("secretctl render: input \"url\""));
  EXPECT_THAT(r.err, HasSubstr("\"typo_key\""));
  EXPECT_TRUE(r.out.empty());
}

TEST_F(SecretctlSidecarTest, RenderRejectsFilesThatAreNotStringObjects) {
  const std::string secrets = WriteJson("secrets3.json", {{"a", "secret://x"}});
  const std::string bad_path = state_->dir + "/broken.json";
  WriteFile(bad_path, "{\"a\": ", 0644);
  SecretctlResult r =
      Run({"render", "--stack", kStack, "--secrets", secrets, "--inputs", bad_path});
  EXPECT_EQ(r.exit_code, 5) << r.Describe(Hidden());
  EXPECT_THAT(r.err, HasSubstr("--inputs: "));
  EXPECT_THAT(r.err, HasSubstr("not valid JSON"));
  const std::string not_strings = WriteJson("numbers.json", {{"a", 1}});
  r = Run({"render", "--stack", kStack, "--secrets", secrets, "--inputs", not_strings});
  EXPECT_EQ(r.exit_code, 5) << r.Describe(Hidden());
  EXPECT_THAT(r.err, HasSubstr("must be a string"));
}

TEST_F(SecretctlSidecarTest, RenderWrongStackIsDenied) {
  const std::string secrets =
      WriteJson("secrets4.json", {{"api", "secret://workflows/http/auth-token"}});
  const std::string inputs = WriteJson("inputs4.json", {{"x", "${resources.secret.api}"}});
  const SecretctlResult r =
      Run({"render", "--stack", "stacks-9", "--secrets", secrets, "--inputs", inputs});
  EXPECT_EQ(r.exit_code, 8) << r.Describe(Hidden());
  EXPECT_THAT(r.err, HasSubstr("PERMISSION_DENIED"));
  EXPECT_TRUE(r.out.empty());
}

// Issue 13: the page's example, as a workflow file, renders verbatim through the real sidecar.
TEST_F(SecretctlSidecarTest, RenderTheManageSecretsPageExampleVerbatim) {
  const std::string path = TestDataPath("workflows/manage-secrets.yaml");
  ASSERT_EQ(ReadFile(path), kManageSecretsPage) << "the test data is no longer the page's example";
  const SecretctlResult r = Run({"render", "--stack", kStack, "--workflow", path});
  ASSERT_EQ(r.exit_code, 0) << r.Describe(Hidden());
  const nlohmann::json json = nlohmann::json::parse(r.out, nullptr, false);
  ASSERT_TRUE(json.is_object());
  EXPECT_EQ(json["step"], "call-api");
  ASSERT_TRUE(json["inputs"].is_object());
  EXPECT_EQ(json["inputs"].size(), 1u);
  ASSERT_TRUE(json["inputs"]["authSecret"].is_string());
  EXPECT_TRUE(json["inputs"]["authSecret"].get<std::string>() == kApiValue)
      << "authSecret differs from the stored value";
  const nlohmann::json& secret = json["secrets"]["api-token"];
  EXPECT_EQ(secret["name"], "workflows/http/auth-token");
  EXPECT_EQ(secret["placeholder"], "***SECRET_REDACTED:api-token***");
  EXPECT_EQ(json["secrets"].size(), 1u);
}

TEST_F(SecretctlSidecarTest, RenderAWorkflowWithNestedInputsAndSeveralSteps) {
  const std::string path = state_->dir + "/nested.yaml";
  WriteFile(path, R"(spec:
  resources:
    secrets:
      api-token: "secret://workflows/http/auth-token"
      my.db.password: secret://workflows/db/password
      k6: secret://k6-only
  steps:
    - id: fetch
      type: http.call
      inputs:
        url: https://api.example.com/items
        retries: 3
        verify: true
        ratio: 0.5
        proxy: ~
        version: "3"
        headers:
          Authorization: Bearer ${resources.secret.api-token}
          X-Untouched: ${inputs.other}
        hosts:
          - a.example.com
          - {user: app, password: '${resources.secret["my.db.password"]}'}
        script: |
          login ${resources.secret.api-token}
    - id: k6
      inputs:
        token: ${resources.secret.k6}
)", 0644);
  SecretctlResult r = Run({"render", "--stack", kStack, "--workflow", path, "--step", "fetch"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe(Hidden());
  const nlohmann::json json = nlohmann::json::parse(r.out, nullptr, false);
  ASSERT_TRUE(json.is_object());
  EXPECT_EQ(json["step"], "fetch");
  const nlohmann::json& inputs = json["inputs"];
  EXPECT_EQ(inputs["url"], "https://api.example.com/items");
  EXPECT_EQ(inputs["retries"], 3);
  EXPECT_EQ(inputs["verify"], true);
  EXPECT_EQ(inputs["ratio"], 0.5);
  EXPECT_TRUE(inputs["proxy"].is_null());
  EXPECT_EQ(inputs["version"], "3");
  EXPECT_TRUE(inputs["headers"]["Authorization"].get<std::string>() ==
              std::string("Bearer ") + kApiValue)
      << "headers.Authorization differs";
  EXPECT_EQ(inputs["headers"]["X-Untouched"], "${inputs.other}");
  ASSERT_TRUE(inputs["hosts"].is_array());
  EXPECT_EQ(inputs["hosts"][0], "a.example.com");
  EXPECT_EQ(inputs["hosts"][1]["user"], "app");
  EXPECT_TRUE(inputs["hosts"][1]["password"].get<std::string>() == kDbValue)
      << "hosts[1].password differs";
  EXPECT_TRUE(inputs["script"].get<std::string>() ==
              std::string("login ") + kApiValue + "\n")
      << "script differs";
  // Only what the step uses: the other step's k6 secret (not decryptable here) is not asked for.
  EXPECT_EQ(json["secrets"].size(), 2u);
  EXPECT_FALSE(json["secrets"].contains("k6"));

  // Two steps and no --step: a usage error. An unknown step id: invalid input.
  r = Run({"render", "--stack", kStack, "--workflow", path});
  EXPECT_EQ(r.exit_code, 2) << r.Describe(Hidden());
  EXPECT_THAT(r.err, HasSubstr("has 2 steps: choose one with --step ID"));
  r = Run({"render", "--stack", kStack, "--workflow", path, "--step", "nope"});
  EXPECT_EQ(r.exit_code, 5) << r.Describe(Hidden());
  EXPECT_THAT(r.err, HasSubstr("has no step with id \"nope\""));
  // The k6 step's secret is not decryptable by this service: per-reference denial.
  r = Run({"render", "--stack", kStack, "--workflow", path, "--step", "k6"});
  EXPECT_EQ(r.exit_code, 8) << r.Describe(Hidden());
  EXPECT_THAT(r.err, HasSubstr("step \"k6\": ref \"k6\": not authorized"));
  EXPECT_TRUE(r.out.empty());
}

TEST_F(SecretctlSidecarTest, RenderWorkflowErrorsNameTheStepInputAndPosition) {
  const std::string path = state_->dir + "/undefined.yaml";
  WriteFile(path, R"(spec:
  resources:
    secrets:
      api-token: "secret://workflows/http/auth-token"
  steps:
    - id: call-api
      inputs:
        headers:
          Authorization: "${resources.secret.api-tokn}"
)", 0644);
  SecretctlResult r = Run({"render", "--stack", kStack, "--workflow", path});
  EXPECT_EQ(r.exit_code, 5) << r.Describe(Hidden());
  EXPECT_THAT(r.err, HasSubstr("step \"call-api\": input \"headers.Authorization\": uses "
                               "resources.secret key \"api-tokn\""));
  EXPECT_TRUE(r.out.empty());

  const std::string broken = state_->dir + "/broken.yaml";
  WriteFile(broken, "spec:\n  steps: {a: 1}\n", 0644);
  r = Run({"render", "--stack", kStack, "--workflow", broken});
  EXPECT_EQ(r.exit_code, 5) << r.Describe(Hidden());
  EXPECT_THAT(r.err, HasSubstr(broken + ":2:10: invalid workflow: spec.steps must be a list"));

  // --workflow or --secrets/--inputs, not both, not neither.
  r = Run({"render", "--stack", kStack, "--workflow", path, "--inputs", path});
  EXPECT_EQ(r.exit_code, 2) << r.Describe(Hidden());
  r = Run({"render", "--stack", kStack});
  EXPECT_EQ(r.exit_code, 2) << r.Describe(Hidden());
  EXPECT_THAT(r.err, HasSubstr("give --workflow FILE, or --secrets FILE and --inputs FILE"));
}

TEST_F(SecretctlSidecarTest, ResolvePinResolvesThatVersionAndMarksItSuperseded) {
  SecretctlResult r = Run({"resolve", "--stack", kStack, "--ref", "r=secret://rotating",
                           "--pin", "r=1", "--json", "--reveal", "--run-id", "run-ctl-1"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe(Hidden());
  nlohmann::json json = nlohmann::json::parse(r.out, nullptr, false);
  ASSERT_TRUE(json.is_object());
  EXPECT_EQ(json["secrets"]["r"]["version"], 1);
  EXPECT_EQ(json["secrets"]["r"]["superseded"], true);
  EXPECT_TRUE(json["secrets"]["r"]["value"].get<std::string>() == kRotatedOld)
      << "the pinned value differs";

  r = Run({"resolve", "--stack", kStack, "--ref", "r=secret://rotating", "--pin", "r=2"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe(Hidden());
  EXPECT_THAT(r.out, Not(HasSubstr("superseded")));

  r = Run({"resolve", "--stack", kStack, "--ref", "r=secret://rotating", "--pin", "r=9"});
  EXPECT_EQ(r.exit_code, 3) << r.Describe(Hidden());
  EXPECT_THAT(r.err, HasSubstr("version 9"));

  for (const char* bad : {"r=0", "r=x", "other=1", "r"}) {
    r = Run({"resolve", "--stack", kStack, "--ref", "r=secret://rotating", "--pin", bad});
    EXPECT_EQ(r.exit_code, 5) << bad << ": " << r.Describe(Hidden());
    EXPECT_THAT(r.err, HasSubstr("--pin #1")) << bad;
  }
}

TEST_F(SecretctlSidecarTest, CheckWithAStackAsksTheSidecarPerReference) {
  const std::string workflow = state_->dir + "/check-workflow.yaml";
  WriteFile(workflow,
            "spec:\n"
            "  resources:\n"
            "    secrets:\n"
            "      api-token: \"secret://workflows/http/auth-token\"\n"
            "      k6: \"secret://k6-only\"\n"
            "      gone: \"secret://workflows/none\"\n"
            "  steps:\n"
            "    - id: call-api\n"
            "      inputs:\n"
            "        a: \"${resources.secret.api-token}\"\n"
            "        b: \"${resources.secret.k6} ${resources.secret.gone}\"\n",
            0644);
  SecretctlResult r = Run({"check", workflow, "--stack", kStack});
  // The first failure by ref key: gone (NOT_FOUND).
  EXPECT_EQ(r.exit_code, 3) << r.Describe(Hidden());
  // A failing command prints nothing on standard output: the table goes to standard error.
  EXPECT_EQ(r.out, "");
  EXPECT_THAT(r.err, HasSubstr("workflows/http/auth-token"));
  EXPECT_THAT(r.err, HasSubstr("PERMISSION_DENIED"));
  EXPECT_THAT(r.err, HasSubstr("NOT_FOUND"));
  EXPECT_THAT(r.err, HasSubstr("ref \"k6\": not authorized"));
  EXPECT_THAT(r.err, HasSubstr("2 of 3 references would not resolve"));
  ExpectNoValues(r.out);

  const std::string clean = state_->dir + "/check-clean.yaml";
  WriteFile(clean, kManageSecretsPage, 0644);
  r = Run({"check", clean, "--stack", kStack});
  ASSERT_EQ(r.exit_code, 0) << r.Describe(Hidden());
  EXPECT_THAT(r.out, HasSubstr("api-token"));
  EXPECT_THAT(r.out, HasSubstr(" ok"));

  r = Run({"check", clean, "--stack", "stacks-43"});
  EXPECT_EQ(r.exit_code, 8) << r.Describe(Hidden());

  // A sidecar flag without --stack would silently not ask the sidecar: a usage error.
  r = Run({"check", clean}, /*with_token=*/false);
  EXPECT_EQ(r.exit_code, 2) << r.Describe(Hidden());
  EXPECT_THAT(r.err, HasSubstr("needs --stack"));
}

TEST_F(SecretctlSidecarTest, HelpDescribesTheCallerCommands) {
  SecretctlRun run;
  run.args = {"--help"};
  SecretctlResult r = RunSecretctl(run);
  ASSERT_EQ(r.exit_code, 0);
  EXPECT_THAT(r.out, HasSubstr("resolve"));
  EXPECT_THAT(r.out, HasSubstr("8  denied"));
  run.args = {"render", "--help"};
  r = RunSecretctl(run);
  ASSERT_EQ(r.exit_code, 0);
  EXPECT_THAT(r.out, HasSubstr("hold secret values"));
  EXPECT_THAT(r.out, HasSubstr("$SECRET_RESOLVER_TOKEN"));
}

}  // namespace
}  // namespace secret_resolver
