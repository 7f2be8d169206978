#include "server/sidecar_options.h"

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gtest/gtest.h"
#include "server/config.h"

namespace secret_resolver {
namespace {

using secretresolver::config::v1::Config;

// Every field the options read, set to a value that is not its default.
constexpr char kYaml[] = R"(
listen:
  unix_socket: /tmp/sr.sock
store:
  sqlite:
    path: /tmp/sr.db
  kek:
    env: SR_KEK
auth:
  issuer: https://issuer.test
  audience: secret-resolver
  audiences: [secret.grafana.app, other]
  algorithms: [ES256, EdDSA]
  jwks_file: /tmp/jwks.json
  allow_missing_typ: true
  allow_wildcard_namespace: true
  leeway: 7s
  token_cache_size: 77
  max_token_lifetime: 2h
cache:
  ttl: 11s
  refresh_ahead: 3s
  refresh_jitter: 1.5s
  negative_ttl: 2s
  max_stale: 60s
  unconfirmed_grace: 750ms
  stale_after: 80ms
  max_bytes: 12345
  per_stack_share: 0.5
  prefetch:
    - stack: stacks-1
      names: [a, b/c]
    - stack: stack-2
      names: [d]
limits:
  max_refs: 9
  max_message_bytes: 4096
  max_redact_streams: 3
  max_watch_streams: 12
  worker_threads: 5
  max_queued_calls: 77
  max_concurrent_fetches: 5
  per_stack_rate: 2.5
  per_stack_burst: 6
  max_concurrent_streams: 7
  max_connection_idle: 1.5s
  max_connection_age: 2s
  max_connection_age_grace: 250ms
  handshake_timeout: 3s
  keepalive_time: 4s
  keepalive_timeout: 500ms
  grpc_memory_bytes: 8388608
logging:
  level: warning
  audit: false
admin:
  address: 127.0.0.2:0
  allow_non_loopback: true
redaction:
  fingerprint_key_file: /tmp/fp.key
)";

Config TestConfig() {
  absl::StatusOr<Config> config = ParseConfigYaml(kYaml, "test.yaml");
  EXPECT_TRUE(config.ok()) << config.status();
  ApplyDefaults(&*config);
  EXPECT_TRUE(ValidateConfig(*config).ok()) << ValidateConfig(*config);
  return *config;
}

TEST(SidecarOptionsTest, ToDurationKeepsNanoseconds) {
  google::protobuf::Duration d;
  d.set_seconds(2);
  d.set_nanos(500);
  EXPECT_EQ(ToDuration(d), absl::Seconds(2) + absl::Nanoseconds(500));
}

TEST(SidecarOptionsTest, KekSource) {
  const KekSource source = KekSourceFromConfig(TestConfig());
  EXPECT_EQ(source.file, "");
  EXPECT_EQ(source.env, "SR_KEK");
  EXPECT_EQ(source.env_after_reading, AfterReading::kClear);
}

TEST(SidecarOptionsTest, CacheOptions) {
  const CacheOptions options = CacheOptionsFromConfig(TestConfig());
  EXPECT_EQ(options.ttl, absl::Seconds(11));
  EXPECT_EQ(options.refresh_ahead, absl::Seconds(3));
  EXPECT_EQ(options.refresh_jitter, absl::Milliseconds(1500));
  EXPECT_EQ(options.negative_ttl, absl::Seconds(2));
  EXPECT_EQ(options.max_stale, absl::Seconds(60));
  EXPECT_EQ(options.unconfirmed_grace, absl::Milliseconds(750));
  EXPECT_EQ(options.stale_after, absl::Milliseconds(80));
  EXPECT_EQ(options.max_bytes, 12345u);
  EXPECT_DOUBLE_EQ(options.per_stack_share, 0.5);
  EXPECT_EQ(options.max_concurrent_fetches, 5u);
}

TEST(SidecarOptionsTest, PrefetchOptions) {
  const PrefetchOptions options = PrefetchOptionsFromConfig(TestConfig());
  ASSERT_EQ(options.secrets.size(), 3u);
  EXPECT_EQ(options.secrets[0].stack, "stacks-1");
  EXPECT_EQ(options.secrets[0].name, "a");
  EXPECT_EQ(options.secrets[1].name, "b/c");
  EXPECT_EQ(options.secrets[2].stack, "stacks-2");  // configured as stack-2: the canonical key
  EXPECT_EQ(options.secrets[2].name, "d");
  EXPECT_EQ(options.parallelism, 5u);
  EXPECT_EQ(options.keep_warm_interval, absl::Milliseconds(1500));  // half of refresh_ahead
}

TEST(SidecarOptionsTest, PrefetchWithoutRefreshAheadWarmsEveryHalfTtl) {
  Config config = TestConfig();
  config.mutable_cache()->mutable_refresh_ahead()->set_seconds(0);
  EXPECT_EQ(PrefetchOptionsFromConfig(config).keep_warm_interval, absl::Milliseconds(5500));
}

TEST(SidecarOptionsTest, RedactLimits) {
  const RedactLimits limits = RedactLimitsFromConfig(TestConfig());
  EXPECT_EQ(limits.max_streams, 3u);
  EXPECT_EQ(limits.max_message_bytes, 4096u);
}

TEST(SidecarOptionsTest, WatchLimits) {
  const WatchLimits limits = WatchLimitsFromConfig(TestConfig());
  EXPECT_EQ(limits.max_streams, 12u);
}

TEST(SidecarOptionsTest, WorkerPoolLimits) {
  const WorkerPoolLimits limits = WorkerPoolLimitsFromConfig(TestConfig());
  EXPECT_EQ(limits.threads, 5u);
  EXPECT_EQ(limits.max_queued, 77u);
}

TEST(SidecarOptionsTest, ChangeStreamOptions) {
  Config config = TestConfig();
  config.mutable_change_stream()->add_allowed_clients("sidecar.workflows.svc");
  config.mutable_change_stream()->add_allowed_clients("spiffe://cluster.local/ns/w/sa/r");
  config.mutable_change_stream()->set_max_streams(77);
  const ChangeStreamOptions options = ChangeStreamOptionsFromConfig(config);
  EXPECT_EQ(options.allowed_clients, (std::vector<std::string>{
                                         "sidecar.workflows.svc",
                                         "spiffe://cluster.local/ns/w/sa/r"}));
  EXPECT_EQ(options.max_streams, 77u);
  // Unset: no client, and the default bound.
  EXPECT_TRUE(ChangeStreamOptionsFromConfig(TestConfig()).allowed_clients.empty());
  EXPECT_EQ(ChangeStreamOptionsFromConfig(TestConfig()).max_streams, 1024u);
}

TEST(SidecarOptionsTest, ResolverOptions) {
  const ResolverOptions options = ResolverOptionsFromConfig(TestConfig());
  EXPECT_EQ(options.max_refs, 9u);
  EXPECT_TRUE(options.access.allow_wildcard_namespace);
}

TEST(SidecarOptionsTest, TokenVerifierOptions) {
  const auth::TokenVerifierOptions options = TokenVerifierOptionsFromConfig(TestConfig());
  EXPECT_EQ(options.issuer, "https://issuer.test");
  EXPECT_EQ(options.audiences,
            (std::vector<std::string>{"secret-resolver", "secret.grafana.app", "other"}));
  EXPECT_EQ(options.algorithms, (std::vector<std::string>{"ES256", "EdDSA"}));
  EXPECT_EQ(options.max_token_lifetime, absl::Hours(2));
  EXPECT_EQ(options.leeway, absl::Seconds(7));
  EXPECT_TRUE(options.allow_missing_typ);
  EXPECT_EQ(options.cache_capacity, 77u);
  EXPECT_NE(options.clock, nullptr);
}

TEST(SidecarOptionsTest, LoggerOptions) {
  const JsonLoggerOptions options = LoggerOptionsFromConfig(TestConfig());
  EXPECT_EQ(options.min_level, LogLevel::kWarning);
  EXPECT_FALSE(options.audit);
  EXPECT_GT(options.flush_interval, absl::ZeroDuration());
}

TEST(SidecarOptionsTest, AuditLinesAreOnUnlessTurnedOff) {
  Config config = TestConfig();
  config.mutable_logging()->clear_audit();
  EXPECT_TRUE(LoggerOptionsFromConfig(config).audit);
}

TEST(SidecarOptionsTest, RateLimiterOptions) {
  std::optional<RateLimiterOptions> options = RateLimiterOptionsFromConfig(TestConfig());
  ASSERT_TRUE(options.has_value());
  EXPECT_DOUBLE_EQ(options->rate, 2.5);
  EXPECT_DOUBLE_EQ(options->burst, 6);
  Config unlimited = TestConfig();
  unlimited.mutable_limits()->set_per_stack_rate(0);
  EXPECT_FALSE(RateLimiterOptionsFromConfig(unlimited).has_value());
}

TEST(SidecarOptionsTest, GrpcServerLimits) {
  const GrpcServerLimits limits = GrpcServerLimitsFromConfig(TestConfig());
  EXPECT_EQ(limits.max_message_bytes, 4096);
  EXPECT_EQ(limits.max_concurrent_streams, 7);
  EXPECT_EQ(limits.max_connection_idle_ms, 1500);
  EXPECT_EQ(limits.max_connection_age_ms, 2000);
  EXPECT_EQ(limits.max_connection_age_grace_ms, 250);
  EXPECT_EQ(limits.handshake_timeout_ms, 3000);
  EXPECT_EQ(limits.keepalive_time_ms, 4000);
  EXPECT_EQ(limits.keepalive_timeout_ms, 500);
  EXPECT_EQ(limits.memory_bytes, size_t{8} << 20);
}

TEST(SidecarOptionsTest, AdminOptions) {
  const AdminServerOptions options = AdminOptionsFromConfig(TestConfig());
  EXPECT_EQ(options.address, "127.0.0.2:0");
  EXPECT_TRUE(options.allow_non_loopback);
}

TEST(BoundTargetTest, ReplacesThePortAndKeepsTheHost) {
  EXPECT_EQ(BoundTarget("127.0.0.1:0", 4321).value_or(""), "127.0.0.1:4321");
  EXPECT_EQ(BoundTarget("localhost:80", 80).value_or(""), "localhost:80");
  EXPECT_EQ(BoundTarget("[::1]:0", 4321).value_or(""), "[::1]:4321");
  EXPECT_EQ(BoundTarget("::1:0", 1).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace secret_resolver
