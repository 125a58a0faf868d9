// The chunk cache on a real filesystem through a real io_uring: round trips, the verified bit,
// restart, torn journal records, chunks written but never journaled (a crash), LRU eviction,
// the single-owner lock, and a full disk (a tiny tmpfs).
#include "fetcher/chunk_cache.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <thread>

#include "common/error.h"
#include "common/file_util.h"
#include "common/sha256.h"
#include "common/temp_dir.h"
#include "tests/support/small_disk.h"

namespace lazysnap::fetcher {
namespace {

const std::string kBlob = Sha256Digest("blob one");
const std::string kOther = Sha256Digest("blob two");
constexpr uint32_t kChunk = 4096;

std::string Bytes(uint64_t seed, size_t n) {
  std::string s(n, '\0');
  uint64_t x = seed * 2654435761u + 1;
  for (auto& c : s) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    c = static_cast<char>(x);
  }
  return s;
}

ChunkCacheOptions Opts(const std::string& dir, uint64_t max_bytes = 1ull << 30) {
  ChunkCacheOptions o;
  o.dir = dir;
  o.chunk_size = kChunk;
  o.max_bytes = max_bytes;
  o.flush_interval_ms = 60000;  // tests flush explicitly
  return o;
}

void PutChunk(ChunkCache& c, const std::string& blob, uint64_t index, const std::string& data,
              bool verified = true) {
  ChunkCache::ChunkWrite w{index, data.data(), data.size()};
  c.Put(blob, {&w, 1}, verified);
}

// The chunk's bytes, or nullopt on a miss.
std::optional<std::string> GetChunk(ChunkCache& c, const std::string& blob, uint64_t index,
                                    size_t len, bool need_verified = true) {
  std::string buf(len, '\0');
  ChunkCache::ChunkRead r{index, buf.data(), len, false};
  c.Get(blob, {&r, 1}, need_verified);
  if (!r.hit) return std::nullopt;
  return buf;
}

TEST(ChunkCache, RoundTripsChunksOfSeveralBlobsInOneBatch) {
  TempDir dir("cache");
  ChunkCache c(Opts(dir.path()));
  for (uint64_t i = 0; i < 64; ++i) PutChunk(c, kBlob, i, Bytes(i, kChunk));
  PutChunk(c, kBlob, 64, Bytes(64, 100));  // a short last chunk
  PutChunk(c, kOther, 3, Bytes(1000, kChunk));
  std::vector<std::string> bufs(65, std::string(kChunk, '\0'));
  std::vector<ChunkCache::ChunkRead> reads;
  for (uint64_t i = 0; i < 65; ++i) reads.push_back({i, bufs[i].data(), i == 64 ? 100u : kChunk});
  EXPECT_EQ(c.Get(kBlob, reads, true), 65u);
  for (uint64_t i = 0; i < 64; ++i) EXPECT_EQ(bufs[i], Bytes(i, kChunk)) << i;
  EXPECT_EQ(bufs[64].substr(0, 100), Bytes(64, 100));
  EXPECT_EQ(GetChunk(c, kOther, 3, kChunk), Bytes(1000, kChunk));
  EXPECT_FALSE(GetChunk(c, kOther, 4, kChunk));
  EXPECT_FALSE(GetChunk(c, kBlob, 64, kChunk)) << "a length mismatch is a miss";
  auto s = c.Stats();
  EXPECT_EQ(s.chunks, 66u);
  EXPECT_EQ(s.blobs, 2u);
  EXPECT_EQ(s.bytes_used, 65u * kChunk + 100 - kChunk + kChunk);
  EXPECT_EQ(s.hits, 66u);
  EXPECT_EQ(s.misses, 2u);
}

TEST(ChunkCache, UnverifiedChunksAreNeverServedAsVerified) {
  TempDir dir("cache");
  ChunkCache c(Opts(dir.path()));
  PutChunk(c, kBlob, 0, Bytes(1, kChunk), /*verified=*/false);
  EXPECT_FALSE(GetChunk(c, kBlob, 0, kChunk, /*need_verified=*/true));
  EXPECT_EQ(GetChunk(c, kBlob, 0, kChunk, false), Bytes(1, kChunk));
  PutChunk(c, kBlob, 0, Bytes(1, kChunk), /*verified=*/true);  // upgrade after a check
  EXPECT_EQ(GetChunk(c, kBlob, 0, kChunk, true), Bytes(1, kChunk));
  PutChunk(c, kBlob, 1, Bytes(2, kChunk), false);
  c.MarkVerified(kBlob);
  EXPECT_TRUE(c.Contains(kBlob, 1, true));
}

TEST(ChunkCache, ContentsAndVerifiedBitsSurviveARestart) {
  TempDir dir("cache");
  {
    ChunkCache c(Opts(dir.path()));
    for (uint64_t i = 0; i < 10; ++i) PutChunk(c, kBlob, i, Bytes(i, kChunk), i % 2 == 0);
    GetChunk(c, kBlob, 0, kChunk);
  }  // the destructor flushes
  ChunkCache c(Opts(dir.path()));
  for (uint64_t i = 0; i < 10; ++i) {
    EXPECT_EQ(GetChunk(c, kBlob, i, kChunk, false), Bytes(i, kChunk)) << i;
    EXPECT_EQ(c.Contains(kBlob, i, true), i % 2 == 0) << i;
  }
  EXPECT_GE(c.Stats().hits, 11u) << "counters persist across processes";
}

TEST(ChunkCache, TornJournalTailIsCutAndEarlierChunksKept) {
  TempDir dir("cache");
  {
    ChunkCache c(Opts(dir.path()));
    for (uint64_t i = 0; i < 4; ++i) PutChunk(c, kBlob, i, Bytes(i, kChunk));
  }
  std::string journal = dir.path() + "/journal";
  std::string j = ReadFile(journal);
  ASSERT_EQ(j.size(), 4u * 64);
  // A crash mid-append: half of a fifth record, and a flipped bit in the fourth.
  j[3 * 64 + 30] ^= 1;
  j += std::string(j.substr(0, 32));
  WriteFileAtomic(journal, j);
  {
    ChunkCache c(Opts(dir.path()));
    for (uint64_t i = 0; i < 3; ++i) EXPECT_TRUE(GetChunk(c, kBlob, i, kChunk)) << i;
    EXPECT_FALSE(GetChunk(c, kBlob, 3, kChunk)) << "a corrupt record is not trusted";
    PutChunk(c, kBlob, 5, Bytes(5, kChunk));
  }
  EXPECT_EQ(ReadFile(journal).size(), 4u * 64) << "cut at the last good record, then appended";
  ChunkCache c(Opts(dir.path()));
  EXPECT_TRUE(GetChunk(c, kBlob, 5, kChunk));
}

TEST(ChunkCache, AChunkWrittenButNotJournaledIsGoneAfterACrash) {
  TempDir dir("cache");
  {
    ChunkCache c(Opts(dir.path()));
    PutChunk(c, kBlob, 0, Bytes(0, kChunk));
  }
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    // The child writes a chunk (its data reaches the file) and dies before the next flush.
    try {
      auto* c = new ChunkCache(Opts(dir.path()));  // never destroyed: no flush
      PutChunk(*c, kBlob, 1, Bytes(1, kChunk));
      PutChunk(*c, kBlob, 2, std::string(kChunk / 2, 'x'));  // "half written"
      _exit(0);
    } catch (...) {
      _exit(2);
    }
  }
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  ChunkCache c(Opts(dir.path()));
  EXPECT_TRUE(GetChunk(c, kBlob, 0, kChunk));
  EXPECT_FALSE(GetChunk(c, kBlob, 1, kChunk, false));
  EXPECT_FALSE(GetChunk(c, kBlob, 2, kChunk / 2, false));
}

TEST(ChunkCache, ATruncatedDataFileLosesOnlyTheMissingChunks) {
  TempDir dir("cache");
  {
    ChunkCache c(Opts(dir.path()));
    for (uint64_t i = 0; i < 4; ++i) PutChunk(c, kBlob, i, Bytes(i, kChunk));
  }
  std::string data = dir.path() + "/blobs/" + kBlob.substr(7);
  ASSERT_EQ(::truncate(data.c_str(), 2 * kChunk + 10), 0);
  ChunkCache c(Opts(dir.path()));
  EXPECT_TRUE(GetChunk(c, kBlob, 1, kChunk));
  EXPECT_FALSE(GetChunk(c, kBlob, 2, kChunk));
  EXPECT_FALSE(GetChunk(c, kBlob, 3, kChunk));
}

TEST(ChunkCache, EvictsLeastRecentlyUsedChunksAboveTheLimit) {
  TempDir dir("cache");
  ChunkCache c(Opts(dir.path(), 4 * kChunk));
  for (uint64_t i = 0; i < 4; ++i) PutChunk(c, kBlob, i, Bytes(i, kChunk));
  ASSERT_TRUE(GetChunk(c, kBlob, 0, kChunk));  // 0 becomes the most recent
  PutChunk(c, kBlob, 4, Bytes(4, kChunk));
  PutChunk(c, kBlob, 5, Bytes(5, kChunk));
  c.Flush();
  auto s = c.Stats();
  EXPECT_EQ(s.bytes_used, 4u * kChunk);
  EXPECT_EQ(s.evictions, 2u);
  EXPECT_TRUE(GetChunk(c, kBlob, 0, kChunk));
  EXPECT_FALSE(GetChunk(c, kBlob, 1, kChunk));
  EXPECT_FALSE(GetChunk(c, kBlob, 2, kChunk));
  EXPECT_EQ(GetChunk(c, kBlob, 5, kChunk), Bytes(5, kChunk));
  c.Prune(0);
  EXPECT_EQ(c.Stats().chunks, 0u);
  EXPECT_EQ(ChunkCache::ReadStats(dir.path()).chunks, 0u);
}

TEST(ChunkCache, EvictionsAndDropsSurviveARestart) {
  TempDir dir("cache");
  {
    ChunkCache c(Opts(dir.path(), 2 * kChunk));
    for (uint64_t i = 0; i < 3; ++i) PutChunk(c, kBlob, i, Bytes(i, kChunk));
    PutChunk(c, kOther, 0, Bytes(9, kChunk));
    c.Flush();
    c.DropBlob(kOther);
  }
  ChunkCache c(Opts(dir.path(), 2 * kChunk));
  EXPECT_FALSE(GetChunk(c, kOther, 0, kChunk));
  EXPECT_LE(c.Stats().bytes_used, 2u * kChunk);
  EXPECT_FALSE(PathExists(dir.path() + "/blobs/" + kOther.substr(7)));
  // What is present reads back exactly: a punched hole is never served.
  for (uint64_t i = 0; i < 3; ++i) {
    if (auto got = GetChunk(c, kBlob, i, kChunk)) {
      EXPECT_EQ(*got, Bytes(i, kChunk)) << i;
    }
  }
}

TEST(ChunkCache, OneProcessOwnsACacheDirectory) {
  TempDir dir("cache");
  ChunkCache c(Opts(dir.path()));
  PutChunk(c, kBlob, 0, Bytes(0, kChunk));
  c.Flush();
  try {
    ChunkCache second(Opts(dir.path()));
    FAIL() << "a second owner was allowed";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kFailedPrecondition);
    EXPECT_NE(std::string(e.what()).find("in use"), std::string::npos) << e.what();
  }
  auto s = ChunkCache::ReadStats(dir.path());  // readable while owned
  EXPECT_EQ(s.chunks, 1u);
  EXPECT_EQ(s.chunk_size, kChunk);
}

TEST(ChunkCache, RejectsBadDigestsAndChunkSizes) {
  TempDir dir("cache");
  auto o = Opts(dir.path());
  o.chunk_size = 5000;
  EXPECT_THROW(ChunkCache{o}, Error);
  ChunkCache c(Opts(dir.path()));
  std::string big(kChunk + 1, 'x');
  ChunkCache::ChunkWrite w{0, big.data(), big.size()};
  EXPECT_THROW(c.Put(kBlob, {&w, 1}, true), Error);
  EXPECT_THROW(c.Put("sha256:nothex", {&w, 1}, true), Error);
}

TEST(ChunkCache, ConcurrentReadersAndWritersSeeWholeChunks) {
  TempDir dir("cache");
  ChunkCache c(Opts(dir.path(), 64 * kChunk));
  std::vector<std::thread> threads;
  std::atomic<int> bad{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (uint64_t i = 0; i < 200; ++i) {
        uint64_t idx = (i * 7 + t) % 128;
        PutChunk(c, kBlob, idx, Bytes(idx, kChunk));
        if (auto got = GetChunk(c, kBlob, (idx + 3) % 128, kChunk)) {
          if (*got != Bytes((idx + 3) % 128, kChunk)) ++bad;
        }
        if (i % 50 == 0) c.Flush();  // evicts concurrently with reads
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(bad, 0);
  c.Flush();
  EXPECT_LE(c.Stats().bytes_used, 64u * kChunk);
}

TEST(ChunkCache, AFullDiskFailsThePutClearlyAndKeepsWhatWasCached) {
  TempDir dir("cache");
  testing::SmallDisk disk(dir.path() + "/small", "256k");
  const std::string& mnt = disk.path();
  ChunkCache c(Opts(mnt + "/cache"));
  PutChunk(c, kBlob, 0, Bytes(0, kChunk));
  c.Flush();
  bool failed = false;
  for (uint64_t i = 1; i < 200 && !failed; ++i) {
    try {
      PutChunk(c, kBlob, i, Bytes(i, kChunk));
    } catch (const Error& e) {
      failed = true;
      EXPECT_EQ(e.code(), ErrorCode::kResourceExhausted) << e.what();
    }
  }
  EXPECT_TRUE(failed) << "256 KiB of tmpfs took 200 chunks of 4 KiB";
  EXPECT_EQ(GetChunk(c, kBlob, 0, kChunk), Bytes(0, kChunk));
}

}  // namespace
}  // namespace lazysnap::fetcher
