#include "snapshotter/lazy_layers.h"

#include "common/error.h"
#include "labels/cri_labels.h"
#include "labels/mode.h"
#include "lazy/control.h"

namespace lazysnap::snapshotter {
namespace {

nlohmann::json LayerRequest(const labels::LayerTarget& t) {
  return {{"image_ref", t.image_ref},
          {"manifest_digest", t.manifest.str()},
          {"layer_digest", t.layer.str()}};
}

}  // namespace

LazyLayerPlanner::LazyLayerPlanner(LayerPlanner& inner, const LazySettings& settings,
                                   const Logger& log)
    : inner_(inner), settings_(settings), log_(log) {}

LayerPlan LazyLayerPlanner::Plan(const PrepareRequest& req) {
  LayerPlan plan = inner_.Plan(req);
  if (!settings_.enable || plan.mode != LayerMode::kNative || req.kind != Kind::kActive) {
    return plan;
  }
  if (req.parent_record && req.parent_record->mode == LayerMode::kProxy) return plan;
  if (!labels::IsLayerUnpack(req.key, req.labels)) return plan;
  labels::ParsedLabels parsed = labels::ParseLayerLabels(req.labels);
  if (parsed.presence != labels::LabelPresence::kComplete) return plan;
  const labels::LayerTarget& t = *parsed.target;
  nlohmann::json request = LayerRequest(t);
  request["op"] = "prepare";
  std::string why;
  try {
    nlohmann::json reply = lazy::CallControl(settings_.socket, request);
    if (reply.value("indexed", false)) {
      plan.mode = LayerMode::kLazy;
      plan.remote_name = t.chain_id.str();
      plan.remote_labels = req.labels;
      return plan;
    }
    why = "no lazysnap index for this image (run `lazysnap index " + t.image_ref + "`)";
  } catch (const Error& e) {
    why = e.what();
  }
  std::lock_guard lock(mu_);
  if (warned_.insert(t.image_ref + " " + why).second) {
    log_.Info("layer not lazy; unpacking natively",
              {{"image", t.image_ref}, {"layer", t.layer.str()}, {"reason", why}});
  }
  return plan;
}

void LazyLayerPlanner::Materialize(const LayerPlan& plan, const std::string& fs_dir) {
  labels::ParsedLabels parsed = labels::ParseLayerLabels(plan.remote_labels);
  if (parsed.presence != labels::LabelPresence::kComplete) {
    throw Error(ErrorCode::kFailedPrecondition, "lazy layer without its CRI labels");
  }
  nlohmann::json request = LayerRequest(*parsed.target);
  request["op"] = "mount";
  request["mountpoint"] = fs_dir;
  lazy::CallControl(settings_.socket, request);
}

void LazyLayerPlanner::Release(const std::string& fs_dir) noexcept {
  try {
    lazy::CallControl(settings_.socket, {{"op", "unmount"}, {"mountpoint", fs_dir}},
                      std::chrono::seconds(30));
  } catch (const std::exception& e) {
    // The directory's removal detaches the mount anyway; lazysnap-fused notices its session end.
    log_.Warn("lazysnap-fused did not release a lazy mount",
              {{"mountpoint", fs_dir}, {"error", e.what()}});
  }
}

}  // namespace lazysnap::snapshotter
