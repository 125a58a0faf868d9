#include "lazy/index_artifact.h"

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/sha256.h"
#include "labels/digest.h"
#include "lazy/layer_index.h"
#include "lazy/prefetch_list.h"

namespace lazysnap::lazy {
namespace {

constexpr const char* kEmptyConfigType = "application/vnd.oci.empty.v1+json";

[[noreturn]] void Bad(const std::string& why) {
  throw Error(ErrorCode::kInvalidArgument, "index artifact: " + why);
}

}  // namespace

std::string IndexArtifactManifest(const fetcher::ResolvedImage& image,
                                  const std::vector<std::pair<std::string, std::string>>& indexes,
                                  const std::string& prefetch) {
  nlohmann::json layers = nlohmann::json::array();
  for (const auto& [layer, bytes] : indexes) {
    layers.push_back({{"mediaType", kLayerIndexMediaType},
                      {"digest", Sha256Digest(bytes)},
                      {"size", bytes.size()},
                      {"annotations", {{kIndexedLayerAnnotation, layer}}}});
  }
  if (!prefetch.empty()) {
    layers.push_back({{"mediaType", kPrefetchListMediaType},
                      {"digest", Sha256Digest(prefetch)},
                      {"size", prefetch.size()}});
  }
  nlohmann::json m = {
      {"schemaVersion", 2},
      {"mediaType", fetcher::kOciManifest},
      {"artifactType", kIndexArtifactType},
      {"config", {{"mediaType", kEmptyConfigType}, {"digest", Sha256Digest("{}")}, {"size", 2}}},
      {"layers", layers},
      {"subject",
       {{"mediaType", image.manifest.media_type.empty() ? std::string(fetcher::kOciManifest)
                                                        : image.manifest.media_type},
        {"digest", image.manifest_digest},
        {"size", image.manifest_bytes.size()}}},
  };
  return m.dump();
}

std::string PushIndexArtifact(fetcher::RegistryClient& client, const fetcher::ResolvedImage& image,
                              const std::vector<std::pair<std::string, std::string>>& indexes,
                              const std::string& prefetch) {
  client.PushBlob("{}");
  for (const auto& [layer, bytes] : indexes) client.PushBlob(bytes);
  if (!prefetch.empty()) client.PushBlob(prefetch);
  std::string manifest = IndexArtifactManifest(image, indexes, prefetch);
  std::string digest = Sha256Digest(manifest);
  client.PushManifest(digest, fetcher::kOciManifest, manifest);
  fetcher::Descriptor d;
  d.media_type = fetcher::kOciManifest;
  d.digest = digest;
  d.size = manifest.size();
  d.artifact_type = kIndexArtifactType;
  client.AddReferrer(image.manifest_digest, d);
  return digest;
}

IndexArtifact ParseIndexArtifact(std::string_view json) {
  auto j = nlohmann::json::parse(json, nullptr, false);
  if (j.is_discarded() || !j.is_object()) Bad("not a JSON object");
  auto at = j.find("artifactType");
  if (at == j.end() || !at->is_string() || at->get<std::string>() != kIndexArtifactType)
    Bad(std::string("artifactType is not ") + kIndexArtifactType);
  auto layers = j.find("layers");
  if (layers == j.end() || !layers->is_array()) Bad("no layers array");
  IndexArtifact out;
  // The digest and size of a blob descriptor, checked.
  auto blob = [](const nlohmann::json& l, const std::string& media, const char* what) {
    auto dg = l.find("digest");
    auto sz = l.find("size");
    if (dg == l.end() || !dg->is_string()) Bad("a layer has no digest");
    if (sz == l.end() || !sz->is_number_unsigned()) Bad("a layer has no size");
    fetcher::Descriptor d;
    d.media_type = media;
    try {
      d.digest = labels::ParseDigest(dg->get<std::string>(), what).str();
    } catch (const Error& e) {
      Bad(e.what());
    }
    d.size = sz->get<uint64_t>();
    return d;
  };
  for (const auto& l : *layers) {
    if (!l.is_object()) Bad("a layer is not an object");
    auto mt = l.find("mediaType");
    if (mt == l.end() || !mt->is_string()) Bad("a layer has no mediaType");
    if (mt->get<std::string>() == kPrefetchListMediaType) {
      if (out.prefetch) Bad("more than one prefetch list");
      out.prefetch = blob(l, kPrefetchListMediaType, "prefetch list digest");
      continue;
    }
    if (mt->get<std::string>() != kLayerIndexMediaType) continue;
    auto ann = l.find("annotations");
    if (ann == l.end() || !ann->is_object()) continue;
    auto layer = ann->find(kIndexedLayerAnnotation);
    if (layer == ann->end() || !layer->is_string()) continue;
    fetcher::Descriptor d = blob(l, kLayerIndexMediaType, "index blob digest");
    try {
      labels::ParseDigest(layer->get<std::string>(), "indexed layer digest");
    } catch (const Error& e) {
      Bad(e.what());
    }
    out.layers[layer->get<std::string>()] = d;
  }
  return out;
}

IndexArtifact FindIndexArtifact(fetcher::RegistryClient& client,
                                const std::string& manifest_digest) {
  std::vector<fetcher::Descriptor> refs = client.Referrers(manifest_digest, kIndexArtifactType);
  // The last one registered wins (a re-index replaces an older artifact).
  for (auto it = refs.rbegin(); it != refs.rend(); ++it) {
    auto m = client.FetchManifest(it->digest, fetcher::kOciManifest);
    if (!m) continue;
    IndexArtifact a = ParseIndexArtifact(m->second);
    if (!a.layers.empty()) return a;
  }
  return {};
}

}  // namespace lazysnap::lazy
