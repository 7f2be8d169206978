#include "client/step_inputs.h"

#include <iterator>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "resolver/expression.h"
#include "resolver/secret_uri.h"

namespace secret_resolver {
namespace client {
namespace {

// Names and keys come from a workflow definition, not from a secret; they are escaped so that a
// control character cannot garble a log line.
std::string Quoted(absl::string_view text) {
  return absl::StrCat("\"", absl::CHexEscape(text), "\"");
}

std::string InputLabel(absl::string_view input) { return absl::StrCat("input ", Quoted(input)); }

// Ref key -> the first input (in name order) that uses it.
absl::StatusOr<std::map<std::string, std::string>> KeysUsed(
    const std::map<std::string, std::string>& inputs) {
  std::map<std::string, std::string> used;
  for (const auto& [input, text] : inputs) {
    absl::StatusOr<std::vector<std::string>> keys = ReferencedSecretKeys(text);
    if (!keys.ok()) {
      return absl::Status(keys.status().code(),
                          absl::StrCat(InputLabel(input), ": ", keys.status().message()));
    }
    for (std::string& key : *keys) used.emplace(std::move(key), input);
  }
  return used;
}

absl::StatusOr<std::map<std::string, std::string>> RefsFor(
    const std::map<std::string, std::string>& used,
    const std::map<std::string, std::string>& workflow_secrets) {
  std::map<std::string, std::string> refs;
  for (const auto& [key, input] : used) {
    const auto it = workflow_secrets.find(key);
    if (it == workflow_secrets.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat(InputLabel(input), ": uses resources.secret key ", Quoted(key),
                       ", which resources.secrets does not define"));
    }
    if (absl::Status s = ValidateRefKey(key); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("resources.secrets key ", Quoted(key),
                                                     " (used by ", InputLabel(input),
                                                     "): ", s.message()));
    }
    if (absl::StatusOr<absl::string_view> name = ParseSecretUri(it->second); !name.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("resources.secrets[", Quoted(key),
                                                     "] (used by ", InputLabel(input),
                                                     "): ", name.status().message()));
    }
    refs.emplace(key, it->second);
  }
  return refs;
}

}  // namespace

absl::StatusOr<std::map<std::string, std::string>> StepSecretRefs(
    const std::map<std::string, std::string>& workflow_secrets,
    const std::map<std::string, std::string>& inputs) {
  absl::StatusOr<std::map<std::string, std::string>> used = KeysUsed(inputs);
  if (!used.ok()) return used.status();
  return RefsFor(*used, workflow_secrets);
}

absl::StatusOr<RenderedStep> RenderStepInputs(
    SecretResolverClient& client, absl::string_view stack,
    const std::map<std::string, std::string>& workflow_secrets,
    const std::map<std::string, std::string>& inputs) {
  return RenderStepInputs(client, stack, workflow_secrets, inputs, ResolveOptions());
}

absl::StatusOr<RenderedStep> RenderStepInputs(
    SecretResolverClient& client, absl::string_view stack,
    const std::map<std::string, std::string>& workflow_secrets,
    const std::map<std::string, std::string>& inputs, const ResolveOptions& options) {
  absl::StatusOr<std::map<std::string, std::string>> used = KeysUsed(inputs);
  if (!used.ok()) return used.status();
  absl::StatusOr<std::map<std::string, std::string>> refs = RefsFor(*used, workflow_secrets);
  if (!refs.ok()) return refs.status();

  ResolvedSecrets resolved;
  if (!refs->empty()) {
    ResolveOptions call = options;
    // Only the keys this call sends may be pinned.
    for (auto it = call.versions.begin(); it != call.versions.end();) {
      it = refs->count(it->first) > 0 ? std::next(it) : call.versions.erase(it);
    }
    absl::StatusOr<ResolvedSecrets> results = client.ResolveSecrets(stack, *refs, call);
    if (!results.ok()) return results.status();
    resolved = *std::move(results);
  }

  RenderedStep step;
  std::vector<RedactionSecret> redactions;
  for (auto& [key, result] : resolved) {
    if (!result.ok()) {
      // The client's message already starts with `ref "KEY": `.
      return absl::Status(result.status().code(),
                          absl::StrCat(result.status().message(), " (used by ",
                                       InputLabel(used->at(key)), ")"));
    }
    step.secrets.emplace(key, StepSecret{result->name, result->version, result->placeholder,
                                         result->fingerprint, result->stale,
                                         result->superseded});
    redactions.push_back(RedactionSecret{result->value.Clone(), result->placeholder});
  }

  const SecretLookup lookup = [&resolved](absl::string_view key)
      -> std::optional<absl::string_view> {
    const auto it = resolved.find(std::string(key));
    if (it == resolved.end() || !it->second.ok()) return std::nullopt;
    return it->second->value.reveal();
  };
  for (const auto& [input, text] : inputs) {
    absl::StatusOr<SecretBytes> rendered = RenderSecretReferences(text, lookup);
    if (!rendered.ok()) {
      return absl::Status(rendered.status().code(),
                          absl::StrCat(InputLabel(input), ": ", rendered.status().message()));
    }
    step.inputs.emplace(input, *std::move(rendered));
  }

  step.redactor = Redactor::Create(std::move(redactions));
  return step;
}

RunSecrets::RunSecrets(SecretResolverClient* client, std::string stack,
                       std::map<std::string, std::string> workflow_secrets, std::string run_id)
    : client_(client),
      stack_(std::move(stack)),
      workflow_secrets_(std::move(workflow_secrets)),
      run_id_(std::move(run_id)) {}

absl::StatusOr<RenderedStep> RunSecrets::RenderStep(
    absl::string_view step_id, const std::map<std::string, std::string>& inputs,
    absl::string_view traceparent) {
  ResolveOptions options;
  options.run = RunIds{run_id_, std::string(step_id), std::string(traceparent)};
  options.versions = versions();
  absl::StatusOr<RenderedStep> step =
      RenderStepInputs(*client_, stack_, workflow_secrets_, inputs, options);
  if (!step.ok()) return step.status();
  std::lock_guard<std::mutex> lock(mu_);
  // A key two steps resolved at once for the first time keeps the version recorded first.
  for (const auto& [key, secret] : step->secrets) versions_.emplace(key, secret.version);
  return step;
}

std::map<std::string, int64_t> RunSecrets::versions() const {
  std::lock_guard<std::mutex> lock(mu_);
  return versions_;
}

}  // namespace client
}  // namespace secret_resolver
