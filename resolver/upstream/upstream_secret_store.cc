#include "resolver/upstream/upstream_secret_store.h"

#include <algorithm>
#include <fstream>
#include <utility>

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <grpcpp/support/channel_arguments.h>
#include <openssl/crypto.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "decrypt/v1/decrypt.grpc.pb.h"
#include "decrypt/v1beta1/decrypt.grpc.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "resolver/secret_validation.h"

namespace secret_resolver {
namespace {

// Grafana's per-name error strings (contract.md section 2).
constexpr absl::string_view kNotFound = "not found";
constexpr absl::string_view kNotAuthorized = "not authorized";
constexpr absl::string_view kDecryptionFailed = "decryption failed";

absl::Status Unsupported(absl::string_view what) {
  return absl::UnimplementedError(
      absl::StrCat("store.upstream: ", what,
                   " is not possible: Grafana's decrypt API returns values by name only"));
}

// Checks that `path` can be read, so that a typo fails at start rather than at the first call.
absl::Status CheckReadable(absl::string_view field, const std::string& path) {
  if (path.empty()) return absl::OkStatus();
  std::ifstream in(path);
  if (!in.good()) {
    return absl::FailedPreconditionError(
        absl::StrCat("store.upstream.", field, ": cannot read \"", path, "\""));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> ChannelCredentials(
    const UpstreamStoreOptions& options) {
  if (options.ca_file.empty()) return grpc::InsecureChannelCredentials();
  const unsigned int interval = static_cast<unsigned int>(
      std::max<int64_t>(1, absl::ToInt64Seconds(options.reload_interval)));
  std::shared_ptr<grpc::experimental::FileWatcherCertificateProvider> provider =
      options.cert_file.empty()
          ? std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(options.ca_file,
                                                                                interval)
          : std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
                options.key_file, options.cert_file, options.ca_file, interval);
  grpc::experimental::TlsChannelCredentialsOptions tls;
  tls.set_certificate_provider(provider);
  tls.watch_root_certs();
  if (!options.cert_file.empty()) tls.watch_identity_key_cert_pairs();
  std::shared_ptr<grpc::ChannelCredentials> credentials =
      grpc::experimental::TlsCredentials(tls);
  if (credentials == nullptr) {
    return absl::FailedPreconditionError(
        "store.upstream: the TLS settings (ca_file, cert_file, key_file) were refused");
  }
  return credentials;
}

// A new channel to `options.address`, with `args`.
absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeChannel(const UpstreamStoreOptions& options,
                                                           grpc::ChannelArguments args) {
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> credentials =
      ChannelCredentials(options);
  if (!credentials.ok()) return credentials.status();
  if (!options.server_name.empty()) {
    args.SetString(GRPC_SSL_TARGET_NAME_OVERRIDE_ARG, options.server_name);
  }
  return grpc::CreateCustomChannel(options.address, *credentials, args);
}

// The status for a failed whole call (docs: the file comment of the header).
absl::Status WholeCallError(const grpc::Status& status) {
  switch (status.error_code()) {
    case grpc::StatusCode::UNAUTHENTICATED:
    case grpc::StatusCode::PERMISSION_DENIED:
      return absl::PermissionDeniedError(kNotAuthorized);
    default:
      return absl::UnavailableError(absl::StrCat("store.upstream: the call failed with gRPC code ",
                                                 static_cast<int>(status.error_code()), ": ",
                                                 status.error_message()));
  }
}

// Sends `request` with `token` to `stub` and returns the outcome for request.names(0): the value
// moved into a SecretBytes (the response's copy wiped), or the status per the header.
template <typename Stub, typename Request, typename Response>
absl::StatusOr<SecretBytes> Decrypt(Stub& stub, const Request& request, absl::string_view token,
                                    absl::Duration timeout, grpc::Status* call_status) {
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  context.AddMetadata("x-access-token", std::string(token));
  Response response;
  *call_status = stub.DecryptSecureValues(&context, request, &response);
  if (!call_status->ok()) return WholeCallError(*call_status);
  auto& values = *response.mutable_decrypted_values();
  auto it = values.find(request.names(0));
  absl::StatusOr<SecretBytes> out;
  if (it == values.end()) {
    out = absl::UnavailableError("store.upstream: the answer has no result for the name asked");
  } else if (it->second.has_value()) {
    out = SecretBytes(it->second.value());
  } else if (it->second.error_message() == kNotFound) {
    out = absl::NotFoundError(absl::StrCat("secret \"", request.names(0), "\" not found"));
  } else if (it->second.error_message() == kNotAuthorized) {
    out = absl::PermissionDeniedError(kNotAuthorized);
  } else if (it->second.error_message() == kDecryptionFailed) {
    out = absl::UnavailableError("store.upstream: the server answered \"decryption failed\"");
  } else {
    out = absl::UnavailableError("store.upstream: the server answered an unknown error");
  }
  for (auto& [name, result] : values) {
    if (result.has_value()) OPENSSL_cleanse(result.mutable_value()->data(), result.value().size());
  }
  return out;
}

}  // namespace

absl::StatusOr<std::unique_ptr<UpstreamSecretStore>> UpstreamSecretStore::Open(
    UpstreamStoreOptions options) {
  if (options.address.empty()) {
    return absl::InvalidArgumentError("store.upstream.address: is required");
  }
  if (options.ca_file.empty() && !options.allow_insecure) {
    return absl::InvalidArgumentError(
        "store.upstream.ca_file: is required unless allow_insecure is set");
  }
  if (options.cert_file.empty() != options.key_file.empty()) {
    return absl::InvalidArgumentError(
        "store.upstream: cert_file and key_file must be set together");
  }
  if (options.timeout <= absl::ZeroDuration() ||
      options.reload_interval <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "store.upstream: timeout and reload_interval must be positive");
  }
  for (absl::Status readable : {CheckReadable("ca_file", options.ca_file),
                                 CheckReadable("cert_file", options.cert_file),
                                 CheckReadable("key_file", options.key_file)}) {
    if (!readable.ok()) return readable;
  }
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel =
      MakeChannel(options, UpstreamChannelArguments());
  if (!channel.ok()) return channel.status();
  if (options.clock == nullptr) options.clock = Clock::Real();
  return std::unique_ptr<UpstreamSecretStore>(
      new UpstreamSecretStore(std::move(options), *std::move(channel)));
}

UpstreamSecretStore::UpstreamSecretStore(UpstreamStoreOptions options,
                                         std::shared_ptr<grpc::Channel> channel)
    : options_(std::move(options)), channel_(std::move(channel)) {}

absl::StatusOr<StoredSecret> UpstreamSecretStore::Get(absl::string_view, absl::string_view) {
  return Unsupported("a read without a caller's token (e.g. cache.prefetch)");
}

absl::StatusOr<StoredSecret> UpstreamSecretStore::GetVersion(absl::string_view,
                                                             absl::string_view, int64_t) {
  return Unsupported("reading a pinned version");
}

absl::StatusOr<SecretMetadata> UpstreamSecretStore::GetMetadata(absl::string_view,
                                                                absl::string_view) {
  return Unsupported("reading metadata (CheckReferences, WatchSecrets)");
}

absl::StatusOr<int64_t> UpstreamSecretStore::Put(const SecretWrite&) {
  return Unsupported("writing a secret");
}

absl::Status UpstreamSecretStore::Delete(absl::string_view, absl::string_view,
                                         absl::string_view) {
  return Unsupported("deleting a secret");
}

absl::StatusOr<std::vector<SecretMetadata>> UpstreamSecretStore::List(absl::string_view) {
  return Unsupported("listing secrets");
}

absl::Status UpstreamSecretStore::Watch(ChangeListener listener) {
  std::lock_guard<std::mutex> lock(mu_);
  listeners_.push_back(std::move(listener));
  if (!options_.change_stream || feed_ != nullptr) return absl::OkStatus();
  // The options were checked by Open, so a channel can always be made; a failure to make one
  // later (a certificate file gone) leaves the feed retrying on a channel that cannot connect.
  auto channels = [this]() -> std::shared_ptr<grpc::Channel> {
    absl::StatusOr<std::shared_ptr<grpc::Channel>> channel =
        MakeChannel(options_, UpstreamChannelArguments());
    return channel.ok() ? *std::move(channel) : channel_;
  };
  auto fan_out = [this](const SecretChange& change) {
    std::vector<ChangeListener> listeners;
    {
      std::lock_guard<std::mutex> lock(mu_);
      listeners = listeners_;
    }
    for (const ChangeListener& each : listeners) each(change);
  };
  feed_ = std::make_unique<UpstreamChangeFeed>(std::move(channels), std::move(fan_out));
  return absl::OkStatus();
}

absl::Status UpstreamSecretStore::CheckHealth() {
  const absl::Time deadline = absl::Now() + options_.timeout;
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(deadline));
  grpc::health::v1::HealthCheckRequest request;
  grpc::health::v1::HealthCheckResponse response;
  const grpc::Status status =
      grpc::health::v1::Health::NewStub(channel_)->Check(&context, request, &response);
  if (status.error_code() == grpc::StatusCode::UNIMPLEMENTED) {
    if (channel_->WaitForConnected(absl::ToChronoTime(deadline))) return absl::OkStatus();
    return absl::UnavailableError("store.upstream: cannot connect to the server");
  }
  if (!status.ok()) {
    return absl::UnavailableError(absl::StrCat("store.upstream: health check failed: ",
                                               status.error_message()));
  }
  if (response.status() != grpc::health::v1::HealthCheckResponse::SERVING) {
    return absl::UnavailableError("store.upstream: the server reports it is not serving");
  }
  return absl::OkStatus();
}

void UpstreamSecretStore::NoteCredential(absl::string_view stack, absl::string_view identity,
                                         absl::string_view token, absl::Time expires) {
  if (token.empty() || identity.empty()) return;
  const std::string key = absl::StrCat(stack, absl::string_view("\0", 1), identity);
  std::lock_guard<std::mutex> lock(mu_);
  auto it = credentials_.find(key);
  if (it != credentials_.end()) {
    if (it->second.expires >= expires) return;
    it->second = Credential{SecretBytes(token), expires};  // the old token is wiped
    return;
  }
  if (credentials_.size() >= options_.max_credentials) MakeRoomLocked(options_.clock->Now());
  credentials_.emplace(key, Credential{SecretBytes(token), expires});
}

void UpstreamSecretStore::MakeRoomLocked(absl::Time now) {
  absl::erase_if(credentials_, [now](const auto& entry) { return entry.second.expires <= now; });
  if (credentials_.size() < options_.max_credentials || credentials_.empty()) return;
  auto first = std::min_element(
      credentials_.begin(), credentials_.end(),
      [](const auto& a, const auto& b) { return a.second.expires < b.second.expires; });
  credentials_.erase(first);
}

SecretBytes UpstreamSecretStore::TokenFor(absl::string_view stack, absl::string_view identity,
                                          absl::string_view token) {
  if (!token.empty()) return SecretBytes(token);
  const std::string key = absl::StrCat(stack, absl::string_view("\0", 1), identity);
  std::lock_guard<std::mutex> lock(mu_);
  auto it = credentials_.find(key);
  if (it == credentials_.end()) return SecretBytes();
  if (it->second.expires <= options_.clock->Now()) {
    credentials_.erase(it);
    return SecretBytes();
  }
  return it->second.token.Clone();
}

absl::StatusOr<StoredSecret> UpstreamSecretStore::GetFor(absl::string_view identity,
                                                         absl::string_view token,
                                                         absl::string_view stack,
                                                         absl::string_view name) {
  if (absl::Status valid = ValidateStack(stack); !valid.ok()) return valid;
  const SecretBytes credential = TokenFor(stack, identity, token);
  if (credential.empty()) {
    return absl::UnavailableError(
        "store.upstream: no unexpired access token of this caller to present");
  }
  grpc::Status call_status;
  absl::StatusOr<SecretBytes> value;
  if (!use_v1beta1_.load(std::memory_order_relaxed)) {
    decryptv1::SecureValueDecryptRequest request;
    request.set_namespace_(std::string(stack));
    request.add_names(std::string(name));
    auto stub = decryptv1::SecureValueDecrypter::NewStub(channel_);
    value = Decrypt<decryptv1::SecureValueDecrypter::Stub, decryptv1::SecureValueDecryptRequest,
                    decryptv1::SecureValueDecryptResponseCollection>(
        *stub, request, credential.reveal(), options_.timeout, &call_status);
    if (call_status.error_code() == grpc::StatusCode::UNIMPLEMENTED) {
      use_v1beta1_.store(true, std::memory_order_relaxed);
    }
  }
  if (use_v1beta1_.load(std::memory_order_relaxed)) {
    decryptv1beta1::SecureValueDecryptRequest request;
    request.set_namespace_(std::string(stack));
    request.add_names(std::string(name));
    auto stub = decryptv1beta1::SecureValueDecrypter::NewStub(channel_);
    value = Decrypt<decryptv1beta1::SecureValueDecrypter::Stub,
                    decryptv1beta1::SecureValueDecryptRequest,
                    decryptv1beta1::SecureValueDecryptResponseCollection>(
        *stub, request, credential.reveal(), options_.timeout, &call_status);
  }
  if (!value.ok()) return value.status();
  StoredSecret secret;
  secret.stack = std::string(stack);
  secret.name = std::string(name);
  secret.version = 0;
  secret.decrypters = {std::string(identity)};
  secret.value = *std::move(value);
  return secret;
}

}  // namespace secret_resolver
