// libFuzzer entry for the index artifact manifest parser (lazy/index_artifact.h): the JSON comes
// from a registry (referrers) and is untrusted. ParseIndexArtifact must return or throw
// Error(kInvalidArgument), nothing else. What it accepts must be well-formed (index blob media
// type, valid digests on both sides, at most one prefetch list) and survive a re-serialisation
// unchanged.
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "common/error.h"
#include "labels/digest.h"
#include "lazy/index_artifact.h"
#include "lazy/layer_index.h"
#include "lazy/prefetch_list.h"

namespace {

namespace lz = lazysnap::lazy;

bool SameBlob(const lazysnap::fetcher::Descriptor& a, const lazysnap::fetcher::Descriptor& b) {
  return a.media_type == b.media_type && a.digest == b.digest && a.size == b.size;
}

bool Same(const lz::IndexArtifact& x, const lz::IndexArtifact& y) {
  const lz::IndexedLayers &a = x.layers, &b = y.layers;
  if (x.prefetch.has_value() != y.prefetch.has_value()) return false;
  if (x.prefetch && !SameBlob(*x.prefetch, *y.prefetch)) return false;
  if (a.size() != b.size()) return false;
  for (auto ia = a.begin(), ib = b.begin(); ia != a.end(); ++ia, ++ib) {
    if (ia->first != ib->first || !SameBlob(ia->second, ib->second)) return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  lz::IndexArtifact artifact;
  try {
    artifact = lz::ParseIndexArtifact(in);
  } catch (const lazysnap::Error& e) {
    if (e.code() != lazysnap::ErrorCode::kInvalidArgument) __builtin_trap();
    return 0;
  }
  nlohmann::json out = nlohmann::json::array();
  for (const auto& [layer, d] : artifact.layers) {
    if (d.media_type != lz::kLayerIndexMediaType) __builtin_trap();
    if (!lazysnap::labels::IsValidDigest(layer) || !lazysnap::labels::IsValidDigest(d.digest))
      __builtin_trap();
    out.push_back({{"mediaType", d.media_type},
                   {"digest", d.digest},
                   {"size", d.size},
                   {"annotations", {{lz::kIndexedLayerAnnotation, layer}}}});
  }
  if (const auto& p = artifact.prefetch) {
    if (p->media_type != lz::kPrefetchListMediaType || !lazysnap::labels::IsValidDigest(p->digest))
      __builtin_trap();
    out.push_back({{"mediaType", p->media_type}, {"digest", p->digest}, {"size", p->size}});
  }
  nlohmann::json m = {{"artifactType", lz::kIndexArtifactType}, {"layers", out}};
  if (!Same(lz::ParseIndexArtifact(m.dump()), artifact)) __builtin_trap();
  return 0;
}
