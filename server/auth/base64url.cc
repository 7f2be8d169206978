#include "server/auth/base64url.h"

#include <array>
#include <cstdint>

namespace secret_resolver {
namespace auth {
namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

// The 6-bit value of each byte as a base64url character, or 0xff. Decoding runs over every new
// token's payload and signature, so a table rather than a chain of range tests.
constexpr std::array<uint8_t, 256> kSextets = [] {
  std::array<uint8_t, 256> table{};
  for (uint8_t& v : table) v = 0xff;
  for (int i = 0; i < 64; ++i) {
    table[static_cast<unsigned char>(kAlphabet[i])] = static_cast<uint8_t>(i);
  }
  return table;
}();

}  // namespace

std::optional<std::string> Base64UrlDecode(absl::string_view encoded) {
  const size_t tail = encoded.size() % 4;
  if (tail == 1) return std::nullopt;  // one character carries only 6 bits: no whole byte
  const auto* in = reinterpret_cast<const unsigned char*>(encoded.data());
  const size_t whole = encoded.size() - tail;
  std::string out(whole / 4 * 3 + (tail == 0 ? 0 : tail - 1), '\0');
  char* to = out.data();
  // Four characters (24 bits) to three bytes; an invalid character sets a high bit of `bad`.
  uint32_t bad = 0;
  for (size_t i = 0; i < whole; i += 4) {
    const uint32_t a = kSextets[in[i]], b = kSextets[in[i + 1]], c = kSextets[in[i + 2]],
                   d = kSextets[in[i + 3]];
    bad |= a | b | c | d;
    const uint32_t group = (a << 18) | (b << 12) | (c << 6) | d;
    *to++ = static_cast<char>(group >> 16);
    *to++ = static_cast<char>(group >> 8);
    *to++ = static_cast<char>(group);
  }
  if (tail != 0) {
    uint32_t group = 0;
    for (size_t i = 0; i < tail; ++i) {
      const uint32_t v = kSextets[in[whole + i]];
      bad |= v;
      group = (group << 6) | v;
    }
    // Two characters hold one byte and 4 spare bits, three hold two bytes and 2 spare bits. The
    // spare bits must be zero, or a second spelling of the same bytes would exist.
    const int spare = tail == 2 ? 4 : 2;
    if ((group & ((1u << spare) - 1)) != 0) return std::nullopt;
    group >>= spare;
    if (tail == 3) *to++ = static_cast<char>(group >> 8);
    *to = static_cast<char>(group);
  }
  if (bad & 0x80) return std::nullopt;  // every valid sextet is below 0x40
  return out;
}

std::string Base64UrlEncode(absl::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() * 4 + 2) / 3);
  uint32_t acc = 0;
  int bits = 0;
  for (unsigned char c : bytes) {
    acc = (acc << 8) | c;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out.push_back(kAlphabet[(acc >> bits) & 0x3f]);
    }
  }
  if (bits > 0) out.push_back(kAlphabet[(acc << (6 - bits)) & 0x3f]);
  return out;
}

}  // namespace auth
}  // namespace secret_resolver
