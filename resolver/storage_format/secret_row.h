// What a secure_values row means, for every store: a row joined with its stack's data key, opened
// into a StoredSecret (the decrypter list decoded and, in value format 2, authenticated with the
// value), and resealed from an older value format into the current one (docs/storage-format.md
// sections 2 and 3).
//
// Thread safety: pure functions.
#ifndef SECRET_RESOLVER_RESOLVER_STORAGE_FORMAT_SECRET_ROW_H_
#define SECRET_RESOLVER_RESOLVER_STORAGE_FORMAT_SECRET_ROW_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "resolver/crypto/data_key_cache.h"
#include "resolver/crypto/envelope.h"
#include "resolver/crypto/key_ring.h"
#include "resolver/secret_store.h"

namespace secret_resolver {

// One secure_values row and the data_keys row its data_key_id names.
struct SecretRow {
  std::string stack;
  std::string name;
  int64_t version = 0;
  std::string decrypters;  // the column's text (resolver/storage_format/decrypter_list.h)
  std::string ciphertext;
  std::string data_key_id;
  std::optional<WrappedDataKey> data_key;  // empty when no data_keys row matches
};

// The columns of a SecretRow, in its field order, for either store's SQL (append WHERE, ORDER
// BY, FOR UPDATE OF v): secure_values v LEFT JOIN data_keys k.
inline constexpr char kSecretRowSelect[] =
    "SELECT v.stack, v.name, v.version, v.decrypters, v.ciphertext, v.data_key_id,"
    " k.kek_id, k.kek_check, k.wrapped_key"
    " FROM secure_values v LEFT JOIN data_keys k"
    " ON k.stack = v.stack AND k.id = v.data_key_id";

// The WHERE clause that narrows a kSecretRowSelect to one version of a secret that is not
// deleted (a deleted secret's versions stay for the audit trail), with parameters 1-3 (stack,
// name, version) in the placeholder syntax `p` ("?" for SQLite, "$" for PostgreSQL).
std::string StoredVersionWhere(absl::string_view p);

// The metadata columns (name, version, decrypters, description, created_at_us, created_by) of
// secure_values, without the ciphertext, for List and GetMetadata (append WHERE, ORDER BY).
inline constexpr char kSecretMetadataSelect[] =
    "SELECT name, version, decrypters, description, created_at_us, created_by"
    " FROM secure_values";

// `secret "NAME" in stack "STACK"`, how messages name a secret.
std::string QuotedSecret(absl::string_view stack, absl::string_view name);

// Decrypts `row`, its data key unwrapped through `data_keys` (the store's cache of unwrapped data
// keys). `where` names the store in messages (e.g. "sqlite store /var/lib/s.db").
// Errors: DATA_LOSS naming the row (never the value) when its data key is missing, its
// decrypter list does not parse, or the wrapped key or value fails authentication (a value moved
// from another row, or whose decrypters were edited); FAILED_PRECONDITION naming the KEK id when
// the KEK that wraps the data key is not loaded or is the wrong key.
absl::StatusOr<StoredSecret> OpenSecretRow(DataKeyCache& data_keys, const SecretRow& row,
                                           absl::string_view where);

// The row's ciphertext resealed in the current value format, binding the decrypter list the row
// holds now; std::nullopt when it is in the current format already. The version and data key
// stay. Errors: as OpenSecretRow.
absl::StatusOr<std::optional<std::string>> ResealSecretRow(const KeyRing& key_ring,
                                                           const SecretRow& row,
                                                           absl::string_view where);

}  // namespace secret_resolver

#endif  // SECRET_RESOLVER_RESOLVER_STORAGE_FORMAT_SECRET_ROW_H_
