// FileJwksSource: a JwksSource read from a JWKS file, reread when the file changes (a new
// mtime, size, inode or device), looked at no more often than a check interval.
//
// Loads happen on the calling thread: Lookup() may read the file when a check is due. Only one
// load runs at a time; while one runs, other lookups use the current keys, except a lookup of an
// unknown `kid`, which waits for the load in flight (a rotation's new key is not refused).
//
// Thread safety: safe to use from any number of threads.
#ifndef SECRET_RESOLVER_SERVER_AUTH_FILE_JWKS_SOURCE_H_
#define SECRET_RESOLVER_SERVER_AUTH_FILE_JWKS_SOURCE_H_

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "resolver/clock.h"
#include "server/auth/jwks_parser.h"
#include "server/auth/jwks_source.h"

namespace secret_resolver {
namespace auth {

struct JwksFileOptions {
  std::string path;
  // Required; not owned; must outlive the source.
  Clock* clock = nullptr;
  // Lookups look at the file (stat: mtime, size, inode, device) at most this often, and read and
  // parse it only when one of those changed.
  absl::Duration check_interval = absl::Seconds(1);
  // A larger file is an error.
  size_t max_document_bytes = 1 << 20;
  // Optional: told of each unusable key a loaded document held.
  SkippedKeyHook on_skipped_key;
  // Optional: told of every load's outcome, the first one (in Create) included.
  LoadHook on_load;
};

class FileJwksSource : public JwksSource {
 public:
  // Reads and parses the file once. Returns INVALID_ARGUMENT for bad options or a malformed
  // document, NOT_FOUND if the file does not exist, FAILED_PRECONDITION if it cannot be read.
  static absl::StatusOr<std::unique_ptr<FileJwksSource>> Create(JwksFileOptions options);

  FileJwksSource(const FileJwksSource&) = delete;
  FileJwksSource& operator=(const FileJwksSource&) = delete;

  // Checks the file first if check_interval has passed since the last look. While another
  // thread loads, a known `kid` is answered from the current keys at once; an unknown one waits
  // for that load. NOT_FOUND if no current key has that id.
  absl::StatusOr<std::shared_ptr<const VerificationKey>> Lookup(absl::string_view kid) override;
  std::optional<bool> IsPublishedWithoutLoading(const VerificationKey& key) override;
  std::shared_ptr<const VerificationKey> FindWithoutLoading(absl::string_view kid) override;
  // Rereads the file even if it looks unchanged.
  absl::Status Reload() override;
  std::shared_ptr<const KeySet> Current() const override;
  JwksSourceStats stats() const override;

 private:
  // What a file looked like when last examined; a change in any field means "reread".
  struct FileSignature {
    dev_t device = 0;
    ino_t inode = 0;
    off_t size = -1;
    int64_t mtime_ns = 0;
    bool operator==(const FileSignature& o) const {
      return device == o.device && inode == o.inode && size == o.size && mtime_ns == o.mtime_ns;
    }
  };

  explicit FileJwksSource(JwksFileOptions options);

  // Runs a load with load_mu_ held. `force` rereads a file whose signature did not change.
  absl::Status LoadLocked(bool force);
  // Loads if a check is still due once load_mu_ is held.
  void LoadIfDueLocked();
  // Swaps in a parsed document or records the failure.
  void RecordLoad(absl::StatusOr<ParsedJwks> parsed);
  // Records a failure and returns it.
  absl::Status Fail(absl::Status status);
  // True if a check is due at `now`: the interval has passed, or the wall clock was set back
  // since the last check (which would otherwise hold back every check for as long as the step).
  // Needs mu_.
  bool CheckDueLocked(absl::Time now) const;

  const JwksFileOptions options_;

  // Serializes loads. Taken before mu_, never while holding it.
  std::mutex load_mu_;

  mutable std::mutex mu_;
  std::shared_ptr<const KeySet> keys_;            // guarded by mu_
  JwksSourceStats stats_;                         // guarded by mu_
  absl::Time last_check_ = absl::InfinitePast();  // guarded by mu_
  // The signature last examined (loaded or rejected). Guarded by load_mu_.
  bool have_signature_ = false;
  FileSignature signature_;
};

}  // namespace auth
}  // namespace secret_resolver

#endif  // SECRET_RESOLVER_SERVER_AUTH_FILE_JWKS_SOURCE_H_
