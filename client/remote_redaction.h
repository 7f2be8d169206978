// RemoteRedaction: one RedactLogs stream (contract.md section 2) from the caller's side. The
// caller writes log text; the sidecar redacts it with the values of the stream's references
// (which never leave the sidecar) and the redacted text comes back, in order, to a sink, on a
// thread of the stream's own. A value split across Write calls is still redacted; the output
// lags the input by less than the longest pattern (an encoding of the longest value) until
// Finish, which sends the rest.
//
// Writes go out as the transport accepts them: the sidecar reads the next chunk only once it has
// answered the last one, so a Write blocks while the sidecar (or the sink) falls behind, and no
// side buffers without bound.
//
// Thread safety: Write and Finish from one thread at a time. The sink is called on the stream's
// reader thread, one call at a time, never after Finish returns.
#ifndef SECRET_RESOLVER_CLIENT_REMOTE_REDACTION_H_
#define SECRET_RESOLVER_CLIENT_REMOTE_REDACTION_H_

#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "client/redactor/redactor.h"

namespace grpc {
class Channel;
class ClientContext;
template <class W, class R>
class ClientReaderWriter;
}  // namespace grpc

namespace secretresolver::v1 {
class RedactLogsRequest;
class RedactLogsResponse;
}  // namespace secretresolver::v1

namespace secret_resolver::client {

class RemoteRedaction {
 public:
  // The most bytes one request carries; longer writes are split (the sidecar's default
  // limits.max_message_bytes is 1 MiB).
  static constexpr size_t kMaxChunkBytes = size_t{256} << 10;

  // Opens a RedactLogs stream on `channel` with `metadata` (the access token), for `refs` (ref
  // key -> `secret://name`) of `stack`, and waits for the sidecar to accept it. Errors are the
  // sidecar's, as for ResolveSecrets, where a reference's error (NOT_FOUND, PERMISSION_DENIED,
  // ...) fails the whole stream; RESOURCE_EXHAUSTED when it runs its most streams.
  static absl::StatusOr<std::unique_ptr<RemoteRedaction>> Start(
      const std::shared_ptr<grpc::Channel>& channel,
      const std::vector<std::pair<std::string, std::string>>& metadata, absl::string_view stack,
      const std::map<std::string, std::string>& refs, ChunkSink sink);

  // Cancels the stream if Finish was not called.
  ~RemoteRedaction();
  RemoteRedaction(const RemoteRedaction&) = delete;
  RemoteRedaction& operator=(const RemoteRedaction&) = delete;

  // Sends `text` to be redacted. Blocks while the transport's window is full. An error means
  // the stream is over: Finish then returns its status.
  absl::Status Write(absl::string_view text);

  // Ends the input, waits until the last redacted bytes have reached the sink, and returns the
  // stream's status (OK, or the sidecar's error, e.g. UNAVAILABLE while it shuts down).
  absl::Status Finish();

  // Ref key -> the placeholder written in place of that reference's value.
  const std::map<std::string, std::string>& placeholders() const { return placeholders_; }

 private:
  using Stream = grpc::ClientReaderWriter<secretresolver::v1::RedactLogsRequest,
                                          secretresolver::v1::RedactLogsResponse>;
  RemoteRedaction(std::unique_ptr<grpc::ClientContext> context, std::unique_ptr<Stream> stream,
                  std::map<std::string, std::string> placeholders, ChunkSink sink);
  void ReadResponses();

  std::unique_ptr<grpc::ClientContext> context_;
  std::unique_ptr<Stream> stream_;
  std::map<std::string, std::string> placeholders_;
  ChunkSink sink_;
  std::thread reader_;
  bool finished_ = false;
  absl::Status status_;
};

}  // namespace secret_resolver::client

#endif  // SECRET_RESOLVER_CLIENT_REMOTE_REDACTION_H_
