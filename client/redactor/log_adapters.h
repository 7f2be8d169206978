// Adapters that put a Redactor between a logger and where its text goes, for the two ways
// loggers write:
//   - RedactingStreambuf / RedactingOstream: a std::ostream whose bytes are redacted and then
//     forwarded to another stream buffer. std::flush and std::endl end a record (Flush()).
//   - LineSink / RedactingLineSink: for loggers that hand over complete lines. Each line is
//     redacted on its own and forwarded at once, so no line waits for the next one; a
//     multi-line value is caught through its per-line patterns (lines of 8 bytes or more, see
//     patterns.h), not as a whole.
//
// Thread safety: RedactingStreambuf and RedactingOstream, like any stream, need one writer at a
// time. RedactingLineSink keeps no state of its own: WriteLine may be called concurrently
// exactly when the downstream sink allows it.
#ifndef SECRET_RESOLVER_CLIENT_REDACTOR_LOG_ADAPTERS_H_
#define SECRET_RESOLVER_CLIENT_REDACTOR_LOG_ADAPTERS_H_

#include <memory>
#include <ostream>
#include <streambuf>
#include <string>

#include "absl/strings/string_view.h"
#include "client/redactor/redactor.h"

namespace secret_resolver::client {

// Receives complete log lines, without their line terminator.
class LineSink {
 public:
  virtual ~LineSink() = default;
  virtual void WriteLine(absl::string_view line) = 0;
};

// A LineSink that redacts each line and passes it to `downstream`.
class RedactingLineSink : public LineSink {
 public:
  // `redactor` must not be null; `downstream` must outlive this object.
  RedactingLineSink(std::shared_ptr<const Redactor> redactor, LineSink* downstream);
  void WriteLine(absl::string_view line) override;

 private:
  std::shared_ptr<const Redactor> redactor_;
  LineSink* downstream_;
};

// A std::streambuf that redacts what is written to it and forwards the result to
// `downstream`. Output is buffered; sync() (std::flush, std::endl, destruction) flushes the
// redaction stream and then the downstream buffer. Input is not supported.
class RedactingStreambuf : public std::streambuf {
 public:
  // `redactor` must not be null; `downstream` must outlive this object.
  RedactingStreambuf(std::shared_ptr<const Redactor> redactor, std::streambuf* downstream);
  ~RedactingStreambuf() override;

 protected:
  int_type overflow(int_type ch) override;
  std::streamsize xsputn(const char* s, std::streamsize n) override;
  int sync() override;

 private:
  void Drain();

  std::streambuf* downstream_;
  bool downstream_failed_ = false;
  RedactionStream stream_;
  std::string buffer_;
};

// A std::ostream over a RedactingStreambuf that forwards to `downstream`'s buffer.
class RedactingOstream : public std::ostream {
 public:
  RedactingOstream(std::shared_ptr<const Redactor> redactor, std::ostream& downstream);
  ~RedactingOstream() override;

 private:
  RedactingStreambuf buf_;
};

}  // namespace secret_resolver::client

#endif  // SECRET_RESOLVER_CLIENT_REDACTOR_LOG_ADAPTERS_H_
