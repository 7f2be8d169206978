#include "resolver/storage_format/secret_write_validation.h"

#include "absl/strings/str_cat.h"
#include "resolver/secret_uri.h"
#include "resolver/secret_validation.h"

namespace secret_resolver {

absl::Status ValidateSecretKey(absl::string_view stack, absl::string_view name) {
  if (absl::Status s = ValidateStack(stack); !s.ok()) return s;
  return ValidateSecretName(name);
}

absl::Status ValidateSecretVersion(int64_t version) {
  if (version >= 1) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("version: must be at least 1, got ", version));
}

absl::Status ValidateSecretWrite(const SecretWrite& write) {
  if (absl::Status s = ValidateSecretKey(write.stack, write.name); !s.ok()) return s;
  if (absl::Status s = ValidateDecrypters(write.decrypters); !s.ok()) return s;
  if (absl::Status s = ValidateSecretValue(write.value); !s.ok()) return s;
  return ValidateDescription(write.description);
}

}  // namespace secret_resolver
