#include "resolver/access_policy.h"

#include <algorithm>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace secret_resolver {
namespace {

constexpr absl::string_view kWildcardNamespace = "*";
constexpr absl::string_view kPermissionPrefix = "secret.grafana.app/securevalues/";
constexpr absl::string_view kPermissionSuffix = ":decrypt";
// The canonical spelling of a cloud stack, and the other one accepted.
constexpr absl::string_view kStacksPrefix = "stacks-";
constexpr absl::string_view kStackPrefix = "stack-";

// The stack id N of `stack-N` or `stacks-N` when N is one or more digits, else "". Only that
// exact shape is folded (Grafana's cloud namespaces): anything else must match exactly, so
// `stack-abc` never equals `stacks-abc`. The digits are compared as text, not as numbers, so
// `stack-07` and `stacks-7` stay different stacks.
absl::string_view CloudStackId(absl::string_view stack) {
  if (!absl::ConsumePrefix(&stack, kStacksPrefix) && !absl::ConsumePrefix(&stack, kStackPrefix)) {
    return "";
  }
  if (stack.empty() || !std::all_of(stack.begin(), stack.end(), absl::ascii_isdigit)) return "";
  return stack;
}

}  // namespace

bool SameStack(absl::string_view a, absl::string_view b) {
  if (a == b) return true;
  const absl::string_view a_id = CloudStackId(a);
  return !a_id.empty() && a_id == CloudStackId(b);
}

std::string CanonicalStack(absl::string_view stack) {
  const absl::string_view id = CloudStackId(stack);
  // `stacks-N`, the usual spelling, is canonical already: copied without a StrCat. (The two
  // prefixes differ in length, so the id's length tells which one the stack has.)
  if (id.empty() || id.size() + kStacksPrefix.size() == stack.size()) return std::string(stack);
  return absl::StrCat(kStacksPrefix, id);
}

absl::Status CheckStack(const Caller& caller, absl::string_view stack,
                        const AccessPolicyOptions& options) {
  // An empty namespace would otherwise equal an empty stack; a token must name its stack.
  if (caller.token_namespace.empty()) {
    return absl::PermissionDeniedError(absl::StrCat(
        "the access token has an empty namespace and may not act for stack \"",
        absl::CHexEscape(stack), "\""));
  }
  // Checked before SameStack so that `*` is never matched literally when wildcards are off.
  if (caller.token_namespace == kWildcardNamespace) {
    if (options.allow_wildcard_namespace) return absl::OkStatus();
    return absl::PermissionDeniedError(absl::StrCat(
        "the access token namespace \"*\" may not act for stack \"", absl::CHexEscape(stack),
        "\": wildcard namespaces are disabled"));
  }
  if (SameStack(caller.token_namespace, stack)) return absl::OkStatus();
  // Both are escaped: the stack comes from the request and may be arbitrary bytes.
  return absl::PermissionDeniedError(absl::StrCat(
      "the access token namespace \"", absl::CHexEscape(caller.token_namespace),
      "\" does not cover stack \"", absl::CHexEscape(stack), "\""));
}

bool HasDecryptPermission(const Caller& caller, absl::string_view name) {
  // Whole-string comparison: `securevalues/a:decrypt` must not grant `ab`, and a permission for
  // `a` must not grant `a/b`. An empty name has no per-name permission.
  for (const std::string& permission : caller.permissions) {
    if (permission == kDecryptAllPermission) return true;
    absl::string_view rest = permission;
    if (!name.empty() && absl::ConsumePrefix(&rest, kPermissionPrefix) &&
        absl::ConsumeSuffix(&rest, kPermissionSuffix) && rest == name) {
      return true;
    }
  }
  return false;
}

bool HasAnyDecryptPermission(const Caller& caller) {
  for (const std::string& permission : caller.permissions) {
    if (permission == kDecryptAllPermission) return true;
    absl::string_view rest = permission;
    if (absl::ConsumePrefix(&rest, kPermissionPrefix) &&
        absl::ConsumeSuffix(&rest, kPermissionSuffix) && !rest.empty()) {
      return true;
    }
  }
  return false;
}

bool IsAllowedDecrypter(absl::string_view service_identity,
                        const std::vector<std::string>& decrypters) {
  // A token without a service identity matches nothing, even a (malformed) empty entry.
  if (service_identity.empty()) return false;
  return std::find(decrypters.begin(), decrypters.end(), service_identity) != decrypters.end();
}

}  // namespace secret_resolver
