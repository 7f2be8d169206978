// UpstreamSecretStore: a SecretStore that fetches values from a server of Grafana's
// SecureValueDecrypter/DecryptSecureValues API (Grafana's secrets service, or a central
// secret-resolver, which serves the same API): `store.upstream` (docs/contract.md).
//
// The upstream server decides who may decrypt, so reads are per caller (CallerScopedReads): the
// sidecar verifies the caller's token itself as for any store, and this store forwards it as
// `x-access-token` with the namespace and name. The answer for one name maps to our codes:
//   value                -> the value (a proto3 string, so UTF-8), version 0 (the API carries
//                           none), decrypters {the caller's identity}
//   "not found"          -> NOT_FOUND
//   "not authorized"     -> PERMISSION_DENIED "not authorized"
//   "decryption failed"  -> UNAVAILABLE: Grafana uses that string for any failure behind the
//                           API (its database or KMS down as well as a damaged ciphertext), and
//                           UNAVAILABLE lets the sidecar serve its last good value (stale) within
//                           max_stale
//   any other string     -> UNAVAILABLE
// and a failure of the whole call: UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED and any
// code not listed -> UNAVAILABLE; UNAUTHENTICATED or PERMISSION_DENIED -> PERMISSION_DENIED "not
// authorized". Calls go to decryptv1 first; once the server answers UNIMPLEMENTED there, to
// decryptv1beta1 from then on. Messages of UNAVAILABLE errors carry the upstream's own detail
// (never a token or a value): the sidecar logs them under a correlation id and shows callers a
// generic message (server/resolve_handler.h).
//
// Tokens: NoteCredential keeps, per (stack, identity), the verified token that expires last, so
// that refreshes made without a caller can present one; at most `max_credentials` pairs (the
// ones expiring first go when full), expired ones dropped when met, each wiped (SecretBytes)
// when it goes. No token is ever logged or put in a message.
//
// What the API cannot do: Get without a caller and GetMetadata, GetVersion, Put, Delete and List
// answer UNIMPLEMENTED with a message naming store.upstream. Watch reports the server's change
// stream when `change_stream` is set (a central secret-resolver), and nothing otherwise
// (freshness is by the cache TTL). CheckHealth asks the
// server's grpc.health.v1 Health/Check, or, if it serves none, waits for the channel to connect,
// within `timeout`.
//
// TLS: the server certificate must chain to ca_file (re-read every reload_interval, with the
// client certificate and key for mTLS, by gRPC's FileWatcherCertificateProvider); plaintext only
// with allow_insecure (config validation allows it for loopback and unix: addresses only).
//
// Thread safety: safe for concurrent use; calls block on the network (at most `timeout` each).
#ifndef SECRET_RESOLVER_RESOLVER_UPSTREAM_UPSTREAM_SECRET_STORE_H_
#define SECRET_RESOLVER_RESOLVER_UPSTREAM_UPSTREAM_SECRET_STORE_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <grpcpp/channel.h>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "resolver/clock.h"
#include "resolver/secret_bytes.h"
#include "resolver/secret_store.h"
#include "resolver/upstream/upstream_change_feed.h"

namespace secret_resolver {

struct UpstreamStoreOptions {
  // "host:port" or "unix:/path" of the SecureValueDecrypter server.
  std::string address;
  // PEM roots for the server certificate. Empty: plaintext, which needs allow_insecure.
  std::string ca_file;
  // Client certificate and key (PEM) for mTLS: both or neither.
  std::string cert_file;
  std::string key_file;
  // The TLS name to check instead of the address's host; empty: the host.
  std::string server_name;
  absl::Duration reload_interval = absl::Seconds(60);
  absl::Duration timeout = absl::Seconds(2);
  bool allow_insecure = false;
  // Subscribe to the server's SecretChanges/WatchChanges (a central secret-resolver) with an
  // UpstreamChangeFeed, so that Watch reports its changes; false: Watch reports nothing and
  // freshness is by the cache TTL (Grafana's secrets service serves no change stream).
  bool change_stream = false;
  // (stack, identity) pairs whose newest token is remembered.
  size_t max_credentials = 4096;
  // Judges token expiry. Never null.
  Clock* clock = Clock::Real();
};

class UpstreamSecretStore : public SecretStore, public CallerScopedReads {
 public:
  // Opens a channel to `options.address` (connecting lazily: a server that is down does not
  // stop the sidecar from starting). Errors: INVALID_ARGUMENT (no address; no ca_file without
  // allow_insecure; one of cert_file and key_file without the other; a timeout or
  // reload_interval that is not positive), FAILED_PRECONDITION (ca_file, cert_file or key_file
  // cannot be read, naming the file).
  static absl::StatusOr<std::unique_ptr<UpstreamSecretStore>> Open(UpstreamStoreOptions options);

  // Errors: UNIMPLEMENTED (a read needs a caller: see GetFor).
  absl::StatusOr<StoredSecret> Get(absl::string_view stack, absl::string_view name) override;
  // Errors: UNIMPLEMENTED (the API has no versions, metadata or writes).
  absl::StatusOr<StoredSecret> GetVersion(absl::string_view stack, absl::string_view name,
                                          int64_t version) override;
  absl::StatusOr<SecretMetadata> GetMetadata(absl::string_view stack,
                                             absl::string_view name) override;
  absl::StatusOr<int64_t> Put(const SecretWrite& write) override;
  absl::Status Delete(absl::string_view stack, absl::string_view name,
                      absl::string_view actor) override;
  absl::StatusOr<std::vector<SecretMetadata>> List(absl::string_view stack) override;
  // Adds `listener`. With change_stream, the first call starts one UpstreamChangeFeed (on new
  // channels made like this store's, with UpstreamChannelArguments()) whose changes, feed
  // losses and resyncs go to every listener; without it nothing is reported (freshness is by
  // the cache TTL). Always OK: a server that is down is retried by the feed.
  absl::Status Watch(ChangeListener listener) override;
  // OK, or UNAVAILABLE with the upstream's detail.
  absl::Status CheckHealth() override;
  CallerScopedReads* caller_scoped_reads() override { return this; }

  void NoteCredential(absl::string_view stack, absl::string_view identity,
                      absl::string_view token, absl::Time expires) override;
  // One DecryptSecureValues call for `name`, mapped as the file comment says. Errors: as Get
  // (INVALID_ARGUMENT for a stack or name no secret can have), PERMISSION_DENIED, UNAVAILABLE.
  absl::StatusOr<StoredSecret> GetFor(absl::string_view identity, absl::string_view token,
                                      absl::string_view stack, absl::string_view name) override;

 private:
  struct Credential {
    SecretBytes token;
    absl::Time expires;
  };

  UpstreamSecretStore(UpstreamStoreOptions options, std::shared_ptr<grpc::Channel> channel);

  // The token to present for (stack, identity): `token`, or the newest remembered unexpired one
  // (copied, so it stays valid however the map changes). Empty when there is none.
  SecretBytes TokenFor(absl::string_view stack, absl::string_view identity,
                       absl::string_view token);
  // Makes room for one more credential: drops expired ones, then the one expiring first.
  void MakeRoomLocked(absl::Time now);

  const UpstreamStoreOptions options_;
  const std::shared_ptr<grpc::Channel> channel_;
  // Set once decryptv1 answered UNIMPLEMENTED: decryptv1beta1 from then on.
  std::atomic<bool> use_v1beta1_{false};

  std::mutex mu_;
  // Keyed by stack, NUL, identity.
  absl::flat_hash_map<std::string, Credential> credentials_;
  std::vector<ChangeListener> listeners_;
  // Started by the first Watch with change_stream; declared last so that it stops (and stops
  // calling listeners_) before anything else goes.
  std::unique_ptr<UpstreamChangeFeed> feed_;
};

}  // namespace secret_resolver

#endif  // SECRET_RESOLVER_RESOLVER_UPSTREAM_UPSTREAM_SECRET_STORE_H_
