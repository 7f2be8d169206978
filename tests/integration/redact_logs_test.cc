// RedactLogs end to end (issue 18 item 6): the real sidecar binary over a real Unix socket, on a
// real SQLite store, through the generated stub, the client library (secretctl redact, the real
// binary) and checked against the library redactor (client/redactor), whose output for the whole
// text is what the stream must produce whatever the chunking.
#include <sys/stat.h>

#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "client/redactor/redactor.h"
#include "resolver/secret_bytes.h"
#include "resolver/secret_store.h"
#include "resolver/sqlite/sqlite_secret_store.h"
#include "secretresolver/v1/resolver.grpc.pb.h"
#include "tests/integration/sidecar_process.h"
#include "tests/tools/secretctl/secretctl_runner.h"

namespace secret_resolver {
namespace {

using ::secretresolver::v1::RedactLogsRequest;
using ::secretresolver::v1::RedactLogsResponse;
using ::secretresolver::v1::SecretResolver;
using ::testing::HasSubstr;

constexpr char kStack[] = "stacks-42";
constexpr char kService[] = "grafana-workflows";
// Stand-ins for production credentials: tests assert they never reach the output or the log.
constexpr char kApiValue[] = "planted-api-token-6b1f9d";
constexpr char kDbValue[] = "planted-db-password-c03a";
constexpr char kApiUri[] = "secret://workflows/http/auth-token";
constexpr char kDbUri[] = "secret://workflows/db/password";

using Stream = grpc::ClientReaderWriter<RedactLogsRequest, RedactLogsResponse>;

// One stream as a test drives it.
struct OpenStream {
  std::unique_ptr<grpc::ClientContext> context = std::make_unique<grpc::ClientContext>();
  std::unique_ptr<Stream> stream;
  RedactLogsResponse started;
};

// Half-closes and reads what is left (a sync client must read every message before Finish).
grpc::Status Close(OpenStream& open) {
  open.stream->WritesDone();
  RedactLogsResponse response;
  while (open.stream->Read(&response)) {
  }
  return open.stream->Finish();
}

class RedactLogsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<testing::SidecarState> state =
        testing::SidecarState::Create("limits:\n  max_redact_streams: 2\n");
    ASSERT_TRUE(state.ok()) << state.status();
    state_ = std::make_unique<testing::SidecarState>(*std::move(state));
    absl::StatusOr<std::unique_ptr<SqliteSecretStore>> store =
        SqliteSecretStore::Open(state_->store_path, &state_->key_ring);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    Put("workflows/http/auth-token", kApiValue, {kService});
    Put("workflows/db/password", kDbValue, {kService});
    Put("k6-only", "planted-k6-value-77", {"k6"});
    absl::StatusOr<std::unique_ptr<testing::SidecarProcess>> sidecar =
        testing::SidecarProcess::Start(*state_);
    ASSERT_TRUE(sidecar.ok()) << sidecar.status();
    sidecar_ = *std::move(sidecar);
    stub_ = SecretResolver::NewStub(
        grpc::CreateChannel(sidecar_->target(), grpc::InsecureChannelCredentials()));
  }

  void TearDown() override {
    if (sidecar_ == nullptr) return;
    const std::string log = sidecar_->Log();
    for (const char* value : {kApiValue, kDbValue}) {
      EXPECT_FALSE(absl::StrContains(log, value)) << "a value reached the sidecar's log";
    }
  }

  void Put(const std::string& name, const std::string& value,
           std::vector<std::string> decrypters) {
    SecretWrite write;
    write.stack = kStack;
    write.name = name;
    write.decrypters = std::move(decrypters);
    write.actor = "redact-logs-test";
    write.value = SecretBytes(value);
    ASSERT_TRUE(store_->Put(write).ok());
  }

  // Opens a stream and sends `start`; `started` is set when the sidecar accepted it, otherwise
  // the returned status is the stream's.
  grpc::Status Open(const std::map<std::string, std::string>& refs, OpenStream* open,
                    const std::string& stack = kStack) {
    open->context->AddMetadata("authorization", "Bearer " + state_->Token(kStack, kService));
    open->stream = stub_->RedactLogs(open->context.get());
    RedactLogsRequest start;
    start.mutable_start()->set_stack(stack);
    start.mutable_start()->mutable_refs()->insert(refs.begin(), refs.end());
    if (open->stream->Write(start) && open->stream->Read(&open->started)) {
      EXPECT_TRUE(open->started.has_started());
      return grpc::Status::OK;
    }
    open->stream->WritesDone();
    return open->stream->Finish();
  }

  // The library's redactor for the two values with the placeholders the stream announced:
  // what the stream's whole output must equal.
  std::shared_ptr<const client::Redactor> LocalRedactor(const RedactLogsResponse& started) {
    const auto& placeholders = started.started().placeholders();
    std::vector<client::RedactionSecret> secrets;
    secrets.push_back({SecretBytes(kApiValue), placeholders.at("api")});
    secrets.push_back({SecretBytes(kDbValue), placeholders.at("db")});
    return client::Redactor::Create(std::move(secrets));
  }

  std::unique_ptr<testing::SidecarState> state_;
  std::unique_ptr<SqliteSecretStore> store_;
  std::unique_ptr<testing::SidecarProcess> sidecar_;
  std::unique_ptr<SecretResolver::Stub> stub_;
};

// Log text with both values raw and encoded, one of them at the very end.
std::string LogText() {
  return absl::StrCat("GET /login?token=", kApiValue, " db=", kDbValue, "\n",
                      "Authorization: Basic ", absl::Base64Escape(kApiValue), "\n",
                      "{\"password\":\"", kDbValue, "\"} url=",
                      absl::WebSafeBase64Escape(kDbValue), " last ", kApiValue);
}

TEST_F(RedactLogsTest, ValuesSplitAcrossChunksAreRedactedInOrder) {
  OpenStream open;
  ASSERT_TRUE(Open({{"api", kApiUri}, {"db", kDbUri}}, &open).ok());
  EXPECT_EQ(open.started.started().placeholders().at("api"), "***SECRET_REDACTED:api***");
  const std::string text = LogText();
  // Chunks of 1 to 7 bytes: every value is cut somewhere, most of them several times.
  std::string output;
  size_t at = 0;
  for (size_t size = 1; at < text.size(); size = size % 7 + 1) {
    RedactLogsRequest request;
    request.set_chunk(text.substr(at, size));
    at += std::min(size, text.size() - at);
    ASSERT_TRUE(open.stream->Write(request));
    RedactLogsResponse response;
    ASSERT_TRUE(open.stream->Read(&response));  // one answer per chunk
    ASSERT_TRUE(response.has_chunk());
    output += response.chunk();
  }
  ASSERT_TRUE(open.stream->WritesDone());
  RedactLogsResponse response;
  while (open.stream->Read(&response)) output += response.chunk();  // the flush
  const grpc::Status status = open.stream->Finish();
  ASSERT_TRUE(status.ok()) << status.error_message();

  EXPECT_EQ(output, LocalRedactor(open.started)->RedactAll(text));
  EXPECT_FALSE(absl::StrContains(output, kApiValue));
  EXPECT_FALSE(absl::StrContains(output, kDbValue));
  EXPECT_FALSE(absl::StrContains(output, absl::Base64Escape(kApiValue)));
  EXPECT_TRUE(absl::EndsWith(output, " last ***SECRET_REDACTED:api***"));
}

// Each answer holds everything but the bytes that could still begin a pattern: fewer than the
// longest pattern's length. (The library's Write alone holds back up to twice that.)
TEST_F(RedactLogsTest, EachAnswerLagsByLessThanTheLongestPattern) {
  OpenStream open;
  ASSERT_TRUE(Open({{"api", kApiUri}, {"db", kDbUri}}, &open).ok());
  const size_t longest = LocalRedactor(open.started)->max_pattern_length();
  ASSERT_GT(longest, 0u);
  const std::string chunk(longest + 5, 'x');  // no value in it
  size_t sent = 0;
  size_t received = 0;
  for (int i = 0; i < 20; ++i) {
    RedactLogsRequest request;
    request.set_chunk(chunk);
    ASSERT_TRUE(open.stream->Write(request));
    sent += chunk.size();
    RedactLogsResponse response;
    ASSERT_TRUE(open.stream->Read(&response));
    received += response.chunk().size();
    EXPECT_GE(received + longest - 1, sent) << "after chunk " << i;
    EXPECT_LE(received, sent);
  }
  ASSERT_TRUE(open.stream->WritesDone());
  RedactLogsResponse response;
  while (open.stream->Read(&response)) received += response.chunk().size();
  EXPECT_TRUE(open.stream->Finish().ok());
  EXPECT_EQ(received, sent);
}

TEST_F(RedactLogsTest, ARefThatWouldNotResolveRefusesTheStream) {
  OpenStream denied;
  grpc::Status status = Open({{"api", kApiUri}, {"k6", "secret://k6-only"}}, &denied);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(status.error_message(), HasSubstr("refs[\"k6\"]: not authorized"));

  OpenStream missing;
  status = Open({{"gone", "secret://workflows/none"}}, &missing);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(status.error_message(), HasSubstr("refs[\"gone\"]"));

  OpenStream other_stack;
  status = Open({{"api", kApiUri}}, &other_stack, "stacks-43");
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);

  OpenStream no_token;
  no_token.stream = stub_->RedactLogs(no_token.context.get());
  RedactLogsRequest start;
  start.mutable_start()->set_stack(kStack);
  (*start.mutable_start()->mutable_refs())["api"] = kApiUri;
  no_token.stream->Write(start);
  no_token.stream->WritesDone();
  EXPECT_EQ(no_token.stream->Finish().error_code(), grpc::StatusCode::UNAUTHENTICATED);
}

TEST_F(RedactLogsTest, AChunkBeforeStartIsInvalidArgument) {
  grpc::ClientContext context;
  context.AddMetadata("authorization", "Bearer " + state_->Token(kStack, kService));
  std::unique_ptr<Stream> stream = stub_->RedactLogs(&context);
  RedactLogsRequest request;
  request.set_chunk("hello");
  stream->Write(request);
  stream->WritesDone();
  const grpc::Status status = stream->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("first message must be"));
}

TEST_F(RedactLogsTest, StreamsPastTheLimitAreRefusedUntilOneEnds) {
  OpenStream first;
  OpenStream second;
  ASSERT_TRUE(Open({{"api", kApiUri}}, &first).ok());
  ASSERT_TRUE(Open({{"api", kApiUri}}, &second).ok());
  OpenStream third;
  const grpc::Status refused = Open({{"api", kApiUri}}, &third);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(refused.error_message(), HasSubstr("limits.max_redact_streams"));

  ASSERT_TRUE(Close(first).ok());
  // The place is given back once the sidecar is through with the stream, just after Finish.
  const absl::Time give_up = absl::Now() + absl::Seconds(5);
  grpc::Status again;
  do {
    OpenStream fourth;
    again = Open({{"api", kApiUri}}, &fourth);
    if (again.ok()) EXPECT_TRUE(Close(fourth).ok());
  } while (!again.ok() && absl::Now() < give_up);
  EXPECT_TRUE(again.ok()) << again.error_message();
  EXPECT_TRUE(Close(second).ok());
}

class SecretctlRedactTest : public RedactLogsTest {
 protected:
  testing::SecretctlResult Redact(const std::vector<std::string>& refs, const std::string& in) {
    const std::string token_file = state_->dir + "/token";
    {
      std::ofstream out(token_file);
      out << state_->Token(kStack, kService) << "\n";
    }
    EXPECT_EQ(chmod(token_file.c_str(), 0600), 0);
    testing::SecretctlRun run;
    run.args = {"redact", "--address", sidecar_->target(), "--stack", kStack,
                "--token-file", token_file};
    for (const std::string& ref : refs) {
      run.args.push_back("--ref");
      run.args.push_back(ref);
    }
    run.stdin_data = in;
    return testing::RunSecretctl(run);
  }
};

TEST_F(SecretctlRedactTest, FiltersStandardInputToStandardOutput) {
  // Large enough to take several reads and several chunks.
  std::string text;
  for (int i = 0; i < 2000; ++i) absl::StrAppend(&text, "line ", i, ": ", LogText(), "\n");
  const testing::SecretctlResult result =
      Redact({absl::StrCat("api=", kApiUri), absl::StrCat("db=", kDbUri)}, text);
  ASSERT_EQ(result.exit_code, 0) << result.Describe({kApiValue, kDbValue});
  OpenStream open;
  ASSERT_TRUE(Open({{"api", kApiUri}, {"db", kDbUri}}, &open).ok());
  EXPECT_TRUE(Close(open).ok());
  EXPECT_TRUE(result.out == LocalRedactor(open.started)->RedactAll(text))
      << "the output differs from the library's redaction of the whole text";
  EXPECT_FALSE(absl::StrContains(result.out, kApiValue));
  EXPECT_FALSE(absl::StrContains(result.out, kDbValue));
}

TEST_F(SecretctlRedactTest, ADeniedRefWritesNothingAndFails) {
  const testing::SecretctlResult result =
      Redact({absl::StrCat("api=", kApiUri), "k6=secret://k6-only"}, LogText());
  EXPECT_NE(result.exit_code, 0);
  EXPECT_EQ(result.out, "");
  EXPECT_THAT(result.err, HasSubstr("PERMISSION_DENIED"));
  EXPECT_FALSE(absl::StrContains(result.err, kApiValue));
}

}  // namespace
}  // namespace secret_resolver
