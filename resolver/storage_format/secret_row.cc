#include "resolver/storage_format/secret_row.h"

#include <utility>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "resolver/storage_format/decrypter_list.h"

namespace secret_resolver {
namespace {

std::string Quoted(const SecretRow& row) { return QuotedSecret(row.stack, row.name); }

// The row's data key, unwrapped, and its decrypter list, decoded.
struct OpenedKey {
  SecretBytes data_key;
  std::vector<std::string> decrypters;
};

// `unwrap` unwraps the row's data key (UnwrapDataKey, or through a DataKeyCache).
absl::StatusOr<OpenedKey> OpenKey(
    const SecretRow& row, absl::string_view where,
    absl::FunctionRef<absl::StatusOr<SecretBytes>(const WrappedDataKey&)> unwrap) {
  if (!row.data_key.has_value()) {
    return absl::DataLossError(absl::StrCat(where, ": data key \"", row.data_key_id, "\" of ",
                                            Quoted(row), " is missing"));
  }
  absl::StatusOr<std::vector<std::string>> decrypters = DecodeDecrypterList(row.decrypters);
  if (!decrypters.ok()) {
    return absl::DataLossError(
        absl::StrCat(where, ": ", Quoted(row), ": ", decrypters.status().message()));
  }
  absl::StatusOr<SecretBytes> data_key = unwrap(*row.data_key);
  if (!data_key.ok()) return data_key.status();
  return OpenedKey{*std::move(data_key), *std::move(decrypters)};
}

}  // namespace

std::string StoredVersionWhere(absl::string_view p) {
  return absl::StrCat(" WHERE v.stack = ", p, "1 AND v.name = ", p, "2 AND v.version = ", p,
                      "3 AND EXISTS (SELECT 1 FROM secure_values a WHERE a.stack = v.stack",
                      " AND a.name = v.name AND a.active)");
}

std::string QuotedSecret(absl::string_view stack, absl::string_view name) {
  return absl::StrCat("secret \"", name, "\" in stack \"", stack, "\"");
}

absl::StatusOr<StoredSecret> OpenSecretRow(DataKeyCache& data_keys, const SecretRow& row,
                                           absl::string_view where) {
  absl::StatusOr<OpenedKey> key = OpenKey(row, where, [&](const WrappedDataKey& wrapped) {
    return data_keys.Unwrap(wrapped, row.stack, row.data_key_id);
  });
  if (!key.ok()) return key.status();
  absl::StatusOr<SecretBytes> value =
      OpenValue(key->data_key, row.stack, row.name, row.version, key->decrypters, row.ciphertext);
  if (!value.ok()) return value.status();
  StoredSecret out;
  out.stack = row.stack;
  out.name = row.name;
  out.version = row.version;
  out.decrypters = std::move(key->decrypters);
  out.value = *std::move(value);
  return out;
}

absl::StatusOr<std::optional<std::string>> ResealSecretRow(const KeyRing& key_ring,
                                                           const SecretRow& row,
                                                           absl::string_view where) {
  if (IsCurrentValueFormat(row.ciphertext)) return std::nullopt;
  absl::StatusOr<OpenedKey> key = OpenKey(row, where, [&](const WrappedDataKey& wrapped) {
    return UnwrapDataKey(key_ring, wrapped, row.stack, row.data_key_id);
  });
  if (!key.ok()) return key.status();
  absl::StatusOr<SecretBytes> value =
      OpenValue(key->data_key, row.stack, row.name, row.version, key->decrypters, row.ciphertext);
  if (!value.ok()) return value.status();
  absl::StatusOr<std::string> sealed =
      SealValue(key->data_key, row.stack, row.name, row.version, key->decrypters, *value);
  if (!sealed.ok()) return sealed.status();
  return std::optional<std::string>(*std::move(sealed));
}

}  // namespace secret_resolver
