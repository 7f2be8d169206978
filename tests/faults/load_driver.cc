#include "tests/faults/load_driver.h"

#include <algorithm>
#include <chrono>
#include <memory>
#include <utility>

#include "absl/time/clock.h"

namespace secret_resolver {
namespace testing {

using ::secretresolver::v1::ResolveSecretsResponse;
using ::secretresolver::v1::SecretResolver;

LoadDriver::~LoadDriver() { Stop(); }

void LoadDriver::Start() {
  for (int i = 0; i < options_.callers; ++i) threads_.emplace_back([this, i] { Run(i); });
}

void LoadDriver::Stop() {
  stop_ = true;
  for (std::thread& thread : threads_) thread.join();
  threads_.clear();
}

void LoadDriver::Run(int caller) {
  // A channel per caller: the callers' calls do not queue behind each other in one connection.
  grpc::ChannelArguments args;
  args.SetInt("grpc.caller_index", caller);  // distinct arguments: no shared subchannel
  const std::string& target = options_.targets.empty()
                                  ? options_.target
                                  : options_.targets[caller % options_.targets.size()];
  auto stub = SecretResolver::NewStub(
      grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args));
  for (int64_t n = 0; !stop_; ++n) {
    LoadRequest next = options_.next(caller, n);
    grpc::ClientContext context;
    context.AddMetadata("authorization", "Bearer " + next.token);
    context.set_deadline(std::chrono::system_clock::now() +
                         absl::ToChronoNanoseconds(options_.call_deadline));
    ResolveSecretsResponse response;
    CallRecord record;
    record.kind = std::move(next.kind);
    record.start = absl::Now();
    const grpc::Status status = stub->ResolveSecrets(&context, next.request, &response);
    record.latency = absl::Now() - record.start;
    record.code = status.error_code();
    if (status.ok()) {
      for (const auto& [key, result] : response.results()) {
        if (result.has_secret()) {
          record.ref_codes.push_back(0);
          if (result.secret().stale()) ++record.stale_refs;
        } else {
          record.ref_codes.push_back(result.error().code());
        }
      }
    }
    record.overran = record.code == grpc::StatusCode::DEADLINE_EXCEEDED ||
                     record.latency > options_.call_deadline;
    Add(std::move(record));
    if (options_.pause > absl::ZeroDuration()) absl::SleepFor(options_.pause);
  }
}

void LoadDriver::Add(CallRecord record) {
  std::lock_guard<std::mutex> lock(mu_);
  ++summary_.calls;
  if (record.overran) ++summary_.overruns;
  summary_.max_latency = std::max(summary_.max_latency, record.latency);
  ++summary_.by_code[record.code];
  ++summary_.by_kind[record.kind];
  for (int code : record.ref_codes) ++summary_.ref_codes[code];
  summary_.stale_refs += record.stale_refs;
  if (options_.keep_records) records_.push_back(std::move(record));
}

LoadSummary LoadDriver::Summary() const {
  std::lock_guard<std::mutex> lock(mu_);
  return summary_;
}

std::vector<CallRecord> LoadDriver::Records() const {
  std::lock_guard<std::mutex> lock(mu_);
  return records_;
}

std::vector<CallRecord> CallsBetween(const std::vector<CallRecord>& records, absl::Time from,
                                     absl::Time to) {
  std::vector<CallRecord> out;
  for (const CallRecord& record : records) {
    if (record.start >= from && record.start < to) out.push_back(record);
  }
  return out;
}

}  // namespace testing
}  // namespace secret_resolver
