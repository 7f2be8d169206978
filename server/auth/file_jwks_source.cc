#include "server/auth/file_jwks_source.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"

namespace secret_resolver {
namespace auth {

FileJwksSource::FileJwksSource(JwksFileOptions options)
    : options_(std::move(options)), keys_(std::make_shared<const KeySet>()) {}

absl::StatusOr<std::unique_ptr<FileJwksSource>> FileJwksSource::Create(JwksFileOptions options) {
  if (options.clock == nullptr) return absl::InvalidArgumentError("jwks file: clock is required");
  if (options.path.empty()) return absl::InvalidArgumentError("jwks file: path is empty");
  std::unique_ptr<FileJwksSource> source(new FileJwksSource(std::move(options)));
  std::lock_guard<std::mutex> load(source->load_mu_);
  absl::Status status = source->LoadLocked(/*force=*/true);
  if (!status.ok()) return status;
  return source;
}

std::shared_ptr<const KeySet> FileJwksSource::Current() const {
  std::lock_guard<std::mutex> lock(mu_);
  return keys_;
}

JwksSourceStats FileJwksSource::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  JwksSourceStats out = stats_;
  out.key_count = keys_->size();
  return out;
}

bool FileJwksSource::CheckDueLocked(absl::Time now) const {
  return now < last_check_ || now - last_check_ >= options_.check_interval;
}

void FileJwksSource::LoadIfDueLocked() {
  bool still_due;
  {
    std::lock_guard<std::mutex> lock(mu_);
    still_due = CheckDueLocked(options_.clock->Now());
  }
  if (still_due) LoadLocked(/*force=*/false).IgnoreError();
}

absl::StatusOr<std::shared_ptr<const VerificationKey>> FileJwksSource::Lookup(
    absl::string_view kid) {
  bool due;
  {
    std::lock_guard<std::mutex> lock(mu_);
    due = CheckDueLocked(options_.clock->Now());
  }
  if (due) {
    // Whoever gets here first loads; the others go on with the keys they have.
    std::unique_lock<std::mutex> load(load_mu_, std::try_to_lock);
    if (load.owns_lock()) LoadIfDueLocked();
  }
  if (auto key = Current()->Find(kid)) return key;
  {
    // Another thread may be loading (a rotation: the load marks itself done before its keys
    // are in): wait for it, and load if one is still due, rather than refuse a token the new
    // keys accept.
    std::lock_guard<std::mutex> load(load_mu_);
    LoadIfDueLocked();
    if (auto key = Current()->Find(kid)) return key;
  }
  return absl::NotFoundError("unknown key id");
}

std::optional<bool> FileJwksSource::IsPublishedWithoutLoading(const VerificationKey& key) {
  std::lock_guard<std::mutex> lock(mu_);
  if (CheckDueLocked(options_.clock->Now())) return std::nullopt;
  return keys_->Publishes(key);
}

std::shared_ptr<const VerificationKey> FileJwksSource::FindWithoutLoading(absl::string_view kid) {
  std::lock_guard<std::mutex> lock(mu_);
  if (CheckDueLocked(options_.clock->Now())) return nullptr;
  return keys_->Find(kid);
}

absl::Status FileJwksSource::Reload() {
  std::lock_guard<std::mutex> load(load_mu_);
  return LoadLocked(/*force=*/true);
}

void FileJwksSource::RecordLoad(absl::StatusOr<ParsedJwks> parsed) {
  if (parsed.ok() && options_.on_skipped_key) {
    for (const std::string& reason : parsed->skipped) options_.on_skipped_key(reason);
  }
  JwksLoad load;
  load.status = parsed.status();
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (parsed.ok()) {
      keys_ = std::make_shared<const KeySet>(std::move(parsed->keys));
      load.skipped_keys = parsed->skipped_count;
      load.kids = keys_->kids();
      stats_.skipped_keys += parsed->skipped_count;
      ++stats_.loads;
      stats_.last_error.clear();
    } else {
      ++stats_.load_failures;
      stats_.last_error = std::string(parsed.status().message());
    }
  }
  if (options_.on_load) options_.on_load(load);
}

absl::Status FileJwksSource::Fail(absl::Status status) {
  RecordLoad(status);
  return status;
}

absl::Status FileJwksSource::LoadLocked(bool force) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    last_check_ = options_.clock->Now();
  }
  const std::string& path = options_.path;
  // Read through one descriptor so the signature and the bytes describe the same file even if
  // it is replaced meanwhile.
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    have_signature_ = false;
    return Fail(err == ENOENT
                    ? absl::NotFoundError(absl::StrCat("jwks file ", path, ": does not exist"))
                    : absl::FailedPreconditionError(absl::StrCat(
                          "jwks file ", path, ": cannot open: ", std::strerror(err))));
  }
  struct FdCloser {
    int fd;
    ~FdCloser() { close(fd); }
  } closer{fd};

  struct stat st;
  if (fstat(fd, &st) != 0) {
    return Fail(absl::FailedPreconditionError(
        absl::StrCat("jwks file ", path, ": cannot stat: ", std::strerror(errno))));
  }
  FileSignature signature;
  signature.device = st.st_dev;
  signature.inode = st.st_ino;
  signature.size = st.st_size;
  signature.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  if (!force && have_signature_ && signature == signature_) return absl::OkStatus();
  // Remember what was examined even if it fails to parse: a broken file is not reread (and
  // reported) every interval, only once it changes again.
  have_signature_ = true;
  signature_ = signature;

  if (!S_ISREG(st.st_mode)) {
    return Fail(
        absl::FailedPreconditionError(absl::StrCat("jwks file ", path, ": not a regular file")));
  }
  std::string data;
  char buf[8192];
  for (;;) {
    const ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      return Fail(absl::FailedPreconditionError(
          absl::StrCat("jwks file ", path, ": cannot read: ", std::strerror(errno))));
    }
    if (n == 0) break;
    if (data.size() + static_cast<size_t>(n) > options_.max_document_bytes) {
      return Fail(absl::InvalidArgumentError(absl::StrCat(
          "jwks file ", path, ": larger than ", options_.max_document_bytes, " bytes")));
    }
    data.append(buf, static_cast<size_t>(n));
  }
  absl::StatusOr<ParsedJwks> parsed = ParseJwks(data);
  if (!parsed.ok()) {
    return Fail(absl::InvalidArgumentError(
        absl::StrCat("jwks file ", path, ": ", parsed.status().message())));
  }
  RecordLoad(std::move(parsed));
  return absl::OkStatus();
}

}  // namespace auth
}  // namespace secret_resolver
