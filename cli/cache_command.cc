// `lazysnap cache stats [--dir DIR] [--json]` and
// `lazysnap cache prune [--dir DIR] (--max-size SIZE | --all)`.
// stats reads a cache even while lazysnapd owns it (occupancy from the journal, counters as last
// persisted); prune takes the cache over, so it refuses while the daemon runs.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/args.h"
#include "cli/commands.h"
#include "common/error.h"
#include "fetcher/chunk_cache.h"

namespace lazysnap::cli {
namespace {

constexpr const char* kUsage =
    "usage: lazysnap cache stats [--dir DIR] [--json]\n"
    "       lazysnap cache prune [--dir DIR] (--max-size SIZE | --all)\n"
    "SIZE: bytes, or with a K/M/G/T suffix (powers of 1024). DIR defaults to "
    "/var/lib/lazysnap/cache.\n";

std::string Human(uint64_t n) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(n);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), u == 0 ? "%.0f %s" : "%.1f %s", v, units[u]);
  return buf;
}

void Print(const fetcher::ChunkCacheStats& s, const std::string& dir, bool json) {
  if (json) {
    nlohmann::json j = {{"dir", dir},
                        {"chunk_size", s.chunk_size},
                        {"blobs", s.blobs},
                        {"chunks", s.chunks},
                        {"bytes_used", s.bytes_used},
                        {"hits", s.hits},
                        {"misses", s.misses},
                        {"bytes_read", s.bytes_read},
                        {"bytes_written", s.bytes_written},
                        {"bytes_fetched", s.bytes_fetched},
                        {"evictions", s.evictions}};
    std::printf("%s\n", j.dump(2).c_str());
    return;
  }
  uint64_t lookups = s.hits + s.misses;
  std::printf("cache        %s\n", dir.c_str());
  std::printf("chunk size   %s\n", Human(s.chunk_size).c_str());
  std::printf("blobs        %llu\n", static_cast<unsigned long long>(s.blobs));
  std::printf("chunks       %llu (%s)\n", static_cast<unsigned long long>(s.chunks),
              Human(s.bytes_used).c_str());
  std::printf("hits         %llu of %llu lookups (%.1f%%)\n",
              static_cast<unsigned long long>(s.hits), static_cast<unsigned long long>(lookups),
              lookups ? 100.0 * static_cast<double>(s.hits) / static_cast<double>(lookups) : 0.0);
  std::printf("served       %s\n", Human(s.bytes_read).c_str());
  std::printf("fetched      %s\n", Human(s.bytes_fetched).c_str());
  std::printf("stored       %s\n", Human(s.bytes_written).c_str());
  std::printf("evictions    %llu\n", static_cast<unsigned long long>(s.evictions));
}

}  // namespace

int RunCache(const std::vector<std::string>& args) {
  if (args.empty() || (args[0] != "stats" && args[0] != "prune")) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  std::string dir = "/var/lib/lazysnap/cache";
  bool json = false, all = false;
  std::string max_size;
  ArgParser p("lazysnap cache", kUsage);
  p.Value("--dir", &dir).Switch("--json", &json).Switch("--all", &all);
  p.Value("--max-size", &max_size);
  if (auto rc = p.Parse(args, 1)) return *rc;
  try {
    if (args[0] == "stats") {
      Print(fetcher::ChunkCache::ReadStats(dir), dir, json);
      return 0;
    }
    if (all == !max_size.empty()) {
      std::fprintf(stderr, "lazysnap cache prune: give exactly one of --max-size and --all\n%s",
                   kUsage);
      return 2;
    }
    uint64_t limit = 0;
    if (!all) {
      try {
        limit = ParseSize(max_size);
      } catch (const Error& e) {
        std::fprintf(stderr, "lazysnap cache prune: %s\n", e.what());
        return 2;
      }
    }
    auto before = fetcher::ChunkCache::ReadStats(dir);
    fetcher::ChunkCacheOptions o;
    o.dir = dir;
    o.max_bytes = UINT64_MAX;  // opening must not evict by itself; Prune decides
    {
      fetcher::ChunkCache cache(o);
      cache.Prune(limit);
    }
    auto after = fetcher::ChunkCache::ReadStats(dir);
    std::printf("pruned %llu chunks (%s); %s left in %llu chunks\n",
                static_cast<unsigned long long>(before.chunks - after.chunks),
                Human(before.bytes_used - after.bytes_used).c_str(),
                Human(after.bytes_used).c_str(), static_cast<unsigned long long>(after.chunks));
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lazysnap cache %s: %s\n", args[0].c_str(), e.what());
    return 1;
  }
}

}  // namespace lazysnap::cli
