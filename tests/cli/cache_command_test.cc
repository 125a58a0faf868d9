// `lazysnap cache stats|prune` on a cache written by the real ChunkCache.
#include <gtest/gtest.h>

#include "common/file_util.h"
#include "common/process.h"
#include "common/sha256.h"
#include "common/temp_dir.h"
#include "fetcher/chunk_cache.h"

namespace lazysnap::testing {
namespace {

CommandResult Cli(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {LAZYSNAP_CLI};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunCommand(argv, std::chrono::seconds(60));
}

TEST(CacheCommand, StatsWhileOwnedPruneAfterwards) {
  TempDir d("clicache");
  std::string dir = d / "cache";
  std::string chunk(8192, 'c');
  {
    fetcher::ChunkCacheOptions o;
    o.dir = dir;
    o.chunk_size = 8192;
    fetcher::ChunkCache cache(o);
    std::vector<fetcher::ChunkCache::ChunkWrite> w;
    for (uint64_t i = 0; i < 10; ++i) w.push_back({i, chunk.data(), chunk.size()});
    cache.Put(Sha256Digest("a"), w, true);
    cache.Put(Sha256Digest("b"), {w.data(), 2}, true);
    cache.Flush();

    auto r = Cli({"cache", "stats", "--dir", dir});
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_NE(r.output.find("chunks       12 (96.0 KiB)"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("blobs        2"), std::string::npos) << r.output;
    r = Cli({"cache", "prune", "--dir", dir, "--all"});
    EXPECT_EQ(r.exit_code, 1) << r.output;
    EXPECT_NE(r.output.find("in use"), std::string::npos) << r.output;
  }
  auto r = Cli({"cache", "prune", "--dir", dir, "--max-size", "40K"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("pruned 7 chunks"), std::string::npos) << r.output;
  r = Cli({"cache", "stats", "--dir", dir, "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("\"chunks\": 5"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("\"evictions\": 7"), std::string::npos) << r.output;
  r = Cli({"cache", "prune", "--dir", dir, "--all"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(Cli({"cache", "stats", "--dir", dir}).output.find("chunks       0"), std::string::npos);

  EXPECT_EQ(Cli({"cache", "prune", "--dir", dir}).exit_code, 2);
  EXPECT_EQ(Cli({"cache", "prune", "--dir", dir, "--max-size", "12Q"}).exit_code, 2);
  EXPECT_EQ(Cli({"cache", "stats", "--dir", d / "nothing"}).exit_code, 1);
  EXPECT_EQ(Cli({"cache"}).exit_code, 2);
}

}  // namespace
}  // namespace lazysnap::testing
