#include "client/remote_redaction.h"

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "secretresolver/v1/resolver.grpc.pb.h"

namespace secret_resolver::client {
namespace {

using ::secretresolver::v1::RedactLogsRequest;
using ::secretresolver::v1::RedactLogsResponse;

// gRPC and absl share code numbers and names.
absl::Status FromGrpc(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
}

}  // namespace

absl::StatusOr<std::unique_ptr<RemoteRedaction>> RemoteRedaction::Start(
    const std::shared_ptr<grpc::Channel>& channel,
    const std::vector<std::pair<std::string, std::string>>& metadata, absl::string_view stack,
    const std::map<std::string, std::string>& refs, ChunkSink sink) {
  auto context = std::make_unique<grpc::ClientContext>();
  for (const auto& [key, value] : metadata) context->AddMetadata(key, value);
  std::unique_ptr<secretresolver::v1::SecretResolver::Stub> stub =
      secretresolver::v1::SecretResolver::NewStub(channel);
  std::unique_ptr<Stream> stream = stub->RedactLogs(context.get());
  RedactLogsRequest start;
  start.mutable_start()->set_stack(std::string(stack));
  start.mutable_start()->mutable_refs()->insert(refs.begin(), refs.end());
  RedactLogsResponse started;
  if (!stream->Write(start) || !stream->Read(&started)) {
    stream->WritesDone();
    const absl::Status status = FromGrpc(stream->Finish());
    return status.ok() ? absl::InternalError("the sidecar ended RedactLogs before starting it")
                       : status;
  }
  if (!started.has_started()) {
    context->TryCancel();
    stream->Finish();
    return absl::InternalError("the sidecar's first RedactLogs response is not `started`");
  }
  std::map<std::string, std::string> placeholders(started.started().placeholders().begin(),
                                                  started.started().placeholders().end());
  return absl::WrapUnique(new RemoteRedaction(std::move(context), std::move(stream),
                                              std::move(placeholders), std::move(sink)));
}

RemoteRedaction::RemoteRedaction(std::unique_ptr<grpc::ClientContext> context,
                                 std::unique_ptr<Stream> stream,
                                 std::map<std::string, std::string> placeholders, ChunkSink sink)
    : context_(std::move(context)),
      stream_(std::move(stream)),
      placeholders_(std::move(placeholders)),
      sink_(std::move(sink)),
      reader_([this] { ReadResponses(); }) {}

RemoteRedaction::~RemoteRedaction() {
  if (!finished_) {
    context_->TryCancel();
    Finish();
  }
}

void RemoteRedaction::ReadResponses() {
  RedactLogsResponse response;
  while (stream_->Read(&response)) {
    if (response.has_chunk() && !response.chunk().empty()) sink_(response.chunk());
  }
}

absl::Status RemoteRedaction::Write(absl::string_view text) {
  if (finished_) return absl::FailedPreconditionError("the RedactLogs stream is finished");
  RedactLogsRequest request;
  while (!text.empty()) {
    const absl::string_view piece = text.substr(0, kMaxChunkBytes);
    request.set_chunk(piece.data(), piece.size());
    if (!stream_->Write(request)) {
      return absl::UnavailableError("the RedactLogs stream ended; Finish() has its status");
    }
    text.remove_prefix(piece.size());
  }
  return absl::OkStatus();
}

absl::Status RemoteRedaction::Finish() {
  if (finished_) return status_;
  finished_ = true;
  stream_->WritesDone();
  reader_.join();
  status_ = FromGrpc(stream_->Finish());
  return status_;
}

}  // namespace secret_resolver::client
