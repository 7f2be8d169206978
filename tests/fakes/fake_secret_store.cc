#include "tests/fakes/fake_secret_store.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "resolver/secret_validation.h"
#include "resolver/storage_format/secret_write_validation.h"

namespace secret_resolver {

absl::StatusOr<StoredSecret> FakeSecretStore::Get(absl::string_view stack, absl::string_view name) {
  return Read(stack, name, 0);
}

absl::StatusOr<StoredSecret> FakeSecretStore::GetVersion(absl::string_view stack,
                                                         absl::string_view name,
                                                         int64_t version) {
  if (absl::Status s = ValidateSecretVersion(version); !s.ok()) return s;
  return Read(stack, name, version);
}

absl::StatusOr<SecretMetadata> FakeSecretStore::GetMetadata(absl::string_view stack,
                                                            absl::string_view name) {
  metadata_calls_.fetch_add(1, std::memory_order_relaxed);
  if (absl::Status s = ValidateSecretKey(stack, name); !s.ok()) return s;
  std::lock_guard<std::mutex> lock(mu_);
  if (!metadata_error_.ok()) return metadata_error_;
  auto it = secrets_.find(Key(std::string(stack), std::string(name)));
  if (it == secrets_.end() || it->second.deleted || it->second.versions.empty()) {
    return absl::NotFoundError(
        absl::StrCat("secret \"", name, "\" not found in stack \"", stack, "\""));
  }
  const Version& newest = it->second.versions.back();
  SecretMetadata meta;
  meta.stack = std::string(stack);
  meta.name = std::string(name);
  meta.version = newest.version;
  meta.decrypters = newest.decrypters;
  meta.description = newest.description;
  meta.updated_at = newest.updated_at;
  meta.updated_by = newest.updated_by;
  return meta;
}

absl::StatusOr<StoredSecret> FakeSecretStore::Read(absl::string_view stack,
                                                   absl::string_view name, int64_t version) {
  get_calls_.fetch_add(1, std::memory_order_relaxed);

  absl::Duration latency;
  std::function<void()> hook;
  {
    std::lock_guard<std::mutex> lock(mu_);
    latency = latency_;
    hook = get_hook_;
  }
  // Both run without the lock so that a blocked or slow Get does not stall Put, the knobs, or
  // other Gets.
  if (latency > absl::ZeroDuration()) absl::SleepFor(latency);
  if (hook) hook();

  std::lock_guard<std::mutex> lock(mu_);
  // Each caller gets a Status of its own rather than a shared reference to the knob's: the
  // reference count of a shared Status is released inside the (uninstrumented) Abseil library,
  // which ThreadSanitizer would report as a race.
  if (!next_error_.ok()) {
    absl::Status error(next_error_.code(), next_error_.message());
    next_error_ = absl::OkStatus();
    return error;
  }
  if (!error_.ok()) return absl::Status(error_.code(), error_.message());
  if (absl::Status s = ValidateSecretKey(stack, name); !s.ok()) return s;

  auto it = secrets_.find(Key(std::string(stack), std::string(name)));
  if (it == secrets_.end() || it->second.deleted || it->second.versions.empty()) {
    return absl::NotFoundError(
        absl::StrCat("secret \"", name, "\" not found in stack \"", stack, "\""));
  }
  const Version* chosen = &it->second.versions.back();
  if (version != 0) {
    chosen = nullptr;
    for (const Version& v : it->second.versions) {
      if (v.version == version) chosen = &v;
    }
    if (chosen == nullptr) {
      return absl::NotFoundError(absl::StrCat("version ", version, " of secret \"", name,
                                              "\" not found in stack \"", stack, "\""));
    }
  }
  StoredSecret out;
  out.stack = std::string(stack);
  out.name = std::string(name);
  out.version = chosen->version;
  out.decrypters = chosen->decrypters;
  out.value = chosen->value.Clone();
  return out;
}

absl::StatusOr<int64_t> FakeSecretStore::Put(const SecretWrite& write) {
  if (absl::Status s = ValidateSecretWrite(write); !s.ok()) return s;

  int64_t written = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    written = PutLocked(write);
  }
  Notify(SecretChange::Of(write.stack, write.name));
  return written;
}

int64_t FakeSecretStore::PutLocked(const SecretWrite& write) {
  Secret& secret = secrets_[Key(write.stack, write.name)];
  Version version;
  // Numbers keep counting across a delete, so a re-created secret never reuses a version.
  version.version = secret.versions.empty() ? 1 : secret.versions.back().version + 1;
  version.decrypters = write.decrypters;
  version.description = write.description;
  version.updated_by = write.actor;
  version.updated_at = absl::Now();
  version.value = write.value.Clone();
  secret.versions.push_back(std::move(version));
  secret.deleted = false;
  return secret.versions.back().version;
}

absl::Status FakeSecretStore::Delete(absl::string_view stack, absl::string_view name,
                                     absl::string_view actor) {
  if (absl::Status s = ValidateSecretKey(stack, name); !s.ok()) return s;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = secrets_.find(Key(std::string(stack), std::string(name)));
    if (it == secrets_.end() || it->second.deleted) {
      return absl::NotFoundError(
          absl::StrCat("secret \"", name, "\" not found in stack \"", stack, "\""));
    }
    it->second.deleted = true;
  }
  Notify(SecretChange::Of(std::string(stack), std::string(name)));
  return absl::OkStatus();
}

absl::Status FakeSecretStore::Watch(ChangeListener listener) {
  std::lock_guard<std::mutex> lock(mu_);
  listeners_.push_back(std::move(listener));
  return absl::OkStatus();
}

absl::Status FakeSecretStore::CheckHealth() {
  std::lock_guard<std::mutex> lock(mu_);
  return health_;
}

void FakeSecretStore::set_health(absl::Status status) {
  std::lock_guard<std::mutex> lock(mu_);
  health_ = std::move(status);
}

void FakeSecretStore::Notify(const SecretChange& change) {
  std::vector<ChangeListener> listeners;
  {
    std::lock_guard<std::mutex> lock(mu_);
    listeners = listeners_;
  }
  for (const ChangeListener& listener : listeners) listener(change);
}

absl::StatusOr<std::vector<SecretMetadata>> FakeSecretStore::List(absl::string_view stack) {
  if (absl::Status s = ValidateStack(stack); !s.ok()) return s;
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<SecretMetadata> out;
  // Keys are ordered by (stack, name), so one stack's secrets are contiguous and sorted by name.
  for (auto it = secrets_.lower_bound(Key(std::string(stack), std::string()));
       it != secrets_.end() && it->first.first == stack; ++it) {
    const Secret& secret = it->second;
    if (secret.deleted || secret.versions.empty()) continue;
    const Version& newest = secret.versions.back();
    SecretMetadata meta;
    meta.stack = it->first.first;
    meta.name = it->first.second;
    meta.version = newest.version;
    meta.decrypters = newest.decrypters;
    meta.description = newest.description;
    meta.updated_at = newest.updated_at;
    meta.updated_by = newest.updated_by;
    out.push_back(std::move(meta));
  }
  return out;
}

void FakeSecretStore::set_next_error(absl::Status status) {
  std::lock_guard<std::mutex> lock(mu_);
  next_error_ = std::move(status);
}

void FakeSecretStore::set_metadata_error(absl::Status status) {
  std::lock_guard<std::mutex> lock(mu_);
  metadata_error_ = std::move(status);
}

void FakeSecretStore::set_error(absl::Status status) {
  std::lock_guard<std::mutex> lock(mu_);
  error_ = std::move(status);
}

void FakeSecretStore::set_latency(absl::Duration latency) {
  std::lock_guard<std::mutex> lock(mu_);
  latency_ = latency;
}

void FakeSecretStore::set_get_hook(std::function<void()> hook) {
  std::lock_guard<std::mutex> lock(mu_);
  get_hook_ = std::move(hook);
}

}  // namespace secret_resolver
