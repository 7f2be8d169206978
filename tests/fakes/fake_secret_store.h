// FakeSecretStore: an in-memory SecretStore with failure knobs, for tests of the cache, the
// resolver and the server.
//
// It keeps every version of every (stack, name); Get returns the newest version of a secret that
// is not deleted, GetVersion any version of one, GetMetadata Get's answer without the value; Delete makes a secret unresolvable (NOT_FOUND) until it is Put again; List is
// sorted by name. Put, Get, Delete and List check their input with
// resolver/storage_format/secret_write_validation.h, as the real stores do. Values are copied in
// and out (SecretBytes::Clone), so a caller's copy and the store's copy are wiped independently.
//
// Failure knobs affect Get and GetVersion only (get_calls counts both); GetMetadata has its
// own count, metadata_calls(), and its own knob, set_metadata_error(status): every GetMetadata
// returns `status` until set_metadata_error(absl::OkStatus()):
//   - set_next_error(status): the next Get returns `status`, then the knob clears itself.
//   - set_error(status): every Get returns `status` until set_error(absl::OkStatus()).
//   - set_latency(d): every Get sleeps `d` of real time first (for deadline tests of callers).
//   - set_get_hook(fn): every Get calls `fn` before it answers, outside the store's lock, so a
//     test can hold a fetch open on a latch and build an exact interleaving.
//   - get_calls(): how many times Get has been called.
// set_health(status) sets what CheckHealth answers (OK at first); Notify(change) tells every
// listener `change` (e.g. a feed_lost or a resync), as a real store's feed would.
//
// Thread safety: all methods are safe to call concurrently.
#ifndef SECRET_RESOLVER_TESTS_FAKES_FAKE_SECRET_STORE_H_
#define SECRET_RESOLVER_TESTS_FAKES_FAKE_SECRET_STORE_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "resolver/secret_bytes.h"
#include "resolver/secret_store.h"

namespace secret_resolver {

class FakeSecretStore : public SecretStore {
 public:
  FakeSecretStore() = default;
  FakeSecretStore(const FakeSecretStore&) = delete;
  FakeSecretStore& operator=(const FakeSecretStore&) = delete;

  // SecretStore. Get answers in this order: latency, hook, next error, sticky error, key
  // validation, data.
  absl::StatusOr<StoredSecret> Get(absl::string_view stack, absl::string_view name) override;
  absl::StatusOr<StoredSecret> GetVersion(absl::string_view stack, absl::string_view name,
                                          int64_t version) override;
  absl::StatusOr<SecretMetadata> GetMetadata(absl::string_view stack,
                                             absl::string_view name) override;
  absl::StatusOr<int64_t> Put(const SecretWrite& write) override;
  absl::Status Delete(absl::string_view stack, absl::string_view name,
                      absl::string_view actor) override;
  absl::StatusOr<std::vector<SecretMetadata>> List(absl::string_view stack) override;
  // Listeners are called synchronously on the writing thread, after the write.
  absl::Status Watch(ChangeListener listener) override;
  absl::Status CheckHealth() override;

  // Calls every listener with `change`, on this thread.
  void Notify(const SecretChange& change);
  void set_health(absl::Status status);

  // Failure knobs; see the file comment.
  void set_next_error(absl::Status status);
  void set_error(absl::Status status);
  void set_metadata_error(absl::Status status);
  void set_latency(absl::Duration latency);
  void set_get_hook(std::function<void()> hook);
  int64_t get_calls() const { return get_calls_.load(std::memory_order_relaxed); }
  int64_t metadata_calls() const { return metadata_calls_.load(std::memory_order_relaxed); }

 private:
  struct Version {
    int64_t version = 0;
    std::vector<std::string> decrypters;
    std::string description;
    std::string updated_by;
    absl::Time updated_at;
    SecretBytes value;
  };
  struct Secret {
    std::vector<Version> versions;  // oldest first
    bool deleted = false;
  };
  // (stack, name) -> secret; ordered so that List comes out sorted by name.
  using Key = std::pair<std::string, std::string>;

  std::atomic<int64_t> get_calls_{0};
  std::atomic<int64_t> metadata_calls_{0};

  mutable std::mutex mu_;
  std::map<Key, Secret> secrets_;
  absl::Status next_error_;
  absl::Status error_;
  absl::Status metadata_error_;
  absl::Duration latency_ = absl::ZeroDuration();
  std::function<void()> get_hook_;
  std::vector<ChangeListener> listeners_;
  absl::Status health_;

  int64_t PutLocked(const SecretWrite& write);  // requires mu_
  // Get and GetVersion (`version` 0: the newest).
  absl::StatusOr<StoredSecret> Read(absl::string_view stack, absl::string_view name,
                                    int64_t version);
};

}  // namespace secret_resolver

#endif  // SECRET_RESOLVER_TESTS_FAKES_FAKE_SECRET_STORE_H_
