// InvalidationProbe: times how long a write takes to reach every sidecar, by one of two methods.
//
// - kWatch: one WatchSecrets stream (server/watch_call.h) per sidecar on the secret; a sidecar
//   has "seen" a version when the probe's reader thread receives its event carrying it. A
//   sidecar sends it after its store's change feed told it of the write and it read the
//   secret's metadata (the same notification drops the cache entry), so this is an upper bound
//   on the time until that sidecar stops serving the old version. Needs a store that answers
//   metadata reads (SQLite, PostgreSQL; not store.upstream, whose WatchSecrets events for
//   changes cannot carry a version).
// - kPoll: one thread per sidecar calls ResolveSecrets for the secret every `poll_interval`
//   while WaitForVersion waits, and a sidecar has seen a version when a response carries it:
//   what callers get, for any store, at the cost of that many extra calls and a resolution of
//   one interval. A store that reports no version (store.upstream answers version 0) is read
//   by the value instead: the probe secret's values are ProbeValue(version).
// Either includes the thread scheduling of this machine, where all processes share the cores.
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
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "secretresolver/v1/resolver.grpc.pb.h"

namespace secret_resolver {
namespace testing {

enum class ProbeMethod { kWatch, kPoll };

// The value the probe secret is written with at store version `version` (a stand-in of a
// realistic size, never a credential), and the version such a value names (0 for another).
std::string ProbeValue(int64_t version);
int64_t VersionOfProbeValue(absl::string_view value);

class InvalidationProbe {
 public:
  // Starts watching (or polling) secret `name` of kFaultStack (fault_fixture.h) on each of
  // `targets` with `token`, and waits until each has reported its current version, `within` at
  // most. Errors: DEADLINE_EXCEEDED saying how many sidecars reported nothing in time, with the
  // first ended stream's (or failed call's) status.
  static absl::StatusOr<std::unique_ptr<InvalidationProbe>> Open(
      const std::vector<std::string>& targets, const std::string& token, const std::string& name,
      absl::Duration within, ProbeMethod method = ProbeMethod::kWatch,
      absl::Duration poll_interval = absl::Milliseconds(25));

  // Cancels the streams (stops the pollers) and joins their threads.
  ~InvalidationProbe();

  InvalidationProbe(const InvalidationProbe&) = delete;
  InvalidationProbe& operator=(const InvalidationProbe&) = delete;

  // For each stream, in the order of `targets`: when its first event with a version of at least
  // `version` arrived, waiting until `deadline` at most; absl::InfiniteFuture() for a stream
  // that sent none by then.
  std::vector<absl::Time> WaitForVersion(int64_t version, absl::Time deadline);

  // Streams that ended (the sidecar closed them or went away); for kPoll, always 0.
  int Ended() const;

 private:
  struct Stream {
    secretresolver::v1::SecretResolver::Stub* stub = nullptr;
    grpc::ClientContext context;  // kWatch
    std::unique_ptr<grpc::ClientReader<secretresolver::v1::WatchSecretsEvent>> reader;  // kWatch
    std::thread thread;
    std::map<int64_t, absl::Time> arrivals;  // version -> first arrival; guarded by mu_
    bool ended = false;                      // guarded by mu_
    grpc::Status status;                     // guarded by mu_: the end, or the last failed call
  };

  InvalidationProbe() = default;
  void Read(Stream* stream);
  void Poll(Stream* stream, const std::string& token, const std::string& name,
            absl::Duration interval);
  // Guarded by mu_: when `stream` first saw `version` or later, or InfiniteFuture.
  static absl::Time SeenAt(const Stream& stream, int64_t version);

  std::vector<std::unique_ptr<secretresolver::v1::SecretResolver::Stub>> stubs_;
  std::vector<std::unique_ptr<Stream>> streams_;
  mutable std::mutex mu_;
  std::condition_variable changed_;
  bool polling_ = false;  // guarded by mu_: the pollers call while WaitForVersion waits
  bool stop_ = false;     // guarded by mu_
};

}  // namespace testing
}  // namespace secret_resolver

#endif  // SECRET_RESOLVER_TESTS_SCALE_INVALIDATION_PROBE_H_
