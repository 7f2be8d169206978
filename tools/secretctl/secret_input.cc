#include "tools/secretctl/secret_input.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <cstring>
#include <memory>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "resolver/secret_validation.h"

namespace secret_resolver {
namespace secretctl {
namespace {

// Switches terminal echo off for its lifetime when `fd` is a terminal.
class EchoOff {
 public:
  explicit EchoOff(int fd) : fd_(fd) {
    if (isatty(fd_) != 1 || tcgetattr(fd_, &saved_) != 0) return;
    termios quiet = saved_;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    active_ = tcsetattr(fd_, TCSAFLUSH, &quiet) == 0;
    if (active_) {
      static constexpr char kPrompt[] =
          "secretctl: type the value, then press Ctrl-D (twice if not at the start of a line); "
          "it is not echoed\n";
      (void)!write(STDERR_FILENO, kPrompt, sizeof(kPrompt) - 1);
    }
  }
  ~EchoOff() {
    if (active_) tcsetattr(fd_, TCSAFLUSH, &saved_);
  }
  EchoOff(const EchoOff&) = delete;
  EchoOff& operator=(const EchoOff&) = delete;

 private:
  const int fd_;
  termios saved_{};
  bool active_ = false;
};

// A buffer wiped when it goes out of scope.
class WipedBuffer {
 public:
  explicit WipedBuffer(size_t size) : data_(std::make_unique<char[]>(size)), size_(size) {}
  ~WipedBuffer() { OPENSSL_cleanse(data_.get(), size_); }
  WipedBuffer(const WipedBuffer&) = delete;
  WipedBuffer& operator=(const WipedBuffer&) = delete;
  char* data() { return data_.get(); }
  size_t size() const { return size_; }

 private:
  std::unique_ptr<char[]> data_;
  size_t size_;
};

}  // namespace

absl::StatusOr<SecretBytes> ReadSecretValue(int fd, absl::string_view source,
                                            SecretInputOptions options) {
  EchoOff echo_off(fd);
  WipedBuffer buffer(kMaxValueBytes + 1);
  size_t size = 0;
  while (size < buffer.size()) {
    const ssize_t n = read(fd, buffer.data() + size, buffer.size() - size);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot read the value from ", source, ": ", std::strerror(errno)));
    }
    if (n == 0) break;
    size += static_cast<size_t>(n);
  }
  if (size > kMaxValueBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the value from ", source, " is longer than the limit of ", kMaxValueBytes, " bytes"));
  }
  if (options.trim_newline && size > 0 && buffer.data()[size - 1] == '\n') {
    --size;
    if (size > 0 && buffer.data()[size - 1] == '\r') --size;
  }
  if (size == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the value from ", source, " is empty (a value is 1-", kMaxValueBytes, " bytes)"));
  }
  return SecretBytes(absl::string_view(buffer.data(), size));
}

absl::StatusOr<SecretBytes> ReadSecretValueFile(const std::string& path, absl::string_view flag,
                                                SecretInputOptions options) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, ": cannot open ", path, ": ", std::strerror(errno)));
  }
  struct stat st;
  if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
    close(fd);
    return absl::InvalidArgumentError(absl::StrCat(flag, ": ", path, " is a directory"));
  }
  absl::StatusOr<SecretBytes> value = ReadSecretValue(fd, absl::StrCat(flag, " ", path), options);
  close(fd);
  return value;
}

}  // namespace secretctl
}  // namespace secret_resolver
