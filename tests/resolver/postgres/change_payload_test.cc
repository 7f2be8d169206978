// The change notification payload: what EncodeChangePayload writes, and that DecodeChangePayload
// reads it back, tolerates what another JSON writer may produce, and rejects the rest with the
// byte position.
#include "resolver/postgres/change_payload.h"

#include <string>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace secret_resolver {
namespace {

using ::testing::HasSubstr;

TEST(ChangePayloadTest, EncodesStackThenNameCompactly) {
  EXPECT_EQ(EncodeChangePayload("stacks-1", "workflows/http/auth-token"),
            R"({"stack":"stacks-1","name":"workflows/http/auth-token"})");
  EXPECT_EQ(EncodeChangePayload("s", std::string("q\"b\\c\n\x01", 7)),
            R"({"stack":"s","name":"q\"b\\c\u000a\u0001"})");
}

TEST(ChangePayloadTest, RoundTrips) {
  for (const std::string& name :
       {std::string("a"), std::string("a.b-c/d0"), std::string("odd \"\\ \t\x7f\xc3\xa9", 10)}) {
    absl::StatusOr<SecretChange> change = DecodeChangePayload(EncodeChangePayload("st-1", name));
    ASSERT_TRUE(change.ok()) << change.status();
    EXPECT_EQ(change->stack, "st-1");
    EXPECT_EQ(change->name, name);
    EXPECT_FALSE(change->resync);
  }
}

TEST(ChangePayloadTest, AcceptsOtherOrderWhitespaceEscapesAndExtraMembers) {
  absl::StatusOr<SecretChange> change = DecodeChangePayload(
      " {\n \"op\" : \"put\", \"name\" : \"a\\/b\\u00e9\\ud83d\\ude00\", \"version\": 3,"
      " \"stack\":\"s\", \"x\": null, \"y\": true, \"z\": -1.5e3 } ");
  ASSERT_TRUE(change.ok()) << change.status();
  EXPECT_EQ(change->stack, "s");
  EXPECT_EQ(change->name, "a/b\xc3\xa9\xf0\x9f\x98\x80");
}

TEST(ChangePayloadTest, RejectsAnythingElseNamingTheBytePosition) {
  for (const char* bad : {"", "stacks-1/name", "{", "{}", R"({"stack":"s"})",
                          R"({"name":"n"})", R"({"stack":"","name":"n"})",
                          R"({"stack":"s","name":"n"} x)", R"({"stack":"s","name":"n",})",
                          R"({"stack":"s","name":"n\q"})", R"({"stack":"s","name":"\ud800"})",
                          R"({"stack":"s","name":"n","stack":"t"})", R"({"stack":s,"name":"n"})",
                          R"({"stack":"s","name":"n","o":{}})",
                          "{\"stack\":\"s\",\"name\":\"a\nb\"}"}) {
    absl::StatusOr<SecretChange> change = DecodeChangePayload(bad);
    EXPECT_EQ(change.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(change.status().message(), HasSubstr("byte ")) << bad;
  }
}

}  // namespace
}  // namespace secret_resolver
