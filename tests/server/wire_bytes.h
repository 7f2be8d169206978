// WireBytes: the bytes a grpc::ByteBuffer holds, for tests that compare or parse responses.
#ifndef SECRET_RESOLVER_TESTS_SERVER_WIRE_BYTES_H_
#define SECRET_RESOLVER_TESTS_SERVER_WIRE_BYTES_H_

#include <string>
#include <vector>

#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/slice.h>

namespace secret_resolver::testing {

// The buffer's bytes, its slices joined; "" for a buffer that holds none (or cannot be read).
inline std::string WireBytes(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  if (!buffer.Valid() || !buffer.Dump(&slices).ok()) return "";
  std::string bytes;
  for (const grpc::Slice& slice : slices) {
    bytes.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
  }
  return bytes;
}

}  // namespace secret_resolver::testing

#endif  // SECRET_RESOLVER_TESTS_SERVER_WIRE_BYTES_H_
