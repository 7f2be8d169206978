// SecretStore: the backend that keeps encrypted secrets (contract.md section 6).
//
// Implementations: the embedded SQLite store (default) and PostgreSQL, both EncryptedSecretStores
// opened through OpenSecretStore (resolver/store/store_config.h), and an in-memory fake for tests
// (tests/fakes/). Every update writes a new version; Get returns the newest active version,
// already decrypted; GetVersion an older one; GetMetadata what Get would return, without the
// value. Every store checks its input with resolver/storage_format/
// secret_write_validation.h, so all accept and reject the same stacks, names and writes.
//
// Thread safety: implementations are safe for concurrent use from many threads. Calls block on
// I/O, so they never run on a gRPC thread.
#ifndef SECRET_RESOLVER_RESOLVER_SECRET_STORE_H_
#define SECRET_RESOLVER_RESOLVER_SECRET_STORE_H_

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "resolver/secret_bytes.h"

namespace secret_resolver {

// A decrypted secret version as the resolver needs it.
struct StoredSecret {
  std::string stack;
  std::string name;
  int64_t version = 0;
  std::vector<std::string> decrypters;
  SecretBytes value;
};

// What a secret is, without its value: safe to list and print.
struct SecretMetadata {
  std::string stack;
  std::string name;
  int64_t version = 0;
  std::vector<std::string> decrypters;
  std::string description;
  absl::Time updated_at;
  std::string updated_by;
};

// A create or update: the store assigns the next version.
struct SecretWrite {
  std::string stack;
  std::string name;
  std::vector<std::string> decrypters;
  std::string description;
  std::string actor;  // who made the change, for the audit trail
  SecretBytes value;
};

// A change to one secret, or news of the change feed itself, as Watch reports it. Never
// carries a value.
//
// The feed's life as listeners see it: changes to single secrets while it works; feed_lost
// once when it stops working (from then on changes may go unreported, so nothing cached can be
// trusted to be current); a resync once it works again (or whenever changes may have been
// missed without an outage, e.g. a database file replaced under the store). A resync means the
// feed works from here on.
struct SecretChange {
  std::string stack;
  std::string name;
  // True when changes may have been missed (a lost connection, a failed poll, a replaced file):
  // drop or revalidate everything. stack and name are empty then.
  bool resync = false;
  // True when the feed has stopped working (PostgreSQL: the listening connection is lost or
  // LISTEN is not in effect; SQLite: polling fails or the file is gone). A resync follows when
  // it works again. stack and name are empty then.
  bool feed_lost = false;
  // For resync and feed_lost: what happened, for the operator's log (it may name the database
  // or file, never a secret's name or value). Empty for a change to one secret.
  std::string detail;

  // A change to (stack, name); a resync; a feed loss.
  static SecretChange Of(std::string stack, std::string name) {
    return SecretChange{std::move(stack), std::move(name), false, false, std::string()};
  }
  static SecretChange Resync(std::string detail) {
    return SecretChange{std::string(), std::string(), true, false, std::move(detail)};
  }
  static SecretChange FeedLost(std::string detail) {
    return SecretChange{std::string(), std::string(), false, true, std::move(detail)};
  }
};

// Receives changes; called on a thread of the store's, never under the store's locks.
using ChangeListener = std::function<void(const SecretChange&)>;

// The reads of a store whose answers depend on who asks (the upstream store, whose server decides
// who may decrypt). SecretCache keys the entries it gets from such a store by the caller's
// service identity as well as (stack, name), and fetches them through GetFor.
class CallerScopedReads {
 public:
  virtual ~CallerScopedReads() = default;

  // Remembers `token`, a verified access token of `identity` that speaks for `stack` and
  // expires at `expires`, when it expires later than the one remembered for (stack, identity),
  // so that reads made without a caller (refresh-ahead) have a credential. Tokens are never
  // logged; replaced and expired ones are wiped.
  virtual void NoteCredential(absl::string_view stack, absl::string_view identity,
                              absl::string_view token, absl::Time expires) = 0;

  // Get, for the caller `identity`, presenting `token`, or when `token` is empty the newest
  // unexpired token remembered for (stack, identity). The result's decrypters are {identity}:
  // the server has already decided that this identity may decrypt it.
  // Errors: as Get; PERMISSION_DENIED (the server refused this caller); UNAVAILABLE also when
  // no unexpired token is known.
  virtual absl::StatusOr<StoredSecret> GetFor(absl::string_view identity, absl::string_view token,
                                              absl::string_view stack,
                                              absl::string_view name) = 0;
};

// A stack or name that no secret can have (ValidateStack, ValidateSecretName) is a caller's
// mistake, not an absent secret: Get, Delete and List answer it with INVALID_ARGUMENT naming the
// field, before touching the backend, in every implementation.
class SecretStore {
 public:
  virtual ~SecretStore() = default;

  // Returns the newest active version of (stack, name), decrypted.
  // Errors: INVALID_ARGUMENT (a stack or name no secret can have, naming the field); NOT_FOUND
  // (no such secret, or deleted); UNAVAILABLE (backend unreachable, retryable); DATA_LOSS
  // (ciphertext failed authentication); FAILED_PRECONDITION (the key to decrypt it is not
  // loaded).
  virtual absl::StatusOr<StoredSecret> Get(absl::string_view stack, absl::string_view name) = 0;

  // Returns version `version` of (stack, name), decrypted, with the decrypters that version
  // was written with, if the secret is not deleted (a deleted secret's versions stay stored for
  // the audit trail but are not resolvable). Errors: as Get; INVALID_ARGUMENT also for a
  // version below 1; NOT_FOUND also when no such version was ever written.
  virtual absl::StatusOr<StoredSecret> GetVersion(absl::string_view stack,
                                                  absl::string_view name, int64_t version) = 0;

  // Returns the metadata of the version Get would return, without reading, decrypting or
  // holding its value (so it needs no key and never fails on a damaged ciphertext). Errors:
  // INVALID_ARGUMENT and NOT_FOUND as Get; UNAVAILABLE; DATA_LOSS (a damaged decrypter list).
  virtual absl::StatusOr<SecretMetadata> GetMetadata(absl::string_view stack,
                                                     absl::string_view name) = 0;

  // Validates and stores `write` as a new version and returns that version number (1 for a new
  // secret). Errors: INVALID_ARGUMENT (naming the field), UNAVAILABLE.
  virtual absl::StatusOr<int64_t> Put(const SecretWrite& write) = 0;

  // Makes (stack, name) unresolvable; its versions stay for the audit trail.
  // Errors: INVALID_ARGUMENT (as Get), NOT_FOUND, UNAVAILABLE.
  virtual absl::Status Delete(absl::string_view stack, absl::string_view name,
                              absl::string_view actor) = 0;

  // Returns the newest active version of every secret in `stack`, sorted by name (bytewise).
  // Errors: INVALID_ARGUMENT (a stack no secret can have), UNAVAILABLE.
  virtual absl::StatusOr<std::vector<SecretMetadata>> List(absl::string_view stack) = 0;

  // Adds `listener`, to be told of every committed change made by any process sharing the
  // store, within about a second, until the store is destroyed; and of the feed's loss and
  // return (SecretChange). Listeners cannot be removed.
  // Errors: UNAVAILABLE when the change feed cannot be set up.
  virtual absl::Status Watch(ChangeListener listener) = 0;

  // A cheap check that the store can serve reads now, for readiness probes: one trivial query,
  // bounded by the store's own timeout, never a scan. Returns OK; UNAVAILABLE (unreachable,
  // timed out) or DATA_LOSS (the store has seen its data damaged, e.g. a corrupt file), with a
  // message fit for an operator (no secret names or values).
  virtual absl::Status CheckHealth() = 0;

  // Non-null when the store's answers depend on the caller (CallerScopedReads); null, the
  // default, for stores whose answers are the same for everyone.
  virtual CallerScopedReads* caller_scoped_reads() { return nullptr; }
};

// A SecretStore that keeps its values sealed under per-stack data keys wrapped by KEKs (the
// envelope of resolver/crypto/envelope.h), with the operator's maintenance of those keys. The
// SQLite and PostgreSQL stores are EncryptedSecretStores; the sidecar uses only the SecretStore
// part, secretctl also the rest.
class EncryptedSecretStore : public SecretStore {
 public:
  // Rewraps every data key with KEK `kek_id` of the store's KeyRing (normally its new active
  // KEK) in one transaction, without touching any value, and returns how many keys were
  // rewrapped (keys already wrapped by `kek_id` are left alone). Afterwards the old KEK may be
  // retired. Errors: FAILED_PRECONDITION naming the KEK id (`kek_id` not loaded, or a key's
  // current KEK not loaded or wrong: nothing is changed then), DATA_LOSS (a wrapped key failed
  // authentication), UNAVAILABLE.
  virtual absl::StatusOr<int64_t> RewrapDataKeys(absl::string_view kek_id) = 0;

  // Reseals every stored value (every version, active or not) that is in an older value format
  // in the current one (docs/storage-format.md section 3: format 2 binds the decrypter list the
  // row holds now), in one transaction, keeping its version and data key, and returns how many
  // were resealed (0 when all are current). Readers accept both formats meanwhile. Errors:
  // FAILED_PRECONDITION naming the KEK id (a data key's KEK not loaded or wrong: nothing is
  // changed then), DATA_LOSS naming the row (a damaged row: nothing is changed then),
  // UNAVAILABLE.
  virtual absl::StatusOr<int64_t> ResealValues() = 0;
};

}  // namespace secret_resolver

#endif  // SECRET_RESOLVER_RESOLVER_SECRET_STORE_H_
