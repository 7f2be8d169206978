#include "client/redactor/log_adapters.h"

#include <cstring>
#include <utility>

#include <openssl/crypto.h>

namespace secret_resolver::client {
namespace {

constexpr size_t kPutAreaBytes = 4096;

}  // namespace

RedactingLineSink::RedactingLineSink(std::shared_ptr<const Redactor> redactor, LineSink* downstream)
    : redactor_(std::move(redactor)), downstream_(downstream) {}

void RedactingLineSink::WriteLine(absl::string_view line) {
  downstream_->WriteLine(redactor_->RedactAll(line));
}

RedactingStreambuf::RedactingStreambuf(std::shared_ptr<const Redactor> redactor,
                                       std::streambuf* downstream)
    : downstream_(downstream),
      stream_(std::move(redactor),
              [this](absl::string_view redacted) {
                const auto size = static_cast<std::streamsize>(redacted.size());
                if (downstream_->sputn(redacted.data(), size) != size) downstream_failed_ = true;
              }),
      buffer_(kPutAreaBytes, '\0') {
  setp(buffer_.data(), buffer_.data() + buffer_.size());
}

RedactingStreambuf::~RedactingStreambuf() {
  sync();
  OPENSSL_cleanse(buffer_.data(), buffer_.size());
}

void RedactingStreambuf::Drain() {
  const size_t used = static_cast<size_t>(pptr() - pbase());
  if (used > 0) {
    stream_.Write(absl::string_view(pbase(), used));
    OPENSSL_cleanse(pbase(), used);
  }
  setp(buffer_.data(), buffer_.data() + buffer_.size());
}

RedactingStreambuf::int_type RedactingStreambuf::overflow(int_type ch) {
  Drain();
  if (!traits_type::eq_int_type(ch, traits_type::eof())) {
    *pptr() = traits_type::to_char_type(ch);
    pbump(1);
  }
  return downstream_failed_ ? traits_type::eof() : traits_type::not_eof(ch);
}

std::streamsize RedactingStreambuf::xsputn(const char* s, std::streamsize n) {
  if (n <= 0) return 0;
  const auto size = static_cast<size_t>(n);
  if (size <= static_cast<size_t>(epptr() - pptr())) {
    std::memcpy(pptr(), s, size);
    pbump(static_cast<int>(n));
  } else {
    Drain();
    stream_.Write(absl::string_view(s, size));
  }
  return downstream_failed_ ? 0 : n;
}

int RedactingStreambuf::sync() {
  Drain();
  stream_.Flush();
  const int downstream_result = downstream_->pubsync();
  return downstream_failed_ || downstream_result != 0 ? -1 : 0;
}

RedactingOstream::RedactingOstream(std::shared_ptr<const Redactor> redactor,
                                   std::ostream& downstream)
    : std::ostream(nullptr), buf_(std::move(redactor), downstream.rdbuf()) {
  rdbuf(&buf_);
}

RedactingOstream::~RedactingOstream() { buf_.pubsync(); }

}  // namespace secret_resolver::client
