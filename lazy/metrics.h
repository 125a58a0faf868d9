// lazysnap-fused's metrics in the Prometheus text exposition format (version 0.0.4), made from
// LayerService::Status() -- one source for `lazysnap status` and a scrape: per layer (labels
// layer, image, path) bytes fetched / served, requests, chunk and span hits, inflate and fetch
// time, background and prefetch progress, FUSE errors; the chunk cache's totals.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace lazysnap::lazy {

std::string PrometheusMetrics(const nlohmann::json& status);

}  // namespace lazysnap::lazy
