// The hand-arranged response bytes against protobuf's own: for every shape of result, the
// encoded buffer must equal what the deterministic serializer writes for the message the same
// results describe, and parse back to it.
#include "server/wire_response.h"

#include <algorithm>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include "absl/status/status.h"
#include "decrypt/v1beta1/decrypt.pb.h"
#include "secretresolver/v1/resolver.pb.h"
#include "server/status_mapping.h"
#include "tests/server/wire_bytes.h"

namespace secret_resolver {
namespace {

using secretresolver::v1::ResolveSecretsResponse;
using testing::WireBytes;

std::string Deterministic(const google::protobuf::MessageLite& message) {
  std::string bytes;
  google::protobuf::io::StringOutputStream stream(&bytes);
  google::protobuf::io::CodedOutputStream out(&stream);
  out.SetSerializationDeterministic(true);
  EXPECT_TRUE(message.SerializeToCodedStream(&out));
  out.Trim();
  return bytes;
}

// The message the results describe, built field by field through the generated setters.
ResolveSecretsResponse Expected(const std::vector<RefResult>& results) {
  ResolveSecretsResponse response;
  for (const RefResult& result : results) {
    secretresolver::v1::SecretResult& out = (*response.mutable_results())[std::string(result.key)];
    if (!result.status.ok()) {
      out.mutable_error()->set_code(RpcCodeNumber(result.status.code()));
      out.mutable_error()->set_message(std::string(result.status.message()));
      continue;
    }
    secretresolver::v1::ResolvedSecret* secret = out.mutable_secret();
    secret->set_value(std::string(result.value->value.reveal()));
    secret->set_name(std::string(result.name));
    secret->set_version(result.value->version);
    secret->set_stale(result.stale);
    secret->mutable_redaction()->set_placeholder(result.placeholder());
    secret->mutable_redaction()->set_fingerprint(result.fingerprint());
  }
  return response;
}

// Redaction tokens whose placeholder is `format` with the key and name filled in.
const RedactionTokens* Tokens(absl::string_view format) {
  static auto* const made = new std::map<std::string, std::unique_ptr<RedactionTokens>>();
  std::unique_ptr<RedactionTokens>& tokens = (*made)[std::string(format)];
  if (tokens == nullptr) {
    tokens =
        *RedactionTokens::Create(format, SecretBytes(std::string(kMinFingerprintKeyBytes, 'k')));
  }
  return tokens.get();
}

const RedactionTokens* DefaultTokens() { return Tokens(kDefaultPlaceholderFormat); }

// A 16-byte digest, with a NUL and bytes above 0x7f. ("" stands for a fingerprint OpenSSL
// could not compute.)
std::string Digest() {
  return std::string("\x00\x11\x22\x33\x44\x55\x66\x77\x88\x99\xaa\xbb\xcc\xdd\xee\xff", 16);
}

RefResult Resolved(absl::string_view key, absl::string_view name, std::string value,
                   int64_t version, bool stale, const RedactionTokens* tokens,
                   std::string digest) {
  auto cached = std::make_shared<CachedValue>();
  cached->version = version;
  cached->value = SecretBytes(value);
  RefResult result;
  result.key = key;
  result.name = name;
  result.value = std::move(cached);
  result.stale = stale;
  result.tokens = tokens;
  result.fingerprint_digest_size = digest.size();
  std::copy(digest.begin(), digest.end(), result.fingerprint_digest_bytes.begin());
  return result;
}

RefResult Failed(absl::string_view key, absl::Status status) {
  RefResult result;
  result.key = key;
  result.status = std::move(status);
  return result;
}

void ExpectSameAsProtobuf(const std::vector<RefResult>& results) {
  const ResolveSecretsResponse expected = Expected(results);
  const std::string encoded = WireBytes(EncodeResolveSecretsResponse(results));
  EXPECT_TRUE(encoded == Deterministic(expected))
      << "the encoded bytes differ from protobuf's (" << encoded.size() << " against "
      << Deterministic(expected).size() << " bytes)";
  ResolveSecretsResponse parsed;
  ASSERT_TRUE(parsed.ParseFromString(encoded));
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(parsed, expected));
}

TEST(WireResponseTest, ResolvedSecretsMatchProtobuf) {
  ExpectSameAsProtobuf({Resolved("api-token", "workflows/http/auth", std::string(32, 'v'), 3,
                                 false, DefaultTokens(), Digest())});
}

TEST(WireResponseTest, DefaultFieldsAreLeftOutAsProtobufDoes) {
  // Version 0, not stale, empty value, name and tokens: every optional field absent, yet the
  // entry, its secret and its (empty) redaction are there.
  ExpectSameAsProtobuf({Resolved("k", "", "", 0, false, Tokens("{name}"), "")});
}

TEST(WireResponseTest, StaleAndLargeOrNegativeVersions) {
  ExpectSameAsProtobuf({Resolved("a", "n", "x", 1, true, DefaultTokens(), Digest()),
                        Resolved("b", "n", "x", int64_t{1} << 40, false, DefaultTokens(), Digest()),
                        Resolved("c", "n", "x", -5, true, DefaultTokens(), Digest())});
}

TEST(WireResponseTest, LengthsOfEveryVarintWidth) {
  // 127 and 128 bytes straddle the one-byte length; 16,384 needs three bytes; four megabytes
  // four (and the entries around them too).
  // The placeholder is the name, so it takes those lengths too.
  std::vector<RefResult> results;
  const std::vector<std::string> keys = {"k1", "k2", "k3", "k4", "k5"};
  const size_t sizes[] = {126, 127, 128, 16'384, 4 << 20};
  std::vector<std::string> names;  // results view their names
  for (size_t size : sizes) names.push_back(std::string(size, 'n'));
  for (size_t i = 0; i < keys.size(); ++i) {
    results.push_back(Resolved(keys[i], names[i],
                               std::string(sizes[i], static_cast<char>('a' + i)), 7, false,
                               Tokens("{name}"), Digest()));
  }
  ExpectSameAsProtobuf(results);
}

TEST(WireResponseTest, ErrorsOfEveryCode) {
  std::vector<std::string> keys;
  for (int code = 1; code <= 16; ++code) keys.push_back("key-" + std::string(1, 'a' + code));
  std::vector<RefResult> results;
  for (int code = 1; code <= 16; ++code) {
    results.push_back(Failed(keys[code - 1], absl::Status(static_cast<absl::StatusCode>(code),
                                                          "what went wrong, and where")));
  }
  ExpectSameAsProtobuf(results);
}

TEST(WireResponseTest, ErrorWithEmptyMessage) {
  ExpectSameAsProtobuf({Failed("k", absl::Status(absl::StatusCode::kNotFound, ""))});
}

TEST(WireResponseTest, MixedResultsInKeyOrder) {
  ExpectSameAsProtobuf({Resolved("a-key", "team/one", "value-one", 2, false, DefaultTokens(),
                                 Digest()),
                        Failed("b-key", absl::PermissionDeniedError("not authorized")),
                        Resolved("c-key", "team/three", "value-three", 9, true,
                                 Tokens("{{{name}}} {key} {name}"), "\x01"),
                        Failed("d-key", absl::InvalidArgumentError("secret URI: byte 9: bad"))});
}

TEST(WireResponseTest, NonAsciiBytesAreCopiedVerbatim) {
  const std::string value("\x00\xff\x80\n\"\\\0", 7);
  // The line separator in the name becomes '?' in the placeholder.
  ExpectSameAsProtobuf(
      {Resolved("k", "caf\xc3\xa9/\xe2\x80\xa8", value, 1, false, Tokens("<{name}>"), Digest())});
}

TEST(WireResponseTest, NoResultsIsAnEmptyMessage) {
  EXPECT_EQ(WireBytes(EncodeResolveSecretsResponse({})), "");
}

TEST(WireResponseTest, SerializedMessagesAreProtobufsBytes) {
  decryptv1beta1::SecureValueDecryptResponseCollection collection;
  (*collection.mutable_decrypted_values())["db"].set_value("db-value");
  (*collection.mutable_decrypted_values())["gone"].set_error_message("not found");
  decryptv1beta1::SecureValueDecryptResponseCollection parsed;
  ASSERT_TRUE(parsed.ParseFromString(WireBytes(SerializeToWipedBuffer(collection))));
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(parsed, collection));
}

}  // namespace
}  // namespace secret_resolver
