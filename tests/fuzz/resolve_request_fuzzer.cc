// Fuzz target for the raw request bytes of the sidecar's two methods, ResolveSecrets and
// Grafana's DecryptSecureValues (v1beta1 and v1, the same on the wire), through ResolveHandler
// over the real token verifier, cache and resolver and an in-memory store
// (tests/fakes/fake_secret_store.h). The bytes are parsed as server/grpc_services.cc parses
// them (a grpc::ByteBuffer read by grpc::ProtoBufferReader into an arena message); a request
// that does not parse is refused there, before the handler.
//
// Input: byte 0 picks the method and the store's behaviour, byte 1 the credentials, the rest is
// the request message.
//   byte 0, bits 0-1: 0 ResolveSecrets, 1 DecryptSecureValues v1beta1, 2 v1, 3 ResolveSecrets;
//           bit 2: also call Try...WithoutBlocking before (cold cache) and after (warm cache);
//           bits 3-4: the store answers every Get with 1 UNAVAILABLE, 2 DATA_LOSS (messages
//           that name a database host and a key id), otherwise normally.
//   byte 1, bits 0-2: which fixed token (kTokens: valid ones for two services and two stacks,
//           one per-name permission, none, no service identity, a `*` namespace, an expired
//           one); bits 3-4: sent as `authorization: Bearer`, as `x-access-token`, as both, or
//           as two different tokens (conflicting); bit 5: no credentials at all;
//           bit 6: the deadline has passed; bit 7: an `x-grafana-service-identity-name`.
//
// Invariants, checked with abort():
// - The call's status is one its method may return (contract: DecryptSecureValues never
//   refuses a whole call for who the caller is beyond the credential itself); a passed deadline
//   is DEADLINE_EXCEEDED, a missing or conflicting credential UNAUTHENTICATED.
// - A refused call leaves the response unset; an answered one parses as its method's response
//   message, with exactly one entry per distinct ref key or name, each a value or an error
//   (Grafana's: one of its three strings), and a backend error only when the store failed;
//   ResolveSecrets' bytes are exactly protobuf's deterministic serialization of what they
//   parse to.
// - No value of a secret the caller may not read appears anywhere in the response, in the call's
//   status message or in what the hooks (audit, metrics) receive; no value at all reaches the
//   hooks; the store's error detail reaches the hooks only. (A string the input itself holds is
//   not held against any of them: keys and names are echoed.)
// - Response and messages are bounded: at most 1 KiB plus 4 bytes per input byte plus the
//   largest stored value and 256 bytes per entry; a status message at most 1 KiB plus the
//   input's size.
// - A call answered without blocking gives the same status as the blocking call, and the same
//   response when no backend error was involved (DecryptSecureValues' map entries come in
//   hash order, so its responses are compared in key order).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <google/protobuf/arena.h>
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/stubs/logging.h>
#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/proto_buffer_reader.h>
#include <grpcpp/support/slice.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "decrypt/v1/decrypt.pb.h"
#include "decrypt/v1beta1/decrypt.pb.h"
#include "resolver/redaction.h"
#include "resolver/resolver.h"
#include "resolver/secret_cache.h"
#include "secretresolver/v1/resolver.pb.h"
#include "server/auth/token_verifier.h"
#include "server/rate_limiter.h"
#include "server/resolve_handler.h"
#include "tests/fakes/fake_clock.h"
#include "tests/fakes/fake_secret_store.h"
#include "tests/fuzz/fuzz_signing.h"
#include "tests/server/wire_bytes.h"

namespace {

using namespace secret_resolver;  // NOLINT: the handler and its parts are under test
using secret_resolver::fuzzing::FixedJwksSource;

constexpr char kIssuer[] = "https://issuer.test/";
constexpr char kAudience[] = "secret-resolver";
constexpr size_t kMaxDecryptNames = 8;

// The stored secrets. Each value is distinctive, so that finding it in bytes means it leaked.
struct StoredFixture {
  const char* stack;
  const char* name;
  std::vector<std::string> decrypters;
  std::string value;
};

const std::vector<StoredFixture>& Secrets() {
  static const auto* secrets = new std::vector<StoredFixture>{
      {"stacks-1", "app/db-password", {"svc-a"}, "V1-a-only-6c1f0e9b2d7a"},
      {"stacks-1", "app/shared", {"svc-a", "svc-b"}, "V2-shared-93ab51e07c4d"},
      {"stacks-1", "app/nobody", {}, "V3-nobody-0d4e8f2a61b9"},
      {"stacks-2", "app/db-password", {"svc-a"}, "V4-stack2-7e25c9d1a830"},
      {"stacks-1", "app/b-only", {"svc-b"}, "V5-b-only-48f3a6e1c2d0"},
      // Not UTF-8: Grafana's API refuses it ("decryption failed"), ResolveSecrets sends bytes.
      {"stacks-1", "app/binary", {"svc-a", "svc-b"}, "V6-binary-\xff\xfe-5a1c7b"},
  };
  return *secrets;
}

// The fixed tokens, by what they say, and the secrets (indexes into Secrets()) each may read.
struct TokenFixture {
  const char* ns;
  const char* service;
  std::vector<std::string> permissions;
  int64_t exp_offset;  // from when the fuzzer starts
  std::set<size_t> readable;
};

// Tokens stay valid this long into a fuzzing run (the verifier's maximum is 24 h).
constexpr int64_t kLifetime = 23 * 3600;

const std::vector<TokenFixture>& Tokens() {
  static const std::string kAll = "secret.grafana.app/securevalues:decrypt";
  static const auto* tokens = new std::vector<TokenFixture>{
      {"stacks-1", "svc-a", {kAll}, kLifetime, {0, 1, 5}},
      {"stack-1", "svc-b", {kAll}, kLifetime, {1, 4, 5}},  // Grafana's other spelling
      {"stacks-2", "svc-a", {kAll}, kLifetime, {3}},
      {"stacks-1", "svc-a", {"secret.grafana.app/securevalues/app/shared:decrypt"}, kLifetime, {1}},
      {"stacks-1", "svc-b", {}, kLifetime, {}},
      {"stacks-1", "", {kAll}, kLifetime, {}},
      {"*", "svc-a", {kAll}, kLifetime, {}},  // wildcard namespaces are off
      {"stacks-1", "svc-a", {kAll}, -3600, {}},  // expired
  };
  return *tokens;
}

// Store error details: the caller must never see them.
constexpr absl::string_view kUnavailableDetail =
    "could not connect to host=db-7.internal.example port=5432";
constexpr absl::string_view kDataLossDetail = "unwrap failed under key id kek-2f9d61c0aa";

// What the hooks were given, every string copied: none may hold a value.
struct HookLog {
  std::vector<std::string> strings;
  int backend_errors = 0;
  int rate_limited = 0;
};

ResolveHandlerHooks Hooks(HookLog* log) {
  ResolveHandlerHooks hooks;
  hooks.on_references = [log](absl::Span<const ReferenceOutcome> outcomes, absl::Duration) {
    for (const ReferenceOutcome& o : outcomes) {
      for (absl::string_view s : {o.stack, o.caller, o.reported_service, o.ref_key, o.name}) {
        log->strings.emplace_back(s);
      }
    }
  };
  hooks.on_auth_failure = [log](absl::string_view reason) { log->strings.emplace_back(reason); };
  hooks.on_call_denied = [log](const CallDenial& d) {
    FUZZ_CHECK(d.stack.size() <= kMaxAuditedStackBytes);
    FUZZ_CHECK(d.reported_service.size() <= kMaxReportedServiceBytes);
    for (absl::string_view s : {d.reason, d.stack, d.caller, d.token_namespace,
                                d.reported_service}) {
      log->strings.emplace_back(s);
    }
  };
  hooks.on_backend_error = [log](const BackendError& e) {
    ++log->backend_errors;
    for (absl::string_view s : {absl::string_view(e.correlation_id), e.stack, e.ref_key, e.name}) {
      log->strings.emplace_back(s);
    }
  };
  hooks.on_rate_limited = [log](absl::string_view stack) {
    ++log->rate_limited;
    log->strings.emplace_back(stack);
  };
  return hooks;
}

struct Fixture {
  Fixture() : source(std::make_unique<FixedJwksSource>()) {
    // Proto3 strings that are not UTF-8 make protobuf log an error per parse.
    google::protobuf::SetLogHandler([](google::protobuf::LogLevel, const char*, int,
                                       const std::string&) {});
    // The cache waits for its fetch threads until the deadline by the real clock, so the
    // handler's clock follows the real one (set again per input); the tokens are signed now.
    const int64_t now = absl::ToUnixSeconds(absl::Now());
    clock.SetTime(absl::FromUnixSeconds(now));
    for (const StoredFixture& secret : Secrets()) {
      SecretWrite write;
      write.stack = secret.stack;
      write.name = secret.name;
      write.decrypters = secret.decrypters;
      write.actor = "fuzz";
      write.value = SecretBytes(secret.value);
      FUZZ_CHECK(store.Put(write).ok());
    }
    fuzzing::PkeyPtr key = fuzzing::LoadPrivateKey(fuzzing::kFuzzEd25519Pem);
    for (const TokenFixture& token : Tokens()) {
      std::string permissions;
      for (const std::string& permission : token.permissions) {
        absl::StrAppend(&permissions, permissions.empty() ? "" : ",", "\"", permission, "\"");
      }
      const std::string claims = absl::StrCat(
          R"({"iss":")", kIssuer, R"(","aud":")", kAudience, R"(","exp":)",
          now + token.exp_offset, R"(,"iat":)", now - 60, R"(,"namespace":")", token.ns,
          R"(","serviceIdentity":")", token.service, R"(","permissions":[)", permissions, "]}");
      tokens.push_back(fuzzing::SignToken(key.get(), /*p256=*/false, claims));
    }
    auth::TokenVerifierOptions options;
    options.issuer = kIssuer;
    options.audiences = {kAudience, "secret.grafana.app"};
    options.clock = &clock;
    absl::StatusOr<std::unique_ptr<auth::TokenVerifier>> created =
        auth::TokenVerifier::Create(options, source.get());
    FUZZ_CHECK(created.ok());
    verifier = *std::move(created);
    absl::StatusOr<std::unique_ptr<RedactionTokens>> redaction =
        RedactionTokens::Create(kDefaultPlaceholderFormat, SecretBytes(std::string(32, 'k')));
    FUZZ_CHECK(redaction.ok());
    redaction_tokens = *std::move(redaction);

    CacheOptions cache_options;
    cache_options.clock = &clock;
    cache_options.max_concurrent_fetches = 1;
    cache_options.refresh_executor = [](std::function<void()> task) { task(); };
    cache = std::make_unique<SecretCache>(&store, std::move(cache_options));
    resolver = std::make_unique<Resolver>(cache.get(), redaction_tokens.get(), ResolverOptions{});
    RateLimiterOptions limits;
    limits.rate = 1e6;
    limits.burst = 1e6;
    limits.clock = &clock;
    limiter = std::make_unique<RateLimiter>(limits);
    ResolveHandlerOptions handler_options;
    handler_options.rate_limiter = limiter.get();
    handler_options.max_decrypt_names = kMaxDecryptNames;
    handler_options.clock = &clock;
    handler_options.hooks = Hooks(&log);
    handler = std::make_unique<ResolveHandler>(verifier.get(), resolver.get(),
                                               std::move(handler_options));
  }
  FakeClock clock;
  FakeSecretStore store;
  std::unique_ptr<FixedJwksSource> source;
  // Shared by all inputs (a fresh cache and handler per input cost a fetch thread each); the
  // verifier's token cache warms up, the secret cache is emptied before each input.
  std::unique_ptr<auth::TokenVerifier> verifier;
  std::unique_ptr<RedactionTokens> redaction_tokens;
  std::vector<std::string> tokens;
  std::unique_ptr<SecretCache> cache;
  std::unique_ptr<Resolver> resolver;
  std::unique_ptr<RateLimiter> limiter;
  HookLog log;
  std::unique_ptr<ResolveHandler> handler;
};

Fixture& TheFixture() {
  static Fixture* fixture = new Fixture();
  return *fixture;
}

enum class Method { kResolve, kDecryptV1beta1, kDecryptV1 };

// One parsed request, on the arena as the server keeps it.
struct Parsed {
  secretresolver::v1::ResolveSecretsRequest* resolve = nullptr;
  decryptv1beta1::SecureValueDecryptRequest* decrypt = nullptr;
};

// Parses as grpc_services.cc does: false when the server would refuse the bytes.
template <typename Message>
bool ParseAsServer(absl::string_view bytes, Message* message) {
  grpc::Slice slice(bytes.data(), bytes.size());
  grpc::ByteBuffer buffer(&slice, 1);
  grpc::ProtoBufferReader reader(&buffer);
  return reader.status().ok() && message->ParseFromZeroCopyStream(&reader);
}

bool Contains(absl::string_view haystack, absl::string_view needle) {
  return haystack.find(needle) != absl::string_view::npos;
}

// `message` in protobuf's deterministic serialization (map entries in key order).
std::string Deterministic(const google::protobuf::MessageLite& message) {
  std::string bytes;
  google::protobuf::io::StringOutputStream stream(&bytes);
  google::protobuf::io::CodedOutputStream coded(&stream);
  coded.SetSerializationDeterministic(true);
  FUZZ_CHECK(message.SerializeToCodedStream(&coded));
  coded.Trim();
  return bytes;
}

// A response's bytes in one spelling: DecryptSecureValues' map comes in hash order.
std::string Canonical(Method method, const std::string& bytes) {
  if (method == Method::kResolve) return bytes;
  decryptv1beta1::SecureValueDecryptResponseCollection out;
  FUZZ_CHECK(out.ParseFromString(bytes));
  return Deterministic(out);
}

// One call's outcome.
struct Answer {
  absl::Status status;
  std::string bytes;
  bool response_set = false;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  Fixture& f = TheFixture();
  const uint8_t mode = data[0];
  const uint8_t who = data[1];
  const absl::string_view input(reinterpret_cast<const char*>(data), size);
  const absl::string_view message_bytes = input.substr(2);
  const Method method = (mode & 3) == 1   ? Method::kDecryptV1beta1
                        : (mode & 3) == 2 ? Method::kDecryptV1
                                          : Method::kResolve;

  google::protobuf::Arena arena;
  Parsed parsed;
  if (method == Method::kResolve) {
    parsed.resolve =
        google::protobuf::Arena::CreateMessage<secretresolver::v1::ResolveSecretsRequest>(&arena);
    if (!ParseAsServer(message_bytes, parsed.resolve)) return 0;
  } else {
    parsed.decrypt =
        google::protobuf::Arena::CreateMessage<decryptv1beta1::SecureValueDecryptRequest>(&arena);
    const bool ok = ParseAsServer(message_bytes, parsed.decrypt);
    if (method == Method::kDecryptV1) {
      // The server reads decryptv1's bytes as decryptv1beta1's: they must mean the same.
      decryptv1::SecureValueDecryptRequest v1;
      FUZZ_CHECK(ParseAsServer(message_bytes, &v1) == ok);
      if (ok) {
        FUZZ_CHECK(v1.namespace_() == parsed.decrypt->namespace_());
        FUZZ_CHECK(std::equal(v1.names().begin(), v1.names().end(),
                              parsed.decrypt->names().begin(), parsed.decrypt->names().end()));
      }
    }
    if (!ok) return 0;
  }

  // The store's behaviour for this input.
  const int store_mode = (mode >> 3) & 3;
  if (store_mode == 1) {
    f.store.set_error(absl::UnavailableError(kUnavailableDetail));
  } else if (store_mode == 2) {
    f.store.set_error(absl::DataLossError(kDataLossDetail));
  } else {
    f.store.set_error(absl::OkStatus());
  }

  // Credentials.
  const size_t token_index = who & 7;
  const TokenFixture& token = Tokens()[token_index];
  const std::string& token_text = f.tokens[token_index];
  const std::string& other_text = f.tokens[(token_index + 1) % f.tokens.size()];
  const std::string bearer = absl::StrCat("Bearer ", token_text);
  CallCredentials credentials;
  const bool no_credentials = (who & 0x20) != 0;
  const int form = (who >> 3) & 3;
  if (!no_credentials) {
    if (form == 0 || form == 2) credentials.authorization = bearer;
    if (form == 1 || form == 2) credentials.x_access_token = token_text;
    if (form == 3) {
      // Two different tokens in one header, as grpc_services.cc flags them.
      credentials.x_access_token = other_text;
      credentials.conflicting = true;
    }
  }
  if ((who & 0x80) != 0) credentials.grafana_service_name = "grafana-workflows";
  const bool deadline_passed = (who & 0x40) != 0;
  f.clock.SetTime(absl::Now());
  const absl::Time deadline = f.clock.Now() + (deadline_passed ? -absl::Seconds(1)
                                                                : absl::Seconds(60));

  // Each input is judged alone: an empty cache, no hook calls yet.
  f.cache->InvalidateAll();
  f.log = HookLog();
  HookLog& log = f.log;
  ResolveHandler& handler = *f.handler;

  auto call = [&](bool may_block) -> std::optional<Answer> {
    grpc::ByteBuffer response;
    std::optional<absl::Status> status;
    if (method == Method::kResolve) {
      status = may_block ? handler.ResolveSecrets(credentials, *parsed.resolve, deadline,
                                                  &response)
                         : handler.TryResolveSecretsWithoutBlocking(
                               credentials, *parsed.resolve, deadline, &response);
    } else {
      status = may_block ? handler.DecryptSecureValues(credentials, *parsed.decrypt, deadline,
                                                       &response)
                         : handler.TryDecryptSecureValuesWithoutBlocking(
                               credentials, *parsed.decrypt, deadline, &response);
    }
    if (!status.has_value()) {
      FUZZ_CHECK(!response.Valid());
      return std::nullopt;
    }
    Answer answer;
    answer.status = *status;
    answer.response_set = response.Valid();
    answer.bytes = testing::WireBytes(response);
    return answer;
  };

  const bool try_too = (mode & 4) != 0;
  const std::optional<Answer> cold = try_too ? call(false) : std::nullopt;
  const std::optional<Answer> blocking = call(true);
  FUZZ_CHECK(blocking.has_value());
  const Answer& answer = *blocking;
  const absl::StatusCode code = answer.status.code();

  // The call's status.
  if (deadline_passed) FUZZ_CHECK(code == absl::StatusCode::kDeadlineExceeded);
  if (!deadline_passed && (no_credentials || form == 3)) {
    FUZZ_CHECK(code == absl::StatusCode::kUnauthenticated);
  }
  switch (code) {
    case absl::StatusCode::kOk:
    case absl::StatusCode::kUnauthenticated:
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kDeadlineExceeded:
      break;
    case absl::StatusCode::kPermissionDenied:
      FUZZ_CHECK(method == Method::kResolve);
      break;
    default:
      FUZZ_CHECK(false && "a status the method may not return");
  }
  FUZZ_CHECK(answer.status.message().size() <= 1024 + size);
  FUZZ_CHECK(log.rate_limited == 0);
  // Only the store's failures are backend errors (none here is slow enough to pass a deadline).
  if (store_mode == 0) FUZZ_CHECK(log.backend_errors == 0);

  // What the caller may read; every other value must stay out of everything it receives.
  const bool authenticated = code == absl::StatusCode::kOk && !no_credentials && form != 3;
  const std::set<size_t> none;
  const std::set<size_t>& readable = authenticated ? token.readable : none;
  size_t largest_value = 0;
  for (size_t i = 0; i < Secrets().size(); ++i) {
    const std::string& value = Secrets()[i].value;
    largest_value = std::max(largest_value, value.size());
    if (Contains(input, value)) continue;  // echoed keys and names may hold it
    for (const std::string& s : log.strings) FUZZ_CHECK(!Contains(s, value));
    FUZZ_CHECK(!Contains(answer.status.message(), value));
    if (readable.count(i) == 0) FUZZ_CHECK(!Contains(answer.bytes, value));
  }
  for (absl::string_view detail : {kUnavailableDetail, kDataLossDetail}) {
    if (Contains(input, detail)) continue;
    FUZZ_CHECK(!Contains(answer.bytes, detail));
    FUZZ_CHECK(!Contains(answer.status.message(), detail));
  }

  // The response.
  FUZZ_CHECK(answer.response_set == (code == absl::StatusCode::kOk));
  size_t entries = 0;
  if (code == absl::StatusCode::kOk && method == Method::kResolve) {
    secretresolver::v1::ResolveSecretsResponse out;
    FUZZ_CHECK(out.ParseFromString(answer.bytes));
    FUZZ_CHECK(static_cast<size_t>(out.results_size()) ==
               static_cast<size_t>(parsed.resolve->refs_size()));
    for (const auto& [key, uri] : parsed.resolve->refs()) {
      auto it = out.results().find(key);
      FUZZ_CHECK(it != out.results().end());
      const secretresolver::v1::SecretResult& result = it->second;
      FUZZ_CHECK(result.has_secret() != result.has_error());
      if (result.has_error()) {
        FUZZ_CHECK(result.error().code() != 0);
        FUZZ_CHECK(result.error().message().size() <= 1024 + size);
      }
    }
    FUZZ_CHECK(Deterministic(out) == answer.bytes);
    entries = out.results_size();
  } else if (code == absl::StatusCode::kOk) {
    decryptv1beta1::SecureValueDecryptResponseCollection out;
    FUZZ_CHECK(out.ParseFromString(answer.bytes));
    const std::set<std::string> names(parsed.decrypt->names().begin(),
                                      parsed.decrypt->names().end());
    FUZZ_CHECK(static_cast<size_t>(out.decrypted_values_size()) == names.size());
    for (const std::string& name : names) {
      auto it = out.decrypted_values().find(name);
      FUZZ_CHECK(it != out.decrypted_values().end());
      const decryptv1beta1::Result& result = it->second;
      FUZZ_CHECK(result.has_value() != result.has_error_message());
      if (result.has_error_message()) {
        const std::string& e = result.error_message();
        FUZZ_CHECK(e == "not found" || e == "not authorized" || e == "decryption failed");
      }
    }
    entries = out.decrypted_values_size();
  }
  FUZZ_CHECK(answer.bytes.size() <= 1024 + 4 * size + entries * (largest_value + 256));

  // The non-blocking path agrees with the blocking one.
  if (try_too) {
    const std::optional<Answer> warm = call(false);
    for (const std::optional<Answer>* other : {&cold, &warm}) {
      if (!other->has_value()) continue;
      FUZZ_CHECK((*other)->status.code() == code);
      // A backend error's message carries a fresh correlation id per call.
      if (log.backend_errors == 0) {
        FUZZ_CHECK(Canonical(method, (*other)->bytes) == Canonical(method, answer.bytes));
      }
    }
  }
  return 0;
}
