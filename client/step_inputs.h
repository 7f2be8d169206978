// Step inputs, rendered the way a workflow engine does it: the workflow declares
// `resources.secrets` (ref key -> `secret://name`), a step's inputs use
// `${resources.secret.<key>}` expressions (contract.md section 5), and the step runner needs the
// inputs with the values substituted plus a redactor for the step's logs (section 7).
//
// Only the references the step's inputs use are resolved: a step does not receive (or cause
// the sidecar to decrypt) secrets it does not need.
//
// RunSecrets renders the steps of one workflow run so that they all see one version of each
// secret: the version a ref key first resolved to in the run is pinned for the run's later
// steps (contract.md section 2, `versions`), and every call carries the run and step ids.
//
// Thread safety: pure functions, apart from the calls they make on the client, which is
// thread-safe; a RunSecrets may render several steps at once.
#ifndef SECRET_RESOLVER_CLIENT_STEP_INPUTS_H_
#define SECRET_RESOLVER_CLIENT_STEP_INPUTS_H_

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "client/redactor/redactor.h"
#include "client/secret_resolver_client.h"
#include "resolver/secret_bytes.h"

namespace secret_resolver {
namespace client {

// What was resolved for one ref key, without the value.
struct StepSecret {
  std::string name;  // the secret's name
  int64_t version = 0;
  std::string placeholder;
  std::string fingerprint;
  bool stale = false;
  bool superseded = false;  // pinned to a version older than the newest
};

// A step ready to run. Move-only.
struct RenderedStep {
  // Input name -> the input with every `resources.secret` expression replaced by its value.
  // Inputs that use no secret are here too, unchanged.
  std::map<std::string, SecretBytes> inputs;
  // Ref key -> what was resolved for it; exactly the keys the inputs use.
  std::map<std::string, StepSecret> secrets;
  // Scrubs every resolved value (and its encodings) from the step's logs. Never null.
  std::shared_ptr<const Redactor> redactor;
};

// Returns the references `inputs` use: ref key -> URI from `workflow_secrets`, nothing else.
// INVALID_ARGUMENT, naming the input (and the byte position, or the key): a malformed
// `resources.secret` expression; a key `workflow_secrets` does not define; a malformed URI or
// ref key in `workflow_secrets` (for the keys used only).
absl::StatusOr<std::map<std::string, std::string>> StepSecretRefs(
    const std::map<std::string, std::string>& workflow_secrets,
    const std::map<std::string, std::string>& inputs);

// Resolves what `inputs` use (StepSecretRefs) for `stack` through `client`, in one call, and
// renders every input. Makes no call when no input uses a secret.
// Errors: those of StepSecretRefs; the client's whole-call errors, unchanged; a reference that
// did not resolve fails the step with that reference's code (NOT_FOUND, PERMISSION_DENIED, ...),
// its message naming the ref key and an input that uses it.
absl::StatusOr<RenderedStep> RenderStepInputs(
    SecretResolverClient& client, absl::string_view stack,
    const std::map<std::string, std::string>& workflow_secrets,
    const std::map<std::string, std::string>& inputs);
// As above, the call made with `options` (its versions limited to the keys the inputs use).
absl::StatusOr<RenderedStep> RenderStepInputs(
    SecretResolverClient& client, absl::string_view stack,
    const std::map<std::string, std::string>& workflow_secrets,
    const std::map<std::string, std::string>& inputs, const ResolveOptions& options);

// The secrets of one workflow run (see the file comment).
class RunSecrets {
 public:
  // `client` must outlive this. `run_id` goes with every call (RunIds::run_id).
  RunSecrets(SecretResolverClient* client, std::string stack,
             std::map<std::string, std::string> workflow_secrets, std::string run_id);

  // RenderStepInputs for one step of the run, `step_id` and `traceparent` sent with the call
  // (empty: not sent), the ref keys the run has resolved before pinned to the versions they
  // resolved to then. Records the versions of keys resolved for the first time. Errors: those
  // of RenderStepInputs; a pinned version no longer stored (or a deleted secret) fails the
  // step with NOT_FOUND, a revoked decrypter with PERMISSION_DENIED: the run cannot go on with
  // the values it started with.
  absl::StatusOr<RenderedStep> RenderStep(absl::string_view step_id,
                                          const std::map<std::string, std::string>& inputs,
                                          absl::string_view traceparent = "");

  // Ref key -> the version the run is pinned to, for the keys resolved so far.
  std::map<std::string, int64_t> versions() const;

 private:
  SecretResolverClient* const client_;
  const std::string stack_;
  const std::map<std::string, std::string> workflow_secrets_;
  const std::string run_id_;
  mutable std::mutex mu_;
  std::map<std::string, int64_t> versions_;  // guarded by mu_
};

}  // namespace client
}  // namespace secret_resolver

#endif  // SECRET_RESOLVER_CLIENT_STEP_INPUTS_H_
