// Maps absl::Status to grpc::Status one-to-one: every absl code has the gRPC code of the same
// number and name, and the message is carried unchanged (messages never hold secrets).
//
// Thread safety: pure functions.
#ifndef SECRET_RESOLVER_SERVER_STATUS_MAPPING_H_
#define SECRET_RESOLVER_SERVER_STATUS_MAPPING_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace secret_resolver {

// The grpc::Status with the same code and message as `status`.
grpc::Status ToGrpcStatus(const absl::Status& status);

// The google.rpc.Code number of `code` (the numbers are shared by absl and gRPC).
int RpcCodeNumber(absl::StatusCode code);

}  // namespace secret_resolver

#endif  // SECRET_RESOLVER_SERVER_STATUS_MAPPING_H_
