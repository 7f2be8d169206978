// LoadDriver: N concurrent ResolveSecrets callers against one sidecar (or spread over several)
// for the fault suite, the soak and the scale harness. Each caller loops on its own channel
// until Stop(): it asks `next` for a request (one or more refs, a token, a label for the mix),
// calls with `call_deadline`, and records what it got: the call's status code, each ref's code
// and stale flag, the latency, and whether the call ran past its deadline (the client library
// ends such a call with DEADLINE_EXCEEDED, so an overrun is either that code or a latency above
// the deadline).
//
// Thread safety: Start, Stop, Snapshot and Records may be called from any one thread; `next` is
// called concurrently from the callers' threads and must be thread-safe.
#ifndef SECRET_RESOLVER_TESTS_FAULTS_LOAD_DRIVER_H_
#define SECRET_RESOLVER_TESTS_FAULTS_LOAD_DRIVER_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/time/time.h"
#include "secretresolver/v1/resolver.grpc.pb.h"

namespace secret_resolver {
namespace testing {

// One call to make.
struct LoadRequest {
  std::string kind;   // the caller's label for the mix, e.g. "hit", "miss", "unknown"
  std::string token;  // sent as "authorization: Bearer <token>"
  secretresolver::v1::ResolveSecretsRequest request;
};

// What one call got.
struct CallRecord {
  std::string kind;
  absl::Time start;
  absl::Duration latency;
  grpc::StatusCode code = grpc::StatusCode::OK;
  // Per ref, in the order of the response's map: 0 for a resolved value, else the ref's error
  // code. Empty unless the call was OK.
  std::vector<int> ref_codes;
  int stale_refs = 0;  // refs answered with stale = true
  bool overran = false;
};

struct LoadOptions {
  std::string target;  // e.g. SidecarProcess::target()
  // Several sidecars (the scale harness): when not empty, caller i calls targets[i % size]
  // instead of `target`.
  std::vector<std::string> targets;
  int callers = 8;
  absl::Duration call_deadline = absl::Seconds(5);
  // A pause between one caller's calls (0: back to back).
  absl::Duration pause = absl::ZeroDuration();
  // Keep every record (tests) or only the counts (the soak, which makes millions of calls).
  bool keep_records = true;
  // Called with (caller index, that caller's call number).
  std::function<LoadRequest(int caller, int64_t n)> next;
};

// Counts over the calls made so far.
struct LoadSummary {
  int64_t calls = 0;
  int64_t overruns = 0;
  absl::Duration max_latency;
  std::map<grpc::StatusCode, int64_t> by_code;      // call status codes
  std::map<std::string, int64_t> by_kind;           // calls per kind
  std::map<int, int64_t> ref_codes;                 // ref outcomes (0 = resolved)
  int64_t stale_refs = 0;
};

class LoadDriver {
 public:
  explicit LoadDriver(LoadOptions options) : options_(std::move(options)) {}
  LoadDriver(const LoadDriver&) = delete;
  LoadDriver& operator=(const LoadDriver&) = delete;
  // Stops the callers if they still run.
  ~LoadDriver();

  // Starts the callers. Call once.
  void Start();

  // Stops the callers and waits for their calls in flight (at most call_deadline).
  void Stop();

  LoadSummary Summary() const;

  // The records of finished calls (empty unless keep_records), in no particular order.
  std::vector<CallRecord> Records() const;

 private:
  void Run(int caller);
  void Add(CallRecord record);

  const LoadOptions options_;
  std::atomic<bool> stop_{false};
  std::vector<std::thread> threads_;
  // std::mutex, which ThreadSanitizer sees (the system's Abseil is not instrumented).
  mutable std::mutex mu_;
  std::vector<CallRecord> records_;  // guarded by mu_
  LoadSummary summary_;              // guarded by mu_
};

// The calls among `records` that started in [from, to).
std::vector<CallRecord> CallsBetween(const std::vector<CallRecord>& records, absl::Time from,
                                     absl::Time to);

}  // namespace testing
}  // namespace secret_resolver

#endif  // SECRET_RESOLVER_TESTS_FAULTS_LOAD_DRIVER_H_
