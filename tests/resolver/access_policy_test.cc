#include "resolver/access_policy.h"

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace secret_resolver {
namespace {

using ::testing::HasSubstr;

// --- SameStack ---

struct SameStackCase {
  std::string label;
  std::string a;
  std::string b;
  bool same;
};

class SameStackTest : public testing::TestWithParam<SameStackCase> {};

TEST_P(SameStackTest, IsSymmetric) {
  const SameStackCase& c = GetParam();
  EXPECT_EQ(SameStack(c.a, c.b), c.same);
  EXPECT_EQ(SameStack(c.b, c.a), c.same);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, SameStackTest,
    testing::Values(
        SameStackCase{"IdenticalCloud", "stacks-123", "stacks-123", true},
        SameStackCase{"IdenticalOldCloud", "stack-123", "stack-123", true},
        SameStackCase{"IdenticalOnPrem", "default", "default", true},
        SameStackCase{"IdenticalOrg", "org-2", "org-2", true},
        SameStackCase{"StackAndStacks", "stack-123", "stacks-123", true},
        SameStackCase{"SingleDigit", "stack-1", "stacks-1", true},
        SameStackCase{"DifferentIds", "stacks-123", "stacks-124", false},
        SameStackCase{"DifferentIdsAcrossForms", "stack-123", "stacks-124", false},
        SameStackCase{"IdIsAPrefix", "stack-12", "stacks-123", false},
        // Ids are compared as text: no numeric parsing, so leading zeros matter.
        SameStackCase{"LeadingZero", "stack-0123", "stacks-123", false},
        // Only digits are folded; anything else must match exactly.
        SameStackCase{"NonDigitId", "stack-abc", "stacks-abc", false},
        SameStackCase{"MixedId", "stack-12a", "stacks-12a", false},
        SameStackCase{"NoId", "stack-", "stacks-", false},
        SameStackCase{"NoIdSame", "stack-", "stack-", true},
        SameStackCase{"NoDash", "stack123", "stacks123", false},
        SameStackCase{"OtherPrefix", "org-1", "stacks-1", false},
        SameStackCase{"OrgIsNotStack", "org-1", "stack-1", false},
        SameStackCase{"ExtraS", "stackss-1", "stacks-1", false},
        SameStackCase{"UpperCase", "Stacks-1", "stacks-1", false},
        SameStackCase{"TrailingSpace", "stacks-1 ", "stacks-1", false},
        SameStackCase{"NegativeId", "stack--1", "stacks--1", false},
        SameStackCase{"BothEmpty", "", "", true},
        SameStackCase{"OneEmpty", "", "stacks-1", false},
        SameStackCase{"WildcardIsNotSpecialHere", "*", "stacks-1", false}),
    [](const testing::TestParamInfo<SameStackCase>& info) { return info.param.label; });

// --- CheckStack ---

struct CheckStackCase {
  std::string label;
  std::string token_namespace;
  std::string stack;
  bool allow_wildcard;
  absl::StatusCode code;
};

class CheckStackTest : public testing::TestWithParam<CheckStackCase> {};

TEST_P(CheckStackTest, Checks) {
  const CheckStackCase& c = GetParam();
  Caller caller;
  caller.token_namespace = c.token_namespace;
  caller.service_identity = "grafana-workflows";
  AccessPolicyOptions options;
  options.allow_wildcard_namespace = c.allow_wildcard;
  EXPECT_EQ(CheckStack(caller, c.stack, options).code(), c.code);
}

constexpr absl::StatusCode kOk = absl::StatusCode::kOk;
constexpr absl::StatusCode kDenied = absl::StatusCode::kPermissionDenied;

INSTANTIATE_TEST_SUITE_P(
    Cases, CheckStackTest,
    testing::Values(CheckStackCase{"Equal", "stacks-1", "stacks-1", false, kOk},
                    CheckStackCase{"StackTokenStacksRequest", "stack-1", "stacks-1", false, kOk},
                    CheckStackCase{"StacksTokenStackRequest", "stacks-1", "stack-1", false, kOk},
                    CheckStackCase{"OnPrem", "default", "default", false, kOk},
                    CheckStackCase{"OtherStack", "stacks-1", "stacks-2", false, kDenied},
                    CheckStackCase{"OtherStackWildcardOn", "stacks-1", "stacks-2", true, kDenied},
                    CheckStackCase{"EmptyNamespace", "", "stacks-1", false, kDenied},
                    CheckStackCase{"EmptyNamespaceEmptyStack", "", "", false, kDenied},
                    CheckStackCase{"EmptyNamespaceWildcardOn", "", "stacks-1", true, kDenied},
                    CheckStackCase{"WildcardOff", "*", "stacks-1", false, kDenied},
                    CheckStackCase{"WildcardOffLiteralStar", "*", "*", false, kDenied},
                    CheckStackCase{"WildcardOn", "*", "stacks-1", true, kOk},
                    CheckStackCase{"WildcardOnOnPrem", "*", "default", true, kOk},
                    CheckStackCase{"StarPrefixIsNoWildcard", "*-1", "stacks-1", true, kDenied},
                    CheckStackCase{"StarSuffixIsNoWildcard", "stacks-*", "stacks-1", true,
                                   kDenied}),
    [](const testing::TestParamInfo<CheckStackCase>& info) { return info.param.label; });

TEST(HasAnyDecryptPermissionTest, GenericOrPerNameOnly) {
  EXPECT_TRUE(HasAnyDecryptPermission({"s", "svc", {"secret.grafana.app/securevalues:decrypt"}}));
  EXPECT_TRUE(
      HasAnyDecryptPermission({"s", "svc", {"secret.grafana.app/securevalues/a/b:decrypt"}}));
  EXPECT_FALSE(HasAnyDecryptPermission({"s", "svc", {"secret.grafana.app/securevalues/:decrypt"}}));
  EXPECT_FALSE(HasAnyDecryptPermission({"s", "svc", {"secret.grafana.app/securevalues:read"}}));
  EXPECT_FALSE(HasAnyDecryptPermission({"s", "svc", {}}));
}

TEST(CanonicalStackTest, FoldsOnlyCloudStackIds) {
  EXPECT_EQ(CanonicalStack("stack-123"), "stacks-123");
  EXPECT_EQ(CanonicalStack("stacks-123"), "stacks-123");
  EXPECT_EQ(CanonicalStack("stack-07"), "stacks-07");
  EXPECT_EQ(CanonicalStack("stack-abc"), "stack-abc");
  EXPECT_EQ(CanonicalStack("stacks-"), "stacks-");
  EXPECT_EQ(CanonicalStack("stack-"), "stack-");
  EXPECT_EQ(CanonicalStack("stacks-0"), "stacks-0");
  EXPECT_EQ(CanonicalStack("stack-"), "stack-");
  EXPECT_EQ(CanonicalStack("default"), "default");
  EXPECT_EQ(CanonicalStack("org-2"), "org-2");
}

TEST(CheckStackMessageTest, NamesTokenNamespaceAndRequestedStack) {
  Caller caller;
  caller.token_namespace = "stacks-1";
  const absl::Status status = CheckStack(caller, "stacks-2", AccessPolicyOptions());
  ASSERT_EQ(status.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(std::string(status.message()), HasSubstr("\"stacks-1\""));
  EXPECT_THAT(std::string(status.message()), HasSubstr("\"stacks-2\""));
}

TEST(CheckStackMessageTest, EscapesControlBytesInTheRequestedStack) {
  Caller caller;
  caller.token_namespace = "stacks-1";
  const absl::Status status = CheckStack(caller, "stacks-2\nforged", AccessPolicyOptions());
  ASSERT_EQ(status.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(status.message().find('\n'), absl::string_view::npos);
}

TEST(CheckStackMessageTest, WildcardDeniedSaysWhy) {
  Caller caller;
  caller.token_namespace = "*";
  const absl::Status status = CheckStack(caller, "stacks-2", AccessPolicyOptions());
  ASSERT_EQ(status.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(std::string(status.message()), HasSubstr("wildcard"));
  EXPECT_THAT(std::string(status.message()), HasSubstr("\"stacks-2\""));
}

// --- HasDecryptPermission ---

struct PermissionCase {
  std::string label;
  std::vector<std::string> permissions;
  std::string name;
  bool allowed;
};

class HasDecryptPermissionTest : public testing::TestWithParam<PermissionCase> {};

TEST_P(HasDecryptPermissionTest, Checks) {
  const PermissionCase& c = GetParam();
  Caller caller;
  caller.token_namespace = "stacks-1";
  caller.permissions = c.permissions;
  EXPECT_EQ(HasDecryptPermission(caller, c.name), c.allowed);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, HasDecryptPermissionTest,
    testing::Values(
        PermissionCase{"All", {"secret.grafana.app/securevalues:decrypt"}, "db-password", true},
        PermissionCase{"AllForMultiSegmentName",
                       {"secret.grafana.app/securevalues:decrypt"},
                       "workflows/http/auth-token",
                       true},
        PermissionCase{"Named", {"secret.grafana.app/securevalues/db-password:decrypt"},
                       "db-password", true},
        PermissionCase{"NamedMultiSegment",
                       {"secret.grafana.app/securevalues/workflows/http/auth-token:decrypt"},
                       "workflows/http/auth-token",
                       true},
        PermissionCase{"NamedAmongOthers",
                       {"secret.grafana.app/securevalues:read",
                        "secret.grafana.app/securevalues/other:decrypt",
                        "secret.grafana.app/securevalues/db-password:decrypt"},
                       "db-password",
                       true},
        PermissionCase{"NoPermissions", {}, "db-password", false},
        PermissionCase{"OtherName", {"secret.grafana.app/securevalues/other:decrypt"},
                       "db-password", false},
        PermissionCase{"NamePrefix", {"secret.grafana.app/securevalues/a:decrypt"}, "ab", false},
        PermissionCase{"NameExtension", {"secret.grafana.app/securevalues/ab:decrypt"}, "a",
                       false},
        PermissionCase{"SegmentPrefix", {"secret.grafana.app/securevalues/workflows:decrypt"},
                       "workflows/http", false},
        PermissionCase{"ReadIsNotDecrypt", {"secret.grafana.app/securevalues:read"},
                       "db-password", false},
        PermissionCase{"NamedReadIsNotDecrypt",
                       {"secret.grafana.app/securevalues/db-password:read"},
                       "db-password",
                       false},
        PermissionCase{"WildcardVerb", {"secret.grafana.app/securevalues:*"}, "db-password",
                       false},
        PermissionCase{"WildcardName", {"secret.grafana.app/securevalues/*:decrypt"},
                       "db-password", false},
        PermissionCase{"OtherGroup", {"other.grafana.app/securevalues:decrypt"}, "db-password",
                       false},
        PermissionCase{"OtherResource", {"secret.grafana.app/keepers:decrypt"}, "db-password",
                       false},
        PermissionCase{"UpperCase", {"SECRET.GRAFANA.APP/SECUREVALUES:DECRYPT"}, "db-password",
                       false},
        PermissionCase{"TrailingSpace", {"secret.grafana.app/securevalues:decrypt "},
                       "db-password", false},
        PermissionCase{"ExtraSuffix", {"secret.grafana.app/securevalues:decrypt:x"},
                       "db-password", false},
        PermissionCase{"EmptyPermission", {""}, "db-password", false},
        PermissionCase{"EmptyNameNeedsAll", {"secret.grafana.app/securevalues/:decrypt"}, "",
                       false}),
    [](const testing::TestParamInfo<PermissionCase>& info) { return info.param.label; });

// --- IsAllowedDecrypter ---

struct DecrypterCase {
  std::string label;
  std::string service_identity;
  std::vector<std::string> decrypters;
  bool allowed;
};

class IsAllowedDecrypterTest : public testing::TestWithParam<DecrypterCase> {};

TEST_P(IsAllowedDecrypterTest, Checks) {
  const DecrypterCase& c = GetParam();
  EXPECT_EQ(IsAllowedDecrypter(c.service_identity, c.decrypters), c.allowed);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, IsAllowedDecrypterTest,
    testing::Values(
        DecrypterCase{"OnlyEntry", "grafana-workflows", {"grafana-workflows"}, true},
        DecrypterCase{"LastEntry", "grafana-workflows", {"a", "b", "grafana-workflows"}, true},
        DecrypterCase{"EmptyListDeniesEveryone", "grafana-workflows", {}, false},
        DecrypterCase{"NotInList", "grafana-workflows", {"other-service"}, false},
        DecrypterCase{"CaseDiffers", "Grafana-Workflows", {"grafana-workflows"}, false},
        DecrypterCase{"Prefix", "grafana", {"grafana-workflows"}, false},
        DecrypterCase{"Extension", "grafana-workflows-2", {"grafana-workflows"}, false},
        DecrypterCase{"StarIsNotAWildcard", "grafana-workflows", {"*"}, false},
        DecrypterCase{"EmptyIdentity", "", {"grafana-workflows"}, false},
        DecrypterCase{"EmptyIdentityEmptyEntry", "", {""}, false}),
    [](const testing::TestParamInfo<DecrypterCase>& info) { return info.param.label; });

}  // namespace
}  // namespace secret_resolver
