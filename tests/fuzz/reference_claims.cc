// The reference for ValidateClaims (reference_claims.h): the document-based reader it replaced.
#include "tests/fuzz/reference_claims.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "server/auth/auth_failure.h"
#include "server/auth/strict_json.h"

namespace secret_resolver {
namespace auth {
namespace reference {
namespace {

// `exp` (RFC 7519 NumericDate, narrowed as Grafana's verifier reads it into an int64): a whole
// number of seconds that fits 64 bits. 1e30, 1.5 and "1" are all refused.
std::optional<absl::Time> WholeSeconds(const nlohmann::json& value) {
  if (value.is_number_unsigned()) {
    const uint64_t v = value.get<uint64_t>();
    if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::nullopt;
    return absl::FromUnixSeconds(static_cast<int64_t>(v));
  }
  if (value.is_number_integer()) return absl::FromUnixSeconds(value.get<int64_t>());
  if (value.is_number_float()) {
    // 2^63 is exactly representable; every double below it in magnitude converts.
    constexpr double kTwo63 = 9223372036854775808.0;
    const double v = value.get<double>();
    if (!std::isfinite(v) || std::trunc(v) != v || v >= kTwo63 || v < -kTwo63) return std::nullopt;
    return absl::FromUnixSeconds(static_cast<int64_t>(v));
  }
  return std::nullopt;
}

// A JWT NumericDate (RFC 7519 section 2): seconds since the epoch, possibly fractional.
// Returns nullopt for anything that is not a finite number.
std::optional<absl::Time> NumericDate(const nlohmann::json& value) {
  // Far beyond any real date, and well inside what absl::Time and int64 hold.
  constexpr double kLimit = 1e15;
  if (value.is_number_unsigned()) {
    const uint64_t v = value.get<uint64_t>();
    return absl::FromUnixSeconds(v > static_cast<uint64_t>(kLimit) ? static_cast<int64_t>(kLimit)
                                                                   : static_cast<int64_t>(v));
  }
  if (value.is_number_integer()) {
    const int64_t v = value.get<int64_t>();
    return absl::FromUnixSeconds(std::max<int64_t>(v, -static_cast<int64_t>(kLimit)));
  }
  if (value.is_number_float()) {
    const double v = value.get<double>();
    if (!std::isfinite(v)) return std::nullopt;
    return absl::FromUnixSeconds(static_cast<int64_t>(std::floor(std::clamp(v, -kLimit, kLimit))));
  }
  return std::nullopt;
}

enum class ClaimRead { kAbsent, kWrongType, kOk };

// Reads an optional NumericDate claim.
ClaimRead ReadTime(const nlohmann::json& claims, const char* name, absl::Time* out) {
  auto it = claims.find(name);
  if (it == claims.end()) return ClaimRead::kAbsent;
  std::optional<absl::Time> t = NumericDate(*it);
  if (!t.has_value()) return ClaimRead::kWrongType;
  *out = *t;
  return ClaimRead::kOk;
}

// Reads an optional string claim. JSON null counts as absent.
ClaimRead ReadString(const nlohmann::json& claims, const char* name, std::string* out) {
  auto it = claims.find(name);
  if (it == claims.end() || it->is_null()) return ClaimRead::kAbsent;
  if (!it->is_string()) return ClaimRead::kWrongType;
  *out = it->get<std::string>();
  return ClaimRead::kOk;
}

// Reads `serviceIdentity` as authlib does: a string, or a one-element array of strings (the
// form it takes in AuthInfo's extra), surrounding whitespace trimmed. An array of any other
// length names no single identity and leaves `out` empty, like an absent claim (Grafana's
// decrypt authorizer: "more than one service identity in token").
ClaimRead ReadServiceIdentity(const nlohmann::json& claims, std::string* out) {
  auto it = claims.find("serviceIdentity");
  if (it == claims.end() || it->is_null()) return ClaimRead::kAbsent;
  const nlohmann::json* value = &*it;
  if (it->is_array()) {
    for (const nlohmann::json& entry : *it) {
      if (!entry.is_string()) return ClaimRead::kWrongType;
    }
    if (it->size() != 1) return ClaimRead::kAbsent;
    value = &it->front();
  }
  if (!value->is_string()) return ClaimRead::kWrongType;
  *out = std::string(absl::StripAsciiWhitespace(value->get_ref<const std::string&>()));
  return ClaimRead::kOk;
}

// authlib's identity types that make a token delegated when its innermost actor is one of them
// (types.TypeUser, types.TypeServiceAccount).
constexpr absl::string_view kDelegatingTypes[] = {"user", "service-account"};
// RFC 8693 `act` chains are short; a deeper one is junk.
constexpr int kMaxActorDepth = 16;

// Returns true if the innermost `act` claim names a user or a service account: by its `type`
// member, or else by the `<type>:` prefix of its `sub` (authlib's typed subjects). nullopt if
// `act` is malformed (not an object, a non-string `sub` or `type`, nested too deep).
std::optional<bool> DelegatedToIdentity(const nlohmann::json& claims) {
  auto it = claims.find("act");
  if (it == claims.end() || it->is_null()) return false;
  const nlohmann::json* actor = &*it;
  for (int depth = 0;; ++depth) {
    if (!actor->is_object() || depth >= kMaxActorDepth) return std::nullopt;
    auto inner = actor->find("act");
    if (inner == actor->end() || inner->is_null()) break;
    actor = &*inner;
  }
  std::string type;
  std::string sub;
  if (ReadString(*actor, "type", &type) == ClaimRead::kWrongType ||
      ReadString(*actor, "sub", &sub) == ClaimRead::kWrongType) {
    return std::nullopt;
  }
  if (type.empty() && sub.find(':') != std::string::npos) type = sub.substr(0, sub.find(':'));
  for (absl::string_view delegating : kDelegatingTypes) {
    if (type == delegating) return true;
  }
  return false;
}

absl::Status Malformed(absl::string_view detail) {
  return AuthFailureStatus(AuthFailure::kMalformed, detail);
}

// `exp`, `nbf` and `iat`, into `out`.
absl::Status ValidateTimes(const nlohmann::json& claims, const ClaimsPolicy& policy,
                           absl::Time now, ValidatedClaims* out) {
  const absl::Duration leeway = policy.leeway;
  auto exp_it = claims.find("exp");
  if (exp_it == claims.end()) return AuthFailureStatus(AuthFailure::kMissingClaim, "no exp");
  const std::optional<absl::Time> exp = WholeSeconds(*exp_it);
  if (!exp.has_value()) {
    return Malformed("exp is not a whole number of seconds that fits 64 bits");
  }
  if (now >= *exp + leeway) {
    return AuthFailureStatus(AuthFailure::kExpired, "exp is in the past (beyond leeway)");
  }
  if (*exp > now + policy.max_token_lifetime + leeway) {
    return AuthFailureStatus(AuthFailure::kTooLongLived,
                             absl::StrCat("exp is more than the maximum token lifetime (",
                                          absl::FormatDuration(policy.max_token_lifetime),
                                          ") ahead"));
  }
  out->expires = *exp;
  out->valid_from = absl::InfinitePast();
  for (const char* name : {"nbf", "iat"}) {
    absl::Time t;
    switch (ReadTime(claims, name, &t)) {
      case ClaimRead::kAbsent:
        break;
      case ClaimRead::kWrongType:
        return Malformed(absl::StrCat(name, " is not a number"));
      case ClaimRead::kOk:
        if (t > now + leeway) {
          return AuthFailureStatus(AuthFailure::kNotYetValid,
                                   absl::StrCat(name, " is in the future (beyond leeway)"));
        }
        out->valid_from = std::max(out->valid_from, t);
        break;
    }
  }
  return absl::OkStatus();
}

// `iss` and `aud`.
absl::Status ValidateIssuerAndAudience(const nlohmann::json& claims,
                                       const ClaimsPolicy& policy) {
  std::string iss;
  switch (ReadString(claims, "iss", &iss)) {
    case ClaimRead::kAbsent:
      return AuthFailureStatus(AuthFailure::kWrongIssuer, "no iss");
    case ClaimRead::kWrongType:
      return Malformed("iss is not a string");
    case ClaimRead::kOk:
      if (iss != policy.issuer) return AuthFailureStatus(AuthFailure::kWrongIssuer, "iss is not ours");
      break;
  }

  auto aud_it = claims.find("aud");
  if (aud_it == claims.end() || aud_it->is_null()) {
    return AuthFailureStatus(AuthFailure::kWrongAudience, "no aud");
  }
  const auto ours = [&policy](const nlohmann::json& aud) {
    const std::string& value = aud.get_ref<const std::string&>();
    return std::find(policy.audiences.begin(), policy.audiences.end(), value) !=
           policy.audiences.end();
  };
  bool audience_found = false;
  if (aud_it->is_string()) {
    audience_found = ours(*aud_it);
  } else if (aud_it->is_array()) {
    for (const nlohmann::json& a : *aud_it) {
      if (!a.is_string()) return Malformed("aud holds a non-string");
      audience_found = audience_found || ours(a);
    }
  } else {
    return Malformed("aud is neither a string nor an array");
  }
  if (!audience_found) {
    return AuthFailureStatus(AuthFailure::kWrongAudience, "aud does not contain ours");
  }
  return absl::OkStatus();
}

// `namespace`, `serviceIdentity`, `act` and `permissions`, into `caller`. A token without a
// namespace or a service identity is still a valid token: Grafana's decrypt API answers it "not
// authorized" per name, ResolveSecrets refuses it (ClaimsForResolving).
absl::Status ReadIdentity(const nlohmann::json& claims, Caller* caller) {
  if (ReadString(claims, "namespace", &caller->token_namespace) == ClaimRead::kWrongType) {
    return Malformed("namespace is not a string");
  }
  if (ReadServiceIdentity(claims, &caller->service_identity) == ClaimRead::kWrongType) {
    return Malformed("serviceIdentity is neither a string nor an array of strings");
  }
  const std::optional<bool> delegated = DelegatedToIdentity(claims);
  if (!delegated.has_value()) return Malformed("act is not a valid actor chain");
  auto perms_it = claims.find("permissions");
  if (perms_it != claims.end() && !perms_it->is_null()) {
    if (!perms_it->is_array()) return Malformed("permissions is not an array");
    for (const nlohmann::json& p : *perms_it) {
      if (!p.is_string()) return Malformed("permissions holds a non-string");
      // A delegated token's permissions are the service's, not the caller's (authlib's
      // GetTokenPermissions): it decrypts nothing.
      if (!*delegated) caller->permissions.push_back(p.get<std::string>());
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ValidatedClaims> ValidateClaimsWithDocument(absl::string_view claims_json,
                                                           const ClaimsPolicy& policy,
                                                           absl::Time now) {
  std::optional<nlohmann::json> claims = ParseStrictJson(claims_json);
  if (!claims.has_value() || !claims->is_object()) {
    return Malformed("claims are not a JSON object");
  }
  ValidatedClaims out;
  if (absl::Status s = ValidateTimes(*claims, policy, now, &out); !s.ok()) return s;
  if (absl::Status s = ValidateIssuerAndAudience(*claims, policy); !s.ok()) return s;
  if (absl::Status s = ReadIdentity(*claims, &out.caller); !s.ok()) return s;
  return out;
}

}  // namespace reference
}  // namespace auth
}  // namespace secret_resolver
