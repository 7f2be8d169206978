#include "server/config.h"

#include <cmath>
#include <functional>
#include <limits>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace secret_resolver {
namespace {

using secretresolver::config::v1::Config;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

// The smallest configuration that validates once defaults are applied.
constexpr char kMinimalYaml[] = R"(
listen:
  unix_socket: /tmp/sr.sock
store:
  sqlite:
    path: /tmp/sr.db
  kek:
    file: /tmp/kek
auth:
  issuer: https://issuer.test
  audience: secret-resolver
  jwks_file: /tmp/jwks.json
redaction:
  fingerprint_key_file: /tmp/fp.key
)";

Config MinimalConfig() {
  absl::StatusOr<Config> config = ParseConfigYaml(kMinimalYaml, "minimal.yaml");
  EXPECT_TRUE(config.ok()) << config.status();
  ApplyDefaults(&*config);
  return *config;
}

// Expects INVALID_ARGUMENT with `substring` in the message.
void ExpectInvalid(const absl::Status& status, const std::string& substring) {
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr(substring));
}

absl::Status ParseStatus(const std::string& yaml) {
  return ParseConfigYaml(yaml, "test.yaml").status();
}

// ---- The example file ----

TEST(ConfigTest, ExampleFileLoadsAndValidates) {
  absl::StatusOr<Config> config = LoadConfigFile("deploy/config/example.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  ApplyDefaults(&*config);
  EXPECT_TRUE(ValidateConfig(*config).ok()) << ValidateConfig(*config);

  EXPECT_EQ(config->listen().unix_socket(), "/run/secret-resolver/resolver.sock");
  EXPECT_EQ(config->listen().unix_socket_mode(), "0660");
  EXPECT_TRUE(config->listen().tcp_address().empty());
  EXPECT_FALSE(config->listen().has_tls());
  EXPECT_EQ(config->store().sqlite().path(), "/var/lib/secret-resolver/secrets.db");
  EXPECT_EQ(config->store().kek().file(), "/etc/secret-resolver/kek");
  EXPECT_EQ(config->auth().issuer(), "https://auth.example.internal");
  EXPECT_THAT(config->auth().audiences(),
              ::testing::ElementsAre("secret-resolver", "secret.grafana.app"));
  EXPECT_EQ(config->auth().max_token_lifetime().seconds(), 86400);
  EXPECT_EQ(config->limits().max_decrypt_names(), 1024u);
  EXPECT_EQ(config->auth().jwks_file(), "/etc/secret-resolver/jwks.json");
  EXPECT_EQ(config->redaction().fingerprint_key_file(), "/etc/secret-resolver/fingerprint.key");
  EXPECT_EQ(config->cache().ttl().seconds(), 300);
  EXPECT_EQ(config->cache().max_stale().seconds(), 900);  // written as "15m"
  EXPECT_EQ(config->cache().max_bytes(), uint64_t{64} << 20);
  EXPECT_DOUBLE_EQ(config->cache().per_stack_share(), 0.25);
  EXPECT_EQ(config->admin().address(), "127.0.0.1:9464");
  EXPECT_TRUE(config->admin().enabled());
  EXPECT_EQ(config->logging().level(), "info");
  EXPECT_TRUE(config->logging().audit());
  EXPECT_EQ(config->shutdown_grace().seconds(), 10);
}

TEST(ConfigTest, ExampleFileSpellsOutTheDefaults) {
  // Applying defaults to the example changes nothing but the one default it leaves commented
  // out (per_stack_burst), so the file documents the defaults truthfully.
  absl::StatusOr<Config> config = LoadConfigFile("deploy/config/example.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  Config with_defaults = *config;
  ApplyDefaults(&with_defaults);
  with_defaults.mutable_limits()->clear_per_stack_burst();
  EXPECT_EQ(with_defaults.SerializeAsString(), config->SerializeAsString())
      << with_defaults.DebugString();
}

TEST(ConfigTest, LoadMissingFileIsNotFound) {
  absl::StatusOr<Config> config = LoadConfigFile("/nonexistent/dir/config.yaml");
  EXPECT_EQ(config.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(config.status().message()), HasSubstr("/nonexistent/dir/config.yaml"));
}

// ---- Defaults ----

TEST(ConfigTest, EveryDefaultIsApplied) {
  Config config;
  config.mutable_listen()->mutable_tls();
  config.mutable_store()->mutable_postgres()->set_dsn_env("PGDSN");
  ApplyDefaults(&config);

  EXPECT_EQ(config.listen().unix_socket_mode(), "0660");
  EXPECT_EQ(config.listen().tls().reload_interval().seconds(), 60);
  EXPECT_EQ(config.store().postgres().max_connections(), 8u);
  EXPECT_EQ(config.store().postgres().connect_timeout().seconds(), 2);
  EXPECT_EQ(config.store().postgres().statement_timeout().seconds(), 2);
  EXPECT_EQ(config.auth().jwks_refresh_interval().seconds(), 300);
  EXPECT_EQ(config.auth().leeway().seconds(), 60);
  EXPECT_EQ(config.auth().token_cache_size(), 10000u);
  EXPECT_FALSE(config.auth().allow_missing_typ());
  EXPECT_FALSE(config.auth().allow_wildcard_namespace());
  EXPECT_EQ(config.cache().ttl().seconds(), 300);
  EXPECT_EQ(config.cache().refresh_ahead().seconds(), 30);
  EXPECT_EQ(config.cache().refresh_jitter().seconds(), 15);
  EXPECT_EQ(config.cache().negative_ttl().seconds(), 5);
  EXPECT_EQ(config.cache().max_stale().seconds(), 900);
  EXPECT_EQ(config.cache().unconfirmed_grace().seconds(), 2);
  EXPECT_EQ(config.cache().stale_after().seconds(), 0);
  EXPECT_EQ(config.cache().stale_after().nanos(), 250000000);
  EXPECT_EQ(config.cache().max_bytes(), 67108864u);
  EXPECT_DOUBLE_EQ(config.cache().per_stack_share(), 0.25);
  EXPECT_EQ(config.redaction().placeholder_format(), "***SECRET_REDACTED:{key}***");
  EXPECT_EQ(config.limits().max_refs(), 128u);
  EXPECT_EQ(config.limits().max_message_bytes(), 1048576u);
  EXPECT_EQ(config.limits().per_stack_rate(), 0);
  EXPECT_EQ(config.limits().per_stack_burst(), 1u);
  EXPECT_EQ(config.limits().max_concurrent_fetches(), 16u);
  EXPECT_EQ(config.limits().worker_threads(), 4u);
  EXPECT_EQ(config.limits().max_queued_calls(), 4096u);
  EXPECT_EQ(config.limits().max_concurrent_streams(), 100u);
  EXPECT_EQ(config.limits().max_connection_idle().seconds(), 300);
  EXPECT_EQ(config.limits().max_connection_age().seconds(), 600);
  EXPECT_EQ(config.limits().max_connection_age_grace().seconds(), 10);
  EXPECT_EQ(config.limits().handshake_timeout().seconds(), 10);
  EXPECT_EQ(config.limits().keepalive_time().seconds(), 60);
  EXPECT_EQ(config.limits().keepalive_timeout().seconds(), 20);
  EXPECT_EQ(config.limits().grpc_memory_bytes(), 67108864u);
  EXPECT_EQ(config.limits().max_redact_streams(), 64u);
  EXPECT_EQ(config.limits().max_watch_streams(), 256u);
  EXPECT_EQ(config.change_stream().allowed_clients_size(), 0);
  EXPECT_EQ(config.change_stream().max_streams(), 1024u);
  EXPECT_EQ(config.change_stream().heartbeat_interval().seconds(), 5);
  EXPECT_EQ(config.cache().prefetch_size(), 0);
  EXPECT_TRUE(config.admin().has_enabled());
  EXPECT_TRUE(config.admin().enabled());
  EXPECT_EQ(config.admin().address(), "127.0.0.1:9464");
  EXPECT_EQ(config.logging().level(), "info");
  EXPECT_TRUE(config.logging().has_audit());
  EXPECT_TRUE(config.logging().audit());
  EXPECT_FALSE(config.reflection());
  EXPECT_EQ(config.shutdown_grace().seconds(), 10);
}

TEST(ConfigTest, TheSqliteBusyTimeoutDefaultsBelowCallersDeadline) {
  Config config;
  config.mutable_store()->mutable_sqlite()->set_path("/a");
  ApplyDefaults(&config);
  EXPECT_EQ(config.store().sqlite().busy_timeout().seconds(), 2);
}

TEST(ConfigTest, UpstreamDefaultsApply) {
  Config config = MinimalConfig();
  config.mutable_store()->mutable_upstream()->set_address("central:8443");
  ApplyDefaults(&config);
  EXPECT_EQ(config.store().upstream().reload_interval().seconds(), 60);
  EXPECT_EQ(config.store().upstream().timeout().seconds(), 2);
  EXPECT_FALSE(config.store().upstream().allow_insecure());
  EXPECT_FALSE(config.store().upstream().change_stream());
}

TEST(ConfigTest, DefaultsDoNotCreateOptionalParts) {
  Config config;
  ApplyDefaults(&config);
  EXPECT_FALSE(config.listen().has_tls());
  EXPECT_EQ(config.store().backend_case(), secretresolver::config::v1::Store::BACKEND_NOT_SET);
}

TEST(ConfigTest, DefaultsKeepValuesThatAreSet) {
  absl::StatusOr<Config> config = ParseConfigYaml(R"(
cache: {ttl: 10s, per_stack_share: 1, max_bytes: 1024}
limits: {per_stack_rate: 2.5, max_refs: 7}
admin: {enabled: false}
logging: {level: debug, audit: false}
)",
                                                  "t.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  ApplyDefaults(&*config);
  EXPECT_EQ(config->cache().ttl().seconds(), 10);
  EXPECT_EQ(config->cache().per_stack_share(), 1);
  EXPECT_EQ(config->cache().max_bytes(), 1024u);
  EXPECT_EQ(config->limits().max_refs(), 7u);
  EXPECT_EQ(config->limits().per_stack_burst(), 3u);  // max(1, ceil(2.5))
  EXPECT_FALSE(config->admin().enabled());
  EXPECT_TRUE(config->admin().address().empty());  // off: no default address
  EXPECT_EQ(config->logging().level(), "debug");
  EXPECT_FALSE(config->logging().audit());

  Config again = *config;
  ApplyDefaults(&again);
  EXPECT_EQ(again.SerializeAsString(), config->SerializeAsString());  // idempotent
}

TEST(ConfigTest, RefreshAheadDefaultsScaleWithAShortTtl) {
  Config config = MinimalConfig();
  config.clear_cache();
  config.mutable_cache()->mutable_ttl()->set_seconds(2);
  ApplyDefaults(&config);
  // A tenth and a twentieth of the TTL, not 30s and 15s: every hit would refetch otherwise.
  EXPECT_EQ(config.cache().refresh_ahead().seconds(), 0);
  EXPECT_EQ(config.cache().refresh_ahead().nanos(), 200000000);
  EXPECT_EQ(config.cache().refresh_jitter().nanos(), 100000000);
  EXPECT_TRUE(ValidateConfig(config).ok()) << ValidateConfig(config);
}

TEST(ConfigTest, ExplicitZeroDurationsStayZeroWhereZeroMeansSomething) {
  absl::StatusOr<Config> config = ParseConfigYaml(R"(
auth: {leeway: 0s}
cache: {ttl: 0s, refresh_ahead: 0s, refresh_jitter: 0s, negative_ttl: 0s, max_stale: 0s,
        stale_after: 0s, unconfirmed_grace: 0s}
shutdown_grace: 0s
)",
                                                  "t.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  ApplyDefaults(&*config);
  EXPECT_EQ(config->auth().leeway().seconds(), 0);
  EXPECT_EQ(config->cache().refresh_ahead().seconds(), 0);
  EXPECT_EQ(config->cache().refresh_jitter().seconds(), 0);
  EXPECT_EQ(config->cache().negative_ttl().seconds(), 0);
  EXPECT_EQ(config->cache().max_stale().seconds(), 0);
  EXPECT_EQ(config->cache().stale_after().seconds(), 0);
  EXPECT_EQ(config->cache().stale_after().nanos(), 0);
  EXPECT_EQ(config->cache().unconfirmed_grace().seconds(), 0);
  EXPECT_EQ(config->cache().unconfirmed_grace().nanos(), 0);
  EXPECT_EQ(config->shutdown_grace().seconds(), 0);
  EXPECT_EQ(config->cache().ttl().seconds(), 300);  // a zero TTL would mean no cache: default
}

// ---- Parsing ----

TEST(ConfigTest, ScalarsAreConvertedByFieldType) {
  absl::StatusOr<Config> config = ParseConfigYaml(R"(
listen:
  unix_socket_mode: 0600        # unquoted: still the string "0600"
  tcp_address: 127.0.0.1:50051
cache:
  ttl: 1.5s
  refresh_ahead: 250ms
  max_stale: 1h30m
  negative_ttl: 0
  max_bytes: 18446744073709551615
  per_stack_share: 0.5
auth:
  allow_missing_typ: true
  token_cache_size: 4294967295
reflection: True
)",
                                                  "t.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->listen().unix_socket_mode(), "0600");
  EXPECT_EQ(config->listen().tcp_address(), "127.0.0.1:50051");
  EXPECT_EQ(config->cache().ttl().seconds(), 1);
  EXPECT_EQ(config->cache().ttl().nanos(), 500000000);
  EXPECT_EQ(config->cache().refresh_ahead().seconds(), 0);
  EXPECT_EQ(config->cache().refresh_ahead().nanos(), 250000000);
  EXPECT_EQ(config->cache().max_stale().seconds(), 5400);
  EXPECT_EQ(config->cache().negative_ttl().seconds(), 0);
  EXPECT_EQ(config->cache().max_bytes(), std::numeric_limits<uint64_t>::max());
  EXPECT_DOUBLE_EQ(config->cache().per_stack_share(), 0.5);
  EXPECT_TRUE(config->auth().allow_missing_typ());
  EXPECT_EQ(config->auth().token_cache_size(), 4294967295u);
  EXPECT_TRUE(config->reflection());
}

TEST(ConfigTest, JsonNamesAreAccepted) {
  absl::StatusOr<Config> config = ParseConfigYaml(R"(
listen: {unixSocket: /tmp/a.sock, unixSocketMode: "0600"}
auth: {jwksUrl: "https://keys.test/jwks", tokenCacheSize: 5}
shutdownGrace: 3s
)",
                                                  "t.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->listen().unix_socket(), "/tmp/a.sock");
  EXPECT_EQ(config->auth().jwks_url(), "https://keys.test/jwks");
  EXPECT_EQ(config->auth().token_cache_size(), 5u);
  EXPECT_EQ(config->shutdown_grace().seconds(), 3);
}

TEST(ConfigTest, NullLeavesFieldUnset) {
  absl::StatusOr<Config> config = ParseConfigYaml("cache:\n  ttl:\nlisten: ~\n", "t.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_FALSE(config->cache().has_ttl());
  EXPECT_FALSE(config->has_listen());
}

TEST(ConfigTest, EmptyDocumentIsEmptyConfig) {
  for (const char* text : {"", "# only a comment\n", "---\n"}) {
    absl::StatusOr<Config> config = ParseConfigYaml(text, "t.yaml");
    ASSERT_TRUE(config.ok()) << config.status();
    EXPECT_EQ(config->ByteSizeLong(), 0u);
  }
}

TEST(ConfigTest, UnknownTopLevelKeyNamesIt) {
  absl::Status status = ParseStatus("listn:\n  unix_socket: /tmp/x\n");
  ExpectInvalid(status, "test.yaml:1:1: listn: unknown field");
  EXPECT_THAT(std::string(status.message()), HasSubstr("listen"));  // lists the known fields
}

TEST(ConfigTest, UnknownNestedKeyNamesThePath) {
  ExpectInvalid(ParseStatus("cache:\n  ttl: 5s\n  ttlx: 5s\n"),
                "test.yaml:3:3: cache.ttlx: unknown field");
  ExpectInvalid(ParseStatus("listen:\n  tls:\n    cert: /a\n"), "listen.tls.cert: unknown field");
  ExpectInvalid(ParseStatus("store:\n  sqlite:\n    file: /a\n"),
                "store.sqlite.file: unknown field");
}

// A key that is not a plain name is shown quoted and escaped, like a value: the message stays
// printable ASCII, and "; " inside the key cannot pass for the separator between problems.
TEST(ConfigTest, UnknownKeyThatIsNotANameIsQuoted) {
  absl::Status status = ParseStatus("auth:\n  allow_f\xffx; ; y: 1\n");
  ExpectInvalid(status, "test.yaml:2:3: auth.\"allow_f\\xffx; ; y\": unknown field");
  for (char c : status.message()) EXPECT_TRUE(c >= 0x20 && c < 0x7f) << static_cast<int>(c);
  // A long key (a secret pasted in the wrong place) is cut like a value.
  const std::string secret = "sk_live_" + std::string(40, 'Q');
  status = ParseStatus("auth:\n  " + secret + ": 1\n");
  ExpectInvalid(status, "auth.\"sk_live_QQQQQQQQQQQQQQQQQQQQQQQQ...\": unknown field");
  EXPECT_THAT(std::string(status.message()), Not(HasSubstr(secret)));
}

// yaml-cpp's own message may hold a byte of the file ("unknown escape character: " and it).
TEST(ConfigTest, YamlErrorsAreEscaped) {
  absl::Status status = ParseStatus(std::string("a: \"\\\0\"\n", 8));
  ExpectInvalid(status, "invalid YAML: unknown escape character: \\x00");
  for (char c : status.message()) EXPECT_TRUE(c >= 0x20 && c < 0x7f) << static_cast<int>(c);
}

TEST(ConfigTest, WrongTypesNameThePath) {
  ExpectInvalid(ParseStatus("cache:\n  max_bytes: lots\n"),
                "test.yaml:2:14: cache.max_bytes: expected an integer from 0 to");
  ExpectInvalid(ParseStatus("auth: a-string\n"), "auth: expected a map of settings");
  ExpectInvalid(ParseStatus("listen:\n  unix_socket: [a, b]\n"),
                "listen.unix_socket: expected a string, got a list");
  ExpectInvalid(ParseStatus("admin:\n  enabled: yes\n"), "admin.enabled: expected true or false");
  ExpectInvalid(ParseStatus("limits:\n  max_refs: -1\n"), "limits.max_refs: expected an integer");
  ExpectInvalid(ParseStatus("limits:\n  max_refs: 4294967296\n"), "limits.max_refs");
  ExpectInvalid(ParseStatus("limits:\n  max_refs: 1.5\n"), "limits.max_refs");
  ExpectInvalid(ParseStatus("cache:\n  per_stack_share: half\n"),
                "cache.per_stack_share: expected a finite number");
  ExpectInvalid(ParseStatus("cache:\n  per_stack_share: .nan\n"), "cache.per_stack_share");
  ExpectInvalid(ParseStatus("cache:\n  ttl: {seconds: 5}\n"), "cache.ttl: expected a duration");
}

TEST(ConfigTest, BadDurationsNameThePath) {
  ExpectInvalid(ParseStatus("cache:\n  ttl: 5x\n"), "test.yaml:2:8: cache.ttl: invalid duration");
  ExpectInvalid(ParseStatus("cache:\n  ttl: 300\n"),
                "cache.ttl: invalid duration \"300\": a unit is required, e.g. \"300s\"");
  ExpectInvalid(ParseStatus("cache:\n  ttl: -5s\n"),
                "cache.ttl: duration \"-5s\" must not be negative");
  ExpectInvalid(ParseStatus("listen:\n  tls:\n    reload_interval: soon\n"),
                "listen.tls.reload_interval: invalid duration");
  ExpectInvalid(ParseStatus("shutdown_grace: inf\n"), "shutdown_grace: invalid duration");
}

TEST(ConfigTest, KeyGivenTwiceIsAnError) {
  ExpectInvalid(ParseStatus("listen:\n  unix_socket: /a\n  unixSocket: /b\n"),
                "listen.unixSocket: set twice (also as \"unix_socket\")");
}

TEST(ConfigTest, TwoMembersOfOneOneofAreAnError) {
  ExpectInvalid(ParseStatus("store:\n  sqlite: {path: /a}\n  postgres: {dsn_env: X}\n"),
                "store.postgres: cannot be set together with \"sqlite\"");
  ExpectInvalid(ParseStatus("auth:\n  jwks_file: /a\n  jwks_url: https://b\n"),
                "auth.jwks_url: cannot be set together with \"jwks_file\"");
}

TEST(ConfigTest, EveryProblemIsReported) {
  absl::Status status = ParseStatus("listn: 1\ncache:\n  ttl: x\n  bogus: 2\n");
  ExpectInvalid(status, "listn: unknown field");
  EXPECT_THAT(std::string(status.message()),
              AllOf(HasSubstr("cache.ttl: invalid duration"), HasSubstr("cache.bogus: unknown")));
}

TEST(ConfigTest, MalformedYamlGivesThePosition) {
  ExpectInvalid(ParseStatus("listen:\n  unix_socket: [unclosed\n"), "test.yaml:");
  ExpectInvalid(ParseStatus("a: b\n c: d\n  - e\n"), "invalid YAML");
}

TEST(ConfigTest, TopLevelMustBeAMap) {
  ExpectInvalid(ParseStatus("- listen\n- store\n"), "test.yaml:1:1: the top level must be a map");
  ExpectInvalid(ParseStatus("just a string\n"), "the top level must be a map");
}

TEST(ConfigTest, StringValuesAreNotEchoedInErrors) {
  // A DSN with a password, placed where a map belongs: the error names the field, not the value.
  absl::Status status = ParseStatus("store:\n  postgres: \"postgres://u:hunter2@db/x\"\n");
  ExpectInvalid(status, "store.postgres: expected a map of settings");
  EXPECT_THAT(std::string(status.message()), Not(HasSubstr("hunter2")));
}

// ---- Cross-field rules ----

TEST(ConfigTest, PrefetchListParsesFromYaml) {
  absl::StatusOr<Config> config = ParseConfigYaml(
      std::string(kMinimalYaml) +
          "cache:\n  prefetch:\n    - stack: stacks-1\n      names: [a, b/c]\n"
          "    - stack: default\n      names: [d]\n",
      "prefetch.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  ASSERT_EQ(config->cache().prefetch_size(), 2);
  EXPECT_EQ(config->cache().prefetch(0).stack(), "stacks-1");
  EXPECT_THAT(config->cache().prefetch(0).names(), ::testing::ElementsAre("a", "b/c"));
  EXPECT_EQ(config->cache().prefetch(1).names(0), "d");
  ApplyDefaults(&*config);
  EXPECT_TRUE(ValidateConfig(*config).ok()) << ValidateConfig(*config);
}

TEST(ConfigTest, MinimalConfigIsValid) {
  absl::Status status = ValidateConfig(MinimalConfig());
  EXPECT_TRUE(status.ok()) << status;
}

// A PostgreSQL server on another machine must have its certificate verified, unless the
// operator says the network is trusted (store.postgres.allow_insecure).
TEST(ConfigTest, RemotePostgresNeedsAVerifiedCertificateOrAllowInsecure) {
  Config config = MinimalConfig();
  auto* postgres = config.mutable_store()->mutable_postgres();
  for (const char* dsn : {"host=db.internal dbname=secrets", "host=db sslmode=require",
                          "postgresql://resolver:hunter2@db.internal/secrets?sslmode=prefer"}) {
    postgres->set_dsn(dsn);
    postgres->set_allow_insecure(false);
    absl::Status status = ValidateConfig(config);
    ExpectInvalid(status, "store.postgres.dsn: PostgreSQL host \"db");
    EXPECT_THAT(std::string(status.message()),
                AllOf(HasSubstr("sslmode=verify-full"), HasSubstr("allow_insecure"),
                      Not(HasSubstr("hunter2"))));
    postgres->set_allow_insecure(true);
    EXPECT_TRUE(ValidateConfig(config).ok()) << dsn;
  }
  postgres->set_allow_insecure(false);
  for (const char* dsn : {"host=db.internal sslmode=verify-full sslrootcert=/etc/ca.pem",
                          "host=db sslmode=verify-ca", "host=/var/run/postgresql dbname=s",
                          "host=localhost sslmode=disable", "hostaddr=127.0.0.1"}) {
    postgres->set_dsn(dsn);
    EXPECT_TRUE(ValidateConfig(config).ok()) << dsn;
  }
  postgres->set_dsn("host=/tmp sslmode=sometimes");
  ExpectInvalid(ValidateConfig(config), "store.postgres.dsn: PostgreSQL connection string");
}

// What ValidateConfig repeats of a value it quotes as the parser does (resolver/quote.h): its
// message is printable ASCII whatever bytes the file held, and a long value is cut.
TEST(ConfigTest, ValidationQuotesValuesEscapedAndCut) {
  const auto expect_printable = [](const absl::Status& status) {
    for (char c : status.message()) {
      ASSERT_TRUE(c >= 0x20 && c < 0x7f) << "byte " << int{static_cast<unsigned char>(c)}
                                         << " in: " << absl::CHexEscape(status.message());
    }
  };
  Config config = MinimalConfig();
  config.mutable_listen()->set_tcp_address("h\xff\n:1\"");
  config.mutable_listen()->set_health_address(std::string(80, 'a') + "\x01");
  config.mutable_admin()->set_address("[::1\x1b");
  absl::Status status = ValidateConfig(config);
  expect_printable(status);
  ExpectInvalid(status, "listen.tcp_address: \"h\\xff\\n:1\\\"\" has no valid port");
  ExpectInvalid(status, absl::StrCat("listen.health_address: \"", std::string(64, 'a'),
                                     "...\" is not host:port"));
  ExpectInvalid(status, "admin.address: \"[::1\\x1b\" is not [ipv6]:port");

  struct Case {
    std::string dsn;
    std::string says;
  };
  for (const Case& c : {
           Case{"host=db\x7f", "PostgreSQL host \"db\\x7f\" is not on this machine"},
           Case{"host=/tmp sslmode=\x01x",
                "PostgreSQL connection string: sslmode \"\\x01x\" is not one of"},
           Case{"ho\xffst=db",
                "malformed PostgreSQL connection string: invalid connection option \"ho\\xffst\""},
       }) {
    config = MinimalConfig();
    config.mutable_store()->mutable_postgres()->set_dsn(c.dsn);
    status = ValidateConfig(config);
    expect_printable(status);
    ExpectInvalid(status, absl::StrCat("store.postgres.dsn: ", c.says));
  }
}

struct RuleCase {
  std::string name;
  std::function<void(Config*)> mutate;
  std::string error;  // empty: the mutated config is valid
};

class ConfigRuleTest : public ::testing::TestWithParam<RuleCase> {};

TEST_P(ConfigRuleTest, Validates) {
  Config config = MinimalConfig();
  GetParam().mutate(&config);
  absl::Status status = ValidateConfig(config);
  if (GetParam().error.empty()) {
    EXPECT_TRUE(status.ok()) << status;
  } else {
    ExpectInvalid(status, GetParam().error);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Rules, ConfigRuleTest,
    ::testing::Values(
        // Listeners.
        RuleCase{"NoListener", [](Config* c) { c->mutable_listen()->clear_unix_socket(); },
                 "listen: at least one of unix_socket and tcp_address must be set"},
        RuleCase{"TcpOnly",
                 [](Config* c) {
                   c->mutable_listen()->clear_unix_socket();
                   c->mutable_listen()->set_tcp_address("127.0.0.1:50051");
                 },
                 ""},
        RuleCase{"PlaintextTcpOnTheNetwork",
                 [](Config* c) { c->mutable_listen()->set_tcp_address("0.0.0.0:50051"); },
                 "listen.tcp_address: \"0.0.0.0:50051\" is plaintext TCP on a non-loopback "
                 "address, where tokens and secret values cross the network in the clear; "
                 "configure listen.tls, use a loopback host, or set "
                 "listen.allow_insecure_tcp: true"},
        RuleCase{"PlaintextTcpOnTheNetworkAllowed",
                 [](Config* c) {
                   c->mutable_listen()->set_tcp_address("10.1.2.3:50051");
                   c->mutable_listen()->set_allow_insecure_tcp(true);
                 },
                 ""},
        RuleCase{"PlaintextTcpOnLoopback",
                 [](Config* c) {
                   c->mutable_listen()->set_tcp_address("[::1]:50051");
                   c->mutable_listen()->set_health_address("localhost:8086");
                 },
                 ""},
        RuleCase{"TlsTcpOnTheNetwork",
                 [](Config* c) {
                   c->mutable_listen()->set_tcp_address("0.0.0.0:50051");
                   c->mutable_listen()->mutable_tls()->set_cert_file("/c");
                   c->mutable_listen()->mutable_tls()->set_key_file("/k");
                 },
                 ""},
        RuleCase{"BadTcpAddress",
                 [](Config* c) { c->mutable_listen()->set_tcp_address("localhost"); },
                 "listen.tcp_address: \"localhost\" is not host:port"},
        RuleCase{"HealthAddress",
                 [](Config* c) { c->mutable_listen()->set_health_address("0.0.0.0:8086"); }, ""},
        RuleCase{"BadHealthAddress",
                 [](Config* c) { c->mutable_listen()->set_health_address("8086"); },
                 "listen.health_address: \"8086\" is not host:port"},
        RuleCase{"HealthAddressSameAsTcp",
                 [](Config* c) {
                   c->mutable_listen()->set_tcp_address("0.0.0.0:50051");
                   c->mutable_listen()->set_health_address("0.0.0.0:50051");
                 },
                 "listen.health_address: must differ from listen.tcp_address"},
        RuleCase{"SocketModeNotOctal",
                 [](Config* c) { c->mutable_listen()->set_unix_socket_mode("0999"); },
                 "listen.unix_socket_mode: \"0999\" is not octal"},
        RuleCase{"SocketModeWords",
                 [](Config* c) { c->mutable_listen()->set_unix_socket_mode("rw-rw----"); },
                 "listen.unix_socket_mode"},
        RuleCase{"SocketModeSticky",
                 [](Config* c) { c->mutable_listen()->set_unix_socket_mode("1777"); },
                 "listen.unix_socket_mode"},
        RuleCase{"SocketModeShort",
                 [](Config* c) { c->mutable_listen()->set_unix_socket_mode("600"); }, ""},
        // TLS.
        RuleCase{"TlsCertWithoutKey",
                 [](Config* c) {
                   c->mutable_listen()->set_tcp_address("0.0.0.0:50051");
                   c->mutable_listen()->mutable_tls()->set_cert_file("/c");
                 },
                 "listen.tls: cert_file and key_file must be set together"},
        RuleCase{"TlsKeyWithoutCert",
                 [](Config* c) {
                   c->mutable_listen()->set_tcp_address("0.0.0.0:50051");
                   c->mutable_listen()->mutable_tls()->set_key_file("/k");
                 },
                 "listen.tls: cert_file and key_file must be set together"},
        RuleCase{"TlsWithoutTcp",
                 [](Config* c) {
                   c->mutable_listen()->mutable_tls()->set_cert_file("/c");
                   c->mutable_listen()->mutable_tls()->set_key_file("/k");
                 },
                 "listen.tls: TLS applies to the TCP listener"},
        RuleCase{"RequireClientCertWithoutCa",
                 [](Config* c) {
                   c->mutable_listen()->set_tcp_address("0.0.0.0:50051");
                   auto* tls = c->mutable_listen()->mutable_tls();
                   tls->set_cert_file("/c");
                   tls->set_key_file("/k");
                   tls->set_require_client_cert(true);
                 },
                 "listen.tls.require_client_cert: requires listen.tls.client_ca_file"},
        RuleCase{"ClientCaWithoutCert",
                 [](Config* c) {
                   c->mutable_listen()->set_tcp_address("0.0.0.0:50051");
                   c->mutable_listen()->mutable_tls()->set_client_ca_file("/ca");
                 },
                 "listen.tls.client_ca_file: requires cert_file and key_file"},
        RuleCase{"Mtls",
                 [](Config* c) {
                   c->mutable_listen()->set_tcp_address("0.0.0.0:50051");
                   auto* tls = c->mutable_listen()->mutable_tls();
                   tls->set_cert_file("/c");
                   tls->set_key_file("/k");
                   tls->set_client_ca_file("/ca");
                   tls->set_require_client_cert(true);
                 },
                 ""},
        // Store.
        RuleCase{"NoBackend", [](Config* c) { c->mutable_store()->clear_backend(); },
                 "store: exactly one backend must be set"},
        RuleCase{"NegativeSqliteBusyTimeout",
                 [](Config* c) {
                   c->mutable_store()->mutable_sqlite()->mutable_busy_timeout()->set_seconds(-1);
                 },
                 "store.sqlite.busy_timeout: must not be negative"},
        RuleCase{"HugeSqliteBusyTimeout",
                 [](Config* c) {
                   c->mutable_store()->mutable_sqlite()->mutable_busy_timeout()->set_seconds(
                       86401);
                 },
                 "store.sqlite.busy_timeout: must be at most 86400s"},
        RuleCase{"NegativePostgresTimeouts",
                 [](Config* c) {
                   auto* postgres = c->mutable_store()->mutable_postgres();
                   postgres->set_dsn_env("PGDSN");
                   postgres->mutable_connect_timeout()->set_seconds(-1);
                   postgres->mutable_statement_timeout()->set_nanos(-1);
                 },
                 "store.postgres.connect_timeout: must not be negative"},
        RuleCase{"NegativePostgresStatementTimeout",
                 [](Config* c) {
                   auto* postgres = c->mutable_store()->mutable_postgres();
                   postgres->set_dsn_env("PGDSN");
                   postgres->mutable_statement_timeout()->set_nanos(-1);
                 },
                 "store.postgres.statement_timeout: must not be negative"},
        RuleCase{"NegativeStaleAfter",
                 [](Config* c) { c->mutable_cache()->mutable_stale_after()->set_seconds(-1); },
                 "cache.stale_after: must not be negative"},
        RuleCase{"SqliteWithoutPath",
                 [](Config* c) { c->mutable_store()->mutable_sqlite()->clear_path(); },
                 "store.sqlite.path: is required"},
        RuleCase{"PostgresDsnAndEnv",
                 [](Config* c) {
                   auto* pg = c->mutable_store()->mutable_postgres();
                   pg->set_dsn("postgres://u:hunter2@db/x");
                   pg->set_dsn_env("PGDSN");
                 },
                 "store.postgres: exactly one of dsn and dsn_env must be set"},
        RuleCase{"PostgresNeither", [](Config* c) { c->mutable_store()->mutable_postgres(); },
                 "store.postgres: exactly one of dsn and dsn_env must be set"},
        RuleCase{"PostgresEnv",
                 [](Config* c) { c->mutable_store()->mutable_postgres()->set_dsn_env("PGDSN"); },
                 ""},
        RuleCase{"NoKek", [](Config* c) { c->mutable_store()->clear_kek(); },
                 "store.kek: exactly one of file and env must be set"},
        // store.upstream.
        RuleCase{"UpstreamMutualTlsWithoutKek",
                 [](Config* c) {
                   c->mutable_store()->clear_kek();
                   auto* up = c->mutable_store()->mutable_upstream();
                   up->set_address("central.secrets.svc:8443");
                   up->set_ca_file("/etc/ca.pem");
                   up->set_cert_file("/etc/client.pem");
                   up->set_key_file("/etc/client.key");
                   up->set_server_name("central");
                 },
                 ""},
        RuleCase{"UpstreamNoAddress",
                 [](Config* c) {
                   c->mutable_store()->mutable_upstream()->set_ca_file("/etc/ca.pem");
                 },
                 "store.upstream.address: is required"},
        RuleCase{"UpstreamBadAddress",
                 [](Config* c) {
                   auto* up = c->mutable_store()->mutable_upstream();
                   up->set_address("central:port");
                   up->set_ca_file("/etc/ca.pem");
                 },
                 "store.upstream.address: "},
        RuleCase{"UpstreamNoCa",
                 [](Config* c) {
                   c->mutable_store()->mutable_upstream()->set_address("central:8443");
                 },
                 "store.upstream.ca_file: is required"},
        RuleCase{"UpstreamInsecureRemote",
                 [](Config* c) {
                   auto* up = c->mutable_store()->mutable_upstream();
                   up->set_address("central:8443");
                   up->set_allow_insecure(true);
                 },
                 "store.upstream.allow_insecure: is only allowed for a loopback or unix: address"},
        RuleCase{"UpstreamInsecureLoopback",
                 [](Config* c) {
                   auto* up = c->mutable_store()->mutable_upstream();
                   up->set_address("127.0.0.1:8443");
                   up->set_allow_insecure(true);
                 },
                 ""},
        RuleCase{"UpstreamInsecureUnix",
                 [](Config* c) {
                   auto* up = c->mutable_store()->mutable_upstream();
                   up->set_address("unix:/run/central.sock");
                   up->set_allow_insecure(true);
                 },
                 ""},
        RuleCase{"UpstreamCertWithoutKey",
                 [](Config* c) {
                   auto* up = c->mutable_store()->mutable_upstream();
                   up->set_address("central:8443");
                   up->set_ca_file("/etc/ca.pem");
                   up->set_cert_file("/etc/client.pem");
                 },
                 "store.upstream: cert_file and key_file must be set together"},
        RuleCase{"UpstreamNegativeTimeout",
                 [](Config* c) {
                   auto* up = c->mutable_store()->mutable_upstream();
                   up->set_address("central:8443");
                   up->set_ca_file("/etc/ca.pem");
                   up->mutable_timeout()->set_seconds(-1);
                 },
                 "store.upstream.timeout"},
        RuleCase{"UpstreamTwoKeks",
                 [](Config* c) {
                   auto* up = c->mutable_store()->mutable_upstream();
                   up->set_address("central:8443");
                   up->set_ca_file("/etc/ca.pem");
                   c->mutable_store()->mutable_kek()->set_env("KEK");
                 },
                 "store.kek: at most one of file and env may be set"},
        RuleCase{"UpstreamWithPrefetch",
                 [](Config* c) {
                   auto* up = c->mutable_store()->mutable_upstream();
                   up->set_address("central:8443");
                   up->set_ca_file("/etc/ca.pem");
                   auto* prefetch = c->mutable_cache()->add_prefetch();
                   prefetch->set_stack("stacks-1");
                   prefetch->add_names("x");
                 },
                 "cache.prefetch: is not possible with store.upstream"},
        RuleCase{"TwoKeks", [](Config* c) { c->mutable_store()->mutable_kek()->set_env("KEK"); },
                 "store.kek: exactly one of file and env must be set"},
        // Auth.
        RuleCase{"NoIssuer", [](Config* c) { c->mutable_auth()->clear_issuer(); },
                 "auth.issuer: is required"},
        RuleCase{"NoAudience",
                 [](Config* c) {
                   c->mutable_auth()->clear_audience();
                   c->mutable_auth()->clear_audiences();
                 },
                 "auth.audiences: at least one audience is required"},
        RuleCase{"EmptyAudience", [](Config* c) { c->mutable_auth()->add_audiences(""); },
                 "auth.audiences[0]: must not be empty"},
        RuleCase{"UnknownAlgorithm",
                 [](Config* c) {
                   c->mutable_auth()->add_algorithms("ES256");
                   c->mutable_auth()->add_algorithms("HS256");
                 },
                 "auth.algorithms[1]: must be one of ES256, RS256, EdDSA"},
        RuleCase{"NegativeLifetime",
                 [](Config* c) {
                   c->mutable_auth()->mutable_max_token_lifetime()->set_seconds(-1);
                 },
                 "auth.max_token_lifetime: must not be negative"},
        RuleCase{"NoJwks", [](Config* c) { c->mutable_auth()->clear_jwks(); },
                 "auth: one of jwks_file and jwks_url is required"},
        RuleCase{"EmptyJwksFile", [](Config* c) { c->mutable_auth()->set_jwks_file(""); },
                 "auth.jwks_file: must not be empty"},
        RuleCase{"JwksHttps",
                 [](Config* c) { c->mutable_auth()->set_jwks_url("https://keys.test/jwks"); }, ""},
        RuleCase{"JwksPlainHttp",
                 [](Config* c) { c->mutable_auth()->set_jwks_url("http://keys.test/jwks"); },
                 "auth.jwks_url: must be an https:// URL"},
        RuleCase{"JwksHttpLoopback",
                 [](Config* c) { c->mutable_auth()->set_jwks_url("http://127.0.0.1:8080/jwks"); },
                 ""},
        RuleCase{
            "JwksHttpUserinfoTrick",
            [](Config* c) { c->mutable_auth()->set_jwks_url("http://127.0.0.1@evil.test/jwks"); },
            "auth.jwks_url"},
        // Cache.
        RuleCase{"ShareAboveOne", [](Config* c) { c->mutable_cache()->set_per_stack_share(1.5); },
                 "cache.per_stack_share: must be in (0, 1], got 1.5"},
        RuleCase{"ShareNegative", [](Config* c) { c->mutable_cache()->set_per_stack_share(-0.1); },
                 "cache.per_stack_share"},
        RuleCase{"ShareNaN",
                 [](Config* c) { c->mutable_cache()->set_per_stack_share(std::nan("")); },
                 "cache.per_stack_share"},
        RuleCase{"ShareOne", [](Config* c) { c->mutable_cache()->set_per_stack_share(1); }, ""},
        RuleCase{"NegativeTtl",
                 [](Config* c) { c->mutable_cache()->mutable_ttl()->set_seconds(-1); },
                 "cache.ttl: must not be negative"},
        RuleCase{"NegativeGrace", [](Config* c) { c->mutable_shutdown_grace()->set_nanos(-1); },
                 "shutdown_grace: must not be negative"},
        // Redaction.
        RuleCase{"NoFingerprintKey",
                 [](Config* c) { c->mutable_redaction()->clear_fingerprint_key_file(); },
                 "redaction: exactly one of fingerprint_key_file and fingerprint_key_env"},
        RuleCase{"TwoFingerprintKeys",
                 [](Config* c) { c->mutable_redaction()->set_fingerprint_key_env("FP"); },
                 "redaction: exactly one of fingerprint_key_file and fingerprint_key_env"},
        // Limits.
        RuleCase{"NegativeRate", [](Config* c) { c->mutable_limits()->set_per_stack_rate(-1); },
                 "limits.per_stack_rate: must be a finite number >= 0"},
        RuleCase{"IdleTooLong",
                 [](Config* c) {
                   c->mutable_limits()->mutable_max_connection_idle()->set_seconds(86401);
                 },
                 "limits.max_connection_idle: must be at most 86400s"},
        RuleCase{"NegativeHandshakeTimeout",
                 [](Config* c) {
                   c->mutable_limits()->mutable_handshake_timeout()->set_seconds(-1);
                 },
                 "limits.handshake_timeout: must not be negative"},
        RuleCase{"TinyGrpcMemory",
                 [](Config* c) { c->mutable_limits()->set_grpc_memory_bytes(1024); },
                 "limits.grpc_memory_bytes: must be at least 4194304 (4 MiB), got 1024"},
        RuleCase{"RedactStreamsAtTheLimit",
                 [](Config* c) { c->mutable_limits()->set_max_redact_streams(10000); }, ""},
        RuleCase{"TooManyRedactStreams",
                 [](Config* c) { c->mutable_limits()->set_max_redact_streams(10001); },
                 "limits.max_redact_streams: must be at most 10000, got 10001"},
        RuleCase{"WatchStreamsAtTheLimit",
                 [](Config* c) { c->mutable_limits()->set_max_watch_streams(10000); }, ""},
        RuleCase{"TooManyWatchStreams",
                 [](Config* c) { c->mutable_limits()->set_max_watch_streams(10001); },
                 "limits.max_watch_streams: must be at most 10000, got 10001"},
        RuleCase{"QueuedCallsAtTheLimit",
                 [](Config* c) { c->mutable_limits()->set_max_queued_calls(1000000); }, ""},
        RuleCase{"RefreshWindowAsLongAsTtl",
                 [](Config* c) {
                   c->mutable_cache()->mutable_ttl()->set_seconds(10);
                   c->mutable_cache()->mutable_refresh_ahead()->set_seconds(8);
                   c->mutable_cache()->mutable_refresh_jitter()->set_seconds(2);
                 },
                 "cache.refresh_ahead: with refresh_jitter (10s together) must be shorter than "
                 "cache.ttl (10s)"},
        RuleCase{"RefreshWindowInsideTtl",
                 [](Config* c) {
                   c->mutable_cache()->mutable_ttl()->set_seconds(10);
                   c->mutable_cache()->mutable_refresh_ahead()->set_seconds(8);
                   c->mutable_cache()->mutable_refresh_jitter()->set_seconds(1);
                   c->mutable_cache()->mutable_refresh_jitter()->set_nanos(999999999);
                 },
                 ""},
        RuleCase{"NoRefreshAheadWithAShortTtl",
                 [](Config* c) {
                   c->mutable_cache()->mutable_ttl()->set_seconds(1);
                   c->mutable_cache()->mutable_refresh_ahead()->set_seconds(0);
                   c->mutable_cache()->mutable_refresh_jitter()->set_seconds(15);
                 },
                 ""},
        RuleCase{"TooManyQueuedCalls",
                 [](Config* c) { c->mutable_limits()->set_max_queued_calls(1000001); },
                 "limits.max_queued_calls: must be at most 1000000, got 1000001"},
        // The central tier's change stream.
        RuleCase{"ChangeStreamWithoutTls",
                 [](Config* c) { c->mutable_change_stream()->add_allowed_clients("sidecar.svc"); },
                 "change_stream.allowed_clients: callers are admitted by their client "
                 "certificate, so it needs a TLS listener that requires one"},
        RuleCase{"ChangeStreamWithoutRequiredClientCert",
                 [](Config* c) {
                   c->mutable_change_stream()->add_allowed_clients("sidecar.svc");
                   c->mutable_listen()->set_tcp_address("0.0.0.0:8443");
                   auto* tls = c->mutable_listen()->mutable_tls();
                   tls->set_cert_file("/tls/tls.crt");
                   tls->set_key_file("/tls/tls.key");
                   tls->set_client_ca_file("/tls/ca.crt");
                 },
                 "set listen.tcp_address, listen.tls.cert_file, key_file, client_ca_file and "
                 "require_client_cert: true"},
        RuleCase{"ChangeStreamOnMutualTls",
                 [](Config* c) {
                   c->mutable_change_stream()->add_allowed_clients("sidecar.svc");
                   c->mutable_listen()->set_tcp_address("0.0.0.0:8443");
                   auto* tls = c->mutable_listen()->mutable_tls();
                   tls->set_cert_file("/tls/tls.crt");
                   tls->set_key_file("/tls/tls.key");
                   tls->set_client_ca_file("/tls/ca.crt");
                   tls->set_require_client_cert(true);
                 },
                 ""},
        RuleCase{"ChangeStreamBlankClient",
                 [](Config* c) { c->mutable_change_stream()->add_allowed_clients(" a.svc"); },
                 "change_stream.allowed_clients[0]: \" a.svc\" is not a certificate name"},
        RuleCase{"ChangeStreamsAtTheLimit",
                 [](Config* c) { c->mutable_change_stream()->set_max_streams(100000); }, ""},
        RuleCase{"TooManyChangeStreams",
                 [](Config* c) { c->mutable_change_stream()->set_max_streams(100001); },
                 "change_stream.max_streams: must be at most 100000, got 100001"},
        RuleCase{"HeartbeatAtTheLimits",
                 [](Config* c) {
                   c->mutable_change_stream()->mutable_heartbeat_interval()->set_seconds(60);
                 },
                 ""},
        RuleCase{"HeartbeatTooLong",
                 [](Config* c) {
                   auto* interval = c->mutable_change_stream()->mutable_heartbeat_interval();
                   interval->set_seconds(60);
                   interval->set_nanos(1);
                 },
                 "change_stream.heartbeat_interval: must be from 100ms to 1m"},
        RuleCase{"HeartbeatTooShort",
                 [](Config* c) {
                   auto* interval = c->mutable_change_stream()->mutable_heartbeat_interval();
                   interval->set_seconds(0);
                   interval->set_nanos(99999999);
                 },
                 "change_stream.heartbeat_interval: must be from 100ms to 1m"},
        RuleCase{"HeartbeatNegative",
                 [](Config* c) {
                   c->mutable_change_stream()->mutable_heartbeat_interval()->set_seconds(-5);
                 },
                 "change_stream.heartbeat_interval: must be from 100ms to 1m"},
        // Warm start.
        RuleCase{"Prefetch",
                 [](Config* c) {
                   auto* p = c->mutable_cache()->add_prefetch();
                   p->set_stack("stacks-1");
                   p->add_names("workflows/http/auth-token");
                 },
                 ""},
        RuleCase{"PrefetchBadStack",
                 [](Config* c) {
                   auto* p = c->mutable_cache()->add_prefetch();
                   p->set_stack("Stacks_1");
                   p->add_names("a");
                 },
                 "cache.prefetch[0].stack: "},
        RuleCase{"PrefetchNoNames",
                 [](Config* c) { c->mutable_cache()->add_prefetch()->set_stack("stacks-1"); },
                 "cache.prefetch[0].names: must not be empty"},
        RuleCase{"PrefetchBadName",
                 [](Config* c) {
                   auto* p = c->mutable_cache()->add_prefetch();
                   p->set_stack("stacks-1");
                   p->add_names("ok");
                   p->add_names("Not/Valid");
                 },
                 "cache.prefetch[0].names[1]: "},
        RuleCase{"PrefetchTooManyNames",
                 [](Config* c) {
                   auto* p = c->mutable_cache()->add_prefetch();
                   p->set_stack("stacks-1");
                   for (int i = 0; i < 100001; ++i) p->add_names("a");
                 },
                 "cache.prefetch: 100001 names, more than the limit of 100000"},
        // Admin.
        RuleCase{"AdminAnyAddress",
                 [](Config* c) { c->mutable_admin()->set_address("0.0.0.0:9464"); },
                 "admin.address: \"0.0.0.0:9464\" is not a loopback address"},
        RuleCase{"AdminAnyAddressAllowed",
                 [](Config* c) {
                   c->mutable_admin()->set_address("0.0.0.0:9464");
                   c->mutable_admin()->set_allow_non_loopback(true);
                 },
                 ""},
        RuleCase{"AdminPrivateAddress",
                 [](Config* c) { c->mutable_admin()->set_address("10.1.2.3:9464"); },
                 "admin.address"},
        RuleCase{"AdminHostname",
                 [](Config* c) { c->mutable_admin()->set_address("admin.example:9464"); },
                 "admin.address"},
        RuleCase{"AdminNoPort", [](Config* c) { c->mutable_admin()->set_address("127.0.0.1"); },
                 "admin.address: \"127.0.0.1\" is not host:port"},
        RuleCase{"AdminIpv6Loopback",
                 [](Config* c) { c->mutable_admin()->set_address("[::1]:9464"); }, ""},
        RuleCase{"AdminLocalhost",
                 [](Config* c) { c->mutable_admin()->set_address("localhost:0"); }, ""},
        RuleCase{"AdminLoopbackRange",
                 [](Config* c) { c->mutable_admin()->set_address("127.1.2.3:9464"); }, ""},
        RuleCase{"AdminDisabledIgnoresAddress",
                 [](Config* c) {
                   c->mutable_admin()->set_enabled(false);
                   c->mutable_admin()->set_address("0.0.0.0:9464");
                 },
                 ""},
        RuleCase{"AdminEnabledWithoutAddress",
                 [](Config* c) { c->mutable_admin()->clear_address(); },
                 "admin.address: is required when admin is enabled"},
        // Logging.
        RuleCase{"BadLogLevel", [](Config* c) { c->mutable_logging()->set_level("verbose"); },
                 "logging.level: \"verbose\" is not one of debug, info, warning, error"}),
    [](const ::testing::TestParamInfo<RuleCase>& info) { return info.param.name; });

TEST(ConfigTest, EveryBrokenRuleIsReported) {
  Config config = MinimalConfig();
  config.mutable_listen()->clear_unix_socket();
  config.mutable_auth()->clear_issuer();
  config.mutable_admin()->set_address("0.0.0.0:1");
  absl::Status status = ValidateConfig(config);
  ExpectInvalid(status, "listen: at least one");
  EXPECT_THAT(std::string(status.message()),
              AllOf(HasSubstr("auth.issuer"), HasSubstr("admin.address")));
}

TEST(ConfigTest, ValidationNeverEchoesTheDsn) {
  Config config = MinimalConfig();
  auto* pg = config.mutable_store()->mutable_postgres();
  pg->set_dsn("postgres://u:hunter2@db/x");
  pg->set_dsn_env("PGDSN");
  absl::Status status = ValidateConfig(config);
  ExpectInvalid(status, "store.postgres");
  EXPECT_THAT(std::string(status.message()), Not(HasSubstr("hunter2")));
}

}  // namespace
}  // namespace secret_resolver
