#include "common/prometheus.h"

#include <cmath>
#include <cstdio>

namespace lazysnap {
namespace {

std::string Escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '\\' || c == '"') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string Number(double v) {
  char buf[64];
  if (std::fabs(v) < 9e18 && v == std::floor(v)) {  // counts: exact, no exponent
    std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(v));
  } else {
    std::snprintf(buf, sizeof buf, "%.15g", v);
  }
  return buf;
}

}  // namespace

PrometheusText& PrometheusText::Family(const std::string& name, const char* type,
                                       const char* help) {
  // append() rather than chains of operator+: GCC 12 -O3 warns falsely (-Wrestrict) on
  // "literal" + std::string&&, and Release builds use -Werror.
  out_.append("# HELP ").append(name).append(" ").append(help);
  out_.append("\n# TYPE ").append(name).append(" ").append(type).append("\n");
  return *this;
}

PrometheusText& PrometheusText::Sample(const std::string& name, const PrometheusLabels& labels,
                                       double value) {
  out_ += name;
  if (!labels.empty()) {
    out_ += '{';
    for (size_t i = 0; i < labels.size(); ++i) {
      if (i) out_ += ',';
      out_.append(labels[i].first).append("=\"").append(Escape(labels[i].second)).append("\"");
    }
    out_ += '}';
  }
  out_.append(" ").append(Number(value)).append("\n");
  return *this;
}

std::unique_ptr<HttpServer> ServePrometheusMetrics(const std::string& address,
                                                   std::function<std::string()> render,
                                                   const Logger& log) {
  if (address.empty()) return nullptr;
  auto server = std::make_unique<HttpServer>(
      address,
      [render = std::move(render)](const std::string& path) -> HttpResponse {
        if (path != "/metrics") return {404, "text/plain; charset=utf-8", "not found\n"};
        return {200, "text/plain; version=0.0.4; charset=utf-8", render()};
      },
      log);
  log.Info("metrics served", {{"address", server->address()}});
  return server;
}

}  // namespace lazysnap
