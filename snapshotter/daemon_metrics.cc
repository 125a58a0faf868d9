#include "snapshotter/daemon_metrics.h"

#include "common/prometheus.h"

namespace lazysnap::snapshotter {
namespace {

constexpr Kind kKinds[] = {Kind::kActive, Kind::kView, Kind::kCommitted};
constexpr LayerMode kModes[] = {LayerMode::kNative, LayerMode::kProxy, LayerMode::kLazy};

double Load(const std::atomic<uint64_t>& v) {
  return static_cast<double>(v.load(std::memory_order_relaxed));
}

}  // namespace

std::string DaemonMetrics(const DaemonMetricsSources& in) {
  PrometheusText out;
  out.Family("lazysnapd_start_time_seconds", "gauge", "When lazysnapd started (UNIX time).")
      .Sample("lazysnapd_start_time_seconds", in.start_time_s);

  // Every kind/mode pair, zeros included, so that dashboards see a series from the start.
  out.Family("lazysnapd_snapshots", "gauge", "Snapshots lazysnapd holds, by kind and mode.");
  for (Kind kind : kKinds) {
    for (LayerMode mode : kModes) {
      int64_t n = 0;
      for (const auto& t : in.snapshots) {
        if (t.kind == kind && t.mode == mode) n += t.count;
      }
      out.Sample("lazysnapd_snapshots", {{"kind", KindName(kind)}, {"mode", LayerModeName(mode)}},
                 static_cast<double>(n));
    }
  }

  const SnapshotterCounters& c = in.counters;
  out.Family("lazysnapd_layer_prepares_total", "counter",
             "Layer Prepares answered, by how the layer came to exist (a lazy layer that could "
             "not be mounted counts as native).");
  for (LayerMode mode : kModes) {
    out.Sample("lazysnapd_layer_prepares_total", {{"mode", LayerModeName(mode)}},
               Load(c.layer_prepares[static_cast<size_t>(mode)]));
  }
  struct Counter {
    const char* name;
    const std::atomic<uint64_t>& value;
    const char* help;
  };
  const Counter counters[] = {
      {"lazysnapd_remote_layers_reused_total", c.remote_reused,
       "Remote layer Prepares answered with a layer already recorded (another pull of it)."},
      {"lazysnapd_lazy_fallbacks_total", c.lazy_fallbacks,
       "Lazy layers that could not be mounted and were unpacked natively instead."},
      {"lazysnapd_lazy_remounts_total", c.lazy_remounts,
       "Lazy layers found unserved when a container's mounts were asked for, mounted again."},
      {"lazysnapd_lazy_unavailable_total", c.lazy_unavailable,
       "Lazy layers found unserved that could not be mounted again (the Mounts call failed)."},
  };
  for (const Counter& k : counters)
    out.Family(k.name, "counter", k.help).Sample(k.name, Load(k.value));

  // OK always, other codes once they occurred: 170 mostly-zero series help nobody.
  out.Family("lazysnapd_requests_total", "counter",
             "snapshots.v1 requests answered, by method and gRPC status code.");
  for (int r = 0; r < kRpcCount; ++r) {
    Rpc rpc = static_cast<Rpc>(r);
    for (int code = 0; code < kGrpcCodeCount; ++code) {
      uint64_t n = in.requests.Count(rpc, code);
      if (n == 0 && code != 0) continue;
      out.Sample("lazysnapd_requests_total",
                 {{"method", RpcName(rpc)}, {"code", GrpcCodeName(code)}}, static_cast<double>(n));
    }
  }
  out.Family("lazysnapd_request_duration_seconds", "summary",
             "Time spent answering snapshots.v1 requests, by method.");
  for (int r = 0; r < kRpcCount; ++r) {
    Rpc rpc = static_cast<Rpc>(r);
    out.Sample("lazysnapd_request_duration_seconds_sum", {{"method", RpcName(rpc)}},
               in.requests.Seconds(rpc));
    out.Sample("lazysnapd_request_duration_seconds_count", {{"method", RpcName(rpc)}},
               static_cast<double>(in.requests.Count(rpc)));
  }
  return out.str();
}

}  // namespace lazysnap::snapshotter
