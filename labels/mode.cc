#include "labels/mode.h"

#include "common/error.h"

namespace lazysnap::labels {
namespace {

bool Matches(const std::string& pattern, const LayerTarget& t) {
  if (!pattern.empty() && pattern.back() == '*') {
    std::string prefix = pattern.substr(0, pattern.size() - 1);
    return t.image_ref.starts_with(prefix) || t.image.Canonical().starts_with(prefix);
  }
  return pattern == t.image_ref || pattern == t.image.Canonical();
}

}  // namespace

std::string MissingLabelsHelp() {
  return "containerd did not send the CRI layer labels (containerd.io/snapshot/cri.*). Set "
         "disable_snapshot_annotations = false in "
         "[plugins.\"io.containerd.grpc.v1.cri\".containerd] "
         "(containerd 1.6/1.7), or on containerd 2.x export enable_remote_snapshot_annotations = "
         "\"true\" "
         "in [proxy_plugins.lazysnap.exports]; `ctr image pull` never sends them";
}

bool IsLayerUnpack(const std::string& key, const LabelMap& labels) {
  if (labels.count(kSnapshotRef)) return true;
  auto slash = key.rfind('/');
  std::string last = slash == std::string::npos ? key : key.substr(slash + 1);
  // containerd's unpacker: fmt.Sprintf("extract-%s %s", uniquePart, chainID)
  return last.starts_with("extract-") && key.find(" sha256:") != std::string::npos;
}

Decision DecideLayerMode(const ProxyPolicy& policy, const std::string& key, const LabelMap& labels,
                         std::optional<LayerMode> parent_mode) {
  bool parent_is_proxy = parent_mode == LayerMode::kProxy;
  Decision d;
  if (!IsLayerUnpack(key, labels)) {
    d.reason = parent_is_proxy ? "container snapshot on proxy layers" : "not a layer unpack";
    return d;
  }
  ParsedLabels parsed = ParseLayerLabels(labels);
  auto refuse_native_on_proxy = [&](const std::string& why) {
    if (parent_is_proxy) {
      throw Error(ErrorCode::kFailedPrecondition,
                  "cannot unpack layer " + key + " natively on top of a proxy layer (" + why +
                      "): its parent's contents exist only in the guest");
    }
  };
  if (!policy.enable) {
    refuse_native_on_proxy("proxy mode is disabled");
    d.reason = "proxy mode disabled";
    return d;
  }
  if (parsed.presence != LabelPresence::kComplete) {
    if (policy.fallback_error) {
      throw Error(ErrorCode::kFailedPrecondition,
                  "proxy mode needs CRI labels for layer " + key +
                      " and fallback = \"error\": " + MissingLabelsHelp());
    }
    refuse_native_on_proxy("CRI labels missing");
    d.fell_back = true;
    d.reason = MissingLabelsHelp();
    return d;
  }
  if (parent_mode == LayerMode::kNative) {
    d.reason = "parent layer is native (chains stay homogeneous)";
    return d;
  }
  LayerMode mode = LayerMode::kProxy;
  d.reason = "proxy mode";
  for (const auto& o : policy.overrides) {
    if (Matches(o.image, *parsed.target)) {
      mode = o.mode;
      d.reason = "override " + o.image;
      break;
    }
  }
  if (mode == LayerMode::kNative) {
    refuse_native_on_proxy("override selects native");
    return d;
  }
  d.mode = LayerMode::kProxy;
  d.target = std::move(parsed.target);
  return d;
}

}  // namespace lazysnap::labels
