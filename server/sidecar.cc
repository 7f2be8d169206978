#include "server/sidecar.h"

#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <optional>
#include <utility>

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/resource_quota.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <openssl/crypto.h>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "resolver/crypto/key_file.h"
#include "resolver/crypto/key_ring.h"
#include "resolver/redaction.h"
#include "resolver/resolver.h"
#include "resolver/secret_cache.h"
#include "resolver/secret_prefetcher.h"
#include "resolver/store/kek_source.h"
#include "resolver/store/store_config.h"
#include "resolver/thread_pool.h"
#include "server/admin_server.h"
#include "server/auth/file_jwks_source.h"
#include "server/auth/jwks_source.h"
#include "server/auth/token_verifier.h"
#include "server/auth/url_jwks_source.h"
#include "server/jwks_health.h"
#include "server/call_reporting.h"
#include "server/change_stream.h"
#include "server/grpc_services.h"
#include "server/json_log.h"
#include "server/library_logs.h"
#include "server/memory_trimmer.h"
#include "server/metrics.h"
#include "server/rate_limiter.h"
#include "server/resolve_handler.h"
#include "server/sidecar_metrics.h"
#include "server/sidecar_options.h"
#include "server/store_config.h"
#include "server/store_health.h"
#include "server/unix_socket.h"
#include "server/watch_call.h"

namespace secret_resolver {
namespace {

using secretresolver::config::v1::Config;

// A base64 key file holds one line; anything larger is not a fingerprint key file.
constexpr size_t kMaxFingerprintKeyFileBytes = 4096;

// How long Shutdown waits for the logger's buffered lines (the output may be blocked).
constexpr absl::Duration kShutdownFlushBound = absl::Milliseconds(100);

// Reads a base64 key from a file that only its owner may read (ReadKeyFile: no symbolic link, a
// regular file, no group or other access), or from an environment variable, which is then
// wiped and removed.
absl::StatusOr<SecretBytes> LoadFingerprintKey(const secretresolver::config::v1::Redaction& r) {
  std::optional<SecretBytes> encoded;
  std::string source;
  if (!r.fingerprint_key_file().empty()) {
    source = r.fingerprint_key_file();
    absl::StatusOr<SecretBytes> read =
        ReadKeyFile(source, "fingerprint key file", kMaxFingerprintKeyFileBytes);
    if (!read.ok()) {
      return absl::Status(read.status().code(), absl::StrCat("redaction.fingerprint_key_file: ",
                                                             read.status().message()));
    }
    encoded = *std::move(read);
  } else {
    source = absl::StrCat("$", r.fingerprint_key_env());
    encoded = ReadKeyFromEnv(r.fingerprint_key_env(), AfterReading::kClear);
    if (!encoded.has_value()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "redaction.fingerprint_key_env: environment variable ", source, " is not set"));
    }
  }
  std::string decoded;
  const bool ok = absl::Base64Unescape(absl::StripAsciiWhitespace(encoded->reveal()), &decoded);
  SecretBytes key(decoded);
  OPENSSL_cleanse(decoded.data(), decoded.size());
  if (!ok) {
    return absl::FailedPreconditionError(
        absl::StrCat("fingerprint key in ", source, " is not valid base64"));
  }
  return key;
}

std::shared_ptr<grpc::ServerCredentials> TcpCredentials(const Config& config) {
  const auto& tls = config.listen().tls();
  if (tls.cert_file().empty()) return grpc::InsecureServerCredentials();
  // The provider re-reads the files every refresh interval, so rotated certificates are picked
  // up without a restart.
  auto provider = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
      tls.key_file(), tls.cert_file(), tls.client_ca_file(),
      static_cast<unsigned>(absl::ToInt64Seconds(ToDuration(tls.reload_interval()))));
  grpc::experimental::TlsServerCredentialsOptions options(provider);
  options.watch_identity_key_cert_pairs();
  if (!tls.client_ca_file().empty()) {
    options.watch_root_certs();
    options.set_cert_request_type(
        tls.require_client_cert()
            ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
            : GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY);
  }
  return grpc::experimental::TlsServerCredentials(options);
}

// The cache that store change notifications invalidate, and the store health they report to.
// The store's watch thread may run until the store is destroyed, which is after both: Detach()
// cuts the links first.
class InvalidationTarget {
 public:
  // `changes` may be null (no change stream served).
  InvalidationTarget(SecretCache* cache, StoreHealth* health, WatchHub* watch, ChangeHub* changes)
      : cache_(cache), health_(health), watch_(watch), changes_(changes) {}

  void Apply(const SecretChange& change) {
    std::lock_guard<std::mutex> lock(mu_);
    if (cache_ == nullptr) return;
    if (change.feed_lost) {
      // From now on a revocation may go unannounced: values past the grace are re-read.
      cache_->SetChangeFeedHealthy(false);
    } else if (change.resync) {
      // What the feed missed is dropped before the cache trusts it again.
      cache_->InvalidateAll();
      cache_->SetChangeFeedHealthy(true);
    } else {
      cache_->Invalidate(change.stack, change.name);
    }
    health_->OnChange(change);
    watch_->OnChange(change);  // queued: WatchSecrets streams hear of it off this thread
    // After this cache dropped the secret, so a sidecar that refetches on the event reads the
    // new value, not this cache's old one.
    if (changes_ != nullptr) changes_->OnChange(change);
  }

  void Detach() {
    std::lock_guard<std::mutex> lock(mu_);
    cache_ = nullptr;
    health_ = nullptr;
    watch_ = nullptr;
    changes_ = nullptr;
  }

 private:
  std::mutex mu_;
  SecretCache* cache_;
  StoreHealth* health_;
  WatchHub* watch_;
  ChangeHub* changes_;
};

// What one client may hold of the server (docs/deploy.md, "Connection limits"). gRPC 1.51
// has no bound on the number of connections: they are bounded by the memory quota (each one's
// buffers and calls are charged to it; near it gRPC shrinks windows, then closes connections),
// the idle timeout and the process's file-descriptor limit.
void ApplyLimits(const GrpcServerLimits& limits, grpc::ResourceQuota* quota,
                 grpc::ServerBuilder* builder) {
  builder->SetMaxReceiveMessageSize(limits.max_message_bytes);
  builder->SetResourceQuota(*quota);
  builder->AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, limits.max_concurrent_streams);
  builder->AddChannelArgument(GRPC_ARG_MAX_CONNECTION_IDLE_MS, limits.max_connection_idle_ms);
  builder->AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_MS, limits.max_connection_age_ms);
  builder->AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_GRACE_MS,
                              limits.max_connection_age_grace_ms);
  builder->AddChannelArgument(GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS, limits.handshake_timeout_ms);
  builder->AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, limits.keepalive_time_ms);
  builder->AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, limits.keepalive_timeout_ms);
}

// CPUs in this process's affinity mask (a container's cpuset), at least 1.
int UsableCpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) != 0) return 1;
  return std::max(1, CPU_COUNT(&set));
}

}  // namespace

// Declared in the order they are built; Shutdown() tears them down in reverse. Each step of
// Start is a method that builds its parts from `config` and the parts before it.
struct Sidecar::Parts {
  // When Start fails part way, the store (and its watch thread) outlives the cache for a
  // moment during destruction: cut the link first.
  ~Parts() {
    if (invalidation != nullptr) invalidation->Detach();
  }

  absl::Status LoadRedactionTokens();
  void StartLogging();
  absl::Status BuildCache();
  absl::Status BuildTokenVerifier();
  void BuildServices();
  absl::Status StartHealthServer();
  absl::Status StartServer();
  absl::Status StartAdmin();
  void StartMemoryTrimmer();
  void StartPrefetch();

  Config config;
  std::unique_ptr<MetricsRegistry> metrics;
  std::unique_ptr<SidecarMetrics> sidecar_metrics;
  std::shared_ptr<JsonLogger> log;  // shared with main's shutdown watchdog
  std::unique_ptr<LibraryLogRoute> library_logs;  // unrouted before the logger goes
  KeyRing key_ring;
  std::unique_ptr<SecretStore> store;
  std::unique_ptr<RedactionTokens> tokens;
  std::unique_ptr<StoreHealth> store_health;
  std::unique_ptr<SecretCache> cache;
  // Fed by `invalidation`; outlives the services, whose WatchSecrets streams it feeds.
  std::unique_ptr<WatchHub> watch_hub;
  // Null unless change_stream.allowed_clients is set; fed and used like watch_hub.
  std::unique_ptr<ChangeHub> change_hub;
  std::shared_ptr<InvalidationTarget> invalidation;
  std::unique_ptr<Resolver> resolver;
  std::unique_ptr<JwksHealth> jwks_health;
  std::unique_ptr<auth::JwksSource> jwks;
  std::unique_ptr<auth::TokenVerifier> verifier;
  std::unique_ptr<RateLimiter> rate_limiter;
  std::unique_ptr<CallReporter> reporter;
  std::unique_ptr<ResolveHandler> handler;
  std::unique_ptr<ThreadPool> pool;
  std::unique_ptr<GrpcServices> services;
  std::unique_ptr<grpc::ResourceQuota> quota;  // shared by both servers
  std::unique_ptr<grpc::Server> server;
  std::unique_ptr<grpc::Server> health_server;
  std::unique_ptr<AdminServer> admin;
  std::unique_ptr<MemoryTrimmer> trimmer;
  // Null without cache.prefetch. Stopped first on shutdown: it uses the cache and the servers.
  std::unique_ptr<SecretPrefetcher> prefetcher;
  std::atomic<bool> prefetch_done{false};  // read by the admin server's readiness check
  std::string unix_path;
  std::string unix_target;
  std::string tcp_target;
  std::string health_target;
  std::string admin_target;
  bool shut_down = false;
  bool abandoned = false;  // Shutdown left workers blocked: the parts must outlive them
};

absl::StatusOr<std::unique_ptr<Sidecar>> Sidecar::Start(const Config& config) {
  auto parts = std::make_unique<Parts>();
  Parts& p = *parts;
  p.config = config;

  const StoreConfig store_config = StoreConfigFromProto(config.store());
  if (StoreNeedsKeys(store_config)) {
    absl::StatusOr<KeyRing> key_ring = LoadKeyRing(KekSourceFromConfig(config));
    if (!key_ring.ok()) return key_ring.status();
    p.key_ring = *std::move(key_ring);
  }

  absl::StatusOr<std::unique_ptr<SecretStore>> store = OpenStore(store_config, &p.key_ring);
  if (!store.ok()) return store.status();
  p.store = *std::move(store);

  if (absl::Status s = p.LoadRedactionTokens(); !s.ok()) return s;
  p.StartLogging();
  if (absl::Status s = p.BuildCache(); !s.ok()) return s;
  ResolverOptions resolver_options = ResolverOptionsFromConfig(config);
  resolver_options.store = p.store.get();  // CheckReferences reads metadata
  p.resolver = std::make_unique<Resolver>(p.cache.get(), p.tokens.get(),
                                          std::move(resolver_options));
  if (absl::Status s = p.BuildTokenVerifier(); !s.ok()) return s;
  p.BuildServices();
  if (absl::Status s = p.StartHealthServer(); !s.ok()) return s;
  if (absl::Status s = p.StartServer(); !s.ok()) return s;
  if (absl::Status s = p.StartAdmin(); !s.ok()) return s;
  p.StartMemoryTrimmer();
  p.StartPrefetch();
  return absl::WrapUnique(new Sidecar(std::move(parts)));
}

absl::Status Sidecar::Parts::LoadRedactionTokens() {
  absl::StatusOr<SecretBytes> fingerprint_key = LoadFingerprintKey(config.redaction());
  if (!fingerprint_key.ok()) return fingerprint_key.status();
  absl::StatusOr<std::unique_ptr<RedactionTokens>> created = RedactionTokens::Create(
      config.redaction().placeholder_format(), *std::move(fingerprint_key));
  if (!created.ok()) return created.status();
  tokens = *std::move(created);
  return absl::OkStatus();
}

// The metrics registry, and the JSON logger that gRPC's and protobuf's own messages go to.
void Sidecar::Parts::StartLogging() {
  metrics = std::make_unique<MetricsRegistry>();
  sidecar_metrics = std::make_unique<SidecarMetrics>(metrics.get());
  log = std::make_unique<JsonLogger>(stderr, LoggerOptionsFromConfig(config));
  library_logs = std::make_unique<LibraryLogRoute>(log.get());
}

// The cache, fed by the store's change notifications, which also tell the store's health.
absl::Status Sidecar::Parts::BuildCache() {
  store_health = std::make_unique<StoreHealth>(store.get(), log.get(), sidecar_metrics.get());
  CacheOptions options = CacheOptionsFromConfig(config);
  options.fingerprint = Resolver::FingerprintFunction(tokens.get());
  SidecarMetrics* m = sidecar_metrics.get();
  options.on_store_fetch = [m](absl::Duration latency, absl::StatusCode code) {
    m->RecordStoreFetch(latency, code);
  };
  cache = std::make_unique<SecretCache>(store.get(), std::move(options));
  sidecar_metrics->AddCacheGauges(cache.get());
  watch_hub = std::make_unique<WatchHub>(store.get(), WatchLimitsFromConfig(config));
  if (!config.change_stream().allowed_clients().empty()) {
    change_hub = std::make_unique<ChangeHub>(store.get(), ChangeStreamOptionsFromConfig(config));
    ChangeHub* hub = change_hub.get();
    sidecar_metrics->AddChangeStreamGauges(
        [hub] { return static_cast<double>(hub->active_streams()); },
        [hub] { return static_cast<double>(hub->events_sent()); });
  }
  invalidation = std::make_shared<InvalidationTarget>(cache.get(), store_health.get(),
                                                      watch_hub.get(), change_hub.get());
  return store->Watch(
      [target = invalidation](const SecretChange& change) { target->Apply(change); });
}

// The signing keys (a JWKS file or URL) and the verifier that checks tokens against them.
absl::Status Sidecar::Parts::BuildTokenVerifier() {
  const auto& a = config.auth();
  JsonLogger* logger = log.get();
  const auth::SkippedKeyHook skipped_key = [logger](absl::string_view reason) {
    logger->Warning("skipped an unusable token signing key", {LogField("reason", reason)});
  };
  jwks_health = std::make_unique<JwksHealth>(sidecar_metrics.get(), log.get());
  JwksHealth* health = jwks_health.get();
  const auth::LoadHook on_load = [health](const auth::JwksLoad& load) { health->Record(load); };
  absl::StatusOr<std::unique_ptr<auth::JwksSource>> source;
  if (!a.jwks_file().empty()) {
    auth::JwksFileOptions options;
    options.path = a.jwks_file();
    options.clock = Clock::Real();
    options.on_skipped_key = skipped_key;
    options.on_load = on_load;
    source = auth::FileJwksSource::Create(options);
  } else {
    auth::JwksUrlOptions options;
    options.url = a.jwks_url();
    options.clock = Clock::Real();
    options.refresh_interval = ToDuration(a.jwks_refresh_interval());
    options.on_skipped_key = skipped_key;
    options.on_load = on_load;
    source = auth::UrlJwksSource::Create(options);
  }
  if (!source.ok()) return source.status();
  jwks = *std::move(source);
  auth::JwksSource* keys = jwks.get();
  sidecar_metrics->AddJwksGauges(
      [health] { return health->up() ? 1.0 : 0.0; },
      [keys] { return static_cast<double>(keys->Current()->size()); },
      [health] { return static_cast<double>(health->skipped_keys()); });
  absl::StatusOr<std::unique_ptr<auth::TokenVerifier>> created =
      auth::TokenVerifier::Create(TokenVerifierOptionsFromConfig(config), jwks.get());
  if (!created.ok()) return created.status();
  verifier = *std::move(created);
  auth::TokenVerifier* v = verifier.get();
  sidecar_metrics->AddTokenCacheGauge([v] { return static_cast<double>(v->cache_size()); });
  return absl::OkStatus();
}

// The rate limiter, the handler with its reporting hooks, the worker pool and the services.
void Sidecar::Parts::BuildServices() {
  if (std::optional<RateLimiterOptions> limits = RateLimiterOptionsFromConfig(config)) {
    rate_limiter = std::make_unique<RateLimiter>(*limits);
  }
  ResolveHandlerOptions options;
  options.rate_limiter = rate_limiter.get();
  options.max_decrypt_names = config.limits().max_decrypt_names();
  options.access = ResolverOptionsFromConfig(config).access;
  reporter = std::make_unique<CallReporter>(sidecar_metrics.get(), log.get(),
                                            CallReporterOptions());
  options.hooks = reporter->Hooks();
  handler = std::make_unique<ResolveHandler>(verifier.get(), resolver.get(), std::move(options));
  const WorkerPoolLimits workers = WorkerPoolLimitsFromConfig(config);
  pool = std::make_unique<ThreadPool>(workers.threads, workers.max_queued);
  SidecarMetrics* m = sidecar_metrics.get();
  const CallObserver observer = [m](absl::string_view method, absl::StatusCode code,
                                    absl::Duration latency) {
    m->RecordCall(method, code, latency);
  };
  // One completion-queue thread per CPU this process may run on (the affinity mask, not the
  // host's core count), at most 4: they poll and answer warm calls themselves.
  services = std::make_unique<GrpcServices>(handler.get(), pool.get(), observer,
                                            std::min(4, UsableCpus()),
                                            RedactLimitsFromConfig(config), watch_hub.get(),
                                            change_hub.get(), log.get());
}

// A server of its own for the health service, so that the probe port reaches nothing else.
// Built before the reflection plugin is registered: the plugin, once registered, joins every
// server built afterwards.
absl::Status Sidecar::Parts::StartHealthServer() {
  grpc::EnableDefaultHealthCheckService(true);
  quota = std::make_unique<grpc::ResourceQuota>("secret-resolver");
  quota->Resize(GrpcServerLimitsFromConfig(config).memory_bytes);
  const std::string& address = config.listen().health_address();
  if (address.empty()) return absl::OkStatus();
  grpc::ServerBuilder builder;
  ApplyLimits(GrpcServerLimitsFromConfig(config), quota.get(), &builder);
  int port = 0;
  builder.AddListeningPort(address, grpc::InsecureServerCredentials(), &port);
  health_server = builder.BuildAndStart();
  if (health_server == nullptr || port == 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("listen.health_address: cannot listen on ", address));
  }
  absl::StatusOr<std::string> target = BoundTarget(address, port);
  if (!target.ok()) return target.status();
  health_target = *std::move(target);
  return absl::OkStatus();
}

// The services' server: the Unix socket (bound with its configured mode) and the TCP listener.
absl::Status Sidecar::Parts::StartServer() {
  const auto& listen = config.listen();
  if (config.reflection()) grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  ApplyLimits(GrpcServerLimitsFromConfig(config), quota.get(), &builder);
  unsigned socket_mode = 0;
  if (!listen.unix_socket().empty()) {
    absl::StatusOr<unsigned> mode = ParseSocketMode(listen.unix_socket_mode());
    if (!mode.ok()) return mode.status();
    socket_mode = *mode;
    if (absl::Status s = PrepareUnixSocketPath(listen.unix_socket()); !s.ok()) return s;
    unix_path = listen.unix_socket();
    unix_target = absl::StrCat("unix:", listen.unix_socket());
    builder.AddListeningPort(unix_target, grpc::InsecureServerCredentials());
  }
  int tcp_port = 0;
  if (!listen.tcp_address().empty()) {
    builder.AddListeningPort(listen.tcp_address(), TcpCredentials(config), &tcp_port);
  }
  services->Register(&builder);
  {
    // BuildAndStart binds the socket: under this umask it is created with the configured mode,
    // never wider. No other part creates files while it runs.
    std::optional<SocketModeScope> umask_for_bind;
    if (!unix_path.empty()) umask_for_bind.emplace(socket_mode);
    server = builder.BuildAndStart();
  }
  if (server == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot listen on ", unix_target, unix_target.empty() ? "" : " ",
                     listen.tcp_address()));
  }
  services->Start();
  if (!listen.tcp_address().empty()) {
    absl::StatusOr<std::string> target = BoundTarget(listen.tcp_address(), tcp_port);
    if (!target.ok()) return target.status();
    tcp_target = *std::move(target);
  }
  if (!unix_path.empty()) {
    if (absl::Status s = SetSocketMode(unix_path, socket_mode); !s.ok()) return s;
  }
  return absl::OkStatus();
}

// The admin HTTP server (metrics, health, readiness), unless turned off.
absl::Status Sidecar::Parts::StartAdmin() {
  if (config.admin().has_enabled() && !config.admin().enabled()) return absl::OkStatus();
  AdminServerOptions options = AdminOptionsFromConfig(config);
  options.metrics = metrics.get();
  StoreHealth* health = store_health.get();
  auth::JwksSource* keys = jwks.get();
  // Ready once the store passes its health check (one cheap query) and signing keys are loaded.
  // A key source that stops loading keeps its previous keys and so stays ready (JwksHealth
  // reports the trouble): only having no usable key at all stops serving.
  options.readiness = [health, keys]() -> absl::Status {
    if (absl::Status probe = health->Probe(); !probe.ok()) return probe;
    if (!keys->has_keys()) return absl::UnavailableError("no token signing keys loaded");
    return absl::OkStatus();
  };
  options.readiness_notes = [health] { return health->Notes(); };
  // Warm start (cache.prefetch): not ready until the prefetch has tried every secret.
  if (config.cache().prefetch_size() > 0) {
    options.readiness = [store_and_keys = std::move(options.readiness),
                         done = &prefetch_done]() -> absl::Status {
      if (!done->load(std::memory_order_acquire)) {
        return absl::UnavailableError("cache.prefetch: still loading the prefetched secrets");
      }
      return store_and_keys();
    };
  }
  absl::StatusOr<std::unique_ptr<AdminServer>> started = AdminServer::Start(options);
  if (!started.ok()) return started.status();
  admin = *std::move(started);
  admin_target = admin->address();
  return absl::OkStatus();
}

// Gives the heap's free memory back after a burst (server/memory_trimmer.h).
void Sidecar::Parts::StartMemoryTrimmer() {
  MemoryTrimmerOptions options;
  JsonLogger* logger = log.get();
  options.on_trim = [logger](uint64_t before, uint64_t after) {
    logger->Debug("returned free heap memory to the system",
                  {LogField("resident_before_bytes", before),
                   LogField("resident_after_bytes", after)});
  };
  trimmer = std::make_unique<MemoryTrimmer>(std::move(options));
}

// Warm start (cache.prefetch): the health services say NOT_SERVING until the prefetcher has
// tried every secret, then SERVING (unless shutdown began: a health service that was shut down
// ignores the change).
void Sidecar::Parts::StartPrefetch() {
  if (config.cache().prefetch_size() == 0) return;
  std::vector<grpc::HealthCheckServiceInterface*> health;
  for (grpc::Server* s : {server.get(), health_server.get()}) {
    if (s != nullptr && s->GetHealthCheckService() != nullptr) {
      health.push_back(s->GetHealthCheckService());
    }
  }
  for (grpc::HealthCheckServiceInterface* h : health) h->SetServingStatus(false);
  PrefetchOptions options = PrefetchOptionsFromConfig(config);
  JsonLogger* logger = log.get();
  options.on_failure = [logger](const PrefetchTarget& target, const absl::Status& status) {
    logger->Warning("cache.prefetch: a secret did not load; it is fetched on first use",
                    {LogField("stack", target.stack), LogField("name", target.name),
                     LogField("error", status)});
  };
  options.on_done = [logger, health, done = &prefetch_done](size_t loaded, size_t failed,
                                                          absl::Duration took) {
    done->store(true, std::memory_order_release);
    logger->Info("cache.prefetch: done; ready",
                 {LogField("loaded", static_cast<int64_t>(loaded)),
                  LogField("failed", static_cast<int64_t>(failed)),
                  LogField("seconds", absl::ToDoubleSeconds(took))});
    for (grpc::HealthCheckServiceInterface* h : health) h->SetServingStatus(true);
  };
  prefetcher = std::make_unique<SecretPrefetcher>(cache.get(), std::move(options));
  prefetcher->Start();
}

Sidecar::Sidecar(std::unique_ptr<Parts> parts) : parts_(std::move(parts)) {}

Sidecar::~Sidecar() {
  Shutdown(absl::ZeroDuration());
  // Workers the shutdown gave up on may still be blocked in the parts they use.
  if (parts_->abandoned) (void)parts_.release();
}

bool Sidecar::Shutdown(absl::Duration grace) {
  Parts& p = *parts_;
  if (p.shut_down) return !p.abandoned;
  p.shut_down = true;
  const absl::Time deadline = absl::Now() + grace;
  p.prefetcher.reset();  // within about a second; before the health services and the cache go
  // Probes see NOT_SERVING from here on, while calls in flight drain.
  if (p.health_server != nullptr) p.health_server->GetHealthCheckService()->Shutdown();
  // While the server still runs: calls that arrive, and those queued for the pool, are
  // answered UNAVAILABLE (which clients retry); calls being worked on finish, until the grace.
  // gRPC's own Shutdown would cancel the calls it has received but not handed over, and those
  // still running at its deadline: by then there are none.
  p.services->BeginDrain();
  // The end of the grace is kept for closing (up to a quarter of it, at most 250 ms).
  const bool drained =
      p.services->AwaitDrained(deadline - std::min(grace / 4, absl::Milliseconds(250)));
  // A worker still busy at the grace is blocked (a hung store): its call is answered
  // UNAVAILABLE, and the worker and what it uses are left to the process's exit.
  if (!drained) p.services->AbandonWork();
  p.abandoned = !drained;
  // Stops listening and sends GOAWAY. Every call is answered already; gRPC's Shutdown then
  // waits for the clients to close their connections, which many never do, so it gets the
  // time for the last answers to reach the sockets (at most a second of what is left of the
  // grace) and closes the rest.
  const absl::Duration close_within =
      std::clamp(deadline - absl::Now(), absl::Milliseconds(100), absl::Seconds(1));
  p.server->Shutdown(std::chrono::system_clock::now() +
                     absl::ToChronoNanoseconds(close_within));
  if (drained) p.pool.reset();  // joins the idle workers
  p.services->Stop();  // then the queues, once every call's last event is through
  // Every call's lines are written before what follows can hold the exit past the grace.
  p.log->FlushFor(kShutdownFlushBound);
  if (p.health_server != nullptr) p.health_server->Shutdown();
  if (drained) {
    // After the drain: the admin server's Stop waits for a readiness check in progress, which
    // a hung store can hold until the store's own timeout.
    if (p.admin != nullptr) p.admin->Stop();
    p.server.reset();
    p.invalidation->Detach();
    p.cache.reset();  // wipes every cached value
  } else {
    p.cache->InvalidateAll();  // wipes every value no blocked worker holds
  }
  if (!p.unix_path.empty()) unlink(p.unix_path.c_str());
  p.log->Flush();
  return drained;
}

void Sidecar::Reload() {
  if (absl::Status reloaded = parts_->jwks->Reload(); !reloaded.ok()) {
    parts_->log->Warning("reloading the token signing keys failed; the previous keys stay",
                         {LogField("error", reloaded)});
  }
}

std::shared_ptr<JsonLogger> Sidecar::logger() const { return parts_->log; }

const std::string& Sidecar::unix_target() const { return parts_->unix_target; }
const std::string& Sidecar::tcp_target() const { return parts_->tcp_target; }
const std::string& Sidecar::admin_target() const { return parts_->admin_target; }
const std::string& Sidecar::health_target() const { return parts_->health_target; }

}  // namespace secret_resolver
