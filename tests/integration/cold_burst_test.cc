// A restarted pod through the real binary (issue 20 item 3): the sidecar starts with an empty
// cache and 1,000 callers, each with a token it has never seen and asking for a different secret,
// send their calls at once over a few connections. Every call must be answered OK with its own
// secret: none refused as overload (limits.max_queued_calls), none past its deadline. How fast
// is the benchmark's business (tests/bench/coldstart_bench.cc); the deadline here is only a bound
// on waiting.
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "resolver/secret_bytes.h"
#include "resolver/sqlite/sqlite_secret_store.h"
#include "secretresolver/v1/resolver.grpc.pb.h"
#include "tests/integration/sidecar_process.h"

namespace secret_resolver {
namespace {

using secretresolver::v1::ResolveSecretsRequest;
using secretresolver::v1::ResolveSecretsResponse;
using secretresolver::v1::SecretResolver;

constexpr int kCallers = 1000;
// As many callers on each connection as the default limits.max_concurrent_streams lets in.
constexpr int kConnections = 10;
constexpr char kStack[] = "stacks-1";
constexpr char kService[] = "grafana-workflows";

std::string Name(int i) { return absl::StrCat("cold/s-", i); }
std::string Value(int i) { return absl::StrCat("cold-value-", i); }

struct Call {
  grpc::ClientContext context;
  ResolveSecretsRequest request;
  ResolveSecretsResponse response;
  grpc::Status status;
  std::unique_ptr<grpc::ClientAsyncResponseReader<ResolveSecretsResponse>> reader;
};

TEST(ColdBurstTest, ThousandNewCallersMissingTheCacheAtOnceAreAllAnswered) {
  absl::StatusOr<testing::SidecarState> state = testing::SidecarState::Create();
  ASSERT_TRUE(state.ok()) << state.status();
  {
    absl::StatusOr<std::unique_ptr<SqliteSecretStore>> store =
        SqliteSecretStore::Open(state->store_path, &state->key_ring);
    ASSERT_TRUE(store.ok()) << store.status();
    for (int i = 0; i < kCallers; ++i) {
      SecretWrite write;
      write.stack = kStack;
      write.name = Name(i);
      write.decrypters = {kService};
      write.actor = "test";
      write.value = SecretBytes(Value(i));
      ASSERT_TRUE((*store)->Put(write).ok());
    }
  }
  // No two tokens alike: each lives a different number of seconds.
  std::vector<std::string> tokens;
  for (int i = 0; i < kCallers; ++i) {
    tokens.push_back(state->Token(kStack, kService, absl::Hours(1) + absl::Seconds(i)));
    ASSERT_FALSE(tokens.back().empty());
  }
  absl::StatusOr<std::unique_ptr<testing::SidecarProcess>> sidecar =
      testing::SidecarProcess::Start(*state);
  ASSERT_TRUE(sidecar.ok()) << sidecar.status();

  std::vector<std::unique_ptr<SecretResolver::Stub>> stubs;
  for (int c = 0; c < kConnections; ++c) {
    grpc::ChannelArguments args;
    args.SetInt("grpc.use_local_subchannel_pool", 1);  // a connection per channel
    stubs.push_back(SecretResolver::NewStub(grpc::CreateCustomChannel(
        (*sidecar)->target(), grpc::InsecureChannelCredentials(), args)));
  }
  grpc::CompletionQueue queue;
  std::vector<std::unique_ptr<Call>> calls;
  for (int i = 0; i < kCallers; ++i) {
    auto call = std::make_unique<Call>();
    call->request.set_stack(kStack);
    (*call->request.mutable_refs())["value"] = absl::StrCat("secret://", Name(i));
    call->context.AddMetadata("authorization", "Bearer " + tokens[i]);
    call->context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(60)));
    calls.push_back(std::move(call));
  }
  for (int i = 0; i < kCallers; ++i) {
    Call& call = *calls[i];
    call.reader = stubs[i % kConnections]->AsyncResolveSecrets(&call.context, call.request, &queue);
    call.reader->Finish(&call.response, &call.status, &call);
  }
  for (int i = 0; i < kCallers; ++i) {
    void* tag = nullptr;
    bool ok = false;
    ASSERT_TRUE(queue.Next(&tag, &ok));
  }
  queue.Shutdown();

  int refused_overloaded = 0;
  int other_errors = 0;
  int wrong_values = 0;
  for (int i = 0; i < kCallers; ++i) {
    const Call& call = *calls[i];
    if (call.status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
      ++refused_overloaded;
      continue;
    }
    if (!call.status.ok()) {
      ++other_errors;
      ADD_FAILURE() << "call " << i << ": code " << call.status.error_code() << ": "
                    << call.status.error_message();
      continue;
    }
    const auto result = call.response.results().find("value");
    // Compared, never printed: test values are kept out of the output as real ones would be.
    if (result == call.response.results().end() || !result->second.has_secret() ||
        result->second.secret().value() != Value(i)) {
      ++wrong_values;
    }
  }
  EXPECT_EQ(refused_overloaded, 0) << "calls refused RESOURCE_EXHAUSTED (overloaded)";
  EXPECT_EQ(other_errors, 0);
  EXPECT_EQ(wrong_values, 0) << "calls answered OK without their own secret";
  EXPECT_EQ((*sidecar)->Terminate(), 0);
}

}  // namespace
}  // namespace secret_resolver
