// empty_server: the baseline of the sidecar benchmark. It serves SecretResolver from the same
// proto with the same gRPC settings as the sidecar (message size limit, default health service,
// Abseil's deadlock detection off) and answers every ResolveSecrets with one fixed response
// shaped like the sidecar's (three secrets of 32 bytes with placeholders and fingerprints),
// without authentication, cache or worker pool. It can do so through each of gRPC's C++ APIs,
// so the same harness compares them:
//
//   empty_server --api=callback|sync|async [--unix_socket=PATH] [--tcp_address=HOST:PORT]
//
// It prints "ready" on stdout once it listens, and exits on SIGTERM or SIGINT.
#include <signal.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "secretresolver/v1/resolver.grpc.pb.h"

ABSL_FLAG(std::string, api, "callback", "gRPC C++ API: callback, sync or async.");
ABSL_FLAG(std::string, unix_socket, "", "Unix socket path to listen on.");
ABSL_FLAG(std::string, tcp_address, "", "host:port to listen on (plaintext).");
ABSL_FLAG(int, async_threads, std::max(1u, std::thread::hardware_concurrency()),
          "Completion-queue threads of the async API (default: one per core, as the sidecar).");

namespace secret_resolver {
namespace {

using secretresolver::v1::ResolveSecretsRequest;
using secretresolver::v1::ResolveSecretsResponse;
using secretresolver::v1::SecretResolver;

// The byte count of the sidecar's messages: the value is a benchmark filler, not a secret.
ResolveSecretsResponse FixedResponse() {
  ResolveSecretsResponse response;
  for (const char* key : {"ref-a", "ref-b", "ref-c"}) {
    auto* secret = (*response.mutable_results())[key].mutable_secret();
    secret->set_name(absl::StrCat("bench/secret-", key + 4));
    secret->set_version(1);
    secret->set_value(std::string(32, 'x'));
    secret->mutable_redaction()->set_placeholder(absl::StrCat("***SECRET_REDACTED:", key, "***"));
    secret->mutable_redaction()->set_fingerprint(
        absl::StrCat("hmac-sha256:", std::string(32, '0')));
  }
  return response;
}

class CallbackService final : public SecretResolver::CallbackService {
 public:
  grpc::ServerUnaryReactor* ResolveSecrets(grpc::CallbackServerContext* context,
                                           const ResolveSecretsRequest*,
                                           ResolveSecretsResponse* response) override {
    *response = fixed_;
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

 private:
  const ResolveSecretsResponse fixed_ = FixedResponse();
};

class SyncService final : public SecretResolver::Service {
 public:
  grpc::Status ResolveSecrets(grpc::ServerContext*, const ResolveSecretsRequest*,
                              ResolveSecretsResponse* response) override {
    *response = fixed_;
    return grpc::Status::OK;
  }

 private:
  const ResolveSecretsResponse fixed_ = FixedResponse();
};

// One call of the async API: requested, then answered, then deleted.
class AsyncCall {
 public:
  AsyncCall(SecretResolver::AsyncService* service, grpc::ServerCompletionQueue* queue,
            const ResolveSecretsResponse* fixed)
      : service_(service), queue_(queue), fixed_(fixed), writer_(&context_) {
    service_->RequestResolveSecrets(&context_, &request_, &writer_, queue_, queue_, this);
  }

  // Called with this call's tag when its current step completes.
  void Proceed(bool ok) {
    if (answered_ || !ok) {
      delete this;
      return;
    }
    new AsyncCall(service_, queue_, fixed_);  // the next call on this queue
    answered_ = true;
    writer_.Finish(*fixed_, grpc::Status::OK, this);
  }

 private:
  SecretResolver::AsyncService* const service_;
  grpc::ServerCompletionQueue* const queue_;
  const ResolveSecretsResponse* const fixed_;
  grpc::ServerContext context_;
  ResolveSecretsRequest request_;
  grpc::ServerAsyncResponseWriter<ResolveSecretsResponse> writer_;
  bool answered_ = false;
};

int Main() {
  const std::string api = absl::GetFlag(FLAGS_api);
  if (api != "callback" && api != "sync" && api != "async") {
    std::fprintf(stderr, "empty_server: --api must be callback, sync or async\n");
    return 2;
  }
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  builder.SetMaxReceiveMessageSize(1 << 20);  // the sidecar's default limits.max_message_bytes
  if (!absl::GetFlag(FLAGS_unix_socket).empty()) {
    builder.AddListeningPort("unix:" + absl::GetFlag(FLAGS_unix_socket),
                             grpc::InsecureServerCredentials());
  }
  if (!absl::GetFlag(FLAGS_tcp_address).empty()) {
    builder.AddListeningPort(absl::GetFlag(FLAGS_tcp_address), grpc::InsecureServerCredentials());
  }
  CallbackService callback_service;
  SyncService sync_service;
  SecretResolver::AsyncService async_service;
  std::vector<std::unique_ptr<grpc::ServerCompletionQueue>> queues;
  if (api == "callback") builder.RegisterService(&callback_service);
  if (api == "sync") builder.RegisterService(&sync_service);
  if (api == "async") {
    builder.RegisterService(&async_service);
    for (int i = 0; i < absl::GetFlag(FLAGS_async_threads); ++i) {
      queues.push_back(builder.AddCompletionQueue());
    }
  }
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr) {
    std::fprintf(stderr, "empty_server: cannot listen\n");
    return 1;
  }
  const ResolveSecretsResponse fixed = FixedResponse();
  std::vector<std::thread> threads;
  for (auto& queue : queues) {
    threads.emplace_back([&async_service, queue = queue.get(), &fixed] {
      new AsyncCall(&async_service, queue, &fixed);
      void* tag = nullptr;
      bool ok = false;
      while (queue->Next(&tag, &ok)) static_cast<AsyncCall*>(tag)->Proceed(ok);
    });
  }
  std::printf("ready\n");
  std::fflush(stdout);
  int signal = 0;
  sigwait(&signals, &signal);
  server->Shutdown();
  for (auto& queue : queues) queue->Shutdown();
  for (std::thread& thread : threads) thread.join();
  return 0;
}

}  // namespace
}  // namespace secret_resolver

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  // As the sidecar does (server/main.cc): Abseil's lock-order graph costs time on every lock.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  return secret_resolver::Main();
}
