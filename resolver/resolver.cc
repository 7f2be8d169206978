#include "resolver/resolver.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "resolver/secret_uri.h"
#include "resolver/secret_validation.h"

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
  return *ResolveWith(caller, request, [this, deadline](absl::string_view stack,
                                                        absl::string_view name) {
    return std::optional<absl::StatusOr<CachedSecret>>(cache_->Get(stack, name, deadline));
  });
}

std::optional<absl::StatusOr<ResolveResults>> Resolver::ResolveWithoutBlocking(
    const Caller& caller, const ResolveRequest& request) const {
  return ResolveWith(caller, request, [this](absl::string_view stack, absl::string_view name) {
    return cache_->GetIfCached(stack, name);
  });
}

std::optional<absl::StatusOr<ResolveResults>> Resolver::ResolveWith(
    const Caller& caller, const ResolveRequest& request, const Lookup& lookup) const {
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

  // `stack-N` and `stacks-N` are one stack: one cache entry, one fingerprint.
  const std::string stack = CanonicalStack(request.stack);
  ResolveResults results;
  // One fetch per distinct name, however many keys name it. Keyed by views of the names in
  // `results`, whose nodes do not move.
  absl::flat_hash_map<absl::string_view, absl::StatusOr<CachedSecret>> fetched;
  for (const auto& [key, uri] : refs) {
    RefResult& result = results.emplace_hint(results.end(), key, RefResult())->second;
    absl::StatusOr<std::string> name = ParseSecretUri(uri);
    if (!name.ok()) {
      result.status = name.status();
      continue;
    }
    result.name = *std::move(name);
    if (!HasDecryptPermission(caller, result.name)) {
      result.status = absl::PermissionDeniedError(kNotAuthorized);
      continue;
    }
    auto it = fetched.find(result.name);
    if (it == fetched.end()) {
      std::optional<absl::StatusOr<CachedSecret>> found = lookup(stack, result.name);
      if (!found.has_value()) return std::nullopt;
      it = fetched.emplace(result.name, *std::move(found)).first;
    }
    const absl::StatusOr<CachedSecret>& cached = it->second;
    if (!cached.ok()) {
      result.status = PerReferenceError(cached.status(), result.name);
      continue;
    }
    result.cache_outcome = cached->outcome;
    const CachedValue& secret = *cached->value;
    if (!IsAllowedDecrypter(caller.service_identity, *secret.decrypters)) {
      result.status = absl::PermissionDeniedError(kNotAuthorized);
      continue;
    }
    result.value = cached->value;
    result.stale = cached->outcome == CacheOutcome::kStale;
    result.placeholder = tokens_->Placeholder(key, result.name);
    result.fingerprint = cached->value->fingerprint.empty()
                             ? tokens_->Fingerprint(stack, secret.value)
                             : RedactionTokens::FormatFingerprint(cached->value->fingerprint);
  }
  return results;
}

}  // namespace secret_resolver
