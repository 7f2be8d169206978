// The hand-arranged response bytes against protobuf's own: for every shape of result, the
// encoded buffer must equal what the deterministic serializer writes for the message the same
// results describe, and parse back to it.
#include "server/wire_response.h"

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

namespace secret_resolver {
namespace {

using secretresolver::v1::ResolveSecretsResponse;

std::string Bytes(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  EXPECT_TRUE(buffer.Dump(&slices).ok());
  std::string bytes;
  for (const grpc::Slice& slice : slices) {
    bytes.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
  }
  return bytes;
}

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
    secret->mutable_redaction()->set_placeholder(result.placeholder);
    secret->mutable_redaction()->set_fingerprint(result.fingerprint);
  }
  return response;
}

RefResult Resolved(absl::string_view key, absl::string_view name, std::string value,
                   int64_t version, bool stale, std::string placeholder,
                   std::string fingerprint) {
  auto cached = std::make_shared<CachedValue>();
  cached->version = version;
  cached->value = SecretBytes(value);
  RefResult result;
  result.key = key;
  result.name = name;
  result.value = std::move(cached);
  result.stale = stale;
  result.placeholder = std::move(placeholder);
  result.fingerprint = std::move(fingerprint);
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
  const std::string encoded = Bytes(EncodeResolveSecretsResponse(results));
  EXPECT_TRUE(encoded == Deterministic(expected))
      << "the encoded bytes differ from protobuf's (" << encoded.size() << " against "
      << Deterministic(expected).size() << " bytes)";
  ResolveSecretsResponse parsed;
  ASSERT_TRUE(parsed.ParseFromString(encoded));
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(parsed, expected));
}

TEST(WireResponseTest, ResolvedSecretsMatchProtobuf) {
  ExpectSameAsProtobuf({Resolved("api-token", "workflows/http/auth", std::string(32, 'v'), 3,
                                 false, "***SECRET_REDACTED:api-token***",
                                 "hmac-sha256:00112233445566778899aabbccddeeff")});
}

TEST(WireResponseTest, DefaultFieldsAreLeftOutAsProtobufDoes) {
  // Version 0, not stale, empty value, name and tokens: every optional field absent, yet the
  // entry, its secret and its (empty) redaction are there.
  ExpectSameAsProtobuf({Resolved("k", "", "", 0, false, "", "")});
}

TEST(WireResponseTest, StaleAndLargeOrNegativeVersions) {
  ExpectSameAsProtobuf({Resolved("a", "n", "x", 1, true, "p", "f"),
                        Resolved("b", "n", "x", int64_t{1} << 40, false, "p", "f"),
                        Resolved("c", "n", "x", -5, true, "p", "f")});
}

TEST(WireResponseTest, LengthsOfEveryVarintWidth) {
  // 127 and 128 bytes straddle the one-byte length; 16,384 needs three bytes; a megabyte four.
  std::vector<RefResult> results;
  const std::vector<std::string> keys = {"k1", "k2", "k3", "k4", "k5"};
  const size_t sizes[] = {126, 127, 128, 16'384, 1 << 20};
  std::vector<std::string> names;  // results view their names
  for (size_t size : sizes) names.push_back(std::string(size % 300, 'n'));
  for (size_t i = 0; i < keys.size(); ++i) {
    results.push_back(Resolved(keys[i], names[i],
                               std::string(sizes[i], static_cast<char>('a' + i)), 7, false,
                               std::string(sizes[i] % 200, 'p'), "hmac-sha256:ff"));
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
  ExpectSameAsProtobuf({Resolved("a-key", "team/one", "value-one", 2, false, "ph-a", "fp-a"),
                        Failed("b-key", absl::PermissionDeniedError("not authorized")),
                        Resolved("c-key", "team/three", "value-three", 9, true, "ph-c", "fp-c"),
                        Failed("d-key", absl::InvalidArgumentError("secret URI: byte 9: bad"))});
}

TEST(WireResponseTest, NonAsciiBytesAreCopiedVerbatim) {
  const std::string value("\x00\xff\x80\n\"\\\0", 7);
  ExpectSameAsProtobuf({Resolved("k", "caf\xc3\xa9/\xe2\x80\xa8", value, 1, false, "p", "f")});
}

TEST(WireResponseTest, NoResultsIsAnEmptyMessage) {
  EXPECT_EQ(Bytes(EncodeResolveSecretsResponse({})), "");
}

TEST(WireResponseTest, SerializedMessagesAreProtobufsBytes) {
  decryptv1beta1::SecureValueDecryptResponseCollection collection;
  (*collection.mutable_decrypted_values())["db"].set_value("db-value");
  (*collection.mutable_decrypted_values())["gone"].set_error_message("not found");
  decryptv1beta1::SecureValueDecryptResponseCollection parsed;
  ASSERT_TRUE(parsed.ParseFromString(Bytes(SerializeToWipedBuffer(collection))));
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(parsed, collection));
}

}  // namespace
}  // namespace secret_resolver
