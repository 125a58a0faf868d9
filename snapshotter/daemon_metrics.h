// lazysnapd's metrics in the Prometheus text exposition format (version 0.0.4): the snapshots it
// holds by kind and mode, how each layer Prepare was answered (native / proxy / lazy, reused,
// lazy fallbacks and remounts), and the snapshots.v1 requests it answered by method and status
// code with the time spent on them. lazysnap-fused serves the per-layer read metrics itself.
#pragma once

#include <string>
#include <vector>

#include "snapshotter/grpc_service.h"
#include "snapshotter/metadata_store.h"
#include "snapshotter/snapshotter.h"

namespace lazysnap::snapshotter {

struct DaemonMetricsSources {
  const RequestCounters& requests;
  const SnapshotterCounters& counters;
  std::vector<SnapshotTally> snapshots;
  double start_time_s = 0;  // UNIX time the daemon started
};

std::string DaemonMetrics(const DaemonMetricsSources& in);

}  // namespace lazysnap::snapshotter
