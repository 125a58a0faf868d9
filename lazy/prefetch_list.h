// The prefetch list of an image: for each of its layers, the ranges of the uncompressed tar that
// a container of the image read while it started, in the order they were first read.
//
// Recorded once, used everywhere: lazysnap-fused notes the spans its readers touch in a layer's
// first seconds (TarSourceOptions::record_window), `lazysnap prefetch IMAGE` writes them out as
// this list, `lazysnap index IMAGE --prefetch FILE` pushes it with the layer indexes in the index
// artifact, and every lazysnap-fused that mounts a layer of the image then fetches (and inflates)
// those spans at once, ahead of the container's reads, before the background fetch.
//
// Ranges are offsets in the uncompressed tar, not span or chunk numbers, so a list stays valid
// when the layers are re-indexed with other span or chunk sizes.
//
// Format (JSON, media type kPrefetchListMediaType), the blob stored in the registry:
//   {"mediaType": "...", "layers": [{"digest": "sha256:<hex>", "ranges": [[offset, length], ...]}]}
// Parsing is strict and fuzzed (tests/lazy/fuzz): the blob comes from a registry.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace lazysnap::lazy {

inline constexpr const char* kPrefetchListMediaType = "application/vnd.lazysnap.prefetch.v1+json";
inline constexpr size_t kMaxPrefetchListBytes = 4u << 20;
inline constexpr size_t kMaxPrefetchRanges = 1u << 16;  // per layer

struct TarRange {
  uint64_t offset = 0;
  uint64_t length = 0;  // > 0
  bool operator==(const TarRange&) const = default;
};

// Layer digest -> its ranges, in the order they were first read.
using PrefetchList = std::map<std::string, std::vector<TarRange>>;

std::string EncodePrefetchList(const PrefetchList& list);
// Error(kInvalidArgument) naming what is wrong: not the media type, a bad digest, a layer twice,
// an empty or overflowing range, more than kMaxPrefetchRanges ranges, more than
// kMaxPrefetchListBytes of input.
PrefetchList ParsePrefetchList(std::string_view json);

}  // namespace lazysnap::lazy
