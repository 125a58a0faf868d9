#include "lazy/metrics.h"

#include "common/prometheus.h"

namespace lazysnap::lazy {
namespace {

struct Metric {
  const char* key;  // in the status JSON
  const char* name;
  const char* type;  // "counter" or "gauge"
  const char* help;
  double divisor = 1;  // status value / divisor = metric value (ms -> s)
};

constexpr Metric kLayerMetrics[] = {
    {"bytes_fetched", "lazysnap_layer_fetched_bytes_total", "counter",
     "Layer blob bytes fetched from the registry (verified)."},
    {"requests", "lazysnap_layer_fetch_requests_total", "counter",
     "Range requests sent for the layer blob."},
    {"chunks_fetched", "lazysnap_layer_chunks_fetched_total", "counter",
     "Verification chunks fetched from the registry."},
    {"chunk_hits", "lazysnap_layer_chunk_hits_total", "counter",
     "Chunks served from the local chunk cache."},
    {"bytes_served", "lazysnap_layer_served_bytes_total", "counter",
     "Uncompressed bytes handed to the kernel (FUSE reads)."},
    {"file_reads", "lazysnap_layer_file_reads_total", "counter", "FUSE read requests answered."},
    {"spans_inflated", "lazysnap_layer_spans_inflated_total", "counter",
     "Checkpoint spans decompressed."},
    {"span_hits", "lazysnap_layer_span_hits_total", "counter",
     "Reads served from inflated spans in memory."},
    {"store_hits", "lazysnap_layer_store_hits_total", "counter",
     "Reads served from the on-disk span store."},
    {"readahead_spans", "lazysnap_layer_readahead_spans_total", "counter",
     "Spans fetched ahead of readers."},
    {"prefetched_spans", "lazysnap_layer_prefetched_spans_total", "counter",
     "Spans of the image's prefetch list fetched."},
    {"background_bytes", "lazysnap_layer_background_fetched_bytes_total", "counter",
     "Bytes the background fetch brought into the chunk cache."},
    {"fuse_errors", "lazysnap_layer_fuse_errors_total", "counter",
     "FUSE requests answered with an error (other than ENOENT/ENODATA)."},
    {"fetch_ms", "lazysnap_layer_fetch_seconds_total", "counter",
     "Time spent waiting for range fetches.", 1000},
    {"inflate_ms", "lazysnap_layer_inflate_seconds_total", "counter",
     "Time spent decompressing spans.", 1000},
    {"store_bytes", "lazysnap_layer_store_bytes", "gauge",
     "Bytes of the layer held in the span store."},
    {"prefetch_spans", "lazysnap_layer_prefetch_spans", "gauge",
     "Spans the image's prefetch list names for the layer."},
};

constexpr Metric kCacheMetrics[] = {
    {"hits", "lazysnap_cache_hits_total", "counter", "Chunk cache hits."},
    {"misses", "lazysnap_cache_misses_total", "counter", "Chunk cache misses."},
    {"bytes_fetched", "lazysnap_cache_fetched_bytes_total", "counter",
     "Bytes written into the chunk cache."},
    {"evictions", "lazysnap_cache_evictions_total", "counter", "Chunks evicted."},
    {"bytes_used", "lazysnap_cache_used_bytes", "gauge", "Bytes the chunk cache holds."},
    {"max_bytes", "lazysnap_cache_max_bytes", "gauge", "The chunk cache's bound."},
};

double Value(const nlohmann::json& obj, const Metric& m) {
  auto it = obj.find(m.key);
  if (it == obj.end() || !it->is_number()) return 0;
  if (it->is_number_unsigned()) return static_cast<double>(it->get<uint64_t>()) / m.divisor;
  return it->get<double>() / m.divisor;
}

}  // namespace

std::string PrometheusMetrics(const nlohmann::json& status) {
  PrometheusText out;
  const nlohmann::json empty = nlohmann::json::array();
  const nlohmann::json& layers = status.contains("layers") ? status["layers"] : empty;
  out.Family("lazysnap_layers_mounted", "gauge", "Layers lazysnap-fused serves.")
      .Sample("lazysnap_layers_mounted", static_cast<double>(layers.size()));
  for (const Metric& m : kLayerMetrics) {
    out.Family(m.name, m.type, m.help);
    for (const auto& l : layers) {
      out.Sample(m.name,
                 {{"layer", l.value("layer", "")},
                  {"image", l.value("image", "")},
                  {"path", l.value("path", "")}},
                 Value(l, m));
    }
  }
  if (status.contains("cache")) {
    for (const Metric& m : kCacheMetrics) {
      out.Family(m.name, m.type, m.help).Sample(m.name, Value(status["cache"], m));
    }
  }
  return out.str();
}

}  // namespace lazysnap::lazy
