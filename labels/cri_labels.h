// The per-layer labels containerd's CRI image pull puts on every layer snapshot it prepares (with
// disable_snapshot_annotations = false), parsed into a typed target. Only labels with the prefix
// containerd.io/snapshot/ (and snapshot.ref) reach a proxy snapshotter.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "labels/digest.h"
#include "labels/reference.h"

namespace lazysnap::labels {

using LabelMap = std::map<std::string, std::string>;

inline constexpr const char* kSnapshotRef = "containerd.io/snapshot.ref";
inline constexpr const char* kCriImageRef = "containerd.io/snapshot/cri.image-ref";
inline constexpr const char* kCriManifestDigest = "containerd.io/snapshot/cri.manifest-digest";
inline constexpr const char* kCriLayerDigest = "containerd.io/snapshot/cri.layer-digest";
inline constexpr const char* kCriImageLayers = "containerd.io/snapshot/cri.image-layers";

// containerd's label size rule (key + value).
inline constexpr size_t kMaxLabelSize = 4096;

struct LayerTarget {
  Digest chain_id;                      // snapshot.ref: the chainID of the layer being unpacked
  Reference image;                      // cri.image-ref, normalised
  std::string image_ref;                // cri.image-ref exactly as containerd sent it
  Digest manifest;                      // cri.manifest-digest
  Digest layer;                         // cri.layer-digest: the compressed blob of this layer
  std::vector<Digest> image_layers;     // cri.image-layers: this layer and those above it
  bool image_layers_truncated = false;  // containerd cut the list to fit 4096 bytes
};

enum class LabelPresence {
  kNone,      // no snapshot.ref: not a labelled layer unpack (ctr pull, container rootfs)
  kRefOnly,   // snapshot.ref without the CRI labels (containerd 1.6 re-unpack, annotations off)
  kComplete,  // snapshot.ref and every CRI label
};

struct ParsedLabels {
  LabelPresence presence = LabelPresence::kNone;
  std::optional<Digest> chain_id;     // when snapshot.ref is present
  std::optional<LayerTarget> target;  // when presence == kComplete
  std::vector<std::string> missing;   // CRI label keys absent (kRefOnly)
};

// Throws Error(kInvalidArgument) naming the offending label when a present label is malformed.
// Partially present CRI labels (some but not all) are malformed too: containerd sets all or none.
ParsedLabels ParseLayerLabels(const LabelMap& labels);

// containerd's rule: key non-empty, key + value <= 4096 bytes. Throws Error(kInvalidArgument).
void ValidateLabelSizes(const LabelMap& labels);

}  // namespace lazysnap::labels
