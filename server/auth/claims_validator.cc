#include "server/auth/claims_validator.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "server/auth/auth_failure.h"

namespace secret_resolver {
namespace auth {
namespace {

// One claim as the reader saw it: its JSON type and, for the types the checks read, its value.
struct Claim {
  enum class Type { kAbsent, kNull, kBoolean, kUnsigned, kSigned, kFloat, kString, kArray, kObject };
  Type type = Type::kAbsent;
  uint64_t unsigned_value = 0;
  int64_t signed_value = 0;
  double float_value = 0;
  std::string string_value;
  // An array's string elements, and whether it held anything else.
  std::vector<std::string> elements;
  bool non_string_element = false;
};

// One object of the `act` chain: what it says of the actor.
struct Actor {
  Claim type;
  Claim sub;
};

// ParseStrictJson's default limit (strict_json.h): open objects and arrays at once.
constexpr size_t kMaxDepth = 32;
// RFC 8693 `act` chains are short; a deeper one is junk.
constexpr size_t kMaxActorDepth = 16;

// The member names of one open object; Add is false for a repeated one. A claim set has about ten
// members: they are compared in a list, and hashed only in a large object.
class MemberNames {
 public:
  bool Add(std::string name) {
    if (hashed_.empty()) {
      if (std::find(listed_.begin(), listed_.end(), name) != listed_.end()) return false;
      if (listed_.size() < kListed) {
        listed_.push_back(std::move(name));
        return true;
      }
      hashed_.insert(std::make_move_iterator(listed_.begin()),
                     std::make_move_iterator(listed_.end()));
      listed_.clear();
    }
    return hashed_.insert(std::move(name)).second;
  }

  void Clear() {
    listed_.clear();
    hashed_.clear();
  }

 private:
  static constexpr size_t kListed = 32;
  std::vector<std::string> listed_;
  absl::flat_hash_set<std::string> hashed_;
};

// Reads a claim set in one pass over nlohmann's SAX events, without building a document: the
// claims the checks below use into Claim values, every other member parsed (so the whole text is
// still checked) and dropped. A new token's claims are read on every signature check, and a
// document of every member cost as much as the rest of the check apart from the signature.
//
// Enforces ParseStrictJson's rules (strict_json.h) as it reads: a repeated member name in any
// object, or more than kMaxDepth open containers, stops the parse. nlohmann's lexer does the rest
// of the strictness (UTF-8, number grammar, no comments, no trailing text).
class ClaimsReader final : public nlohmann::json_sax<nlohmann::json> {
 public:
  // True once the parse has seen a top-level object (the parse's own result says if it is whole).
  bool is_object() const { return is_object_; }

  Claim exp, nbf, iat, iss, aud, ns, service_identity, permissions;
  // The `act` chain's objects, outermost first; act_malformed if one of its links is neither an
  // object nor null, or the chain holds more than kMaxActorDepth objects.
  std::vector<Actor> actors;
  bool act_malformed = false;

  bool null() override { return Scalar(Claim::Type::kNull, [](Claim*) {}); }
  bool boolean(bool) override { return Scalar(Claim::Type::kBoolean, [](Claim*) {}); }
  bool number_integer(number_integer_t v) override {
    return Scalar(Claim::Type::kSigned, [v](Claim* c) { c->signed_value = v; });
  }
  bool number_unsigned(number_unsigned_t v) override {
    return Scalar(Claim::Type::kUnsigned, [v](Claim* c) { c->unsigned_value = v; });
  }
  bool number_float(number_float_t v, const string_t&) override {
    return Scalar(Claim::Type::kFloat, [v](Claim* c) { c->float_value = v; });
  }
  bool string(string_t& v) override {
    Target target = Take();
    if (target.kind == Target::kElement) {
      target.claim->elements.push_back(std::move(v));
      return true;
    }
    return Set(target, Claim::Type::kString, [&v](Claim* c) { c->string_value = std::move(v); });
  }
  bool binary(binary_t&) override { return false; }  // JSON text has none
  bool start_object(std::size_t) override { return Open(/*object=*/true); }
  bool start_array(std::size_t) override { return Open(/*object=*/false); }
  bool end_object() override { return Close(); }
  bool end_array() override { return Close(); }
  bool key(string_t& name) override {
    Container& object = open_[depth_ - 1];
    pending_ = Target{};
    if (object.role == Role::kClaims) {
      pending_ = ClaimNamed(name);
    } else if (object.role == Role::kActor) {
      if (name == "act") {
        pending_ = Target{Target::kActLink, nullptr, object.actor + 1};
      } else if (name == "type" || name == "sub") {
        Actor& actor = actors[object.actor];
        pending_ = Target{Target::kActorMember, name == "type" ? &actor.type : &actor.sub, 0};
      }
    }
    return object.names.Add(std::move(name));
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override {
    return false;
  }

 private:
  // Where the next value goes.
  struct Target {
    enum Kind {
      kIgnore,       // a member or element no check reads
      kRoot,         // the document itself
      kClaim,        // a claim read by the checks
      kElement,      // an element of an array claim
      kActLink,      // an `act` member: actor `level` of the chain if it is an object
      kActorMember,  // `type` or `sub` of an actor
    };
    Kind kind = kIgnore;
    Claim* claim = nullptr;
    size_t level = 0;
  };
  enum class Role { kClaims, kActor, kArrayClaim, kOther };
  struct Container {
    bool is_object = false;
    Role role = Role::kOther;
    Claim* claim = nullptr;  // kArrayClaim: the claim whose elements these are
    size_t actor = 0;        // kActor: its index in `actors`
    MemberNames names;
  };

  Target ClaimNamed(const std::string& name) {
    Claim* claim = nullptr;
    if (name == "exp") claim = &exp;
    else if (name == "nbf") claim = &nbf;
    else if (name == "iat") claim = &iat;
    else if (name == "iss") claim = &iss;
    else if (name == "aud") claim = &aud;
    else if (name == "namespace") claim = &ns;
    else if (name == "serviceIdentity") claim = &service_identity;
    else if (name == "permissions") claim = &permissions;
    else if (name == "act") return Target{Target::kActLink, nullptr, 0};
    return claim == nullptr ? Target{} : Target{Target::kClaim, claim, 0};
  }

  // The target of the value that starts now: the member named last, an array claim's element, or
  // the document.
  Target Take() {
    if (depth_ == 0) return Target{Target::kRoot, nullptr, 0};
    const Container& inner = open_[depth_ - 1];
    if (inner.is_object) return std::exchange(pending_, Target{});
    if (inner.role == Role::kArrayClaim) return Target{Target::kElement, inner.claim, 0};
    return Target{};
  }

  template <typename Fill>
  bool Scalar(Claim::Type type, Fill fill) {
    Target target = Take();
    if (target.kind == Target::kElement) {
      target.claim->non_string_element = true;
      return true;
    }
    return Set(target, type, fill);
  }

  template <typename Fill>
  bool Set(const Target& target, Claim::Type type, Fill fill) {
    switch (target.kind) {
      case Target::kClaim:
      case Target::kActorMember:
        target.claim->type = type;
        fill(target.claim);
        break;
      case Target::kActLink:
        if (type != Claim::Type::kNull) act_malformed = true;
        break;
      case Target::kIgnore:
      case Target::kRoot:
      case Target::kElement:
        break;
    }
    return true;
  }

  bool Open(bool object) {
    if (depth_ >= kMaxDepth) return false;
    const Target target = Take();
    Role role = Role::kOther;
    Claim* claim = nullptr;
    size_t actor = 0;
    switch (target.kind) {
      case Target::kRoot:
        is_object_ = object;
        if (object) role = Role::kClaims;
        break;
      case Target::kClaim:
        target.claim->type = object ? Claim::Type::kObject : Claim::Type::kArray;
        if (!object) {
          role = Role::kArrayClaim;
          claim = target.claim;
        }
        break;
      case Target::kActorMember:
        target.claim->type = object ? Claim::Type::kObject : Claim::Type::kArray;
        break;
      case Target::kElement:
        target.claim->non_string_element = true;
        break;
      case Target::kActLink:
        if (object && target.level < kMaxActorDepth && target.level == actors.size()) {
          role = Role::kActor;
          actor = actors.size();
          actors.emplace_back();
        } else {
          act_malformed = true;
        }
        break;
      case Target::kIgnore:
        break;
    }
    if (depth_ == open_.size()) open_.emplace_back();
    Container& opened = open_[depth_++];
    opened.is_object = object;
    opened.role = role;
    opened.claim = claim;
    opened.actor = actor;
    opened.names.Clear();
    return true;
  }

  bool Close() {
    --depth_;
    return true;
  }

  bool is_object_ = false;
  Target pending_;
  // Open containers, innermost last; entries past depth_ are kept for reuse.
  std::vector<Container> open_;
  size_t depth_ = 0;
};

// `exp` (RFC 7519 NumericDate, narrowed as Grafana's verifier reads it into an int64): a whole
// number of seconds that fits 64 bits. 1e30, 1.5 and "1" are all refused.
std::optional<absl::Time> WholeSeconds(const Claim& value) {
  switch (value.type) {
    case Claim::Type::kUnsigned:
      if (value.unsigned_value > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return std::nullopt;
      }
      return absl::FromUnixSeconds(static_cast<int64_t>(value.unsigned_value));
    case Claim::Type::kSigned:
      return absl::FromUnixSeconds(value.signed_value);
    case Claim::Type::kFloat: {
      // 2^63 is exactly representable; every double below it in magnitude converts.
      constexpr double kTwo63 = 9223372036854775808.0;
      const double v = value.float_value;
      if (!std::isfinite(v) || std::trunc(v) != v || v >= kTwo63 || v < -kTwo63) {
        return std::nullopt;
      }
      return absl::FromUnixSeconds(static_cast<int64_t>(v));
    }
    default:
      return std::nullopt;
  }
}

// A JWT NumericDate (RFC 7519 section 2): seconds since the epoch, possibly fractional.
// Returns nullopt for anything that is not a finite number.
std::optional<absl::Time> NumericDate(const Claim& value) {
  // Far beyond any real date, and well inside what absl::Time and int64 hold.
  constexpr double kLimit = 1e15;
  switch (value.type) {
    case Claim::Type::kUnsigned: {
      const uint64_t v = value.unsigned_value;
      return absl::FromUnixSeconds(v > static_cast<uint64_t>(kLimit) ? static_cast<int64_t>(kLimit)
                                                                     : static_cast<int64_t>(v));
    }
    case Claim::Type::kSigned:
      return absl::FromUnixSeconds(std::max<int64_t>(value.signed_value, -static_cast<int64_t>(kLimit)));
    case Claim::Type::kFloat: {
      const double v = value.float_value;
      if (!std::isfinite(v)) return std::nullopt;
      return absl::FromUnixSeconds(
          static_cast<int64_t>(std::floor(std::clamp(v, -kLimit, kLimit))));
    }
    default:
      return std::nullopt;
  }
}

enum class ClaimRead { kAbsent, kWrongType, kOk };

// Reads an optional NumericDate claim.
ClaimRead ReadTime(const Claim& claim, absl::Time* out) {
  if (claim.type == Claim::Type::kAbsent) return ClaimRead::kAbsent;
  std::optional<absl::Time> t = NumericDate(claim);
  if (!t.has_value()) return ClaimRead::kWrongType;
  *out = *t;
  return ClaimRead::kOk;
}

// Reads an optional string claim. JSON null counts as absent.
ClaimRead ReadString(Claim& claim, std::string* out) {
  if (claim.type == Claim::Type::kAbsent || claim.type == Claim::Type::kNull) {
    return ClaimRead::kAbsent;
  }
  if (claim.type != Claim::Type::kString) return ClaimRead::kWrongType;
  *out = std::move(claim.string_value);
  return ClaimRead::kOk;
}

// Reads `serviceIdentity` as authlib does: a string, or a one-element array of strings (the
// form it takes in AuthInfo's extra), surrounding whitespace trimmed. An array of any other
// length names no single identity and leaves `out` empty, like an absent claim (Grafana's
// decrypt authorizer: "more than one service identity in token").
ClaimRead ReadServiceIdentity(const Claim& claim, std::string* out) {
  const std::string* value = nullptr;
  switch (claim.type) {
    case Claim::Type::kAbsent:
    case Claim::Type::kNull:
      return ClaimRead::kAbsent;
    case Claim::Type::kArray:
      if (claim.non_string_element) return ClaimRead::kWrongType;
      if (claim.elements.size() != 1) return ClaimRead::kAbsent;
      value = &claim.elements.front();
      break;
    case Claim::Type::kString:
      value = &claim.string_value;
      break;
    default:
      return ClaimRead::kWrongType;
  }
  *out = std::string(absl::StripAsciiWhitespace(*value));
  return ClaimRead::kOk;
}

// authlib's identity types that make a token delegated when its innermost actor is one of them
// (types.TypeUser, types.TypeServiceAccount).
constexpr absl::string_view kDelegatingTypes[] = {"user", "service-account"};

// Returns true if the innermost `act` claim names a user or a service account: by its `type`
// member, or else by the `<type>:` prefix of its `sub` (authlib's typed subjects). nullopt if
// `act` is malformed (not an object, a non-string `sub` or `type`, nested too deep).
std::optional<bool> DelegatedToIdentity(ClaimsReader& claims) {
  if (claims.act_malformed) return std::nullopt;
  if (claims.actors.empty()) return false;  // no `act`, or null
  Actor& actor = claims.actors.back();
  std::string type;
  std::string sub;
  if (ReadString(actor.type, &type) == ClaimRead::kWrongType ||
      ReadString(actor.sub, &sub) == ClaimRead::kWrongType) {
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
absl::Status ValidateTimes(const ClaimsReader& claims, const ClaimsPolicy& policy,
                           absl::Time now, ValidatedClaims* out) {
  const absl::Duration leeway = policy.leeway;
  if (claims.exp.type == Claim::Type::kAbsent) {
    return AuthFailureStatus(AuthFailure::kMissingClaim, "no exp");
  }
  const std::optional<absl::Time> exp = WholeSeconds(claims.exp);
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
  const std::pair<const char*, const Claim*> times[] = {{"nbf", &claims.nbf},
                                                        {"iat", &claims.iat}};
  for (const auto& [name, claim] : times) {
    absl::Time t;
    switch (ReadTime(*claim, &t)) {
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
absl::Status ValidateIssuerAndAudience(ClaimsReader& claims, const ClaimsPolicy& policy) {
  std::string iss;
  switch (ReadString(claims.iss, &iss)) {
    case ClaimRead::kAbsent:
      return AuthFailureStatus(AuthFailure::kWrongIssuer, "no iss");
    case ClaimRead::kWrongType:
      return Malformed("iss is not a string");
    case ClaimRead::kOk:
      if (iss != policy.issuer) return AuthFailureStatus(AuthFailure::kWrongIssuer, "iss is not ours");
      break;
  }

  const Claim& aud = claims.aud;
  const auto ours = [&policy](const std::string& value) {
    return std::find(policy.audiences.begin(), policy.audiences.end(), value) !=
           policy.audiences.end();
  };
  bool audience_found = false;
  switch (aud.type) {
    case Claim::Type::kAbsent:
    case Claim::Type::kNull:
      return AuthFailureStatus(AuthFailure::kWrongAudience, "no aud");
    case Claim::Type::kString:
      audience_found = ours(aud.string_value);
      break;
    case Claim::Type::kArray:
      if (aud.non_string_element) return Malformed("aud holds a non-string");
      audience_found = std::any_of(aud.elements.begin(), aud.elements.end(), ours);
      break;
    default:
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
absl::Status ReadIdentity(ClaimsReader& claims, Caller* caller) {
  if (ReadString(claims.ns, &caller->token_namespace) == ClaimRead::kWrongType) {
    return Malformed("namespace is not a string");
  }
  if (ReadServiceIdentity(claims.service_identity, &caller->service_identity) ==
      ClaimRead::kWrongType) {
    return Malformed("serviceIdentity is neither a string nor an array of strings");
  }
  const std::optional<bool> delegated = DelegatedToIdentity(claims);
  if (!delegated.has_value()) return Malformed("act is not a valid actor chain");
  Claim& permissions = claims.permissions;
  switch (permissions.type) {
    case Claim::Type::kAbsent:
    case Claim::Type::kNull:
      break;
    case Claim::Type::kArray:
      if (permissions.non_string_element) return Malformed("permissions holds a non-string");
      // A delegated token's permissions are the service's, not the caller's (authlib's
      // GetTokenPermissions): it decrypts nothing.
      if (!*delegated) caller->permissions = std::move(permissions.elements);
      break;
    default:
      return Malformed("permissions is not an array");
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ValidatedClaims> ValidateClaims(absl::string_view claims_json,
                                               const ClaimsPolicy& policy, absl::Time now) {
  ClaimsReader claims;
  if (!nlohmann::json::sax_parse(claims_json.begin(), claims_json.end(), &claims) ||
      !claims.is_object()) {
    return Malformed("claims are not a JSON object");
  }
  ValidatedClaims out;
  if (absl::Status s = ValidateTimes(claims, policy, now, &out); !s.ok()) return s;
  if (absl::Status s = ValidateIssuerAndAudience(claims, policy); !s.ok()) return s;
  if (absl::Status s = ReadIdentity(claims, &out.caller); !s.ok()) return s;
  return out;
}

absl::Status ClaimsForResolving(const Caller& caller) {
  if (caller.token_namespace.empty()) {
    return AuthFailureStatus(AuthFailure::kMissingClaim, "no namespace");
  }
  if (caller.service_identity.empty()) {
    return AuthFailureStatus(AuthFailure::kMissingClaim,
                             "no serviceIdentity (a non-empty string or one-element array)");
  }
  return absl::OkStatus();
}

}  // namespace auth
}  // namespace secret_resolver
