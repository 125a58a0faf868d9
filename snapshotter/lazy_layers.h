// Lazy mode: layers that have an index are not unpacked; lazysnap-fused mounts them on demand
// and the snapshot is committed as a remote layer (the same ALREADY_EXISTS protocol as proxy
// mode). The decision for each labelled CRI layer unpack: proxy first (its own policy), then lazy
// when lazysnap-fused finds an index for the layer, else native. Anything that goes wrong on the
// lazy path (no daemon, no index, a registry error) falls back to a native unpack with a log
// line: lazy mode makes pulls faster, never makes them fail.
#pragma once

#include <mutex>
#include <set>
#include <string>

#include "common/log.h"
#include "snapshotter/config.h"
#include "snapshotter/layer_plan.h"

namespace lazysnap::snapshotter {

class LazyLayerPlanner : public LayerPlanner {
 public:
  // `inner` decides first (proxy or native); lazy applies to what it leaves native.
  LazyLayerPlanner(LayerPlanner& inner, const LazySettings& settings, const Logger& log);
  LayerPlan Plan(const PrepareRequest& req) override;
  void Materialize(const LayerPlan& plan, const std::string& fs_dir) override;
  void Release(const std::string& fs_dir) noexcept override;

 private:
  LayerPlanner& inner_;
  LazySettings settings_;
  const Logger& log_;
  std::mutex mu_;
  std::set<std::string> warned_;  // images whose fallback was already logged
};

}  // namespace lazysnap::snapshotter
