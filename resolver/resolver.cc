#include "resolver/resolver.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "resolver/secret_uri.h"
#include "resolver/secret_validation.h"
#include "resolver/utf8.h"

namespace secret_resolver {
namespace {

// Per-reference message for a failed decrypter or permission check; Grafana's wording.
constexpr absl::string_view kNotAuthorized = "not authorized";

// Store errors are passed on with their code; the message is the store's, which never holds a
// value. NOT_FOUND gets a uniform message so callers cannot tell a deleted secret from one
// that never existed.
absl::Status PerReferenceError(const absl::Status& status, absl::string_view name) {
  if (status.code() == absl::StatusCode::kNotFound) {
    return absl::NotFoundError(absl::StrCat("secret \"", name, "\" not found"));
  }
  return status;
}

}  // namespace

// The cache keeps our fingerprint digests inline, and any digest it keeps fits a RefResult.
static_assert(kFingerprintDigestBytes == kMaxCachedFingerprintBytes);

void Resolver::Complete(const Caller& caller, absl::string_view stack,
                        absl::StatusOr<CachedSecret>& found, bool last_use,
                        RefResult& result) const {
  if (!found.ok()) {
    result.status = PerReferenceError(found.status(), result.name);
    return;
  }
  result.cache_outcome = found->outcome;
  if (!IsAllowedDecrypter(caller.service_identity, *found->value->decrypters)) {
    result.status = absl::PermissionDeniedError(kNotAuthorized);
    return;
  }
  SetValue(stack, *found, last_use, result);
}

void Resolver::SetValue(absl::string_view stack, CachedSecret& found, bool last_use,
                        RefResult& result) const {
  const CachedValue& secret = *found.value;
  result.cache_outcome = found.outcome;
  result.stale = found.outcome == CacheOutcome::kStale;
  result.tokens = tokens_;
  // The cache's digest when it holds one; otherwise computed here.
  const absl::string_view in_cache = secret.fingerprint();
  const std::string computed =
      in_cache.empty() ? tokens_->FingerprintDigest(stack, secret.value) : "";
  const absl::string_view digest = in_cache.empty() ? computed : in_cache;
  result.fingerprint_digest_size = digest.size();
  std::copy(digest.begin(), digest.end(), result.fingerprint_digest_bytes.begin());
  result.value = last_use ? std::move(found.value) : found.value;
}

Resolver::Resolver(SecretCache* cache, const RedactionTokens* tokens, ResolverOptions options)
    : cache_(cache), tokens_(tokens), options_(std::move(options)) {}

std::function<std::string(const StoredSecret&)> Resolver::FingerprintFunction(
    const RedactionTokens* tokens) {
  return [tokens](const StoredSecret& secret) {
    return tokens->FingerprintDigest(secret.stack, secret.value);
  };
}

CacheCaller Resolver::LookupCaller(const Caller& caller, const ResolveRequest& request) const {
  CallerScopedReads* scoped =
      options_.store == nullptr ? nullptr : options_.store->caller_scoped_reads();
  if (scoped == nullptr) return CacheCaller{};
  // Only a token that speaks for the stack and may decrypt every secret of it may refresh its
  // entries later: a refresh with a token limited to some names (or a delegated one, which has
  // no permission) would be refused for the others, and a refusal drops the entry.
  if (!request.credential.empty() && CheckStack(caller, request.stack, options_.access).ok() &&
      HasDecryptPermission(caller, absl::string_view())) {
    scoped->NoteCredential(CanonicalStack(request.stack), caller.service_identity,
                           request.credential, caller.expires);
  }
  return CacheCaller{caller.service_identity, request.credential};
}

absl::StatusOr<ResolveResults> Resolver::Resolve(const Caller& caller,
                                                 const ResolveRequest& request,
                                                 absl::Time deadline) const {
  const CacheCaller for_caller = LookupCaller(caller, request);
  // The lookup always answers, so ResolveWith does too.
  return *ResolveWith(
      caller, request,
      [this, deadline, &for_caller](absl::string_view stack,
                                    absl::Span<const absl::string_view> names,
                                    absl::Span<const int64_t> versions,
                                    absl::Span<absl::StatusOr<CachedSecret>> found) {
        cache_->GetAll(stack, names, versions, found, deadline, &for_caller);
        return true;
      });
}

std::optional<absl::StatusOr<ResolveResults>> Resolver::ResolveWithoutBlocking(
    const Caller& caller, const ResolveRequest& request) const {
  const CacheCaller for_caller = LookupCaller(caller, request);
  return ResolveWith(
      caller, request,
      [this, &for_caller](absl::string_view stack, absl::Span<const absl::string_view> names,
                          absl::Span<const int64_t> versions,
                          absl::Span<absl::StatusOr<CachedSecret>> found) {
        return cache_->GetAllIfCached(stack, names, versions, found, &for_caller);
      });
}

std::optional<absl::StatusOr<ResolveResults>> Resolver::ResolveWith(
    const Caller& caller, const ResolveRequest& request, const Lookup& lookup) const {
  if (request.rules == RequestRules::kGrafanaDecrypt) return DecryptWith(caller, request, lookup);
  // In key order: results come out sorted, and errors name keys by their sorted index.
  absl::InlinedVector<ResolveRequest::Ref, 8> refs = request.refs;
  std::sort(refs.begin(), refs.end());
  if (absl::Status status = CheckWholeCall(caller, request, refs); !status.ok()) return status;
  ResolveResults results(refs.size());
  if (!ResolveEach(caller, request, refs, lookup, results)) return std::nullopt;
  return results;
}

absl::Status Resolver::CheckWholeCall(const Caller& caller, const ResolveRequest& request,
                                      absl::Span<const ResolveRequest::Ref> refs) const {
  if (request.stack.empty()) return absl::InvalidArgumentError("stack: must not be empty");
  if (absl::Status status = ValidateStack(request.stack); !status.ok()) return status;
  if (refs.empty()) return absl::InvalidArgumentError("refs: must not be empty");
  if (refs.size() > options_.max_refs) {
    return absl::InvalidArgumentError(absl::StrCat(
        "refs: ", refs.size(), " references, more than the limit of ", options_.max_refs));
  }
  for (size_t index = 0; index < refs.size(); ++index) {
    if (absl::Status status = ValidateRefKey(refs[index].first); !status.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("refs: key #", index, " (in sorted order): ", status.message()));
    }
    if (index > 0 && refs[index].first == refs[index - 1].first) {
      return absl::InvalidArgumentError(
          absl::StrCat("refs: key #", index, " (in sorted order) is given twice"));
    }
  }
  if (!request.versions.empty()) {
    std::vector<ResolveRequest::Pin> pins = request.versions;
    std::sort(pins.begin(), pins.end());
    for (size_t index = 0; index < pins.size(); ++index) {
      // Named by index: a key that is no ref key may be anything.
      const bool known = std::binary_search(
          refs.begin(), refs.end(), pins[index],
          [](const auto& a, const auto& b) { return a.first < b.first; });
      if (!known || (index > 0 && pins[index].first == pins[index - 1].first)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "versions: key #", index, " (in sorted order) is not a key of refs"));
      }
      if (pins[index].second < 1) {
        return absl::InvalidArgumentError(
            absl::StrCat("versions: the version of ref key \"", pins[index].first,
                         "\" must be at least 1, not ", pins[index].second));
      }
    }
  }
  if (absl::Status status = CheckStack(caller, request.stack, options_.access); !status.ok()) {
    return status;
  }
  if (!HasAnyDecryptPermission(caller)) {
    return absl::PermissionDeniedError(
        absl::StrCat("the access token holds no ", kDecryptAllPermission, " permission"));
  }
  return absl::OkStatus();
}

absl::StatusOr<ResolveResults> Resolver::Check(const Caller& caller, const ResolveRequest& request,
                                               absl::Time deadline) const {
  if (options_.store == nullptr) {
    return absl::FailedPreconditionError("the resolver has no store to check references in");
  }
  absl::InlinedVector<ResolveRequest::Ref, 8> refs = request.refs;
  std::sort(refs.begin(), refs.end());
  if (absl::Status status = CheckWholeCall(caller, request, refs); !status.ok()) return status;
  const std::string stack = CanonicalStack(request.stack);
  ResolveResults results(refs.size());
  const Wanted wanted = ParseEach(caller, refs, results);
  // One metadata read per distinct name: sorted by name, a name's keys are neighbours.
  // Once the deadline passes or the store is unreachable, the rest get that error unasked.
  absl::StatusOr<SecretMetadata> meta;
  absl::Status given_up;
  for (size_t i = 0; i < wanted.size(); ++i) {
    if (given_up.ok() && absl::Now() >= deadline) {
      given_up = absl::DeadlineExceededError("the call's deadline passed before this reference "
                                             "was checked");
    }
    if (!given_up.ok()) {
      meta = given_up;
    } else if (i == 0 || wanted[i].first != wanted[i - 1].first) {
      meta = options_.store->GetMetadata(stack, wanted[i].first);
      if (absl::IsUnavailable(meta.status()) || absl::IsDeadlineExceeded(meta.status())) {
        given_up = meta.status();
      }
    }
    RefResult& result = *wanted[i].second;
    if (!meta.ok()) {
      result.status = PerReferenceError(meta.status(), result.name);
    } else if (!IsAllowedDecrypter(caller.service_identity, meta->decrypters)) {
      result.status = absl::PermissionDeniedError(kNotAuthorized);
    } else {
      result.checked_version = meta->version;
    }
  }
  return results;
}

std::optional<absl::StatusOr<ResolveResults>> Resolver::DecryptWith(
    const Caller& caller, const ResolveRequest& request, const Lookup& lookup) const {
  absl::InlinedVector<ResolveRequest::Ref, 8> refs = request.refs;
  std::sort(refs.begin(), refs.end());
  ResolveResults results(refs.size());
  // Who may act here is judged before any lookup, so a caller of another namespace learns
  // nothing of this one's names (Grafana reads a name's metadata first).
  absl::Status everyone;
  if (caller.service_identity.empty() || !HasAnyDecryptPermission(caller) ||
      !CheckStack(caller, request.stack, options_.access).ok()) {
    everyone = absl::PermissionDeniedError(kNotAuthorized);
  } else if (!ValidateStack(request.stack).ok()) {
    everyone = absl::NotFoundError("no stack of that name can exist");
  }
  if (!everyone.ok()) {
    for (size_t index = 0; index < refs.size(); ++index) {
      results[index].key = refs[index].first;
      results[index].status = everyone;
    }
    return results;
  }
  if (!ResolveEach(caller, request, refs, lookup, results)) return std::nullopt;
  for (RefResult& result : results) {
    if (result.status.ok() && !IsValidUtf8(result.value->value.reveal())) {
      RefResult refused;
      refused.key = result.key;
      refused.name = result.name;
      refused.cache_outcome = result.cache_outcome;
      refused.status = absl::OutOfRangeError(
          "the value is not valid UTF-8, and this API carries values as strings");
      result = std::move(refused);
    }
  }
  return results;
}

Resolver::Wanted Resolver::ParseEach(const Caller& caller,
                                     absl::Span<const ResolveRequest::Ref> refs,
                                     ResolveResults& results) const {
  Wanted wanted;
  for (size_t index = 0; index < refs.size(); ++index) {
    RefResult& result = results[index];
    result.key = refs[index].first;
    absl::StatusOr<absl::string_view> name = ParseSecretUri(refs[index].second);
    if (!name.ok()) {
      result.status = name.status();
      continue;
    }
    result.name = *name;
    if (!HasDecryptPermission(caller, result.name)) {
      result.status = absl::PermissionDeniedError(kNotAuthorized);
      continue;
    }
    wanted.emplace_back(result.name, &result);
  }
  std::sort(wanted.begin(), wanted.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  return wanted;
}

bool Resolver::ResolveEach(const Caller& caller, const ResolveRequest& request,
                           absl::Span<const ResolveRequest::Ref> refs, const Lookup& lookup,
                           ResolveResults& results) const {
  // `stack-N` and `stacks-N` are one stack: one cache entry, one fingerprint.
  const std::string stack = CanonicalStack(request.stack);
  const Wanted wanted = ParseEach(caller, refs, results);
  // One lookup per distinct name, however many keys name it: sorted by name, a name's keys
  // are neighbours.
  absl::InlinedVector<absl::string_view, 8> names;
  for (size_t i = 0; i < wanted.size(); ++i) {
    if (i == 0 || wanted[i].first != wanted[i - 1].first) names.push_back(wanted[i].first);
  }
  absl::InlinedVector<absl::StatusOr<CachedSecret>, 8> found(names.size());
  if (!lookup(stack, names, {}, absl::MakeSpan(found))) return false;
  for (size_t i = 0, name = 0; i < wanted.size(); ++i) {
    if (wanted[i].first != names[name]) ++name;
    // The last result that uses a lookup takes its reference rather than another copy.
    const bool last_use = i + 1 == wanted.size() || wanted[i + 1].first != names[name];
    Complete(caller, stack, found[name], last_use, *wanted[i].second);
  }
  return request.versions.empty() || ApplyPins(request, stack, wanted, lookup);
}

bool Resolver::ApplyPins(const ResolveRequest& request, absl::string_view stack,
                         const Wanted& wanted, const Lookup& lookup) const {
  // The results that resolved the newest version of a secret the caller may decrypt, pinned to
  // an older one, or to a newer one than a stale newest (the store could not say which is
  // newest: the pinned version is asked for, and is UNAVAILABLE while the store is).
  absl::InlinedVector<std::pair<RefResult*, int64_t>, 8> older;
  for (const auto& [name, result] : wanted) {
    if (!result->status.ok()) continue;
    // A copy: a lambda cannot capture a structured binding in C++17 (clang refuses it).
    const absl::string_view key = result->key;
    auto pin = std::find_if(request.versions.begin(), request.versions.end(),
                            [&key](const ResolveRequest::Pin& p) { return p.first == key; });
    if (pin == request.versions.end()) continue;
    const int64_t newest = result->value->version;
    if (pin->second == newest) continue;
    RefResult refused;
    refused.key = result->key;
    refused.name = result->name;
    refused.cache_outcome = result->cache_outcome;
    // Newest version 0 is "not known" (store.upstream, whose API has no versions): no version
    // can be pinned there, stale or not.
    if (pin->second > newest && (!result->stale || newest == 0)) {
      refused.status = absl::NotFoundError(absl::StrCat("version ", pin->second, " of secret \"",
                                                        result->name, "\" not found"));
      *result = std::move(refused);
      continue;
    }
    result->superseded = pin->second < newest;
    older.emplace_back(result, pin->second);
  }
  if (older.empty()) return true;
  absl::InlinedVector<absl::string_view, 8> names;
  absl::InlinedVector<int64_t, 8> versions;
  for (const auto& [result, version] : older) {
    names.push_back(result->name);
    versions.push_back(version);
  }
  absl::InlinedVector<absl::StatusOr<CachedSecret>, 8> found(names.size());
  if (!lookup(stack, names, versions, absl::MakeSpan(found))) return false;
  for (size_t i = 0; i < older.size(); ++i) {
    RefResult& result = *older[i].first;
    if (!found[i].ok()) {
      RefResult refused;
      refused.key = result.key;
      refused.name = result.name;
      refused.status =
          absl::IsNotFound(found[i].status())
              ? absl::NotFoundError(absl::StrCat("version ", older[i].second, " of secret \"",
                                                 result.name, "\" not found"))
              : found[i].status();
      result = std::move(refused);
      continue;
    }
    SetValue(stack, *found[i], /*last_use=*/true, result);
  }
  return true;
}

}  // namespace secret_resolver
