#include "snapshotter/remote_layers.h"

#include "common/error.h"
#include "labels/cri_labels.h"
#include "labels/descriptor.h"

namespace lazysnap::snapshotter {

labels::ProxyPolicy ToPolicy(const ProxySettings& s) {
  labels::ProxyPolicy p;
  p.enable = s.enable;
  p.fallback_error = s.fallback == "error";
  for (const auto& o : s.overrides) {
    p.overrides.push_back(
        {o.image, o.mode == "native" ? labels::LayerMode::kNative : labels::LayerMode::kProxy});
  }
  return p;
}

ProxyLayerPlanner::ProxyLayerPlanner(const ProxySettings& settings, const Logger& log)
    : policy_(ToPolicy(settings)), log_(log) {}

LayerPlan ProxyLayerPlanner::Plan(const PrepareRequest& req) {
  std::optional<labels::LayerMode> parent_mode;
  if (req.parent_record) {
    parent_mode = req.parent_record->mode == LayerMode::kProxy ? labels::LayerMode::kProxy
                                                               : labels::LayerMode::kNative;
  }
  labels::Decision d = labels::DecideLayerMode(policy_, req.key, req.labels, parent_mode);
  if (d.fell_back) {
    // Once per image: the image is unknown without CRI labels, so a chain's first layer stands for
    // it.
    auto it = req.labels.find(labels::kCriImageRef);
    std::string image = it != req.labels.end() ? it->second : (req.parent.empty() ? req.key : "");
    std::lock_guard lock(mu_);
    if (!image.empty() && warned_.insert(image).second) {
      log_.Warn("proxy mode on but layer labels missing; unpacking natively",
                {{"key", req.key}, {"help", d.reason}});
    }
  }
  LayerPlan plan;
  if (d.mode != labels::LayerMode::kProxy) return plan;
  plan.mode = LayerMode::kProxy;
  plan.remote_name = d.target->chain_id.str();
  plan.remote_labels = req.labels;
  return plan;
}

std::vector<Mount> KataMountBuilder::Build(const SnapshotRecord& self,
                                           const std::vector<SnapshotRecord>& chain,
                                           const std::string& fs_dir, const std::string& work_dir,
                                           const std::vector<std::string>& parent_fs_dirs) {
  labels::ProxyDescriptor d;
  for (const auto& layer : chain) {
    if (layer.mode != LayerMode::kProxy) {
      throw Error(ErrorCode::kFailedPrecondition,
                  "snapshot " + self.info.name + " stacks proxy layers on native layer " +
                      layer.info.name + ": mixed chains are not supported");
    }
    const auto& l = layer.info.labels;
    auto get = [&](const char* key) -> const std::string& {
      auto it = l.find(key);
      if (it == l.end()) {
        throw Error(ErrorCode::kFailedPrecondition,
                    "proxy layer " + layer.info.name + " lacks label " + key);
      }
      return it->second;
    };
    d.layers.push_back({get(labels::kCriLayerDigest), get(labels::kSnapshotRef)});
    // The top layer's pull names the image: it is the only layer unique to this image.
    d.image_ref = get(labels::kCriImageRef);
    d.manifest_digest = get(labels::kCriManifestDigest);
  }
  std::vector<std::string> options;
  if (self.info.kind == Kind::kActive) {
    options.push_back("workdir=" + work_dir);
    options.push_back("upperdir=" + fs_dir);
  }
  std::string lower = "lowerdir=";
  for (size_t i = 0; i < parent_fs_dirs.size(); ++i) lower += (i ? ":" : "") + parent_fs_dirs[i];
  options.push_back(lower);
  options.push_back(labels::KataVolumeOption(d));
  return {Mount{mount_type_, "overlay", "", options}};
}

}  // namespace lazysnap::snapshotter
