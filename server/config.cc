#include "server/config.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/duration.pb.h>
#include <google/protobuf/util/json_util.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "resolver/quote.h"
#include "server/config_text.h"

namespace secret_resolver {
namespace {

using config_internal::kMaxDurationSeconds;
using google::protobuf::Descriptor;
using google::protobuf::EnumValueDescriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::OneofDescriptor;
using secretresolver::config::v1::Config;
using Json = nlohmann::json;

constexpr size_t kMaxConfigBytes = size_t{1} << 20;
constexpr absl::string_view kDurationType = "google.protobuf.Duration";

absl::string_view NodeKind(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map:
      return "a map";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Scalar:
      return "a single value";
    default:
      return "nothing";
  }
}

std::string JoinPath(const std::string& parent, absl::string_view child) {
  return parent.empty() ? std::string(child) : absl::StrCat(parent, ".", child);
}

// Converts a YAML tree to the JSON that protobuf's parser accepts for a message type, checking
// every key against the message's descriptor and every scalar against its field's type. This is
// where the field paths of error messages come from: protobuf's own parser reports the first
// problem without the full path.
class YamlToJson {
 public:
  explicit YamlToJson(absl::string_view source_name) : source_(source_name) {}

  // Converts a map node into a JSON object for `type`. `path` names the node ("" at the top).
  Json ConvertMessage(const YAML::Node& node, const Descriptor* type, const std::string& path) {
    Json object = Json::object();
    std::map<int, std::string> seen_fields;                     // field number -> key as written
    std::map<const OneofDescriptor*, std::string> seen_oneofs;  // oneof -> key as written
    // yaml-cpp's iterators yield temporaries: copy the (cheap, shared) nodes out of them.
    for (YAML::const_iterator it = node.begin(); it != node.end(); ++it) {
      const YAML::Node key_node = it->first;
      const YAML::Node value = it->second;
      if (!key_node.IsScalar()) {
        Error(key_node, path, absl::StrCat("a key must be a name, not ", NodeKind(key_node)));
        continue;
      }
      const std::string& key = key_node.Scalar();
      const std::string field_path = JoinPath(path, key);
      const FieldDescriptor* field = FindField(type, key);
      if (field == nullptr) {
        // The key as written may be anything (a misplaced secret too): shown quoted, escaped and
        // cut at 32 bytes unless it is a short plain name.
        const bool plain = !key.empty() && key.size() <= 32 &&
                           std::all_of(key.begin(), key.end(), [](char c) {
                             return absl::ascii_isalnum(static_cast<unsigned char>(c)) ||
                                    c == '_' || c == '-';
                           });
        Error(key_node, JoinPath(path, plain ? key : QuoteForMessage(key)),
              absl::StrCat("unknown field; expected one of: ", FieldNames(type)));
        continue;
      }
      auto [previous, inserted] = seen_fields.emplace(field->number(), key);
      if (!inserted) {
        Error(key_node, field_path, absl::StrCat("set twice (also as \"", previous->second, "\")"));
        continue;
      }
      if (value.IsNull()) continue;  // `key:` with no value leaves the field unset.
      if (const OneofDescriptor* oneof = field->real_containing_oneof(); oneof != nullptr) {
        auto [other, first] = seen_oneofs.emplace(oneof, key);
        if (!first) {
          Error(key_node, field_path,
                absl::StrCat("cannot be set together with \"", other->second,
                             "\"; choose one of: ", OneofNames(oneof)));
          continue;
        }
      }
      std::optional<Json> converted = ConvertField(value, field, field_path);
      if (converted.has_value()) object[field->json_name()] = std::move(*converted);
    }
    return object;
  }

  // Reports a problem with the top-level node.
  void TopLevelError(const YAML::Node& node, absl::string_view problem) {
    Error(node, "", problem);
  }

  const std::vector<std::string>& errors() const { return errors_; }

 private:
  static const FieldDescriptor* FindField(const Descriptor* type, const std::string& key) {
    if (const FieldDescriptor* field = type->FindFieldByName(key); field != nullptr) return field;
    for (int i = 0; i < type->field_count(); ++i) {
      if (type->field(i)->json_name() == key) return type->field(i);
    }
    return nullptr;
  }

  static std::string FieldNames(const Descriptor* type) {
    std::vector<std::string> names;
    for (int i = 0; i < type->field_count(); ++i) names.push_back(type->field(i)->name());
    return absl::StrJoin(names, ", ");
  }

  static std::string OneofNames(const OneofDescriptor* oneof) {
    std::vector<std::string> names;
    for (int i = 0; i < oneof->field_count(); ++i) names.push_back(oneof->field(i)->name());
    return absl::StrJoin(names, ", ");
  }

  void Error(const YAML::Node& node, const std::string& path, absl::string_view problem) {
    std::string where = source_;
    const YAML::Mark mark = node.Mark();
    if (!mark.is_null()) absl::StrAppend(&where, ":", mark.line + 1, ":", mark.column + 1);
    errors_.push_back(path.empty() ? absl::StrCat(where, ": ", problem)
                                   : absl::StrCat(where, ": ", path, ": ", problem));
  }

  std::optional<Json> ConvertField(const YAML::Node& node, const FieldDescriptor* field,
                                   const std::string& path) {
    if (field->is_map()) {
      if (!node.IsMap()) {
        Error(node, path, absl::StrCat("expected a map, got ", NodeKind(node)));
        return std::nullopt;
      }
      const FieldDescriptor* value_field = field->message_type()->FindFieldByNumber(2);
      Json object = Json::object();
      for (YAML::const_iterator it = node.begin(); it != node.end(); ++it) {
        const YAML::Node key_node = it->first;
        const YAML::Node value_node = it->second;
        if (!key_node.IsScalar()) {
          Error(key_node, path, "a map key must be a single value");
          continue;
        }
        const std::string entry_path =
            absl::StrCat(path, "[", QuoteForMessage(key_node.Scalar()), "]");
        std::optional<Json> value = ConvertSingular(value_node, value_field, entry_path);
        if (value.has_value()) object[key_node.Scalar()] = std::move(*value);
      }
      return object;
    }
    if (field->is_repeated()) {
      if (!node.IsSequence()) {
        Error(node, path, absl::StrCat("expected a list, got ", NodeKind(node)));
        return std::nullopt;
      }
      Json array = Json::array();
      for (size_t i = 0; i < node.size(); ++i) {
        std::optional<Json> element =
            ConvertSingular(node[i], field, absl::StrCat(path, "[", i, "]"));
        if (element.has_value()) array.push_back(std::move(*element));
      }
      return array;
    }
    return ConvertSingular(node, field, path);
  }

  std::optional<Json> ConvertSingular(const YAML::Node& node, const FieldDescriptor* field,
                                      const std::string& path) {
    if (field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
      const Descriptor* type = field->message_type();
      if (type->full_name() == kDurationType) return ConvertDuration(node, path);
      if (absl::StartsWith(type->full_name(), "google.protobuf.")) {
        Error(node, path,
              absl::StrCat("fields of type ", type->full_name(),
                           " are not supported in YAML configuration"));
        return std::nullopt;
      }
      if (!node.IsMap()) {
        Error(node, path, absl::StrCat("expected a map of settings, got ", NodeKind(node)));
        return std::nullopt;
      }
      return ConvertMessage(node, type, path);
    }
    if (!node.IsScalar()) {
      Error(node, path, absl::StrCat("expected ", Expected(field), ", got ", NodeKind(node)));
      return std::nullopt;
    }
    const std::string& text = node.Scalar();
    auto mismatch = [&]() -> std::optional<Json> {
      Error(node, path,
            absl::StrCat("expected ", Expected(field), ", got ", QuoteForMessage(text)));
      return std::nullopt;
    };
    switch (field->cpp_type()) {
      case FieldDescriptor::CPPTYPE_STRING:
        return Json(text);
      case FieldDescriptor::CPPTYPE_BOOL:
        if (text == "true" || text == "True" || text == "TRUE") return Json(true);
        if (text == "false" || text == "False" || text == "FALSE") return Json(false);
        return mismatch();
      case FieldDescriptor::CPPTYPE_INT32: {
        int64_t v = 0;
        if (!absl::SimpleAtoi(text, &v) || v < std::numeric_limits<int32_t>::min() ||
            v > std::numeric_limits<int32_t>::max()) {
          return mismatch();
        }
        return Json(v);
      }
      case FieldDescriptor::CPPTYPE_INT64: {
        int64_t v = 0;
        if (!absl::SimpleAtoi(text, &v)) return mismatch();
        return Json(v);
      }
      case FieldDescriptor::CPPTYPE_UINT32: {
        uint64_t v = 0;
        if (absl::StartsWith(absl::StripLeadingAsciiWhitespace(text), "-") ||
            !absl::SimpleAtoi(text, &v) || v > std::numeric_limits<uint32_t>::max()) {
          return mismatch();
        }
        return Json(v);
      }
      case FieldDescriptor::CPPTYPE_UINT64: {
        uint64_t v = 0;
        if (absl::StartsWith(absl::StripLeadingAsciiWhitespace(text), "-") ||
            !absl::SimpleAtoi(text, &v)) {
          return mismatch();
        }
        return Json(v);
      }
      case FieldDescriptor::CPPTYPE_DOUBLE:
      case FieldDescriptor::CPPTYPE_FLOAT: {
        double v = 0;
        if (!absl::SimpleAtod(text, &v) || !std::isfinite(v) ||
            (field->cpp_type() == FieldDescriptor::CPPTYPE_FLOAT && std::fabs(v) > FLT_MAX)) {
          return mismatch();
        }
        return Json(v);
      }
      case FieldDescriptor::CPPTYPE_ENUM: {
        const EnumValueDescriptor* value = field->enum_type()->FindValueByName(text);
        int number = 0;
        if (value == nullptr && absl::SimpleAtoi(text, &number)) {
          value = field->enum_type()->FindValueByNumber(number);
        }
        if (value == nullptr) return mismatch();
        return Json(value->name());
      }
      default:
        return mismatch();
    }
  }

  // Durations are written as absl durations ("300s", "1.5s", "250ms", "5m", "1h30m") and passed
  // on in protobuf's JSON form ("300.000000000s").
  std::optional<Json> ConvertDuration(const YAML::Node& node, const std::string& path) {
    if (!node.IsScalar()) {
      Error(node, path,
            absl::StrCat("expected a duration such as \"300s\" or \"5m\", got ", NodeKind(node)));
      return std::nullopt;
    }
    const std::string& text = node.Scalar();
    absl::Duration d;
    int64_t bare_number = 0;
    if (absl::SimpleAtoi(text, &bare_number) && bare_number != 0) {
      Error(node, path,
            absl::StrCat("invalid duration ", QuoteForMessage(text),
                         ": a unit is required, e.g. \"", bare_number, "s\""));
      return std::nullopt;
    }
    if (!absl::ParseDuration(text, &d) || d == absl::InfiniteDuration() ||
        d == -absl::InfiniteDuration()) {
      Error(node, path,
            absl::StrCat("invalid duration ", QuoteForMessage(text),
                         "; write a number with a unit: \"300s\", \"1.5s\", \"250ms\", \"5m\", "
                         "\"1h\""));
      return std::nullopt;
    }
    if (d < absl::ZeroDuration()) {
      Error(node, path, absl::StrCat("duration ", QuoteForMessage(text), " must not be negative"));
      return std::nullopt;
    }
    const int64_t seconds = absl::IDivDuration(d, absl::Seconds(1), &d);
    if (seconds > kMaxDurationSeconds) {
      Error(node, path, absl::StrCat("duration ", QuoteForMessage(text), " is too long"));
      return std::nullopt;
    }
    const int64_t nanos = absl::ToInt64Nanoseconds(d);
    char buffer[64];
    std::snprintf(buffer, sizeof(buffer), "%lld.%09llds", static_cast<long long>(seconds),
                  static_cast<long long>(nanos));
    return Json(std::string(buffer));
  }

  static std::string Expected(const FieldDescriptor* field) {
    switch (field->cpp_type()) {
      case FieldDescriptor::CPPTYPE_STRING:
        return "a string";
      case FieldDescriptor::CPPTYPE_BOOL:
        return "true or false";
      case FieldDescriptor::CPPTYPE_INT32:
        return "an integer from -2147483648 to 2147483647";
      case FieldDescriptor::CPPTYPE_INT64:
        return "a 64-bit integer";
      case FieldDescriptor::CPPTYPE_UINT32:
        return "an integer from 0 to 4294967295";
      case FieldDescriptor::CPPTYPE_UINT64:
        return "an integer from 0 to 18446744073709551615";
      case FieldDescriptor::CPPTYPE_DOUBLE:
      case FieldDescriptor::CPPTYPE_FLOAT:
        return "a finite number";
      case FieldDescriptor::CPPTYPE_ENUM: {
        std::vector<std::string> names;
        for (int i = 0; i < field->enum_type()->value_count(); ++i) {
          names.push_back(field->enum_type()->value(i)->name());
        }
        return absl::StrCat("one of ", absl::StrJoin(names, ", "));
      }
      case FieldDescriptor::CPPTYPE_MESSAGE:
        return "a map of settings";
    }
    return "a value";
  }

  std::string source_;
  std::vector<std::string> errors_;
};

}  // namespace

absl::StatusOr<Config> LoadConfigFile(absl::string_view path) {
  const std::string name(path);
  std::ifstream file(name, std::ios::binary);
  if (!file) {
    const int error = errno;
    const std::string reason = std::strerror(error);
    if (error == ENOENT) {
      return absl::NotFoundError(absl::StrCat("config file ", name, ": ", reason));
    }
    return absl::FailedPreconditionError(
        absl::StrCat("config file ", name, ": cannot open: ", reason));
  }
  std::string text;
  char buffer[8192];
  while (file.read(buffer, sizeof(buffer)) || file.gcount() > 0) {
    text.append(buffer, static_cast<size_t>(file.gcount()));
    if (text.size() > kMaxConfigBytes) {
      return absl::InvalidArgumentError(
          absl::StrCat("config file ", name, ": larger than ", kMaxConfigBytes, " bytes"));
    }
  }
  if (file.bad()) {
    return absl::FailedPreconditionError(absl::StrCat("config file ", name, ": read failed"));
  }
  return ParseConfigYaml(text, name);
}

absl::StatusOr<Config> ParseConfigYaml(absl::string_view text, absl::string_view source_name) {
  YamlToJson converter(source_name);
  Json json;
  try {
    const YAML::Node root = YAML::Load(std::string(text));
    if (root.IsNull()) return Config();
    if (!root.IsMap()) {
      converter.TopLevelError(
          root, absl::StrCat("the top level must be a map of settings, not ", NodeKind(root)));
    } else {
      json = converter.ConvertMessage(root, Config::descriptor(), "");
    }
  } catch (const YAML::Exception& e) {
    std::string where(source_name);
    if (!e.mark.is_null()) absl::StrAppend(&where, ":", e.mark.line + 1, ":", e.mark.column + 1);
    // yaml-cpp's message may quote a byte of the input ("unknown escape character: " and the
    // byte): escaped, so the error stays printable whatever the file holds.
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": invalid YAML: ", absl::CHexEscape(e.msg)));
  }
  if (!converter.errors().empty()) {
    return absl::InvalidArgumentError(absl::StrJoin(converter.errors(), "; "));
  }
  // Invalid UTF-8 becomes U+FFFD rather than an exception.
  const std::string json_text = json.dump(-1, ' ', false, Json::error_handler_t::replace);
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  Config config;
  const auto status = google::protobuf::util::JsonStringToMessage(json_text, &config, options);
  if (!status.ok()) {
    // The walk above should have caught every problem; this is the backstop.
    return absl::InvalidArgumentError(
        absl::StrCat(source_name, ": ", std::string(status.message())));
  }
  return config;
}

}  // namespace secret_resolver
