// What the configuration's parser and its validation share: the range of a duration. (A bad
// value is quoted in their messages by resolver/quote.h.)
//
// Thread safety: a constant.
#ifndef SECRET_RESOLVER_SERVER_CONFIG_TEXT_H_
#define SECRET_RESOLVER_SERVER_CONFIG_TEXT_H_

#include <cstdint>

namespace secret_resolver {
namespace config_internal {

// The range of google.protobuf.Duration: +-10,000 years.
inline constexpr int64_t kMaxDurationSeconds = 315576000000;

}  // namespace config_internal
}  // namespace secret_resolver

#endif  // SECRET_RESOLVER_SERVER_CONFIG_TEXT_H_
