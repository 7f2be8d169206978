#include "resolver/resolver.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "absl/strings/str_cat.h"
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
  const CachedValue& secret = *found->value;
  if (!IsAllowedDecrypter(caller.service_identity, *secret.decrypters)) {
    result.status = absl::PermissionDeniedError(kNotAuthorized);
    return;
  }
  result.stale = found->outcome == CacheOutcome::kStale;
  result.tokens = tokens_;
  // The cache's digest when it holds one; otherwise computed here.
  const absl::string_view in_cache = secret.fingerprint();
  const std::string computed =
      in_cache.empty() ? tokens_->FingerprintDigest(stack, secret.value) : "";
  const absl::string_view digest = in_cache.empty() ? computed : in_cache;
  result.fingerprint_digest_size = digest.size();
  std::copy(digest.begin(), digest.end(), result.fingerprint_digest_bytes.begin());
  result.value = last_use ? std::move(found->value) : found->value;
}

Resolver::Resolver(SecretCache* cache, const RedactionTokens* tokens, ResolverOptions options)
    : cache_(cache), tokens_(tokens), options_(std::move(options)) {}

std::function<std::string(const StoredSecret&)> Resolver::FingerprintFunction(
    const RedactionTokens* tokens) {
  return [tokens](const StoredSecret& secret) {
    return tokens->FingerprintDigest(secret.stack, secret.value);
  };
}

absl::StatusOr<ResolveResults> Resolver::Resolve(const Caller& caller,
                                                 const ResolveRequest& request,
                                                 absl::Time deadline) const {
  // The lookup always answers, so ResolveWith does too.
  return *ResolveWith(caller, request,
                      [this, deadline](absl::string_view stack,
                                       absl::Span<const absl::string_view> names,
                                       absl::Span<absl::StatusOr<CachedSecret>> found) {
                        cache_->GetAll(stack, names, found, deadline);
                        return true;
                      });
}

std::optional<absl::StatusOr<ResolveResults>> Resolver::ResolveWithoutBlocking(
    const Caller& caller, const ResolveRequest& request) const {
  return ResolveWith(caller, request,
                     [this](absl::string_view stack, absl::Span<const absl::string_view> names,
                            absl::Span<absl::StatusOr<CachedSecret>> found) {
                       return cache_->GetAllIfCached(stack, names, found);
                     });
}

std::optional<absl::StatusOr<ResolveResults>> Resolver::ResolveWith(
    const Caller& caller, const ResolveRequest& request, const Lookup& lookup) const {
  if (request.rules == RequestRules::kGrafanaDecrypt) return DecryptWith(caller, request, lookup);
  if (request.stack.empty()) return absl::InvalidArgumentError("stack: must not be empty");
  if (absl::Status status = ValidateStack(request.stack); !status.ok()) return status;
  if (request.refs.empty()) return absl::InvalidArgumentError("refs: must not be empty");
  if (request.refs.size() > options_.max_refs) {
    return absl::InvalidArgumentError(absl::StrCat("refs: ", request.refs.size(),
                                                   " references, more than the limit of ",
                                                   options_.max_refs));
  }
  // In key order: results come out sorted, and errors name keys by their sorted index.
  absl::InlinedVector<ResolveRequest::Ref, 8> refs = request.refs;
  std::sort(refs.begin(), refs.end());
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
  if (absl::Status status = CheckStack(caller, request.stack, options_.access); !status.ok()) {
    return status;
  }
  if (!HasAnyDecryptPermission(caller)) {
    return absl::PermissionDeniedError(
        absl::StrCat("the access token holds no ", kDecryptAllPermission, " permission"));
  }
  ResolveResults results(refs.size());
  if (!ResolveEach(caller, request.stack, refs, lookup, results)) return std::nullopt;
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
  if (!ResolveEach(caller, request.stack, refs, lookup, results)) return std::nullopt;
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

bool Resolver::ResolveEach(const Caller& caller, absl::string_view request_stack,
                           absl::Span<const ResolveRequest::Ref> refs, const Lookup& lookup,
                           ResolveResults& results) const {
  // `stack-N` and `stacks-N` are one stack: one cache entry, one fingerprint.
  const std::string stack = CanonicalStack(request_stack);
  // The references that get as far as a lookup, by the name they ask for.
  struct Wanted {
    absl::string_view name;
    RefResult* result;
  };
  absl::InlinedVector<Wanted, 8> wanted;
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
    wanted.push_back({result.name, &result});
  }
  // One lookup per distinct name, however many keys name it: sorted by name, a name's keys
  // are neighbours.
  std::sort(wanted.begin(), wanted.end(),
            [](const Wanted& a, const Wanted& b) { return a.name < b.name; });
  absl::InlinedVector<absl::string_view, 8> names;
  for (size_t i = 0; i < wanted.size(); ++i) {
    if (i == 0 || wanted[i].name != wanted[i - 1].name) names.push_back(wanted[i].name);
  }
  absl::InlinedVector<absl::StatusOr<CachedSecret>, 8> found(names.size());
  if (!lookup(stack, names, absl::MakeSpan(found))) return false;
  for (size_t i = 0, name = 0; i < wanted.size(); ++i) {
    if (wanted[i].name != names[name]) ++name;
    // The last result that uses a lookup takes its reference rather than another copy.
    const bool last_use = i + 1 == wanted.size() || wanted[i + 1].name != names[name];
    Complete(caller, stack, found[name], last_use, *wanted[i].result);
  }
  return true;
}

}  // namespace secret_resolver
