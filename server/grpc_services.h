// The gRPC services: thin adapters from gRPC's asynchronous (completion-queue) API to
// ResolveHandler.
//   - secretresolver.v1.SecretResolver/ResolveSecrets and CheckReferences (always on the pool)
//   - decryptv1beta1.SecureValueDecrypter/DecryptSecureValues and
//     decryptv1.SecureValueDecrypter/DecryptSecureValues (Grafana's API, both packages)
//   - secretresolver.v1.SecretResolver/RedactLogs, a bidirectional stream (server/redact_call.h)
//   - secretresolver.v1.SecretResolver/WatchSecrets, a server stream (server/watch_call.h)
//   - secretresolver.v1.SecretChanges/WatchChanges, a server stream for the sidecars of a
//     central tier (server/change_stream.h)
// The async API was chosen by measurement against the callback and sync APIs (figures in
// docs/server.md).
//
// Every method is registered raw. A request message flagged compressed on a call that names no
// compression algorithm, and a second request message, are refused INTERNAL (as gRPC's Go and
// Java servers do): each call reads on to the end of its request before it is served. Each call
// views its credential metadata, takes its deadline and parses its request onto an arena of its
// own (bytes that do not parse are INVALID_ARGUMENT).
// If the handler can answer without blocking (a verified token and every reference in the
// caches), it does so on the queue thread; otherwise the call goes to the worker ThreadPool, so
// blocking work (store I/O, signature checks, a JWKS fetch) never runs on a queue thread. Either
// way it finishes with the handler's status mapped one-to-one and, when OK, the handler's
// response bytes, whose buffer is wiped once gRPC has sent it (server/wire_response.h). A full pool
// answers RESOURCE_EXHAUSTED at once. The observer hears of each call when gRPC reports it over
// (ServerContext::AsyncNotifyWhenDone), so it counts what the caller got.
//
// Thread safety: Register, Start and Stop from one thread, in that order. Calls are served on
// the queue threads and the pool's threads.
#ifndef SECRET_RESOLVER_SERVER_GRPC_SERVICES_H_
#define SECRET_RESOLVER_SERVER_GRPC_SERVICES_H_

#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "decrypt/v1/decrypt.grpc.pb.h"
#include "decrypt/v1beta1/decrypt.grpc.pb.h"
#include "resolver/thread_pool.h"
#include "secretresolver/v1/changes.grpc.pb.h"
#include "secretresolver/v1/resolver.grpc.pb.h"
#include "server/change_stream.h"
#include "server/redact_call.h"
#include "server/resolve_handler.h"
#include "server/watch_call.h"

namespace secret_resolver {

class GrpcServices {
 public:
  // `handler` and `pool` must outlive the services. `observer` may be empty. `queue_threads`
  // (at least 1) threads poll as many completion queues. `redact_limits` bound RedactLogs.
  // `watch_hub` (null: WatchSecrets answers UNIMPLEMENTED) feeds WatchSecrets streams and must
  // outlive the services; BeginDrain ends its streams. So does `change_hub` for WatchChanges
  // (null: every caller is refused PERMISSION_DENIED), whose audit lines go to `log` (may be
  // null).
  GrpcServices(ResolveHandler* handler, ThreadPool* pool, CallObserver observer,
               int queue_threads, RedactLimits redact_limits, WatchHub* watch_hub = nullptr,
               ChangeHub* change_hub = nullptr, JsonLogger* log = nullptr);
  // Stop().
  ~GrpcServices();

  GrpcServices(const GrpcServices&) = delete;
  GrpcServices& operator=(const GrpcServices&) = delete;

  // Registers the services and adds the completion queues. Before builder->BuildAndStart().
  void Register(grpc::ServerBuilder* builder);

  // Starts serving on the queues. After BuildAndStart() succeeded.
  void Start();

  // From now on calls are not handed to the pool (those queued there are answered without
  // being worked on), and calls that arrive are answered UNAVAILABLE: the first step of a
  // shutdown, while the server still runs, so that gRPC cancels none of them. RedactLogs streams
  // stop reading: each sends what it held back and ends UNAVAILABLE (redact_call.h).
  void BeginDrain();

  // After BeginDrain(): waits until every call handed to the pool has been answered and the
  // calls gRPC had received but not yet handed over are answered too (none matched for 100 ms,
  // or 1 s since BeginDrain), and every RedactLogs stream has ended, or until `deadline`. True
  // when no call is left on the pool and no stream is left.
  bool AwaitDrained(absl::Time deadline);

  // Answers UNAVAILABLE every call, and every RedactLogs stream's start, still on the pool (its
  // worker blocked, e.g. on a hung store); a worker's answer that comes later is dropped. The pool's threads and everything
  // they use (handler, resolver, cache, store, these services) must then be left alive: the
  // process exits without waiting for them.
  void AbandonWork();

  // BeginDrain(), waits until every call has finished (at most 30 s), then shuts the queues
  // down, drains them and joins their threads. Call after the server's Shutdown() and after the
  // pool has run the calls it accepted. Idempotent.
  void Stop();

  // What the calls share; defined in the .cc file.
  struct Shared;

 private:
  std::unique_ptr<Shared> shared_;
  const int queue_threads_;
  std::vector<std::unique_ptr<grpc::ServerCompletionQueue>> queues_;
  std::vector<std::thread> threads_;
};

}  // namespace secret_resolver

#endif  // SECRET_RESOLVER_SERVER_GRPC_SERVICES_H_
