// libFuzzer entry for the lazy layer index decoder (lazy/layer_index.h); the blob comes from a
// registry and is untrusted even when its digest matched. Byte 0 selects the input form:
//  - even: the rest is the registry blob, handed to DecodeLayerIndex as is (zstd framing,
//    decompression bounds, the self-digest check);
//  - odd: the rest is a plain payload without its trailing self-digest; the entry appends the
//    sha256 and compresses it, so mutations reach the field decoder behind the digest check.
// DecodeLayerIndex must return or throw Error(kDataLoss), nothing else, and never allocate
// beyond its bounds. Whatever it accepts must encode back to the same payload (the format is
// canonical) and decode to an equal index.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/error.h"
#include "lazy/layer_index.h"
#include "tests/lazy/fuzz/layer_index_testutil.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace lz = lazysnap::lazy;
  if (size == 0) return 0;
  std::string_view in(reinterpret_cast<const char*>(data + 1), size - 1);
  const bool sealed = data[0] % 2 == 1;
  std::string blob = sealed ? lz::index_test::SealPayload(in) : std::string(in);
  lz::LayerIndex idx;
  try {
    idx = lz::DecodeLayerIndex(blob);
  } catch (const lazysnap::Error& e) {
    if (e.code() != lazysnap::ErrorCode::kDataLoss) __builtin_trap();
    return 0;
  }
  // Accepted: the round trip must hold (neither call may throw).
  std::string again = lz::EncodeLayerIndex(idx);
  if (!lz::index_test::SameIndex(lz::DecodeLayerIndex(again), idx)) __builtin_trap();
  if (sealed && lz::index_test::OpenPayload(again) != in) __builtin_trap();
  return 0;
}
