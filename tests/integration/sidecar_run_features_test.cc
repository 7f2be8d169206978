// Issue 18's run features through the real binary, real gRPC over a Unix socket and a real
// SQLite store: CheckReferences (a dry run that reads no value), the per-run audit context
// (x-workflow-run-id, x-workflow-step-id, traceparent) with docs/audit.md's jq command run on
// the real audit log, and pinned versions, by hand and through the client library's RunSecrets.
#include <sqlite3.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "client/secret_resolver_client.h"
#include "client/step_inputs.h"
#include "nlohmann/json.hpp"
#include "resolver/sqlite/sqlite_secret_store.h"
#include "secretresolver/v1/resolver.grpc.pb.h"
#include "tests/integration/sidecar_process.h"

namespace secret_resolver {
namespace {

using ::secretresolver::v1::CheckReferencesRequest;
using ::secretresolver::v1::CheckReferencesResponse;
using ::secretresolver::v1::ResolveSecretsRequest;
using ::secretresolver::v1::ResolveSecretsResponse;
using ::secretresolver::v1::SecretResolver;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kStack[] = "stacks-42";
constexpr char kService[] = "grafana-workflows";
// Stand-ins for production credentials: tests assert they never reach a log.
constexpr char kOldValue[] = "planted-rotated-old-5c1e";
constexpr char kNewValue[] = "planted-rotated-new-7d2f";
constexpr char kDamagedValue[] = "planted-damaged-value-9e3a";
constexpr char kTraceparent[] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

using Metadata = std::vector<std::pair<std::string, std::string>>;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// The audit lines of `log`, parsed.
std::vector<nlohmann::json> AuditLines(const std::string& log) {
  std::vector<nlohmann::json> lines;
  for (absl::string_view line : absl::StrSplit(log, '\n', absl::SkipEmpty())) {
    nlohmann::json json = nlohmann::json::parse(line, nullptr, false);
    if (json.is_object() && json.value("msg", "") == "audit") lines.push_back(std::move(json));
  }
  return lines;
}

class SidecarRunFeaturesTest : public ::testing::Test {
 protected:
  // A state, a store with its first secrets, then the sidecar. `before_start` runs on the
  // store's file before the sidecar opens it.
  void Start(const std::string& extra_yaml = "",
             const std::function<void(const std::string& path)>& before_start = nullptr) {
    absl::StatusOr<testing::SidecarState> state = testing::SidecarState::Create(extra_yaml);
    ASSERT_TRUE(state.ok()) << state.status();
    state_ = std::make_unique<testing::SidecarState>(*std::move(state));
    absl::StatusOr<std::unique_ptr<SqliteSecretStore>> store =
        SqliteSecretStore::Open(state_->store_path, &state_->key_ring);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    Put("rotating", kOldValue, {kService});
    Put("k6-only", "planted-k6-value-77", {"k6"});
    Put("damaged", kDamagedValue, {kService});
    if (before_start) before_start(state_->store_path);
    absl::StatusOr<std::unique_ptr<testing::SidecarProcess>> sidecar =
        testing::SidecarProcess::Start(*state_);
    ASSERT_TRUE(sidecar.ok()) << sidecar.status();
    sidecar_ = *std::move(sidecar);
    stub_ = SecretResolver::NewStub(
        grpc::CreateChannel(sidecar_->target(), grpc::InsecureChannelCredentials()));
  }

  void Put(const std::string& name, const std::string& value,
           std::vector<std::string> decrypters) {
    SecretWrite write;
    write.stack = kStack;
    write.name = name;
    write.decrypters = std::move(decrypters);
    write.actor = "run-features-test";
    write.value = SecretBytes(value);
    ASSERT_TRUE(store_->Put(write).ok());
  }

  void Prepare(grpc::ClientContext& context, const Metadata& metadata, const std::string& token) {
    if (!token.empty()) context.AddMetadata("authorization", "Bearer " + token);
    for (const auto& [key, value] : metadata) context.AddMetadata(key, value);
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  }

  grpc::Status Resolve(const std::map<std::string, std::string>& refs,
                       const std::map<std::string, int64_t>& versions,
                       ResolveSecretsResponse* response, const Metadata& metadata = {},
                       const std::string& stack = kStack) {
    ResolveSecretsRequest request;
    request.set_stack(stack);
    request.mutable_refs()->insert(refs.begin(), refs.end());
    request.mutable_versions()->insert(versions.begin(), versions.end());
    grpc::ClientContext context;
    Prepare(context, metadata, GoodToken());
    return stub_->ResolveSecrets(&context, request, response);
  }

  grpc::Status Check(const std::map<std::string, std::string>& refs,
                     CheckReferencesResponse* response, const std::string& token,
                     const std::string& stack = kStack) {
    CheckReferencesRequest request;
    request.set_stack(stack);
    request.mutable_refs()->insert(refs.begin(), refs.end());
    grpc::ClientContext context;
    Prepare(context, {}, token);
    return stub_->CheckReferences(&context, request, response);
  }

  // Waits (5 s at most) until an unpinned resolve of `rotating` gives `version`: the sidecar
  // learns of writes through the store's change detection.
  void AwaitNewest(int64_t version) {
    const absl::Time give_up = absl::Now() + absl::Seconds(5);
    int64_t seen = 0;
    while (absl::Now() < give_up) {
      ResolveSecretsResponse response;
      ASSERT_TRUE(Resolve({{"r", "secret://rotating"}}, {}, &response).ok());
      seen = response.results().at("r").secret().version();
      if (seen == version) return;
      absl::SleepFor(absl::Milliseconds(20));
    }
    FAIL() << "the sidecar still resolves version " << seen << ", not " << version;
  }

  std::string GoodToken() { return state_->Token(kStack, kService); }

  // The log once the sidecar has stopped (every audit line written), checked for values.
  std::string FinalLog() {
    EXPECT_EQ(sidecar_->Terminate(), 0);
    const std::string log = sidecar_->Log();
    for (const char* value : {kOldValue, kNewValue, kDamagedValue}) {
      EXPECT_FALSE(absl::StrContains(log, value)) << "a secret value in the log";
    }
    return log;
  }

  std::unique_ptr<testing::SidecarState> state_;
  std::unique_ptr<SqliteSecretStore> store_;
  std::unique_ptr<testing::SidecarProcess> sidecar_;
  std::unique_ptr<SecretResolver::Stub> stub_;
};

// --- CheckReferences ---

TEST_F(SidecarRunFeaturesTest, CheckAnswersAsResolveWouldWithoutReadingAnyValue) {
  // A ciphertext no key opens: resolving it fails, checking it does not, because the check
  // never reads the value.
  Start("", [](const std::string& path) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, "UPDATE secure_values SET ciphertext = x'00' WHERE name = 'damaged'",
                           nullptr, nullptr, nullptr),
              SQLITE_OK);
    sqlite3_close(db);
  });
  const std::map<std::string, std::string> refs = {{"rotating", "secret://rotating"},
                                                   {"k6", "secret://k6-only"},
                                                   {"missing", "secret://workflows/none"},
                                                   {"bad", "secret://Upper"},
                                                   {"damaged", "secret://damaged"}};
  CheckReferencesResponse checked;
  grpc::Status status = Check(refs, &checked, GoodToken());
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(checked.results_size(), 5);
  EXPECT_EQ(checked.results().at("rotating").secret().name(), "rotating");
  EXPECT_EQ(checked.results().at("rotating").secret().version(), 1);
  EXPECT_EQ(checked.results().at("damaged").secret().version(), 1);
  EXPECT_EQ(checked.results().at("k6").error().code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(checked.results().at("k6").error().message(), "not authorized");
  EXPECT_EQ(checked.results().at("missing").error().code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(checked.results().at("bad").error().code(), grpc::StatusCode::INVALID_ARGUMENT);

  // ResolveSecrets agrees on every reference but the one whose value cannot be read.
  ResolveSecretsResponse resolved;
  ASSERT_TRUE(Resolve(refs, {}, &resolved).ok());
  for (const auto& [key, result] : resolved.results()) {
    if (key == "damaged") continue;
    const auto& check = checked.results().at(key);
    EXPECT_EQ(result.has_secret(), check.has_secret()) << key;
    EXPECT_EQ(result.error().code(), check.error().code()) << key;
    EXPECT_EQ(result.error().message(), check.error().message()) << key;
  }
  EXPECT_EQ(resolved.results().at("damaged").error().code(), grpc::StatusCode::DATA_LOSS);

  // Whole-call errors are ResolveSecrets'.
  EXPECT_EQ(Check(refs, &checked, "").error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(Check(refs, &checked, GoodToken(), "stacks-43").error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(Check({}, &checked, GoodToken()).error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  // Audited per reference, marked as a check.
  int check_lines = 0;
  for (const nlohmann::json& line : AuditLines(FinalLog())) {
    if (line.value("method", "") != "CheckReferences") continue;
    ++check_lines;
    if (line["ref_key"] == "rotating") {
      EXPECT_EQ(line["decision"], "allowed");
      EXPECT_EQ(line["version"], 1);
    }
    if (line["ref_key"] == "k6") EXPECT_EQ(line["decision"], "denied");
  }
  EXPECT_EQ(check_lines, 5);
}

TEST_F(SidecarRunFeaturesTest, CheckIsRateLimitedWithResolve) {
  Start("limits:\n  per_stack_rate: 0.001\n  per_stack_burst: 2\n");
  CheckReferencesResponse checked;
  EXPECT_TRUE(Check({{"r", "secret://rotating"}}, &checked, GoodToken()).ok());
  ResolveSecretsResponse resolved;
  EXPECT_TRUE(Resolve({{"r", "secret://rotating"}}, {}, &resolved).ok());
  EXPECT_EQ(Check({{"r", "secret://rotating"}}, &checked, GoodToken()).error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
}

// --- run context in the audit log ---

TEST_F(SidecarRunFeaturesTest, RunContextGoesIntoEveryAuditLineAndInvalidOnesAreDropped) {
  Start();
  ResolveSecretsResponse response;
  const Metadata run = {{"x-workflow-run-id", "run-7f3e"},
                        {"x-workflow-step-id", "deploy.1"},
                        {"traceparent", kTraceparent}};
  ASSERT_TRUE(
      Resolve({{"a", "secret://rotating"}, {"b", "secret://k6-only"}}, {}, &response, run).ok());
  // A call refused as a whole is audited with its run context too.
  EXPECT_EQ(Resolve({{"a", "secret://rotating"}}, {}, &response, run, "stacks-43").error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  const std::string long_id(129, 'x');
  const std::string bad_trace = "00-" + std::string(32, '0') + "-00f067aa0ba902b7-01";
  ASSERT_TRUE(Resolve({{"a", "secret://rotating"}}, {}, &response,
                      {{"x-workflow-run-id", long_id},
                       {"x-workflow-step-id", "step 1"},
                       {"traceparent", bad_trace}})
                  .ok());

  const std::string log = FinalLog();
  EXPECT_FALSE(absl::StrContains(log, long_id)) << "a dropped value in the log";
  EXPECT_FALSE(absl::StrContains(log, bad_trace)) << "a dropped value in the log";
  int with_run = 0;
  int dropped = 0;
  for (const nlohmann::json& line : AuditLines(log)) {
    if (line.value("run_id", "") == "run-7f3e") {
      ++with_run;
      EXPECT_EQ(line["step_id"], "deploy.1");
      EXPECT_EQ(line["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
      EXPECT_EQ(line["span_id"], "00f067aa0ba902b7");
    }
    if (line.contains("dropped_metadata")) {
      ++dropped;
      EXPECT_EQ(line["dropped_metadata"],
                "x-workflow-run-id,x-workflow-step-id,traceparent");
      EXPECT_FALSE(line.contains("run_id"));
      EXPECT_EQ(line["decision"], "allowed");  // dropped metadata decides nothing
    }
  }
  EXPECT_EQ(with_run, 3);  // two references and the refused call
  EXPECT_EQ(dropped, 1);
}

// --- pinned versions ---

TEST_F(SidecarRunFeaturesTest, APinnedVersionResolvesWhileStoredAndDecryptable) {
  Start();
  Put("rotating", kNewValue, {kService});
  AwaitNewest(2);
  ResolveSecretsResponse response;
  ASSERT_TRUE(Resolve({{"pinned", "secret://rotating"}, {"newest", "secret://rotating"}},
                      {{"pinned", 1}}, &response)
                  .ok());
  const auto& pinned = response.results().at("pinned").secret();
  EXPECT_EQ(pinned.version(), 1);
  EXPECT_TRUE(pinned.value() == kOldValue) << "the pinned value differs";
  EXPECT_TRUE(pinned.superseded());
  EXPECT_EQ(response.results().at("newest").secret().version(), 2);
  EXPECT_FALSE(response.results().at("newest").secret().superseded());

  ASSERT_TRUE(Resolve({{"r", "secret://rotating"}}, {{"r", 3}}, &response).ok());
  EXPECT_EQ(response.results().at("r").error().code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Resolve({{"r", "secret://rotating"}}, {{"other", 1}}, &response).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Resolve({{"r", "secret://rotating"}}, {{"r", 0}}, &response).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);

  // The newest version's decrypters decide: a revocation revokes the pinned reads too.
  Put("rotating", kNewValue, {"someone-else"});
  const absl::Time give_up = absl::Now() + absl::Seconds(5);
  grpc::StatusCode code = grpc::StatusCode::OK;
  while (absl::Now() < give_up) {
    ASSERT_TRUE(Resolve({{"r", "secret://rotating"}}, {{"r", 1}}, &response).ok());
    code = static_cast<grpc::StatusCode>(response.results().at("r").error().code());
    if (code == grpc::StatusCode::PERMISSION_DENIED) break;
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_EQ(code, grpc::StatusCode::PERMISSION_DENIED);

  // A deleted secret is NOT_FOUND even when pinned (and its pinned version cached).
  ASSERT_TRUE(store_->Delete(kStack, "rotating", "run-features-test").ok());
  while (absl::Now() < give_up + absl::Seconds(5)) {
    ASSERT_TRUE(Resolve({{"r", "secret://rotating"}}, {{"r", 1}}, &response).ok());
    code = static_cast<grpc::StatusCode>(response.results().at("r").error().code());
    if (code == grpc::StatusCode::NOT_FOUND) break;
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_EQ(code, grpc::StatusCode::NOT_FOUND);
  FinalLog();
}

// A run's steps through the client library see one version, however the secret rotates; the
// audit log then says which run used which version, and docs/audit.md's jq command finds it.
TEST_F(SidecarRunFeaturesTest, RunSecretsKeepsTheFirstStepsVersionsAndTheAuditTellsWhich) {
  Start();
  client::ClientOptions options;
  options.target = sidecar_->target();
  const std::string token = GoodToken();
  options.token_provider = [token]() -> absl::StatusOr<std::string> { return token; };
  absl::StatusOr<std::unique_ptr<client::SecretResolverClient>> made =
      client::SecretResolverClient::Create(std::move(options));
  ASSERT_TRUE(made.ok()) << made.status();
  client::SecretResolverClient& resolver = **made;
  const std::map<std::string, std::string> secrets = {{"token", "secret://rotating"}};
  const std::map<std::string, std::string> inputs = {{"auth", "${resources.secret.token}"}};

  client::RunSecrets run_a(&resolver, kStack, secrets, "run-a");
  absl::StatusOr<client::RenderedStep> step = run_a.RenderStep("step-1", inputs, kTraceparent);
  ASSERT_TRUE(step.ok()) << step.status();
  EXPECT_TRUE(step->inputs.at("auth").Equals(kOldValue)) << "step 1 got another value";

  Put("rotating", kNewValue, {kService});
  AwaitNewest(2);
  step = run_a.RenderStep("step-2", inputs);
  ASSERT_TRUE(step.ok()) << step.status();
  EXPECT_TRUE(step->inputs.at("auth").Equals(kOldValue)) << "step 2 did not keep version 1";
  EXPECT_EQ(step->secrets.at("token").version, 1);
  EXPECT_TRUE(step->secrets.at("token").superseded);
  EXPECT_EQ(run_a.versions(), (std::map<std::string, int64_t>{{"token", 1}}));

  client::RunSecrets run_b(&resolver, kStack, secrets, "run-b");
  step = run_b.RenderStep("step-1", inputs);
  ASSERT_TRUE(step.ok()) << step.status();
  EXPECT_TRUE(step->inputs.at("auth").Equals(kNewValue)) << "a new run got an old value";

  const std::string log = FinalLog();
  // docs/audit.md's command, verbatim, on the real audit log.
  if (system("command -v jq >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "jq is not installed (tools/dev setup installs it)";
  }
  const std::string doc = ReadFile("docs/audit.md");
  const size_t marker = doc.find("<!-- runs-by-secret -->");
  ASSERT_NE(marker, std::string::npos) << "docs/audit.md lost its runs-by-secret example";
  const size_t begin = doc.find("jq ", marker);
  const size_t end = doc.find("\n```", begin);
  ASSERT_NE(begin, std::string::npos);
  std::string command = doc.substr(begin, end - begin);
  // Its file is `sidecar.log` and its secret `workflows/http/auth-token`: this test's are others.
  const std::string log_path = state_->dir + "/sidecar.log";
  { std::ofstream(log_path) << log; }
  command = absl::StrCat("cd '", state_->dir, "' && ",
                         absl::StrReplaceAll(command, {{"workflows/http/auth-token", "rotating"}, {"stacks-123", kStack}}));
  FILE* pipe = popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string out;
  char buffer[4096];
  size_t n = 0;
  while ((n = fread(buffer, 1, sizeof(buffer), pipe)) > 0) out.append(buffer, n);
  const int status = pclose(pipe);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "the doc's jq command failed";
  EXPECT_EQ(out, "run-a\tstep-1\t1\nrun-a\tstep-2\t1\nrun-b\tstep-1\t2\n");
}

}  // namespace
}  // namespace secret_resolver
