// InvalidationProbe: one WatchSecrets stream (server/watch_call.h) per sidecar on one secret, to
// time how long a write takes to reach every sidecar.
//
// What "seen" means: the moment the probe's reader thread receives a sidecar's event carrying
// the new version. A sidecar sends it after its store's change feed told it of the write and it
// read the secret's metadata (the same notification drops the cache entry), so this is an upper
// bound on the time until that sidecar stops serving the old version; it includes the thread
// scheduling of this machine, where all processes share the cores.
//
// Thread safety: Open and WaitForVersion from one thread; the readers run on threads of their own.
#ifndef SECRET_RESOLVER_TESTS_SCALE_INVALIDATION_PROBE_H_
#define SECRET_RESOLVER_TESTS_SCALE_INVALIDATION_PROBE_H_

#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "secretresolver/v1/resolver.grpc.pb.h"

namespace secret_resolver {
namespace testing {

class InvalidationProbe {
 public:
  // Opens a stream on each of `targets` for secret `name` of kFaultStack (fault_fixture.h) with
  // `token`, and waits until each has sent its first event (the current version), `within` at
  // most. Errors: DEADLINE_EXCEEDED saying how many streams sent nothing in time, with the first
  // ended stream's status.
  static absl::StatusOr<std::unique_ptr<InvalidationProbe>> Open(
      const std::vector<std::string>& targets, const std::string& token, const std::string& name,
      absl::Duration within);

  // Cancels the streams and joins their threads.
  ~InvalidationProbe();

  InvalidationProbe(const InvalidationProbe&) = delete;
  InvalidationProbe& operator=(const InvalidationProbe&) = delete;

  // For each stream, in the order of `targets`: when its first event with a version of at least
  // `version` arrived, waiting until `deadline` at most; absl::InfiniteFuture() for a stream
  // that sent none by then.
  std::vector<absl::Time> WaitForVersion(int64_t version, absl::Time deadline);

  // Streams that ended (the sidecar closed them or went away).
  int Ended() const;

 private:
  struct Stream {
    grpc::ClientContext context;
    std::unique_ptr<grpc::ClientReader<secretresolver::v1::WatchSecretsEvent>> reader;
    std::thread thread;
    std::map<int64_t, absl::Time> arrivals;  // version -> first arrival; guarded by mu_
    bool ended = false;                      // guarded by mu_
    grpc::Status status;                     // guarded by mu_, once ended
  };

  InvalidationProbe() = default;
  void Read(Stream* stream);
  // Guarded by mu_: when `stream` first saw `version` or later, or InfiniteFuture.
  static absl::Time SeenAt(const Stream& stream, int64_t version);

  std::vector<std::unique_ptr<secretresolver::v1::SecretResolver::Stub>> stubs_;
  std::vector<std::unique_ptr<Stream>> streams_;
  mutable std::mutex mu_;
  std::condition_variable changed_;
};

}  // namespace testing
}  // namespace secret_resolver

#endif  // SECRET_RESOLVER_TESTS_SCALE_INVALIDATION_PROBE_H_
