#include "server/wire_response.h"

#include <cstdint>
#include <cstdlib>
#include <cstring>

#include <google/protobuf/io/coded_stream.h>
#include <grpc/slice.h>
#include <grpcpp/support/slice.h>
#include <openssl/crypto.h>

#include "absl/container/inlined_vector.h"
#include "absl/strings/string_view.h"
#include "secretresolver/v1/resolver.pb.h"
#include "server/status_mapping.h"

namespace secret_resolver {
namespace {

using google::protobuf::io::CodedOutputStream;
using secretresolver::v1::Redaction;
using secretresolver::v1::ResolvedSecret;
using secretresolver::v1::ResolveSecretsResponse;
using secretresolver::v1::SecretError;
using secretresolver::v1::SecretResult;

// Protobuf's wire types, and the field numbers of a map entry.
constexpr uint32_t kVarint = 0;
constexpr uint32_t kLengthDelimited = 2;
constexpr int kMapKey = 1;
constexpr int kMapValue = 2;

constexpr uint32_t Tag(int field, uint32_t wire_type) {
  return (static_cast<uint32_t>(field) << 3) | wire_type;
}

size_t TagSize(int field) { return CodedOutputStream::VarintSize32(Tag(field, kVarint)); }

// A length-delimited field of `size` bytes, written even when empty.
size_t FieldSize(int field, size_t size) {
  return TagSize(field) + CodedOutputStream::VarintSize64(size) + size;
}

// A proto3 string or bytes field of `size` bytes: absent when empty, as protobuf writes it.
size_t StringSize(int field, size_t size) { return size == 0 ? 0 : FieldSize(field, size); }

uint8_t* PutLengthDelimited(int field, size_t size, uint8_t* out) {
  out = CodedOutputStream::WriteVarint32ToArray(Tag(field, kLengthDelimited), out);
  return CodedOutputStream::WriteVarint64ToArray(size, out);
}

uint8_t* PutBytes(int field, absl::string_view s, uint8_t* out) {
  out = PutLengthDelimited(field, s.size(), out);
  if (!s.empty()) std::memcpy(out, s.data(), s.size());
  return out + s.size();
}

uint8_t* PutString(int field, absl::string_view s, uint8_t* out) {
  return s.empty() ? out : PutBytes(field, s, out);
}

// A string field of `size` bytes that `write(char*)` writes in place, returning the end.
template <typename Write>
uint8_t* PutWritten(int field, size_t size, Write write, uint8_t* out) {
  if (size == 0) return out;
  out = PutLengthDelimited(field, size, out);
  return reinterpret_cast<uint8_t*>(write(reinterpret_cast<char*>(out)));
}

uint8_t* PutVarint(int field, uint64_t value, uint8_t* out) {
  out = CodedOutputStream::WriteVarint32ToArray(Tag(field, kVarint), out);
  return CodedOutputStream::WriteVarint64ToArray(value, out);
}

void WipeAndFree(void* bytes, size_t size) {
  OPENSSL_cleanse(bytes, size);
  delete[] static_cast<uint8_t*>(bytes);
}

// A buffer of `size` bytes, filled by `fill(uint8_t*)` (which returns the end of what it wrote),
// that gRPC wipes as it releases it.
template <typename Fill>
grpc::ByteBuffer WipedBuffer(size_t size, Fill fill) {
  auto* bytes = new uint8_t[size];
  // The sizes are computed in one pass and written in another: if they ever disagreed, the
  // buffer would be overrun or carry uninitialised heap bytes to the client. Stop instead.
  if (fill(bytes) != bytes + size) std::abort();
  grpc::Slice slice(grpc_slice_new_with_len(bytes, size, WipeAndFree), grpc::Slice::STEAL_REF);
  return grpc::ByteBuffer(&slice, 1);
}

// The sizes of one entry's nested messages: computed once, then written as length prefixes.
struct EntrySizes {
  size_t placeholder = 0;  // the redaction tokens' text (OK results)
  size_t fingerprint = 0;
  size_t redaction = 0;  // Redaction (OK results)
  size_t outcome = 0;    // ResolvedSecret or SecretError
  size_t result = 0;     // SecretResult
  size_t entry = 0;      // the map entry
};

EntrySizes SizesOf(const RefResult& result) {
  EntrySizes sizes;
  if (result.status.ok()) {
    // (An OK result without tokens, which the Resolver never makes, gets no placeholder.)
    sizes.placeholder =
        result.tokens == nullptr ? 0 : result.tokens->PlaceholderSize(result.key, result.name);
    sizes.fingerprint = RedactionTokens::FingerprintSize(result.fingerprint_digest());
    sizes.redaction = StringSize(Redaction::kPlaceholderFieldNumber, sizes.placeholder) +
                      StringSize(Redaction::kFingerprintFieldNumber, sizes.fingerprint);
    const int64_t version = result.value->version;
    sizes.outcome =
        StringSize(ResolvedSecret::kValueFieldNumber, result.value->value.size()) +
        StringSize(ResolvedSecret::kNameFieldNumber, result.name.size()) +
        (version != 0 ? TagSize(ResolvedSecret::kVersionFieldNumber) +
                            CodedOutputStream::VarintSize64(static_cast<uint64_t>(version))
                      : 0) +
        FieldSize(ResolvedSecret::kRedactionFieldNumber, sizes.redaction) +
        (result.stale ? TagSize(ResolvedSecret::kStaleFieldNumber) + 1 : 0) +
        (result.superseded ? TagSize(ResolvedSecret::kSupersededFieldNumber) + 1 : 0);
    sizes.result = FieldSize(SecretResult::kSecretFieldNumber, sizes.outcome);
  } else {
    const int code = RpcCodeNumber(result.status.code());
    sizes.outcome =
        (code != 0 ? TagSize(SecretError::kCodeFieldNumber) +
                         CodedOutputStream::VarintSize32SignExtended(code)
                   : 0) +
        StringSize(SecretError::kMessageFieldNumber, result.status.message().size());
    sizes.result = FieldSize(SecretResult::kErrorFieldNumber, sizes.outcome);
  }
  // A map entry always carries its key and its value, even empty ones.
  sizes.entry = FieldSize(kMapKey, result.key.size()) + FieldSize(kMapValue, sizes.result);
  return sizes;
}

uint8_t* PutEntry(const RefResult& result, const EntrySizes& sizes, uint8_t* out) {
  out = PutLengthDelimited(ResolveSecretsResponse::kResultsFieldNumber, sizes.entry, out);
  out = PutBytes(kMapKey, result.key, out);
  out = PutLengthDelimited(kMapValue, sizes.result, out);
  if (result.status.ok()) {
    out = PutLengthDelimited(SecretResult::kSecretFieldNumber, sizes.outcome, out);
    out = PutString(ResolvedSecret::kValueFieldNumber, result.value->value.reveal(), out);
    out = PutString(ResolvedSecret::kNameFieldNumber, result.name, out);
    if (const int64_t version = result.value->version; version != 0) {
      out = PutVarint(ResolvedSecret::kVersionFieldNumber, static_cast<uint64_t>(version), out);
    }
    out = PutLengthDelimited(ResolvedSecret::kRedactionFieldNumber, sizes.redaction, out);
    out = PutWritten(
        Redaction::kPlaceholderFieldNumber, sizes.placeholder,
        [&](char* at) { return result.tokens->WritePlaceholder(result.key, result.name, at); },
        out);
    const absl::string_view digest = result.fingerprint_digest();
    out = PutWritten(
        Redaction::kFingerprintFieldNumber, sizes.fingerprint,
        [&](char* at) { return RedactionTokens::WriteFingerprint(digest, at); }, out);
    if (result.stale) out = PutVarint(ResolvedSecret::kStaleFieldNumber, 1, out);
    if (result.superseded) out = PutVarint(ResolvedSecret::kSupersededFieldNumber, 1, out);
  } else {
    out = PutLengthDelimited(SecretResult::kErrorFieldNumber, sizes.outcome, out);
    if (const int code = RpcCodeNumber(result.status.code()); code != 0) {
      // int32 negatives are sign-extended to ten bytes, as protobuf writes them.
      out = PutVarint(SecretError::kCodeFieldNumber,
                      static_cast<uint64_t>(static_cast<int64_t>(code)), out);
    }
    out = PutString(SecretError::kMessageFieldNumber, result.status.message(), out);
  }
  return out;
}

}  // namespace

grpc::ByteBuffer EncodeResolveSecretsResponse(absl::Span<const RefResult> results) {
  absl::InlinedVector<EntrySizes, 8> sizes;
  sizes.reserve(results.size());
  size_t total = 0;
  for (const RefResult& result : results) {
    sizes.push_back(SizesOf(result));
    total += FieldSize(ResolveSecretsResponse::kResultsFieldNumber, sizes.back().entry);
  }
  return WipedBuffer(total, [&](uint8_t* out) {
    for (size_t i = 0; i < results.size(); ++i) out = PutEntry(results[i], sizes[i], out);
    return out;
  });
}

grpc::ByteBuffer SerializeToWipedBuffer(const google::protobuf::MessageLite& message) {
  const size_t size = message.ByteSizeLong();
  return WipedBuffer(size,
                     [&](uint8_t* out) { return message.SerializeWithCachedSizesToArray(out); });
}

}  // namespace secret_resolver
