#include "resolver/quote.h"

#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace secret_resolver {

std::string QuoteForMessage(absl::string_view value, size_t max_bytes) {
  return absl::StrCat("\"", absl::CHexEscape(value.substr(0, max_bytes)),
                      value.size() > max_bytes ? "...\"" : "\"");
}

}  // namespace secret_resolver
