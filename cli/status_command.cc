// `lazysnap status [--socket SOCKET] [--json]`: what lazysnap-fused serves — per lazy layer the
// bytes fetched from the registry, bytes served to readers, cache hits — and the chunk cache.
#include <cstdio>

#include "cli/args.h"
#include "cli/commands.h"
#include "common/error.h"
#include "lazy/control.h"

namespace lazysnap::cli {

int RunStatus(const std::vector<std::string>& args) {
  std::string socket = "/run/lazysnap/fused.sock";
  bool json = false;
  ArgParser p("lazysnap status", "usage: lazysnap status [--socket SOCKET] [--json]\n");
  p.Value("--socket", &socket).Switch("--json", &json);
  if (auto rc = p.Parse(args)) return *rc;
  try {
    nlohmann::json s = lazy::CallControl(socket, {{"op", "status"}}, std::chrono::seconds(10));
    s.erase("ok");
    if (json) {
      std::printf("%s\n", s.dump(2).c_str());
      return 0;
    }
    auto mb = [](const nlohmann::json& v) { return v.get<double>() / 1e6; };
    std::printf("%-14s %10s %10s %8s %8s  %-12s  %-10s  %s\n", "LAYER", "FETCHED MB", "SERVED MB",
                "HITS", "REQS", "PATH", "BACKGROUND", "MOUNTPOINT");
    for (const auto& l : s["layers"]) {
      std::string d = l["layer"].get<std::string>();
      std::string bg = l.value("background", "off");
      std::printf("%-14s %10.1f %10.1f %8llu %8llu  %-12s  %-10s  %s\n", d.substr(7, 12).c_str(),
                  mb(l["bytes_fetched"]), mb(l["bytes_served"]),
                  l["chunk_hits"].get<unsigned long long>(),
                  l["requests"].get<unsigned long long>(), l.value("path", "fuse").c_str(),
                  bg.c_str(), l["mountpoint"].get<std::string>().c_str());
    }
    const auto& c = s["cache"];
    std::printf("cache: %.1f of %.1f MB used, %llu hits, %llu misses, %llu evictions\n",
                mb(c["bytes_used"]), mb(c["max_bytes"]), c["hits"].get<unsigned long long>(),
                c["misses"].get<unsigned long long>(), c["evictions"].get<unsigned long long>());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lazysnap status: %s\n", e.what());
    return 1;
  }
}

}  // namespace lazysnap::cli
