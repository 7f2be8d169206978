// How a value read from configuration or an operator's input is shown in an error message:
// quoted, escaped and cut short, so that a message is printable ASCII whatever bytes the value
// held, and a stray long value (or a secret pasted in the wrong place) is not copied into logs
// whole.
//
// The bytes a, 0xff, ", b are shown as "a\xff\"b"; a value of 40 letters as its first 32 in
// quotes, with "..." before the closing quote.
//
// Thread safety: a pure function.
#ifndef SECRET_RESOLVER_RESOLVER_QUOTE_H_
#define SECRET_RESOLVER_RESOLVER_QUOTE_H_

#include <cstddef>
#include <string>

#include "absl/strings/string_view.h"

namespace secret_resolver {

// What a configuration value keeps: enough to recognise it.
inline constexpr size_t kQuotedValueBytes = 32;
// What a network address keeps: a bracketed IPv6 address with its port (47 bytes) whole.
inline constexpr size_t kQuotedAddressBytes = 64;

// The first `max_bytes` bytes of `value` in double quotes, C-escaped (absl::CHexEscape: \", \\,
// \n, \xNN for other bytes outside printable ASCII), with "..." before the closing quote when
// the value was longer.
std::string QuoteForMessage(absl::string_view value, size_t max_bytes = kQuotedValueBytes);

}  // namespace secret_resolver

#endif  // SECRET_RESOLVER_RESOLVER_QUOTE_H_
