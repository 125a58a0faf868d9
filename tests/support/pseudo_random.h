// Incompressible test data that is the same on every run: xorshift64 bytes from a seed, so big
// "random" files need no /dev/urandom and their checksums can be computed in the test.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>

namespace lazysnap::testing {

inline std::string PseudoRandomBytes(size_t n, uint64_t seed) {
  std::string s(n, '\0');
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  for (size_t i = 0; i + 8 <= n; i += 8) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    std::memcpy(&s[i], &x, 8);
  }
  return s;
}

}  // namespace lazysnap::testing
