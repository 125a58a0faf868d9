// lazy/metrics.h: the Prometheus text made from a status (every layer counter with its labels,
// escaping, units, the cache totals), and what an empty status gives.
#include "lazy/metrics.h"

#include <gtest/gtest.h>

namespace lazysnap::lazy {
namespace {

bool Has(const std::string& text, const std::string& line) {
  return text.find(line + "\n") != std::string::npos;
}

TEST(PrometheusMetrics, LayersWithLabelsAndTheCache) {
  nlohmann::json status = {
      {"layers",
       {{{"layer", "sha256:aa"},
         {"image", "127.0.0.1:5000/app:v1"},
         {"path", "kernel-erofs"},
         {"bytes_fetched", 1234},
         {"requests", 3},
         {"bytes_served", 5000000000ull},
         {"fetch_ms", 1500},
         {"store_bytes", 42}},
        {{"layer", "sha256:bb"}, {"image", "odd\"name\\with\nnewline"}, {"path", "fuse"}}}},
      {"cache", {{"hits", 7}, {"bytes_used", 4096}, {"max_bytes", 8192}}}};
  std::string m = PrometheusMetrics(status);
  EXPECT_TRUE(Has(m, "lazysnap_layers_mounted 2")) << m;
  EXPECT_TRUE(Has(m, "# TYPE lazysnap_layer_fetched_bytes_total counter")) << m;
  const std::string a = R"({layer="sha256:aa",image="127.0.0.1:5000/app:v1",path="kernel-erofs"})";
  EXPECT_TRUE(Has(m, "lazysnap_layer_fetched_bytes_total" + a + " 1234")) << m;
  EXPECT_TRUE(Has(m, "lazysnap_layer_fetch_requests_total" + a + " 3")) << m;
  EXPECT_TRUE(Has(m, "lazysnap_layer_served_bytes_total" + a + " 5000000000")) << m;
  EXPECT_TRUE(Has(m, "lazysnap_layer_fetch_seconds_total" + a + " 1.5")) << m;
  EXPECT_TRUE(Has(m, "# TYPE lazysnap_layer_store_bytes gauge")) << m;
  EXPECT_TRUE(Has(m, "lazysnap_layer_store_bytes" + a + " 42")) << m;
  // A field the status lacks reads 0; label values are escaped.
  const std::string b = R"({layer="sha256:bb",image="odd\"name\\with\nnewline",path="fuse"})";
  EXPECT_TRUE(Has(m, "lazysnap_layer_fetched_bytes_total" + b + " 0")) << m;
  EXPECT_TRUE(Has(m, "lazysnap_cache_hits_total 7")) << m;
  EXPECT_TRUE(Has(m, "lazysnap_cache_used_bytes 4096")) << m;
  EXPECT_TRUE(Has(m, "lazysnap_cache_max_bytes 8192")) << m;
  // Every sample line belongs to a metric with HELP and TYPE before it.
  std::string last_type;
  size_t samples = 0;
  for (size_t p = 0; p < m.size();) {
    size_t e = m.find('\n', p);
    std::string line = m.substr(p, e - p);
    p = e + 1;
    if (line.starts_with("# TYPE ")) {
      last_type = line.substr(7, line.find(' ', 7) - 7);
    } else if (!line.starts_with("# HELP ")) {
      ++samples;
      std::string name = line.substr(0, line.find_first_of("{ "));
      EXPECT_EQ(name, last_type) << line;
    }
  }
  EXPECT_EQ(samples, 1 + 17 * 2 + 6u) << m;
}

TEST(PrometheusMetrics, NoLayersNoCache) {
  std::string m = PrometheusMetrics(nlohmann::json::object());
  EXPECT_TRUE(Has(m, "lazysnap_layers_mounted 0")) << m;
  EXPECT_EQ(m.find("lazysnap_cache_"), std::string::npos) << m;
}

}  // namespace
}  // namespace lazysnap::lazy
