// Proxy mode: the LayerPlanner that turns labelled CRI layer unpacks into remote (proxy)
// snapshots, and the RemoteMountBuilder that gives containers on proxy layers the Kata mount
// carrying the image descriptor. Policy and formats live in labels/.
#pragma once

#include <mutex>
#include <set>
#include <string>

#include "common/log.h"
#include "labels/mode.h"
#include "snapshotter/config.h"
#include "snapshotter/layer_plan.h"

namespace lazysnap::snapshotter {

labels::ProxyPolicy ToPolicy(const ProxySettings& settings);

class ProxyLayerPlanner : public LayerPlanner {
 public:
  ProxyLayerPlanner(const ProxySettings& settings, const Logger& log);
  LayerPlan Plan(const PrepareRequest& req) override;

 private:
  labels::ProxyPolicy policy_;
  const Logger& log_;
  std::mutex mu_;
  std::set<std::string> warned_;  // images whose missing labels were already logged
};

class KataMountBuilder : public RemoteMountBuilder {
 public:
  explicit KataMountBuilder(std::string mount_type) : mount_type_(std::move(mount_type)) {}
  std::vector<Mount> Build(const SnapshotRecord& self, const std::vector<SnapshotRecord>& chain,
                           const std::string& fs_dir, const std::string& work_dir,
                           const std::vector<std::string>& parent_fs_dirs) override;

 private:
  std::string mount_type_;
};

}  // namespace lazysnap::snapshotter
