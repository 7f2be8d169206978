// A reference for ValidateClaims (server/auth/claims_validator.h), for differential fuzzing:
// the claim checks as they were written over a whole document (ParseStrictJson, then lookups in
// nlohmann::json), before ValidateClaims became a one-pass reader. Same contract as
// ValidateClaims: for any bytes the two must give the same status and, when OK, the same claims.
//
// Thread safety: pure function.
#ifndef SECRET_RESOLVER_TESTS_FUZZ_REFERENCE_CLAIMS_H_
#define SECRET_RESOLVER_TESTS_FUZZ_REFERENCE_CLAIMS_H_

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/auth/claims_validator.h"

namespace secret_resolver {
namespace auth {
namespace reference {

absl::StatusOr<ValidatedClaims> ValidateClaimsWithDocument(absl::string_view claims_json,
                                                           const ClaimsPolicy& policy,
                                                           absl::Time now);

}  // namespace reference
}  // namespace auth
}  // namespace secret_resolver

#endif  // SECRET_RESOLVER_TESTS_FUZZ_REFERENCE_CLAIMS_H_
