// libFuzzer entry for the root-name rewrite BuildLayer applies on the way to mkfs.erofs
// (erofs/tar_root_fix.h); the bytes after byte 0 are an untrusted tar stream, byte 0 picks how it
// is cut into feeds. Must hold for any input: the same output however the stream is cut, as long
// as the input; changes only inside rewritten 512-byte headers (name, ustar prefix, checksum),
// each then named "." with a valid checksum; a second pass changes nothing; and TarScanner
// accepts the output exactly when it accepts the input, with as many entries.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>

#include "common/error.h"
#include "erofs/tar_root_fix.h"
#include "erofs/tar_scanner.h"

namespace {

using lazysnap::erofs::TarRootFix;
using lazysnap::erofs::TarScanner;

std::string Fix(const std::string& in, uint32_t seed, uint64_t* rewritten) {
  std::string out;
  TarRootFix fix(
      [&](const uint8_t* p, size_t n) { out.append(reinterpret_cast<const char*>(p), n); });
  std::minstd_rand rng(seed);
  const auto* p = reinterpret_cast<const uint8_t*>(in.data());
  for (size_t pos = 0; pos < in.size();) {
    size_t n = seed == 0 ? in.size() : std::min<size_t>(in.size() - pos, rng() % 1100);
    fix.Feed(p + pos, n);
    pos += n;
  }
  fix.Flush();
  *rewritten = fix.rewritten();
  return out;
}

// -1: rejected, else the entry count.
int64_t Scan(const std::string& tar) {
  TarScanner s;
  try {
    s.Feed(reinterpret_cast<const uint8_t*>(tar.data()), tar.size());
    s.Finish();
  } catch (const lazysnap::Error&) {
    return -1;
  }
  return static_cast<int64_t>(s.entries());
}

bool ValidRewrite(const char* in, const char* out) {
  for (size_t i = 0; i < 512; ++i) {
    bool may_change = i < 100 || (i >= 148 && i < 156) || (i >= 345 && i < 500);
    if (!may_change && in[i] != out[i]) return false;
  }
  if (out[0] != '.' || out[1] != '\0') return false;
  unsigned sum = 0;
  for (size_t i = 0; i < 512; ++i)
    sum += (i >= 148 && i < 156) ? ' ' : static_cast<unsigned char>(out[i]);
  char want[9];
  snprintf(want, sizeof(want), "%06o%c ", sum, '\0');
  return memcmp(out + 148, want, 8) == 0;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint32_t seed = data[0];
  const std::string in(reinterpret_cast<const char*>(data) + 1, size - 1);
  uint64_t whole_n = 0, cut_n = 0, again_n = 0;
  const std::string out = Fix(in, 0, &whole_n);
  if (Fix(in, seed + 1, &cut_n) != out || cut_n != whole_n) __builtin_trap();
  if (out.size() != in.size()) __builtin_trap();
  uint64_t changed = 0;
  for (size_t at = 0; at < in.size(); at += 512) {
    size_t n = std::min<size_t>(512, in.size() - at);
    if (memcmp(in.data() + at, out.data() + at, n) == 0) continue;
    if (n != 512 || !ValidRewrite(in.data() + at, out.data() + at)) __builtin_trap();
    ++changed;
  }
  if (changed != whole_n) __builtin_trap();
  if (Fix(out, seed, &again_n) != out || again_n != 0) __builtin_trap();
  if (Scan(in) != Scan(out)) __builtin_trap();
  return 0;
}
