// Where layer indexes live: an OCI artifact in the image's own repository whose `subject` is the
// image manifest, with one blob per indexed layer (annotated with the layer digest it indexes).
// Found through the OCI referrers API, or the referrers tag schema (`sha256-<hex>`) on registries
// without it (Debian's docker-registry 2.8).
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "fetcher/manifest.h"
#include "fetcher/registry_client.h"

namespace lazysnap::lazy {

// Layer digest -> descriptor of its index blob.
using IndexedLayers = std::map<std::string, fetcher::Descriptor>;

struct IndexArtifact {
  IndexedLayers layers;
  // The image's prefetch list blob (lazy/prefetch_list.h), when one was recorded.
  std::optional<fetcher::Descriptor> prefetch;
};

// The artifact manifest for `indexes` (layer digest -> encoded index bytes; the blobs must be
// pushed separately) and, when not empty, the encoded prefetch list, with `image` as subject.
std::string IndexArtifactManifest(const fetcher::ResolvedImage& image,
                                  const std::vector<std::pair<std::string, std::string>>& indexes,
                                  const std::string& prefetch = "");

// Pushes the index blobs, the prefetch list (when not empty) and the artifact, and registers it as
// a referrer of the image manifest. Returns the artifact manifest's digest.
std::string PushIndexArtifact(fetcher::RegistryClient& client, const fetcher::ResolvedImage& image,
                              const std::vector<std::pair<std::string, std::string>>& indexes,
                              const std::string& prefetch = "");

// Strict parse of an artifact manifest (untrusted; fuzzed): Error(kInvalidArgument) naming the
// field. Index blobs without the annotation and layers of other media types are ignored; more
// than one prefetch list is an error.
IndexArtifact ParseIndexArtifact(std::string_view json);

// The newest index artifact of `manifest_digest` in the client's repository; no layers when none.
IndexArtifact FindIndexArtifact(fetcher::RegistryClient& client,
                                const std::string& manifest_digest);

}  // namespace lazysnap::lazy
