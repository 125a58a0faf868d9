// The per-layer mode decision, as a pure function of the configuration, the Prepare's labels and
// key, and its parent's mode. The snapshotter acts on the result.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "labels/cri_labels.h"

namespace lazysnap::labels {

enum class LayerMode { kNative, kProxy };

struct ModeOverride {
  std::string image;  // exact reference (as sent, or canonical), or a prefix ending in '*'
  LayerMode mode = LayerMode::kProxy;
};

struct ProxyPolicy {
  bool enable = false;
  bool fallback_error =
      false;  // labels missing on a layer unpack: refuse (true) or unpack natively
  std::vector<ModeOverride> overrides;  // first match wins
};

struct Decision {
  LayerMode mode = LayerMode::kNative;
  std::optional<LayerTarget> target;  // set for kProxy
  bool fell_back = false;             // native because the CRI labels were missing
  std::string reason;                 // why, for logs
};

// True for Prepares that unpack an image layer: a snapshot.ref label, or containerd's unpack key
// "extract-<id> <chainID>" (ctr pull sends no labels at all).
bool IsLayerUnpack(const std::string& key, const LabelMap& labels);

// `parent_mode`: the parent snapshot's mode (nullopt: no parent). Chains stay homogeneous: a
// layer on a native parent is native, a layer on a proxy parent must be proxy. Throws
// Error(kInvalidArgument) for malformed labels (naming the label) and Error(kFailedPrecondition)
// when the Prepare cannot be served: labels missing with fallback = "error", or a native unpack
// on top of a proxy layer.
Decision DecideLayerMode(const ProxyPolicy& policy, const std::string& key, const LabelMap& labels,
                         std::optional<LayerMode> parent_mode);

// The message for missing labels, naming the containerd settings to change.
std::string MissingLabelsHelp();

}  // namespace lazysnap::labels
