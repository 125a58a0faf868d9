// libFuzzer entry for the prefetch list parser (lazy/prefetch_list.h): the list is a registry
// blob and untrusted. ParsePrefetchList must return or throw Error(kInvalidArgument), nothing
// else. What it accepts must be well-formed (valid layer digests, non-empty ranges that do not
// overflow, bounded counts) and survive a re-encoding unchanged.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "common/error.h"
#include "labels/digest.h"
#include "lazy/prefetch_list.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace lz = lazysnap::lazy;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  lz::PrefetchList list;
  try {
    list = lz::ParsePrefetchList(in);
  } catch (const lazysnap::Error& e) {
    if (e.code() != lazysnap::ErrorCode::kInvalidArgument) __builtin_trap();
    return 0;
  }
  for (const auto& [layer, ranges] : list) {
    if (!lazysnap::labels::IsValidDigest(layer) || ranges.size() > lz::kMaxPrefetchRanges)
      __builtin_trap();
    for (const auto& r : ranges) {
      if (r.length == 0 || r.offset + r.length < r.offset) __builtin_trap();
    }
  }
  if (lz::ParsePrefetchList(lz::EncodePrefetchList(list)) != list) __builtin_trap();
  return 0;
}
