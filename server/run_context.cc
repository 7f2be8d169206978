#include "server/run_context.h"

#include <array>

namespace secret_resolver {
namespace {

bool IsIdChar(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
         c == '.' || c == '_' || c == ':' || c == '-';
}

bool IsValidId(absl::string_view id) {
  if (id.empty() || id.size() > kMaxRunIdBytes) return false;
  for (char c : id) {
    if (!IsIdChar(c)) return false;
  }
  return true;
}

bool IsLowerHex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }

// `text` is all lowercase hex digits, not all of them zero.
bool IsNonZeroHex(absl::string_view text) {
  bool non_zero = false;
  for (char c : text) {
    if (!IsLowerHex(c)) return false;
    non_zero = non_zero || c != '0';
  }
  return non_zero;
}

// The trace and span ids of a valid version-00 traceparent; false otherwise.
bool ParseTraceparent(absl::string_view text, absl::string_view* trace_id,
                      absl::string_view* span_id) {
  // 00-<32 hex>-<16 hex>-<2 hex>
  if (text.size() != 55 || text.substr(0, 3) != "00-" || text[35] != '-' || text[52] != '-') {
    return false;
  }
  const absl::string_view trace = text.substr(3, 32);
  const absl::string_view span = text.substr(36, 16);
  const absl::string_view flags = text.substr(53, 2);
  if (!IsNonZeroHex(trace) || !IsNonZeroHex(span) || !IsLowerHex(flags[0]) ||
      !IsLowerHex(flags[1])) {
    return false;
  }
  *trace_id = trace;
  *span_id = span;
  return true;
}

// Indexed by a bit set: 1 run id, 2 step id, 4 traceparent.
constexpr std::array<absl::string_view, 8> kDropped = {
    "",
    "x-workflow-run-id",
    "x-workflow-step-id",
    "x-workflow-run-id,x-workflow-step-id",
    "traceparent",
    "x-workflow-run-id,traceparent",
    "x-workflow-step-id,traceparent",
    "x-workflow-run-id,x-workflow-step-id,traceparent",
};

}  // namespace

RunContext RunContextOf(const RunMetadata& metadata) {
  RunContext context;
  unsigned dropped = 0;
  if (metadata.run_id.has_value()) {
    if (!metadata.run_id_repeated && IsValidId(*metadata.run_id)) {
      context.run_id = *metadata.run_id;
    } else {
      dropped |= 1;
    }
  }
  if (metadata.step_id.has_value()) {
    if (!metadata.step_id_repeated && IsValidId(*metadata.step_id)) {
      context.step_id = *metadata.step_id;
    } else {
      dropped |= 2;
    }
  }
  if (metadata.traceparent.has_value()) {
    if (metadata.traceparent_repeated ||
        !ParseTraceparent(*metadata.traceparent, &context.trace_id, &context.span_id)) {
      dropped |= 4;
    }
  }
  context.dropped = kDropped[dropped];
  return context;
}

}  // namespace secret_resolver
