#include "resolver/secret_bytes.h"

#include <memory>
#include <ostream>
#include <string>
#include <type_traits>
#include <utility>

#include "gtest/gtest.h"

namespace secret_resolver {
namespace {

// True when `std::ostream& << const T&` compiles. SecretBytes must not be printable, so that a
// value cannot end up in a log line by accident.
template <typename T, typename = void>
struct IsStreamable : std::false_type {};
template <typename T>
struct IsStreamable<T, std::void_t<decltype(std::declval<std::ostream&>()
                                            << std::declval<const T&>())>> : std::true_type {};

static_assert(!std::is_copy_constructible_v<SecretBytes>, "copies must go through Clone()");
static_assert(!std::is_copy_assignable_v<SecretBytes>, "copies must go through Clone()");
static_assert(std::is_nothrow_move_constructible_v<SecretBytes>);
static_assert(std::is_nothrow_move_assignable_v<SecretBytes>);
static_assert(!IsStreamable<SecretBytes>::value, "SecretBytes must have no operator<<");
static_assert(IsStreamable<std::string>::value, "the streamability probe itself works");

TEST(SecretBytesTest, DefaultIsEmpty) {
  const SecretBytes bytes;
  EXPECT_TRUE(bytes.empty());
  EXPECT_EQ(bytes.size(), 0u);
  EXPECT_TRUE(bytes.reveal().empty());
}

TEST(SecretBytesTest, ConstructFromEmptyViewIsEmpty) {
  const SecretBytes bytes{absl::string_view()};
  EXPECT_TRUE(bytes.empty());
  EXPECT_TRUE(bytes.reveal().empty());
}

TEST(SecretBytesTest, RevealReturnsTheBytes) {
  const SecretBytes bytes("example-value");
  EXPECT_FALSE(bytes.empty());
  EXPECT_EQ(bytes.size(), 13u);
  EXPECT_EQ(bytes.reveal(), "example-value");
}

TEST(SecretBytesTest, HoldsBinaryBytesIncludingNul) {
  const std::string binary("\x00\x01\xff\x00z", 5);
  const SecretBytes bytes(binary);
  EXPECT_EQ(bytes.size(), 5u);
  EXPECT_EQ(bytes.reveal(), binary);
}

TEST(SecretBytesTest, OwnsItsCopyOfTheInput) {
  std::string source = "example-value";
  const SecretBytes bytes(source);
  source[0] = 'X';
  EXPECT_EQ(bytes.reveal(), "example-value");
}

TEST(SecretBytesTest, CloneIsEqualAndIndependent) {
  auto original = std::make_unique<SecretBytes>("example-value");
  const SecretBytes clone = original->Clone();
  EXPECT_TRUE(clone.Equals(*original));
  EXPECT_NE(clone.reveal().data(), original->reveal().data());
  original.reset();  // wipes and frees the original's buffer
  EXPECT_EQ(clone.reveal(), "example-value");
}

TEST(SecretBytesTest, CloneOfEmptyIsEmpty) {
  const SecretBytes empty;
  EXPECT_TRUE(empty.Clone().empty());
}

TEST(SecretBytesTest, MoveConstructionLeavesSourceEmpty) {
  SecretBytes source("example-value");
  const SecretBytes target(std::move(source));
  EXPECT_EQ(target.reveal(), "example-value");
  EXPECT_TRUE(source.empty());  // NOLINT(bugprone-use-after-move): the state is specified
  EXPECT_EQ(source.size(), 0u);
  EXPECT_TRUE(source.reveal().empty());
}

TEST(SecretBytesTest, MoveAssignmentReplacesTargetAndLeavesSourceEmpty) {
  SecretBytes source("example-value");
  SecretBytes target("old-value");
  target = std::move(source);
  EXPECT_EQ(target.reveal(), "example-value");
  EXPECT_TRUE(source.empty());  // NOLINT(bugprone-use-after-move)
}

TEST(SecretBytesTest, SelfMoveAssignmentKeepsTheValue) {
  SecretBytes bytes("example-value");
  SecretBytes& alias = bytes;
  bytes = std::move(alias);
  EXPECT_EQ(bytes.reveal(), "example-value");
}

TEST(SecretBytesTest, MovedFromObjectCanBeReused) {
  SecretBytes source("example-value");
  SecretBytes target(std::move(source));
  source = SecretBytes("other-value");  // NOLINT(bugprone-use-after-move)
  EXPECT_EQ(source.reveal(), "other-value");
}

struct EqualsCase {
  std::string label;
  std::string a;
  std::string b;
  bool equal;
};

class SecretBytesEqualsTest : public testing::TestWithParam<EqualsCase> {};

TEST_P(SecretBytesEqualsTest, BothOverloadsAgreeAndAreSymmetric) {
  const EqualsCase& c = GetParam();
  const SecretBytes a(c.a);
  const SecretBytes b(c.b);
  EXPECT_EQ(a.Equals(b), c.equal);
  EXPECT_EQ(b.Equals(a), c.equal);
  EXPECT_EQ(a.Equals(absl::string_view(c.b)), c.equal);
  EXPECT_EQ(b.Equals(absl::string_view(c.a)), c.equal);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, SecretBytesEqualsTest,
    testing::Values(EqualsCase{"Same", "example-value", "example-value", true},
                    EqualsCase{"BothEmpty", "", "", true},
                    EqualsCase{"DifferentLastByte", "example-value", "example-valuf", false},
                    EqualsCase{"DifferentFirstByte", "example-value", "fxample-value", false},
                    EqualsCase{"ShorterPrefix", "example-value", "example", false},
                    EqualsCase{"EmptyAndNonEmpty", "", "x", false},
                    EqualsCase{"DifferAfterNul", std::string("a\0b", 3), std::string("a\0c", 3),
                               false},
                    EqualsCase{"SameWithNul", std::string("a\0b", 3), std::string("a\0b", 3),
                               true}),
    [](const testing::TestParamInfo<EqualsCase>& info) { return info.param.label; });

TEST(SecretBytesTest, EqualsItself) {
  const SecretBytes bytes("example-value");
  EXPECT_TRUE(bytes.Equals(bytes));
}

// Every length up to two words and a tail, a difference in every bit of every position: equal
// only when the bytes are, whichever eight-byte lane or tail byte differs.
TEST(ConstantTimeEqualsTest, FindsEveryDifference) {
  for (size_t length = 0; length <= 19; ++length) {
    std::string a(length, '\0');
    for (size_t i = 0; i < length; ++i) a[i] = static_cast<char>(0x41 + i * 7);
    EXPECT_TRUE(ConstantTimeEquals(a, std::string(a))) << length;
    EXPECT_FALSE(ConstantTimeEquals(a, a + "x")) << length;
    for (size_t at = 0; at < length; ++at) {
      for (int bit = 0; bit < 8; ++bit) {
        std::string b = a;
        b[at] = static_cast<char>(b[at] ^ (1 << bit));
        EXPECT_FALSE(ConstantTimeEquals(a, b)) << "length " << length << " byte " << at;
      }
    }
  }
  EXPECT_TRUE(SecretBytes("same").Equals("same"));
  EXPECT_FALSE(SecretBytes("same").Equals("sane"));
}

}  // namespace
}  // namespace secret_resolver
