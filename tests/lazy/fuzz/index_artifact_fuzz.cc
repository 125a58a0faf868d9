// libFuzzer entry for the index artifact manifest parser (lazy/index_artifact.h): the JSON comes
// from a registry (referrers) and is untrusted. ParseIndexArtifact must return or throw
// Error(kInvalidArgument), nothing else. What it accepts must be well-formed (index blob media
// type, valid digests on both sides) and survive a re-serialisation unchanged.
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "common/error.h"
#include "labels/digest.h"
#include "lazy/index_artifact.h"
#include "lazy/layer_index.h"

namespace {

namespace lz = lazysnap::lazy;

bool SameLayers(const lz::IndexedLayers& a, const lz::IndexedLayers& b) {
  if (a.size() != b.size()) return false;
  for (auto ia = a.begin(), ib = b.begin(); ia != a.end(); ++ia, ++ib) {
    if (ia->first != ib->first || ia->second.media_type != ib->second.media_type ||
        ia->second.digest != ib->second.digest || ia->second.size != ib->second.size)
      return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  lz::IndexedLayers layers;
  try {
    layers = lz::ParseIndexArtifact(in);
  } catch (const lazysnap::Error& e) {
    if (e.code() != lazysnap::ErrorCode::kInvalidArgument) __builtin_trap();
    return 0;
  }
  nlohmann::json out = nlohmann::json::array();
  for (const auto& [layer, d] : layers) {
    if (d.media_type != lz::kLayerIndexMediaType) __builtin_trap();
    if (!lazysnap::labels::IsValidDigest(layer) || !lazysnap::labels::IsValidDigest(d.digest))
      __builtin_trap();
    out.push_back({{"mediaType", d.media_type},
                   {"digest", d.digest},
                   {"size", d.size},
                   {"annotations", {{lz::kIndexedLayerAnnotation, layer}}}});
  }
  nlohmann::json m = {{"artifactType", lz::kIndexArtifactType}, {"layers", out}};
  if (!SameLayers(lz::ParseIndexArtifact(m.dump()), layers)) __builtin_trap();
  return 0;
}
