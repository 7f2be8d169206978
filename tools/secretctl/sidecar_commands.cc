#include "tools/secretctl/sidecar_commands.h"

#include <errno.h>
#include <poll.h>
#include <unistd.h>

#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "client/secret_resolver_client.h"
#include "client/step_inputs.h"
#include "nlohmann/json.hpp"
#include "openssl/crypto.h"
#include "resolver/secret_uri.h"
#include "resolver/utf8.h"
#include "tools/secretctl/output.h"
#include "tools/secretctl/rendered_inputs.h"
#include "tools/secretctl/sidecar_client.h"
#include "tools/secretctl/step_source.h"
#include "tools/secretctl/workflow_check.h"

namespace secret_resolver {
namespace secretctl {
namespace {

using Kind = FlagSpec::Kind;

// What resolve and render print per resolved reference, never the value: a ResolvedSecret or a
// StepSecret.
template <typename Secret>
nlohmann::ordered_json SecretJson(const Secret& secret) {
  return nlohmann::ordered_json{{"name", secret.name},
                                {"version", secret.version},
                                {"placeholder", secret.placeholder},
                                {"fingerprint", secret.fingerprint},
                                {"stale", secret.stale},
                                {"superseded", secret.superseded}};
}

// Ref key -> version from the --pin KEY=VERSION flags; each key must be one of `refs`.
absl::StatusOr<std::map<std::string, int64_t>> PinsFromFlags(
    const ParsedFlags& flags, const std::map<std::string, std::string>& refs) {
  std::map<std::string, int64_t> pins;
  const std::vector<std::string> values = flags.Values("pin");
  for (size_t i = 0; i < values.size(); ++i) {
    const std::string flag = absl::StrCat("--pin #", i + 1);
    const size_t eq = values[i].find('=');
    if (eq == std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat(flag, ": expected KEY=VERSION (no '=' found)"));
    }
    const std::string key = values[i].substr(0, eq);
    int64_t version = 0;
    if (!absl::SimpleAtoi(values[i].substr(eq + 1), &version) || version < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat(flag, " (key \"", absl::CHexEscape(key),
                       "\"): the version must be a whole number of at least 1"));
    }
    if (refs.count(key) == 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          flag, ": key \"", absl::CHexEscape(key), "\" is not one of the --ref keys"));
    }
    if (!pins.emplace(key, version).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("--pin: key \"", key, "\" is given twice"));
    }
  }
  return pins;
}

FlagSpec RunIdFlag() {
  return {"run-id", Kind::kValue, "ID",
          "the workflow run the call is for, for the sidecar's audit log"};
}

FlagSpec StepIdFlag() {
  return {"step-id", Kind::kValue, "ID", "the workflow step the call is for, as --run-id"};
}

// The run and step ids from --run-id and --step-id (checked by the sidecar, which drops and
// audits invalid ones).
client::RunIds RunIdsFromFlags(const ParsedFlags& flags) {
  return client::RunIds{flags.Value("run-id"), flags.Value("step-id"), ""};
}

// Ref key -> URI from the --ref KEY=secret://NAME flags.
absl::StatusOr<std::map<std::string, std::string>> RefsFromFlags(const ParsedFlags& flags) {
  std::map<std::string, std::string> refs;
  const std::vector<std::string> values = flags.Values("ref");
  for (size_t i = 0; i < values.size(); ++i) {
    const std::string flag = absl::StrCat("--ref #", i + 1);
    const size_t eq = values[i].find('=');
    if (eq == std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat(flag, ": expected KEY=secret://NAME (no '=' found)"));
    }
    const std::string key = values[i].substr(0, eq);
    const std::string uri = values[i].substr(eq + 1);
    if (absl::Status s = ValidateRefKey(key); !s.ok()) {
      return FlagError(absl::StrCat(flag, " key"), s);
    }
    if (absl::StatusOr<absl::string_view> name = ParseSecretUri(uri); !name.ok()) {
      return FlagError(absl::StrCat(flag, " (key \"", key, "\")"), name.status());
    }
    if (!refs.emplace(key, uri).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("--ref: key \"", key, "\" is given twice"));
    }
  }
  return refs;
}

absl::Status RunResolve(const ParsedFlags& flags, Io& io) {
  absl::StatusOr<std::string> stack = StackFromFlags(flags);
  if (!stack.ok()) return stack.status();
  absl::StatusOr<std::map<std::string, std::string>> refs = RefsFromFlags(flags);
  if (!refs.ok()) return refs.status();
  client::ResolveOptions options;
  absl::StatusOr<std::map<std::string, int64_t>> pins = PinsFromFlags(flags, *refs);
  if (!pins.ok()) return pins.status();
  options.versions = *std::move(pins);
  options.run = RunIdsFromFlags(flags);
  std::string address;
  absl::StatusOr<std::unique_ptr<client::SecretResolverClient>> resolver =
      ClientFromFlags(flags, &address);
  if (!resolver.ok()) return resolver.status();
  absl::StatusOr<client::ResolvedSecrets> results =
      (*resolver)->ResolveSecrets(*stack, *refs, options);
  if (!results.ok()) return FromSidecar(address, results.status());

  absl::Status first_failure;
  size_t failures = 0;
  for (const auto& [key, result] : *results) {
    if (result.ok()) continue;
    ++failures;
    if (first_failure.ok()) first_failure = result.status();
    absl::StrAppend(&io.err, "secretctl resolve: ",
                    absl::StatusCodeToString(result.status().code()), ": ",
                    result.status().message(), "\n");
  }
  if (failures > 0) {
    return absl::Status(first_failure.code(),
                        absl::StrCat(failures, " of ", results->size(),
                                     " references did not resolve (listed above)"));
  }

  const bool reveal = flags.Has("reveal");
  if (flags.Has("json")) {
    nlohmann::ordered_json secrets = nlohmann::ordered_json::object();
    for (const auto& [key, result] : *results) {
      nlohmann::ordered_json entry = SecretJson(*result);
      if (reveal) {
        const absl::string_view value = result->value.reveal();
        if (IsValidUtf8(value)) {
          entry["value"] = std::string(value);
        } else {
          entry["value_base64"] = absl::Base64Escape(value);
        }
      }
      secrets[key] = std::move(entry);
    }
    io.out = DumpJson(nlohmann::ordered_json{{"stack", *stack}, {"secrets", secrets}});
    return absl::OkStatus();
  }
  std::vector<std::vector<std::string>> rows = {
      {"REF", "NAME", "VERSION", "PLACEHOLDER", "FINGERPRINT"}};
  if (reveal) rows[0].push_back("VALUE");
  for (const auto& [key, result] : *results) {
    rows.push_back({key, result->name,
                    absl::StrCat(result->version, result->stale ? " (stale)" : "",
                                 result->superseded ? " (superseded)" : ""),
                    Printable(result->placeholder), result->fingerprint});
    if (reveal) rows.back().push_back(absl::CHexEscape(result->value.reveal()));
  }
  io.out = Table(rows);
  for (auto& row : rows) {
    for (std::string& cell : row) OPENSSL_cleanse(cell.data(), cell.size());
  }
  return absl::OkStatus();
}

absl::Status RunRender(const ParsedFlags& flags, Io& io) {
  absl::StatusOr<std::string> stack = StackFromFlags(flags);
  if (!stack.ok()) return stack.status();
  RenderSource source;
  if (absl::Status s = ReadRenderSource(flags, source, io); !s.ok()) return s;
  // With --workflow, messages say which step.
  const std::string step_label =
      source.step == nullptr
          ? ""
          : absl::StrCat("step ", Quoted(source.step->id.empty() ? "(no id)" : source.step->id),
                         ": ");
  const auto in_step = [&step_label](const absl::Status& status) {
    return absl::Status(status.code(), absl::StrCat(step_label, status.message()));
  };
  // Malformed expressions, unknown keys and bad URIs are reported before any connection.
  if (absl::StatusOr<std::map<std::string, std::string>> refs =
          client::StepSecretRefs(source.secrets, source.inputs);
      !refs.ok()) {
    return in_step(refs.status());
  }
  std::string address;
  absl::StatusOr<std::unique_ptr<client::SecretResolverClient>> resolver =
      ClientFromFlags(flags, &address);
  if (!resolver.ok()) return resolver.status();
  absl::StatusOr<client::RenderedStep> step =
      client::RenderStepInputs(**resolver, *stack, source.secrets, source.inputs);
  if (!step.ok()) {
    // Per-reference failures already start with `ref "KEY"`; whole-call ones name the sidecar.
    if (absl::StartsWith(step.status().message(), "ref \"")) return in_step(step.status());
    return FromSidecar(address, step.status());
  }

  absl::StatusOr<nlohmann::ordered_json> rendered = RenderedInputsJson(
      source.step == nullptr ? nullptr : &source.step->inputs, step->inputs);
  if (!rendered.ok()) return in_step(rendered.status());
  nlohmann::ordered_json used = nlohmann::ordered_json::object();
  for (const auto& [key, secret] : step->secrets) used[key] = SecretJson(secret);
  nlohmann::ordered_json out = nlohmann::ordered_json::object();
  if (source.step != nullptr) out["step"] = source.step->id;
  out["inputs"] = *std::move(rendered);
  out["secrets"] = std::move(used);
  io.out = DumpJson(out);
  return absl::OkStatus();
}

// check --stack: whether the caller may resolve each of the workflow's references, from the
// sidecar's CheckReferences. One line per reference: on standard output when all are ok;
// otherwise on standard error (as resolve, a failing command prints nothing on standard output),
// followed by each failure's message, and the status that of the first failure (by ref key).
absl::Status CheckWithSidecar(const ParsedFlags& flags, const std::string& path,
                              const WorkflowFile& file, Io& io) {
  absl::StatusOr<std::string> stack = StackFromFlags(flags);
  if (!stack.ok()) return stack.status();
  std::map<std::string, std::string> refs;
  for (const auto& secret : file.secrets()) refs.emplace(secret.key, secret.uri);
  if (refs.empty()) {
    io.out = absl::StrCat(path, ": ok (no secret references to check)\n");
    return absl::OkStatus();
  }
  std::string address;
  absl::StatusOr<std::unique_ptr<client::SecretResolverClient>> checker =
      ClientFromFlags(flags, &address);
  if (!checker.ok()) return checker.status();
  client::ResolveOptions options;
  options.run = RunIdsFromFlags(flags);
  absl::StatusOr<client::CheckedReferences> results =
      (*checker)->CheckReferences(*stack, refs, options);
  if (!results.ok()) return FromSidecar(address, results.status());
  std::vector<std::vector<std::string>> rows = {{"REF", "NAME", "VERSION", "RESULT"}};
  absl::Status first_failure;
  size_t failures = 0;
  for (const auto& [key, result] : *results) {
    if (result.ok()) {
      rows.push_back({key, result->name, absl::StrCat(result->version), "ok"});
      continue;
    }
    ++failures;
    if (first_failure.ok()) first_failure = result.status();
    rows.push_back({key, "", "", absl::StatusCodeToString(result.status().code())});
    absl::StrAppend(&io.err, "secretctl check: ",
                    absl::StatusCodeToString(result.status().code()), ": ",
                    result.status().message(), "\n");
  }
  if (failures == 0) {
    io.out = Table(rows);
    return absl::OkStatus();
  }
  io.err = absl::StrCat(Table(rows), io.err);
  return absl::Status(first_failure.code(),
                      absl::StrCat(failures, " of ", results->size(),
                                   " references would not resolve for stack \"", *stack,
                                   "\" (listed above)"));
}

absl::Status RunCheck(const ParsedFlags& flags, Io& io) {
  const std::string path = flags.positional();
  if (!flags.Has("stack")) {
    for (const FlagSpec& f : SidecarFlags()) {
      if (flags.Has(f.name)) {
        return UsageError(absl::StrCat("--", f.name, " needs --stack (it asks a sidecar)"));
      }
    }
  }
  absl::StatusOr<WorkflowFile> file = ReadWorkflow("WORKFLOW.yaml", path);
  if (!file.ok()) return file.status();
  const std::vector<WorkflowFinding> findings = CheckWorkflow(*file);
  if (!findings.empty()) {
    io.err = FormatFindings(path, *file, findings);
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": ", findings.size(), findings.size() == 1 ? " problem" : " problems",
        " (listed above)"));
  }
  if (flags.Has("stack")) return CheckWithSidecar(flags, path, *file, io);
  size_t references = file->secrets().size();
  io.out = absl::StrCat(path, ": ok (", references,
                        references == 1 ? " secret reference, " : " secret references, ",
                        file->steps().size(), file->steps().size() == 1 ? " step)\n" : " steps)\n");
  return absl::OkStatus();
}

// Writes all of `text` to `fd`; false (with errno set) when it cannot.
bool WriteAll(int fd, absl::string_view text) {
  while (!text.empty()) {
    const ssize_t n = write(fd, text.data(), text.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    text.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

absl::Status RunRedact(const ParsedFlags& flags, Io& /*io: the output goes straight out*/) {
  absl::StatusOr<std::string> stack = StackFromFlags(flags);
  if (!stack.ok()) return stack.status();
  absl::StatusOr<std::map<std::string, std::string>> refs = RefsFromFlags(flags);
  if (!refs.ok()) return refs.status();
  std::string address;
  absl::StatusOr<std::unique_ptr<client::SecretResolverClient>> resolver =
      ClientFromFlags(flags, &address);
  if (!resolver.ok()) return resolver.status();
  // Called on the stream's reader thread; Finish() returns only after its last call.
  int write_errno = 0;
  auto to_stdout = [&write_errno](absl::string_view redacted) {
    if (write_errno == 0 && !WriteAll(STDOUT_FILENO, redacted)) write_errno = errno;
  };
  absl::StatusOr<std::unique_ptr<client::RemoteRedaction>> stream =
      (*resolver)->RedactLogs(*stack, *refs, to_stdout);
  if (!stream.ok()) return FromSidecar(address, stream.status());
  // What is readable goes out at once, so the output follows a live log closely; under a
  // stream of input, reads are gathered up to one chunk while more is ready (a pipe gives at most
  // 64 KiB a read, and each message costs about as much as 64 KiB of redaction).
  std::string buffer(client::RemoteRedaction::kMaxChunkBytes, '\0');
  absl::Status input;
  bool at_end = false;
  while (!at_end) {
    size_t filled = 0;
    while (filled < buffer.size()) {
      const ssize_t n = read(STDIN_FILENO, buffer.data() + filled, buffer.size() - filled);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        input = absl::FailedPreconditionError(
            absl::StrCat("cannot read standard input: ", std::strerror(errno)));
      }
      if (n <= 0) {
        at_end = true;
        break;
      }
      filled += static_cast<size_t>(n);
      pollfd ready = {STDIN_FILENO, POLLIN, 0};
      if (poll(&ready, 1, 0) != 1) break;  // nothing more right now: send what we have
    }
    if (filled > 0 && !(*stream)->Write(absl::string_view(buffer.data(), filled)).ok()) break;
  }
  OPENSSL_cleanse(buffer.data(), buffer.size());  // the raw text may hold a value
  const absl::Status finished = (*stream)->Finish();
  if (!finished.ok()) return FromSidecar(address, finished);
  if (!input.ok()) return input;
  if (write_errno != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot write standard output: ", std::strerror(write_errno)));
  }
  return absl::OkStatus();
}

}  // namespace

Command RedactCommand() {
  std::vector<FlagSpec> flags = {
      {"stack", Kind::kValue, "STACK", "the stack the token speaks for", true},
      {"ref", Kind::kRepeated, "KEY=secret://NAME",
       "a secret to redact, as in a workflow's resources.secrets; repeat", true},
  };
  for (FlagSpec& f : SidecarFlags()) flags.push_back(std::move(f));
  CommandSpec spec = {
      "redact",
      "redact secrets from standard input to standard output through a running sidecar",
      absl::StrCat(
          "A filter for shell steps and CI logs: streams standard input to the sidecar's\n"
          "RedactLogs and writes what comes back to standard output, with each --ref's value\n"
          "and its encodings (base64, percent-encoding, JSON escaping, each line of a\n"
          "multi-line value) replaced by the reference's placeholder. The values stay in the\n"
          "sidecar. A value split across reads is still redacted; the output lags the input by\n"
          "less than the longest encoded value until standard input ends. The references are\n"
          "checked as resolve checks them: if any fails (not found, not authorized, ...),\n"
          "nothing is read or written and the exit status is that of the failure. The access\n"
          "token is read from --token-file or from $SECRET_RESOLVER_TOKEN, never from a\n"
          "command-line argument. The stream is not retried, and --timeout does not apply: it\n"
          "lasts as long as its input."),
      std::move(flags)};
  return {std::move(spec), RunRedact};
}

Command ResolveCommand() {
  std::vector<FlagSpec> flags = {
      {"stack", Kind::kValue, "STACK", "the stack the token speaks for", true},
      {"ref", Kind::kRepeated, "KEY=secret://NAME",
       "a reference to resolve, as in a workflow's resources.secrets; repeat", true},
  };
  for (FlagSpec& f : SidecarFlags()) flags.push_back(std::move(f));
  flags.push_back({"pin", Kind::kRepeated, "KEY=VERSION",
                   "resolve --ref KEY at exactly VERSION (a run's earlier version); repeat"});
  flags.push_back(RunIdFlag());
  flags.push_back(StepIdFlag());
  flags.push_back({"reveal", Kind::kSwitch, "", "print the values too"});
  flags.push_back(JsonFlag());
  CommandSpec spec = {
      "resolve",
      "resolve secret references through a running sidecar",
      absl::StrCat(
          "Calls the sidecar's ResolveSecrets, as a workflow service does, and prints for\n"
          "each --ref the secret's name, version, redaction placeholder and fingerprint. The\n"
          "value is printed only with --reveal (escaped in text output; in JSON as \"value\",\n"
          "or \"value_base64\" when it is not UTF-8). --pin KEY=VERSION resolves that version\n"
          "(while it is stored and the token may decrypt the newest); a version with a newer\n"
          "one is marked superseded. --run-id and --step-id go into the sidecar's audit lines.\n"
          "If any reference fails, each failure is\n"
          "reported on standard error, nothing is printed on standard output, and the exit\n"
          "status is that of the first failure (by ref key).\n\n",
          kCallerHelp),
      std::move(flags)};
  return {std::move(spec), RunResolve};
}

Command RenderCommand() {
  std::vector<FlagSpec> flags = {
      {"stack", Kind::kValue, "STACK", "the stack the token speaks for", true},
      {"workflow", Kind::kValue, "FILE", "YAML workflow definition (or --secrets and --inputs)"},
      {"step", Kind::kValue, "ID", "with --workflow: the id of the step to render"},
      {"secrets", Kind::kValue, "FILE", "JSON object: the workflow's resources.secrets"},
      {"inputs", Kind::kValue, "FILE", "JSON object: the step's inputs"},
  };
  for (FlagSpec& f : SidecarFlags()) flags.push_back(std::move(f));
  CommandSpec spec = {
      "render",
      "render a step's inputs as a workflow engine does (prints secrets)",
      absl::StrCat(
          "Renders a workflow step's inputs, from either\n"
          "  --workflow FILE [--step ID]: a workflow definition in YAML\n"
          "    (spec.resources.secrets, ref key -> \"secret://NAME\"; spec.steps[].inputs, any\n"
          "    nesting of maps and lists), the step chosen by its id (needed when there are\n"
          "    several), or\n"
          "  --secrets FILE --inputs FILE: JSON objects, ref key -> \"secret://NAME\" and input\n"
          "    name -> string.\n"
          "Inputs use ${resources.secret.KEY} (KEY: [A-Za-z_][A-Za-z0-9_-]*) or\n"
          "${resources.secret[\"KEY\"]} (any ref key). It resolves through the sidecar only the\n"
          "references the inputs use, and prints a JSON object: \"inputs\" (every input,\n"
          "rendered, nested as in the workflow) and \"secrets\" (per ref key used: name,\n"
          "version, placeholder, fingerprint, stale); with --workflow, \"step\" (its id)\n"
          "first.\n\n"
          "The rendered inputs hold secret values: that is the point of the command. Send\n"
          "standard output to a file only the step can read, or to a pipe; never to a log.\n\n",
          kCallerHelp),
      std::move(flags)};
  return {std::move(spec), RunRender};
}

Command CheckCommand() {
  std::vector<FlagSpec> flags = {
      {"stack", Kind::kValue, "STACK",
       "also ask the sidecar whether the token may resolve each reference in STACK"},
  };
  for (FlagSpec& f : SidecarFlags()) flags.push_back(std::move(f));
  flags.push_back(RunIdFlag());
  flags.push_back(StepIdFlag());
  CommandSpec spec = {
      "check",
      "check a workflow definition's secret references (with --stack, against a sidecar)",
      "Reads a workflow definition in YAML (spec.resources.secrets, ref key ->\n"
      "\"secret://NAME\"; spec.steps[].inputs, any nesting of maps and lists) and reports, one\n"
      "line each as FILE:LINE:COLUMN: ..., every malformed ref key or secret:// URI, every\n"
      "malformed ${resources.secret...} expression, every expression whose key\n"
      "spec.resources.secrets does not define (undefined reference), and every\n"
      "spec.resources.secrets key no step uses (unused reference). Lines and columns start at\n"
      "1; columns count bytes. Inside a folded (>) or multi-line scalar the column is that of\n"
      "the scalar, and the line says so. Without --stack it calls no sidecar and needs no\n"
      "token: exit status 0 when the file is clean, 5 when anything is reported.\n\n"
      "With --stack, a clean file's references are then checked by the sidecar's\n"
      "CheckReferences (a dry run: the same token, stack, permission and decrypter checks as\n"
      "ResolveSecrets, no value read): one line per reference (REF, NAME, current VERSION,\n"
      "ok or the error code), each failure also on standard error, and the exit status that\n"
      "of the first failure (3 not found, 5 invalid, 8 denied, ...).\n\n"
      + std::string(kCallerHelp),
      std::move(flags),
      "WORKFLOW.yaml"};
  return {std::move(spec), RunCheck};
}

}  // namespace secretctl
}  // namespace secret_resolver
