// Parsing of "host:port" listener addresses and the loopback check that keeps the admin server
// off the network.
//
// Thread safety: stateless functions; safe from any thread.
#ifndef SECRET_RESOLVER_SERVER_HOST_PORT_H_
#define SECRET_RESOLVER_SERVER_HOST_PORT_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace secret_resolver {

struct HostPort {
  // Without brackets: "127.0.0.1", "::1", "localhost".
  std::string host;
  // 0 to 65535; 0 asks the kernel for a free port.
  int port = 0;
};

// Parses "host:port" or "[ipv6]:port". Returns INVALID_ARGUMENT, saying what is wrong, when the
// host is empty, an IPv6 address lacks brackets, or the port is not a decimal number in
// [0, 65535]; the message quotes the address as resolver/quote.h does.
absl::StatusOr<HostPort> ParseHostPort(absl::string_view address);

// True for "localhost", an IPv4 address in 127.0.0.0/8 and the IPv6 address ::1.
bool IsLoopbackHost(absl::string_view host);

}  // namespace secret_resolver

#endif  // SECRET_RESOLVER_SERVER_HOST_PORT_H_
