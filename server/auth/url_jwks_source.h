// UrlJwksSource: a JwksSource fetched over HTTPS, refreshed on a period and refetched on an
// unknown `kid` (rate-limited, so a stream of made-up key ids cannot become a stream of
// requests to the issuer).
//
// No lookup ever waits for a fetch. Create() fetches once on the calling thread; after that,
// every fetch but Reload()'s runs on the source's own background thread. A lookup that finds a
// refresh due, or a `kid` it does not know while the rate limit allows a refetch, asks that
// thread to fetch and answers from the keys it has: an unknown `kid` is NOT_FOUND at once, even
// while a fetch that may bring it is in flight (the caller's next attempt, after the fetch, sees
// the new keys). So callers without a valid token cannot park the threads that serve calls.
//
// Thread safety: safe to use from any number of threads.
#ifndef SECRET_RESOLVER_SERVER_AUTH_URL_JWKS_SOURCE_H_
#define SECRET_RESOLVER_SERVER_AUTH_URL_JWKS_SOURCE_H_

#include <condition_variable>
#include <cstddef>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "resolver/clock.h"
#include "server/auth/http_fetcher.h"
#include "server/auth/jwks_source.h"

namespace secret_resolver {
namespace auth {

struct JwksUrlOptions {
  // An `https://` URL. Redirects are not followed.
  std::string url;
  // Required; not owned; must outlive the source.
  Clock* clock = nullptr;
  // A lookup starts a refresh once the last fetch is this old (after a success; after a
  // failure, once min_refetch_interval has passed).
  absl::Duration refresh_interval = absl::Minutes(5);
  // Rate limit: a lookup of an unknown `kid` starts a refetch only if no fetch started within
  // this interval.
  absl::Duration min_refetch_interval = absl::Seconds(30);
  absl::Duration connect_timeout = absl::Seconds(2);
  // Bound on one whole fetch, connect included.
  absl::Duration fetch_timeout = absl::Seconds(5);
  // A larger response is an error.
  size_t max_document_bytes = 1 << 20;
  // PEM bundle of trusted CAs; empty means the system's default trust store.
  std::string ca_file;
  // Allows `http://` URLs. For tests against a local server only; never set in production.
  bool allow_insecure_http = false;
  // How documents are fetched; not owned, must outlive the source. Null: libcurl
  // (CurlHttpFetcher), owned by the source.
  HttpFetcher* fetcher = nullptr;
  // Optional: told of each unusable key a loaded document held.
  SkippedKeyHook on_skipped_key;
  // Optional: told of every fetch's outcome, the first one (in Create) included.
  LoadHook on_load;
};

class UrlJwksSource : public JwksSource {
 public:
  // Validates the options (INVALID_ARGUMENT: no clock, a URL that is not https, or http without
  // allow_insecure_http), fetches once, and starts the background fetch thread. A failed first
  // fetch does not fail creation: the source starts empty (has_keys() false, stats().last_error
  // says why) and lookups retry, rate-limited, so the sidecar can start before its issuer is
  // reachable.
  static absl::StatusOr<std::unique_ptr<UrlJwksSource>> Create(JwksUrlOptions options);

  // Stops the background thread, waiting for a fetch in flight (at most fetch_timeout).
  ~UrlJwksSource() override;
  UrlJwksSource(const UrlJwksSource&) = delete;
  UrlJwksSource& operator=(const UrlJwksSource&) = delete;

  // Never blocks on a fetch. Starts a background refresh when one is due, and a background
  // refetch for an unknown `kid` at most once per min_refetch_interval; answers from the
  // current keys meanwhile. NOT_FOUND if no current key has that id.
  absl::StatusOr<std::shared_ptr<const VerificationKey>> Lookup(absl::string_view kid) override;
  // Never nullopt: starts a background refresh when one is due and answers from the current
  // keys.
  std::optional<bool> IsPublishedWithoutLoading(const VerificationKey& key) override;
  // Like IsPublishedWithoutLoading: starts a background refresh when one is due and answers from
  // the current keys; an unknown `kid` is left to Lookup(), which may ask for a refetch.
  std::shared_ptr<const VerificationKey> FindWithoutLoading(absl::string_view kid) override;
  // Fetches now, on the calling thread (after any fetch in flight), and returns its outcome.
  absl::Status Reload() override;
  std::shared_ptr<const KeySet> Current() const override;
  JwksSourceStats stats() const override;

  // Blocks until no background fetch is asked for or running. For tests and tools.
  void WaitUntilIdle();

 private:
  explicit UrlJwksSource(JwksUrlOptions options);

  // Fetches and parses the document with load_mu_ held, and swaps it in or records the failure.
  absl::Status FetchLocked();
  // Asks the background thread to fetch, unless it is already asked or fetching. Needs mu_.
  void RequestFetchLocked(absl::Time now);
  // Whether the periodic refresh is due at `now`, or, with `unknown_kid`, the rate-limited
  // refetch. A wall clock set back since the last fetch makes either due (once: the request
  // moves last_attempt_), rather than hold them back for as long as the step. Needs mu_.
  bool FetchDueLocked(absl::Time now, bool unknown_kid) const;
  // The background thread: fetches whenever asked, until stopping_.
  void Run();

  const JwksUrlOptions options_;
  std::unique_ptr<HttpFetcher> owned_fetcher_;  // when options_.fetcher is null
  HttpFetcher* const fetcher_;

  // Serializes fetches (the background thread's and Reload()'s). Taken before mu_, never while
  // holding it, and never by a lookup.
  std::mutex load_mu_;

  mutable std::mutex mu_;
  std::condition_variable wake_;  // with mu_: fetch_requested_ or stopping_ set, or idle
  std::shared_ptr<const KeySet> keys_;              // guarded by mu_
  JwksSourceStats stats_;                           // guarded by mu_
  absl::Time last_attempt_ = absl::InfinitePast();  // last fetch asked for; guarded by mu_
  absl::Time next_refresh_ = absl::InfinitePast();  // periodic refresh due; guarded by mu_
  bool fetch_requested_ = false;                    // guarded by mu_
  bool fetching_ = false;                           // the thread is fetching; guarded by mu_
  bool stopping_ = false;                           // guarded by mu_
  std::thread thread_;
};

}  // namespace auth
}  // namespace secret_resolver

#endif  // SECRET_RESOLVER_SERVER_AUTH_URL_JWKS_SOURCE_H_
