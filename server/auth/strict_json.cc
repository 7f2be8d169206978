#include "server/auth/strict_json.h"

#include <set>
#include <string>
#include <vector>

namespace secret_resolver {
namespace auth {

std::optional<nlohmann::json> ParseStrictJson(absl::string_view text, int max_depth) {
  // One entry per open container: the member names seen so far (arrays have none).
  std::vector<std::set<std::string>> open;
  bool rejected = false;
  auto callback = [&](int /*depth*/, nlohmann::json::parse_event_t event,
                      nlohmann::json& parsed) -> bool {
    using Event = nlohmann::json::parse_event_t;
    switch (event) {
      case Event::object_start:
      case Event::array_start:
        open.emplace_back();
        if (static_cast<int>(open.size()) > max_depth) rejected = true;
        break;
      case Event::object_end:
      case Event::array_end:
        if (!open.empty()) open.pop_back();
        break;
      case Event::key:
        if (open.empty() || !parsed.is_string() ||
            !open.back().insert(parsed.get_ref<const std::string&>()).second) {
          rejected = true;
        }
        break;
      case Event::value:
        break;
    }
    return true;
  };
  nlohmann::json value = nlohmann::json::parse(text.begin(), text.end(), callback,
                                               /*allow_exceptions=*/false);
  if (rejected || value.is_discarded()) return std::nullopt;
  return value;
}

}  // namespace auth
}  // namespace secret_resolver
