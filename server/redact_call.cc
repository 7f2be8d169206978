#include "server/redact_call.h"

#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/wire_format_lite.h>
#include <grpcpp/support/proto_buffer_reader.h>
#include <openssl/crypto.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "client/redactor/redactor.h"
#include "secretresolver/v1/resolver.pb.h"
#include "server/status_mapping.h"

namespace secret_resolver {
namespace {

// The response that carries `text` as RedactLogsResponse.chunk: the field's tag and length, then
// the bytes.
grpc::ByteBuffer ChunkResponse(absl::string_view text) {
  char header[1 + 5];  // the tag, and a length as a varint of at most 5 bytes
  header[0] = static_cast<char>(
      (secretresolver::v1::RedactLogsResponse::kChunkFieldNumber << 3) |
      google::protobuf::internal::WireFormatLite::WIRETYPE_LENGTH_DELIMITED);
  uint8_t* end = google::protobuf::io::CodedOutputStream::WriteVarint32ToArray(
      static_cast<uint32_t>(text.size()), reinterpret_cast<uint8_t*>(header + 1));
  grpc::Slice slices[2] = {
      grpc::Slice(header, reinterpret_cast<char*>(end) - header),
      grpc::Slice(text.data(), text.size()),
  };
  return grpc::ByteBuffer(slices, text.empty() ? 1 : 2);
}

}  // namespace

// One RedactLogs stream: requested from the queue; its first message (start) checked and
// resolved here or on the pool, like a ResolveSecrets call; then, in turn, one chunk read,
// redacted and answered, until the caller half-closes, when what was held back goes out and
// the stream finishes OK. Only one read or write is outstanding at a time, and the next chunk
// is read only once the answer to the last one is written, so a caller that does not read its
// answers stops the stream rather than making it buffer (HTTP/2 flow control holds the caller
// back). An answer longer than max_message_bytes goes out in several responses.
// (Outside the unnamed namespace: RedactStreams names it.)
class RedactCall final : public QueueTag {
 public:
  static void Request(RedactStreams* streams, grpc::ServerCompletionQueue* queue) {
    auto* call = new RedactCall(streams, queue);
    streams->request(&call->context_, &call->stream_, queue, call);
  }

  void Proceed(bool ok) override {
    switch (step_) {
      case Step::kRequested:
        if (!ok) {
          streams_->call_ended();
          Release();  // shutting down, never matched: no done tag comes
          return;
        }
        Matched();
        return;
      case Step::kReadingStart:
        if (!ok) {
          Finish(absl::InvalidArgumentError(
              "RedactLogs: the stream ended before its first message (start)"));
          return;
        }
        StartRedaction();
        return;
      case Step::kWriting:
        if (!ok) {
          Finish(absl::CancelledError("the caller went away"));
          return;
        }
        WriteOrRead();
        return;
      case Step::kFinishing:
        finish_ok_ = ok;
        finish_returned_ = true;
        CompleteIfDone();
        return;
    }
  }

  ~RedactCall() override {
    redaction_.reset();  // wipes what it held back
  }

  // Under streams_->mu, while this stream waits for a chunk (in `reading`): ends it for the
  // drain. The read stays outstanding; its tag is dropped when it comes back.
  void EndReading() {
    ended_while_reading_ = true;
    EndForDrain();
  }

  // Under streams_->mu, while this stream's start is on the pool (in `starting`): answers
  // UNAVAILABLE; the worker's answer is dropped.
  void AbandonStart() {
    abandoned_ = true;
    Finish(absl::UnavailableError("the sidecar is shutting down"));
  }

 private:
  enum class Step { kRequested, kReadingStart, kWriting, kFinishing };

  RedactCall(RedactStreams* streams, grpc::ServerCompletionQueue* queue)
      : streams_(streams), queue_(queue), stream_(&context_), done_tag_(this), read_tag_(this) {
    streams_->call_started();
    context_.AsyncNotifyWhenDone(&done_tag_);
  }

  class DoneTag final : public QueueTag {
   public:
    explicit DoneTag(RedactCall* call) : call_(call) {}
    void Proceed(bool) override {
      call_->done_returned_ = true;
      call_->CompleteIfDone();
    }

   private:
    RedactCall* const call_;
  };

  // The tag of a chunk's read.
  class ReadTag final : public QueueTag {
   public:
    explicit ReadTag(RedactCall* call) : call_(call) {}
    void Proceed(bool ok) override { call_->OnChunk(ok); }

   private:
    RedactCall* const call_;
  };

  // A chunk was read (`ok`), or the caller half-closed (or went away), or the stream was ended
  // for the drain while the read was outstanding.
  void OnChunk(bool ok) {
    bool ended = false;
    {
      std::lock_guard<std::mutex> lock(streams_->mu);
      streams_->reading.erase(this);
      ended = ended_while_reading_;
    }
    reading_ = false;
    if (ended) {
      input_.Clear();
      CompleteIfDone();
      return;
    }
    if (!ok) {
      // The caller half-closed (or went away): what was held back is complete now.
      redaction_->Flush();
      if (output_.empty()) {
        Finish(absl::OkStatus());
      } else {
        last_write_ = true;
        WriteOrRead();
      }
      return;
    }
    if (absl::Status redacted = RedactChunk(); !redacted.ok()) {
      Finish(redacted);
      return;
    }
    WriteOrRead();
  }

  // The drain: rather than reading more, what was held back goes out (as at a half-close), and
  // the stream ends UNAVAILABLE.
  void EndForDrain() {
    redaction_->Flush();
    last_write_ = true;
    ending_for_drain_ = true;
    if (output_.empty()) {
      Finish(absl::UnavailableError("the sidecar is shutting down"));
      return;
    }
    WriteOrRead();
  }

  void Matched() {
    start_ = absl::Now();
    streams_->matched(start_);
    // Keep a stream of this kind requested, during a drain too: one gRPC has received but not
    // matched when the server shuts down would be cancelled.
    Request(streams_, queue_);
    if (streams_->is_draining()) {
      Finish(absl::UnavailableError("the sidecar is shutting down"));
      return;
    }
    if (!TakeStreamPlace()) {
      Finish(absl::ResourceExhaustedError(
          absl::StrCat("too many RedactLogs streams (limits.max_redact_streams is ",
                       streams_->limits.max_streams, "); retry with backoff")));
      return;
    }
    counted_ = true;
    step_ = Step::kReadingStart;
    stream_.Read(&input_, this);
  }

  // Parses the first message and checks and resolves its references, without blocking if the
  // caches allow, otherwise on the pool.
  void StartRedaction() {
    secretresolver::v1::RedactLogsRequest request;
    if (!ParseInput(&request) || !request.has_start()) {
      Finish(absl::InvalidArgumentError(
          "RedactLogs: the first message must be a RedactLogsRequest with `start` set"));
      return;
    }
    start_request_ = std::move(*request.mutable_start());
    const absl::Time deadline = absl::FromChrono(context_.deadline());
    credentials_ = streams_->credentials_of(context_);
    if (std::optional<absl::StatusOr<RedactionSession>> answered =
            streams_->handler->TryStartRedactionWithoutBlocking(credentials_, start_request_,
                                                               deadline)) {
      Started(*std::move(answered));
      return;
    }
    holders_.fetch_add(1, std::memory_order_relaxed);  // the pool's task
    {
      std::lock_guard<std::mutex> lock(streams_->mu);
      streams_->starting.insert(this);
    }
    const bool accepted = streams_->dispatch([this, deadline] {
      absl::StatusOr<RedactionSession> session =
          streams_->is_draining()
              ? absl::UnavailableError("the sidecar is shutting down")
              : streams_->handler->StartRedaction(credentials_, start_request_, deadline);
      bool abandoned = false;
      {
        std::lock_guard<std::mutex> lock(streams_->mu);
        streams_->starting.erase(this);
        abandoned = abandoned_;
      }
      if (!abandoned) Started(std::move(session));
      Release();
    });
    if (!accepted) {
      {
        std::lock_guard<std::mutex> lock(streams_->mu);
        streams_->starting.erase(this);
      }
      holders_.fetch_sub(1, std::memory_order_relaxed);
      Finish(streams_->is_draining()
                 ? absl::UnavailableError("the sidecar is shutting down")
                 : absl::ResourceExhaustedError("the sidecar is overloaded; retry with backoff"));
    }
  }

  void Started(absl::StatusOr<RedactionSession> session) {
    if (!session.ok()) {
      Finish(session.status());
      return;
    }
    secretresolver::v1::RedactLogsResponse response;
    auto& placeholders = *response.mutable_started()->mutable_placeholders();
    for (auto& [key, placeholder] : session->placeholders) placeholders[key] = placeholder;
    redaction_ = std::make_unique<client::RedactionStream>(
        std::move(session->redactor),
        [this](absl::string_view piece) { output_.append(piece.data(), piece.size()); });
    const std::string bytes = response.SerializeAsString();
    const grpc::Slice slice(bytes);
    out_buffer_ = grpc::ByteBuffer(&slice, 1);
    answered_ = true;  // once written, read the first chunk
    step_ = Step::kWriting;
    stream_.Write(out_buffer_, this);
  }

  // Redacts the chunk just read into output_. A message that is exactly one `chunk` field (what
  // every client sends) is redacted straight from gRPC's slices; anything else is parsed.
  absl::Status RedactChunk() {
    std::vector<grpc::Slice> slices;
    if (!input_.Dump(&slices).ok()) return absl::InternalError("cannot read the message");
    if (std::optional<size_t> body = ChunkBodyOffset(slices)) {
      size_t skip = *body;
      for (const grpc::Slice& slice : slices) {
        const absl::string_view piece(reinterpret_cast<const char*>(slice.begin()), slice.size());
        if (skip >= piece.size()) {
          skip -= piece.size();
          continue;
        }
        redaction_->Write(piece.substr(skip));
        skip = 0;
      }
    } else {
      secretresolver::v1::RedactLogsRequest request;
      if (!ParseInput(&request) || request.has_start()) {
        return absl::InvalidArgumentError(
            "RedactLogs: every message after the first must be a RedactLogsRequest with "
            "`chunk` set");
      }
      redaction_->Write(request.chunk());
      // The caller's raw text may hold a value: wiped before it is freed. (gRPC's own receive
      // buffers are freed without wiping, as for any request.)
      OPENSSL_cleanse(request.mutable_chunk()->data(), request.chunk().size());
    }
    input_.Clear();
    redaction_->EmitDecided();
    return absl::OkStatus();
  }

  // Where the chunk's bytes begin when the message is exactly one `chunk` field, whose tag and
  // length are in the first slice; otherwise nullopt.
  std::optional<size_t> ChunkBodyOffset(const std::vector<grpc::Slice>& slices) const {
    if (slices.empty()) return std::nullopt;
    size_t total = 0;
    for (const grpc::Slice& slice : slices) total += slice.size();
    google::protobuf::io::CodedInputStream header(slices[0].begin(),
                                                  static_cast<int>(slices[0].size()));
    uint32_t length = 0;
    if (header.ReadTag() != kChunkTag || !header.ReadVarint32(&length)) return std::nullopt;
    const size_t offset = static_cast<size_t>(header.CurrentPosition());
    if (offset + length != total) return std::nullopt;
    return offset;
  }

  bool ParseInput(google::protobuf::MessageLite* message) {
    bool parsed = false;
    {
      grpc::ProtoBufferReader reader(&input_);
      parsed = reader.status().ok() && message->ParseFromZeroCopyStream(&reader);
    }
    input_.Clear();
    return parsed;
  }

  // Writes the next piece of output_ (at most max_message_bytes; one empty response when there
  // is no output), or, with all of it written, reads the next chunk or finishes.
  void WriteOrRead() {
    if (written_ == output_.size() && (written_ > 0 || answered_)) {
      ResetOutput();
      answered_ = false;
      if (last_write_) {
        Finish(ending_for_drain_ ? absl::UnavailableError("the sidecar is shutting down")
                                 : absl::OkStatus());
        return;
      }
      {
        // Checked with the stream entered in `reading`, under the lock EndReadingRedactStreams
        // takes after the drain began: a stream either sees the drain or is ended by it.
        std::lock_guard<std::mutex> lock(streams_->mu);
        if (!streams_->is_draining()) {
          streams_->reading.insert(this);
          reading_ = true;
          stream_.Read(&input_, &read_tag_);
          return;
        }
      }
      EndForDrain();
      return;
    }
    const size_t piece = std::min(output_.size() - written_, std::max<size_t>(1, streams_->limits.max_message_bytes));
    out_buffer_ = ChunkResponse(absl::string_view(output_).substr(written_, piece));
    written_ += piece;
    answered_ = true;
    step_ = Step::kWriting;
    stream_.Write(out_buffer_, this);
  }

  // Takes one of the max_streams places; false when all are taken.
  bool TakeStreamPlace() {
    size_t taken = streams_->active.load(std::memory_order_relaxed);
    do {
      if (taken >= streams_->limits.max_streams) return false;
    } while (!streams_->active.compare_exchange_weak(taken, taken + 1,
                                                     std::memory_order_relaxed));
    return true;
  }

  void ResetOutput() {
    output_.clear();
    written_ = 0;
  }

  void Finish(const absl::Status& status) {
    sent_code_ = status.code();
    step_ = Step::kFinishing;
    stream_.Finish(ToGrpcStatus(status), this);
  }

  // Once the finish, done and read tags are all back (on this stream's queue thread), the
  // observer is told what the caller got, the stream is over, and the queue lets go of it.
  void CompleteIfDone() {
    if (!finish_returned_ || !done_returned_ || reading_) return;
    if (streams_->observer) {
      const bool died_first = !finish_ok_ || context_.IsCancelled();
      streams_->observer(kName, died_first ? absl::StatusCode::kCancelled : sent_code_,
                        absl::Now() - start_);
    }
    if (counted_) streams_->active.fetch_sub(1, std::memory_order_relaxed);
    streams_->call_ended();
    Release();
  }

  // Drops a holder's reference; the last one deletes the stream. The holders are the queue
  // (until the stream is over) and the pool's task (until it returns), so a stream answered by
  // AbandonRedactStarts while its worker is blocked stays valid for that worker.
  void Release() {
    if (holders_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

  static constexpr absl::string_view kName = "RedactLogs";
  static constexpr uint32_t kChunkTag =
      (secretresolver::v1::RedactLogsRequest::kChunkFieldNumber << 3) |
      google::protobuf::internal::WireFormatLite::WIRETYPE_LENGTH_DELIMITED;

  RedactStreams* const streams_;
  grpc::ServerCompletionQueue* const queue_;
  grpc::ServerContext context_;
  grpc::ServerAsyncReaderWriter<grpc::ByteBuffer, grpc::ByteBuffer> stream_;
  DoneTag done_tag_;
  ReadTag read_tag_;
  std::atomic<int> holders_{1};  // see Release()
  // Set under streams_->mu (see EndReading, AbandonStart).
  bool ended_while_reading_ = false;
  bool abandoned_ = false;
  // Only one operation is outstanding at a time, so these are touched by one thread at a time
  // (a queue thread, or the pool thread that resolves the first message).
  Step step_ = Step::kRequested;
  bool counted_ = false;  // holds one of the max_redact_streams places
  bool reading_ = false;  // a chunk's read is outstanding (queue thread only)
  CallCredentials credentials_;
  secretresolver::v1::RedactLogsStart start_request_;
  std::unique_ptr<client::RedactionStream> redaction_;
  grpc::ByteBuffer input_;
  std::string output_;  // the answer to the last chunk
  size_t written_ = 0;  // bytes of output_ sent
  bool answered_ = false;  // a response for the last message went out
  bool last_write_ = false;  // the flush after the half-close: finish once written
  bool ending_for_drain_ = false;  // that flush was for a drain: finish UNAVAILABLE
  grpc::ByteBuffer out_buffer_;
  bool finish_returned_ = false;
  bool finish_ok_ = false;
  bool done_returned_ = false;
  absl::StatusCode sent_code_ = absl::StatusCode::kUnknown;
  absl::Time start_;
};

void RequestRedactCall(RedactStreams* streams, grpc::ServerCompletionQueue* queue) {
  RedactCall::Request(streams, queue);
}

void EndReadingRedactStreams(RedactStreams* streams) {
  std::lock_guard<std::mutex> lock(streams->mu);
  for (RedactCall* call : streams->reading) call->EndReading();
  streams->reading.clear();
}

void AbandonRedactStarts(RedactStreams* streams) {
  std::lock_guard<std::mutex> lock(streams->mu);
  for (RedactCall* call : streams->starting) call->AbandonStart();
  streams->starting.clear();
}

}  // namespace secret_resolver
