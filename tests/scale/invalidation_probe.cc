#include "tests/scale/invalidation_probe.h"

#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "tests/faults/fault_fixture.h"

namespace secret_resolver {
namespace testing {

using ::secretresolver::v1::SecretResolver;
using ::secretresolver::v1::WatchSecretsEvent;
using ::secretresolver::v1::WatchSecretsRequest;

constexpr char kProbeValuePrefix[] = "probe-v";

std::string ProbeValue(int64_t version) {
  return absl::StrCat(kProbeValuePrefix, version, "-", std::string(40, 'p'));
}

int64_t VersionOfProbeValue(absl::string_view value) {
  if (!absl::ConsumePrefix(&value, kProbeValuePrefix)) return 0;
  int64_t version = 0;
  return absl::SimpleAtoi(value.substr(0, value.find('-')), &version) ? version : 0;
}

absl::StatusOr<std::unique_ptr<InvalidationProbe>> InvalidationProbe::Open(
    const std::vector<std::string>& targets, const std::string& token, const std::string& name,
    absl::Duration within, ProbeMethod method, absl::Duration poll_interval) {
  auto probe = absl::WrapUnique(new InvalidationProbe());
  WatchSecretsRequest request;
  request.set_stack(kFaultStack);
  (*request.mutable_refs())["probe"] = absl::StrCat("secret://", name);
  for (const std::string& target : targets) {
    probe->stubs_.push_back(StubFor(target));
    auto stream = std::make_unique<Stream>();
    stream->stub = probe->stubs_.back().get();
    Stream* raw = stream.get();
    probe->streams_.push_back(std::move(stream));
    if (method == ProbeMethod::kWatch) {
      raw->context.AddMetadata("authorization", "Bearer " + token);
      raw->reader = raw->stub->WatchSecrets(&raw->context, request);
      raw->thread = std::thread([p = probe.get(), raw] { p->Read(raw); });
    } else {
      raw->thread = std::thread([p = probe.get(), raw, token, name, poll_interval] {
        p->Poll(raw, token, name, poll_interval);
      });
    }
  }
  const std::vector<absl::Time> first = probe->WaitForVersion(1, absl::Now() + within);
  int silent = 0;
  for (absl::Time at : first) silent += at == absl::InfiniteFuture() ? 1 : 0;
  if (silent == 0) return probe;
  std::string why;
  {
    std::lock_guard<std::mutex> lock(probe->mu_);
    for (const std::unique_ptr<Stream>& stream : probe->streams_) {
      if (!stream->status.ok()) {
        why = absl::StrCat("; one ended or failed ", stream->status.error_code(), ": ",
                           stream->status.error_message());
        break;
      }
    }
  }
  return absl::DeadlineExceededError(absl::StrCat(silent, " of ", targets.size(),
                                                  " sidecars reported no version within ",
                                                  absl::FormatDuration(within), why));
}

InvalidationProbe::~InvalidationProbe() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    changed_.notify_all();
  }
  for (const std::unique_ptr<Stream>& stream : streams_) {
    if (stream->reader != nullptr) stream->context.TryCancel();
  }
  for (const std::unique_ptr<Stream>& stream : streams_) stream->thread.join();
}

void InvalidationProbe::Poll(Stream* stream, const std::string& token, const std::string& name,
                             absl::Duration interval) {
  const secretresolver::v1::ResolveSecretsRequest request = RequestFor({name});
  while (true) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      changed_.wait(lock, [this] { return polling_ || stop_; });
      if (stop_) return;
    }
    secretresolver::v1::ResolveSecretsResponse response;
    const grpc::Status status = Call(*stream->stub, token, request, &response, absl::Seconds(2));
    const absl::Time now = absl::Now();
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!status.ok()) {
        stream->status = status;
      } else if (auto it = response.results().find("r0");
                 it != response.results().end() && it->second.has_secret()) {
        const auto& secret = it->second.secret();
        const int64_t version =
            secret.version() != 0 ? secret.version() : VersionOfProbeValue(secret.value());
        stream->arrivals.emplace(version, now);  // keeps the first
        changed_.notify_all();
      }
    }
    absl::SleepFor(interval);
  }
}

void InvalidationProbe::Read(Stream* stream) {
  WatchSecretsEvent event;
  while (stream->reader->Read(&event)) {
    const absl::Time now = absl::Now();
    if (event.deleted()) continue;
    std::lock_guard<std::mutex> lock(mu_);
    stream->arrivals.emplace(event.version(), now);  // keeps the first arrival
    changed_.notify_all();
  }
  const grpc::Status status = stream->reader->Finish();
  std::lock_guard<std::mutex> lock(mu_);
  stream->status = status;
  stream->ended = true;
  changed_.notify_all();
}

absl::Time InvalidationProbe::SeenAt(const Stream& stream, int64_t version) {
  absl::Time first = absl::InfiniteFuture();
  for (auto it = stream.arrivals.lower_bound(version); it != stream.arrivals.end(); ++it) {
    first = std::min(first, it->second);
  }
  return first;
}

std::vector<absl::Time> InvalidationProbe::WaitForVersion(int64_t version, absl::Time deadline) {
  std::unique_lock<std::mutex> lock(mu_);
  polling_ = true;
  changed_.notify_all();
  auto all_seen = [&] {
    for (const std::unique_ptr<Stream>& stream : streams_) {
      if (!stream->ended && SeenAt(*stream, version) == absl::InfiniteFuture()) return false;
    }
    return true;
  };
  while (!all_seen() && absl::Now() < deadline) {
    changed_.wait_for(lock, absl::ToChronoNanoseconds(deadline - absl::Now()));
  }
  polling_ = false;
  std::vector<absl::Time> seen;
  for (const std::unique_ptr<Stream>& stream : streams_) {
    seen.push_back(SeenAt(*stream, version));
  }
  return seen;
}

int InvalidationProbe::Ended() const {
  std::lock_guard<std::mutex> lock(mu_);
  int ended = 0;
  for (const std::unique_ptr<Stream>& stream : streams_) ended += stream->ended ? 1 : 0;
  return ended;
}

}  // namespace testing
}  // namespace secret_resolver
