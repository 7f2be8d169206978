// wire_response: the bytes the sidecar sends back, in buffers that are wiped when gRPC lets go
// of them.
//
// A ResolveSecrets response carries secret values. Built as a ResolveSecretsResponse message it
// costs a map entry, three messages and five strings per reference, a copy of every value in
// the message and another in the buffer protobuf serializes it into, which gRPC frees without
// wiping. EncodeResolveSecretsResponse instead writes the wire bytes straight from the
// resolver's results with protobuf's encoding primitives (io::CodedOutputStream): the only copy
// of a value the sidecar makes for a response is the buffer it hands to gRPC, and that buffer is
// wiped when gRPC releases it. (The transport may still copy bytes of its own: TLS records, small frames.) Both
// services answer through such buffers; the methods are registered raw (grpc_services.cc).
//
// The field numbers come from the generated classes; the encoding is protobuf's (tag = field
// number << 3 | wire type, lengths and integers as varints, map entries as messages with the
// key in field 1 and the value in field 2). A test holds the bytes to those of protobuf's own
// deterministic serializer.
#ifndef SECRET_RESOLVER_SERVER_WIRE_RESPONSE_H_
#define SECRET_RESOLVER_SERVER_WIRE_RESPONSE_H_

#include <google/protobuf/message_lite.h>
#include <grpcpp/support/byte_buffer.h>

#include "absl/types/span.h"
#include "resolver/resolver.h"

namespace secret_resolver {

// The ResolveSecretsResponse for `results`: one entry per result, in the results' order, keyed
// by RefResult::key; a resolved secret (value, name, version, redaction, stale, superseded) for
// an OK status, otherwise a SecretError with the status's code number and message. For results
// in key order (the Resolver's order) the bytes are exactly those protobuf's deterministic
// serializer writes for the same message.
grpc::ByteBuffer EncodeResolveSecretsResponse(absl::Span<const RefResult> results);

// `message` serialized into a buffer that is wiped when gRPC releases it. (The caller still
// wipes the message's own copies of any secret.)
grpc::ByteBuffer SerializeToWipedBuffer(const google::protobuf::MessageLite& message);

}  // namespace secret_resolver

#endif  // SECRET_RESOLVER_SERVER_WIRE_RESPONSE_H_
