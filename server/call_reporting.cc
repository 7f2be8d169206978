#include "server/call_reporting.h"

#include <utility>

#include "absl/container/inlined_vector.h"

namespace secret_resolver {
namespace {

RateLimiterOptions DenialBudget(const CallReporterOptions& options) {
  RateLimiterOptions budget;
  budget.rate = options.denial_lines_per_second;
  budget.burst = options.denial_burst;
  // Reasons are a small fixed set (AuthFailureReason's codes and two more).
  budget.max_buckets = 64;
  budget.clock = options.clock;
  return budget;
}

}  // namespace

AuditRecord AuditRecordOf(const ReferenceOutcome& outcome, absl::Duration latency) {
  AuditRecord record;
  record.stack = outcome.stack;
  record.caller = outcome.caller;
  record.reported_service = outcome.reported_service;
  record.run_id = outcome.run.run_id;
  record.step_id = outcome.run.step_id;
  record.trace_id = outcome.run.trace_id;
  record.span_id = outcome.run.span_id;
  record.dropped_metadata = outcome.run.dropped;
  record.method = outcome.method;
  record.ref_key = outcome.ref_key;
  record.secret_name = outcome.name;
  record.version = outcome.version;
  record.decision = outcome.code == absl::StatusCode::kOk ? AuditDecision::kAllowed
                    : outcome.code == absl::StatusCode::kPermissionDenied
                        ? AuditDecision::kDenied
                        : AuditDecision::kError;
  record.code = outcome.code;
  record.cache = outcome.cache_outcome ? CacheOutcomeName(*outcome.cache_outcome) : "";
  record.latency_ms = absl::ToDoubleMilliseconds(latency);
  return record;
}

CallReporter::CallReporter(SidecarMetrics* metrics, JsonLogger* log,
                           CallReporterOptions options)
    : metrics_(metrics), log_(log), denial_budget_(DenialBudget(options)) {}

ResolveHandlerHooks CallReporter::Hooks() {
  ResolveHandlerHooks hooks;
  SidecarMetrics* metrics = metrics_;
  JsonLogger* log = log_;
  hooks.on_references = [metrics, log](absl::Span<const ReferenceOutcome> outcomes,
                                       absl::Duration latency) {
    absl::InlinedVector<AuditRecord, 8> records;
    records.reserve(outcomes.size());
    for (const ReferenceOutcome& outcome : outcomes) {
      // A dry run's references were not resolved: audited, not counted as resolutions.
      if (outcome.method.empty()) metrics->RecordReference(outcome.code, outcome.cache_outcome);
      records.push_back(AuditRecordOf(outcome, latency));
    }
    log->LogAudit(records);
  };
  hooks.on_auth_failure = [metrics](absl::string_view reason) {
    metrics->RecordAuthFailure(reason);
  };
  hooks.on_rate_limited = [metrics](absl::string_view stack) {
    metrics->RecordRateLimited(stack);
  };
  hooks.on_call_denied = [this](const CallDenial& denial) { OnCallDenied(denial); };
  hooks.on_backend_error = [this](const BackendError& error) { OnBackendError(error); };
  return hooks;
}

void CallReporter::OnCallDenied(const CallDenial& denial) {
  metrics_->RecordDeniedCall(denial.reason);
  if (!denial_budget_.Allow(denial.reason)) {
    metrics_->RecordSuppressedAuditLine(denial.reason);
    return;
  }
  absl::InlinedVector<LogField, 8> fields = {
      LogField("decision", AuditDecisionName(AuditDecision::kDenied)),
      LogField("code", absl::StatusCodeToString(denial.code)),
      LogField("reason", denial.reason),
      LogField("stack", denial.stack),
      LogField("caller", denial.caller),
  };
  if (!denial.token_namespace.empty()) {
    fields.push_back(LogField("token_namespace", denial.token_namespace));
  }
  if (!denial.reported_service.empty()) {
    fields.push_back(LogField("reported_service", denial.reported_service));
  }
  for (const auto& [key, value] : {std::pair{"run_id", denial.run.run_id},
                                   std::pair{"step_id", denial.run.step_id},
                                   std::pair{"trace_id", denial.run.trace_id},
                                   std::pair{"span_id", denial.run.span_id},
                                   std::pair{"dropped_metadata", denial.run.dropped}}) {
    if (!value.empty()) fields.push_back(LogField(key, value));
  }
  log_->LogAuditEvent(fields);
}

void CallReporter::OnBackendError(const BackendError& error) {
  metrics_->RecordBackendError(error.detail.code());
  log_->Warning("a secret could not be read from the backend",
                {LogField("correlation_id", error.correlation_id), LogField("stack", error.stack),
                 LogField("ref_key", error.ref_key), LogField("secret", error.name),
                 LogField("error", error.detail)});
}

}  // namespace secret_resolver
