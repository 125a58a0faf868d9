// Writes Prometheus' text exposition format (version 0.0.4): metric families with HELP and TYPE,
// then their samples; label values escaped, counts printed exactly.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/http_server.h"
#include "common/log.h"

namespace lazysnap {

using PrometheusLabels = std::vector<std::pair<std::string, std::string>>;

class PrometheusText {
 public:
  // Starts a family: `type` is "counter" or "gauge".
  PrometheusText& Family(const std::string& name, const char* type, const char* help);
  PrometheusText& Sample(const std::string& name, const PrometheusLabels& labels, double value);
  PrometheusText& Sample(const std::string& name, double value) { return Sample(name, {}, value); }
  const std::string& str() const { return out_; }

 private:
  std::string out_;
};

// A daemon's scrape endpoint: GET /metrics at `address` answers what `render` returns (the
// Prometheus text, rendered per scrape), other paths 404; logs the bound address as
// `metrics served address=...`. Empty `address`: none (nullptr). Throws what HttpServer throws.
std::unique_ptr<HttpServer> ServePrometheusMetrics(const std::string& address,
                                                   std::function<std::string()> render,
                                                   const Logger& log);

}  // namespace lazysnap
