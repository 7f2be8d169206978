// RunContext: which workflow run and step a call is for, and its W3C trace context, from the
// call's metadata (`x-workflow-run-id`, `x-workflow-step-id`, `traceparent`), for the audit
// log only (docs/contract.md section 9): nothing here ever takes part in a decision.
//
// The values are the caller's to fill, so each is checked before it is written anywhere:
//   - run and step ids: 1-128 bytes of [A-Za-z0-9._:-];
//   - traceparent (W3C Trace Context): `00-` + 32 lowercase hex digits (the trace id, not all
//     zero) + `-` + 16 lowercase hex digits (the parent span id, not all zero) + `-` + 2 lowercase
//     hex digits (flags), exactly 55 bytes.
// A value that fails its check, or a header sent twice with different values, is dropped; the
// audit line then names the header (never its value) under `dropped_metadata`.
//
// Thread safety: pure functions and plain values.
#ifndef SECRET_RESOLVER_SERVER_RUN_CONTEXT_H_
#define SECRET_RESOLVER_SERVER_RUN_CONTEXT_H_

#include <cstddef>
#include <optional>

#include "absl/strings/string_view.h"

namespace secret_resolver {

inline constexpr absl::string_view kRunIdHeader = "x-workflow-run-id";
inline constexpr absl::string_view kStepIdHeader = "x-workflow-step-id";
inline constexpr absl::string_view kTraceparentHeader = "traceparent";

// The most bytes a run or step id may have.
inline constexpr size_t kMaxRunIdBytes = 128;

// The headers as the call carried them: views of its metadata, valid while the call is.
struct RunMetadata {
  std::optional<absl::string_view> run_id;
  std::optional<absl::string_view> step_id;
  std::optional<absl::string_view> traceparent;
  // The header came more than once with different values: dropped.
  bool run_id_repeated = false;
  bool step_id_repeated = false;
  bool traceparent_repeated = false;
};

// What the audit line carries: views of the metadata (or empty), and the headers dropped.
struct RunContext {
  absl::string_view run_id;
  absl::string_view step_id;
  absl::string_view trace_id;  // 32 hex digits
  absl::string_view span_id;   // 16 hex digits: the caller's span, the parent of ours
  // The dropped headers' names, comma-separated (static storage); empty when none was.
  absl::string_view dropped;
};

// The checked RunContext of `metadata` (see the file comment).
RunContext RunContextOf(const RunMetadata& metadata);

}  // namespace secret_resolver

#endif  // SECRET_RESOLVER_SERVER_RUN_CONTEXT_H_
