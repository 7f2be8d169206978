#include "server/auth/url_jwks_source.h"

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/auth/curl_http_fetcher.h"
#include "server/auth/jwks_parser.h"

namespace secret_resolver {
namespace auth {

UrlJwksSource::UrlJwksSource(JwksUrlOptions options)
    : options_(std::move(options)),
      owned_fetcher_(options_.fetcher == nullptr ? std::make_unique<CurlHttpFetcher>() : nullptr),
      fetcher_(options_.fetcher == nullptr ? owned_fetcher_.get() : options_.fetcher),
      keys_(std::make_shared<const KeySet>()) {}

UrlJwksSource::~UrlJwksSource() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

absl::StatusOr<std::unique_ptr<UrlJwksSource>> UrlJwksSource::Create(JwksUrlOptions options) {
  if (options.clock == nullptr) return absl::InvalidArgumentError("jwks url: clock is required");
  const bool https = absl::StartsWithIgnoreCase(options.url, "https://");
  const bool http = absl::StartsWithIgnoreCase(options.url, "http://");
  if (!https && !(http && options.allow_insecure_http)) {
    return absl::InvalidArgumentError(http ? "jwks url: plain http is not allowed (https only)"
                                           : "jwks url: must be an https:// URL");
  }
  if (options.url.size() <= (https ? 8u : 7u)) {
    return absl::InvalidArgumentError("jwks url: no host");
  }
  std::unique_ptr<UrlJwksSource> source(new UrlJwksSource(std::move(options)));
  {
    std::lock_guard<std::mutex> load(source->load_mu_);
    source->FetchLocked().IgnoreError();  // recorded in stats; lookups retry
  }
  UrlJwksSource* raw = source.get();
  source->thread_ = std::thread([raw] { raw->Run(); });
  return source;
}

std::shared_ptr<const KeySet> UrlJwksSource::Current() const {
  std::lock_guard<std::mutex> lock(mu_);
  return keys_;
}

JwksSourceStats UrlJwksSource::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  JwksSourceStats out = stats_;
  out.key_count = keys_->size();
  return out;
}

bool UrlJwksSource::FetchDueLocked(absl::Time now, bool unknown_kid) const {
  if (now < last_attempt_) return true;
  return unknown_kid ? now - last_attempt_ >= options_.min_refetch_interval
                     : now >= next_refresh_;
}

void UrlJwksSource::RequestFetchLocked(absl::Time now) {
  if (fetch_requested_ || fetching_) return;
  fetch_requested_ = true;
  last_attempt_ = now;
  wake_.notify_all();
}

absl::StatusOr<std::shared_ptr<const VerificationKey>> UrlJwksSource::Lookup(
    absl::string_view kid) {
  std::lock_guard<std::mutex> lock(mu_);
  const absl::Time now = options_.clock->Now();
  if (FetchDueLocked(now, /*unknown_kid=*/false)) RequestFetchLocked(now);
  if (auto key = keys_->Find(kid)) return key;
  // An unknown kid may mean the issuer rotated keys: refetch, but rate-limited, so a stream of
  // tokens with made-up key ids cannot turn into a stream of requests to the issuer. Either way
  // this caller is answered now, not after the fetch.
  if (FetchDueLocked(now, /*unknown_kid=*/true)) RequestFetchLocked(now);
  return absl::NotFoundError("unknown key id");
}

std::optional<bool> UrlJwksSource::IsPublishedWithoutLoading(const VerificationKey& key) {
  std::lock_guard<std::mutex> lock(mu_);
  const absl::Time now = options_.clock->Now();
  if (FetchDueLocked(now, /*unknown_kid=*/false)) RequestFetchLocked(now);
  return keys_->Publishes(key);
}

std::shared_ptr<const VerificationKey> UrlJwksSource::FindWithoutLoading(absl::string_view kid) {
  std::lock_guard<std::mutex> lock(mu_);
  const absl::Time now = options_.clock->Now();
  if (FetchDueLocked(now, /*unknown_kid=*/false)) RequestFetchLocked(now);
  return keys_->Find(kid);
}

absl::Status UrlJwksSource::Reload() {
  std::lock_guard<std::mutex> load(load_mu_);
  return FetchLocked();
}

void UrlJwksSource::WaitUntilIdle() {
  std::unique_lock<std::mutex> lock(mu_);
  wake_.wait(lock, [this] { return (!fetch_requested_ && !fetching_) || stopping_; });
}

void UrlJwksSource::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    wake_.wait(lock, [this] { return fetch_requested_ || stopping_; });
    if (stopping_) break;
    fetch_requested_ = false;
    fetching_ = true;
    lock.unlock();
    {
      std::lock_guard<std::mutex> load(load_mu_);
      FetchLocked().IgnoreError();  // recorded in stats
    }
    lock.lock();
    fetching_ = false;
    wake_.notify_all();  // WaitUntilIdle
  }
  fetching_ = false;
  wake_.notify_all();
}

absl::Status UrlJwksSource::FetchLocked() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    last_attempt_ = options_.clock->Now();
    ++stats_.fetches;
  }
  HttpGetRequest request;
  request.url = options_.url;
  request.connect_timeout = options_.connect_timeout;
  request.timeout = options_.fetch_timeout;
  request.max_bytes = options_.max_document_bytes;
  request.ca_file = options_.ca_file;
  request.allow_insecure_http = options_.allow_insecure_http;
  absl::StatusOr<std::string> body = fetcher_->Get(request);
  absl::StatusOr<ParsedJwks> parsed =
      body.ok() ? ParseJwks(*body)
                : absl::StatusOr<ParsedJwks>(absl::Status(
                      body.status().code(), absl::StrCat("jwks fetch ", body.status().message())));
  absl::Status status = parsed.status();
  if (body.ok() && !status.ok()) {
    status = absl::InvalidArgumentError(
        absl::StrCat("jwks url ", options_.url, ": ", status.message()));
  }
  if (status.ok() && options_.on_skipped_key) {
    for (const std::string& reason : parsed->skipped) options_.on_skipped_key(reason);
  }
  JwksLoad load;
  load.status = status;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (status.ok()) {
      keys_ = std::make_shared<const KeySet>(std::move(parsed->keys));
      load.skipped_keys = parsed->skipped_count;
      load.kids = keys_->kids();
      stats_.skipped_keys += parsed->skipped_count;
      ++stats_.loads;
      stats_.last_error.clear();
    } else {
      ++stats_.load_failures;
      stats_.last_error = std::string(status.message());
    }
    next_refresh_ = options_.clock->Now() +
                    (status.ok() ? options_.refresh_interval : options_.min_refetch_interval);
  }
  if (options_.on_load) options_.on_load(load);
  return status;
}

}  // namespace auth
}  // namespace secret_resolver
