// Writes Prometheus' text exposition format (version 0.0.4): metric families with HELP and TYPE,
// then their samples; label values escaped, counts printed exactly.
#pragma once

#include <string>
#include <utility>
#include <vector>

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

}  // namespace lazysnap
