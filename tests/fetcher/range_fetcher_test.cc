// The range fetcher against a real docker-registry on 127.0.0.1: reads equal the blob, 64
// concurrent readers over overlapping ranges fetch every chunk exactly once (counted by the
// fetcher and by the registry's own access log), adjacent misses merge into one request, a cache
// reopened after a restart serves without the network, and corrupted bytes (a fault-injecting
// proxy flips them in flight) are retried and never returned.
#include "fetcher/range_fetcher.h"

#include <gtest/gtest.h>

#include <random>
#include <set>
#include <thread>

#include "common/error.h"
#include "common/file_util.h"
#include "common/sha256.h"
#include "common/temp_dir.h"
#include "tests/support/fault_proxy.h"
#include "tests/support/oci_image.h"
#include "tests/support/pseudo_random.h"
#include "tests/support/registry.h"

namespace lazysnap::fetcher {
namespace {

using testing::Fault;
using testing::FaultProxy;
using testing::OciImageBuilder;
using testing::PseudoRandomBytes;
using testing::PushedImage;
using testing::Registry;

constexpr uint32_t kChunk = 256 * 1024;

std::vector<std::string> ChunkDigests(const std::string& blob, uint32_t chunk) {
  std::vector<std::string> out;
  for (size_t off = 0; off < blob.size(); off += chunk) {
    out.push_back(Sha256Digest(std::string_view(blob).substr(off, chunk)));
  }
  return out;
}

class RangeFetcherTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    registry_ = new Registry();
    OciImageBuilder b;
    // Random bytes do not compress: the layer blob is about 12 MiB, 48 chunks.
    b.AddFileLayer({{"data/big", PseudoRandomBytes(12 << 20, 88172645463325252ull)}});
    image_ = new PushedImage(b.Push(registry_->host(), "range/app:v1"));
    digest_ = new std::string(image_->layer_digests.back());
    RegistryClient c(Ref(registry_->host()), Plain());
    blob_ = new std::string(c.FetchBlobToString(*digest_, 64 << 20));
  }
  static void TearDownTestSuite() {
    delete blob_;
    delete digest_;
    delete image_;
    delete registry_;
  }
  static labels::Reference Ref(const std::string& host) {
    return labels::ParseReference(host + "/range/app:v1");
  }
  static RegistryOptions Plain() {
    RegistryOptions o;
    o.plain_http = true;
    o.retry.initial_backoff = std::chrono::milliseconds(20);
    return o;
  }
  ChunkCacheOptions CacheOpts() {
    ChunkCacheOptions o;
    o.dir = dir_.path() + "/cache";
    o.chunk_size = kChunk;
    return o;
  }
  std::unique_ptr<RangeFetcher> Fetcher(ChunkCache& cache, MultiHttp& http,
                                        const std::string& host = "") {
    RangeFetcherOptions o;
    o.chunk_digests = ChunkDigests(*blob_, kChunk);
    o.max_request_bytes = 2 << 20;
    auto client =
        std::make_shared<RegistryClient>(Ref(host.empty() ? registry_->host() : host), Plain());
    // The client's own keep-alive connection is open before any fault is injected, so faults
    // hit the range requests' connections.
    client->BlobSize(*digest_);
    return std::make_unique<RangeFetcher>(client, *digest_, blob_->size(), cache, http, o);
  }
  std::string Read(RangeFetcher& f, uint64_t off, size_t len) {
    std::string out(len, '\0');
    out.resize(f.Read(off, len, out.data()));
    return out;
  }

  static Registry* registry_;
  static PushedImage* image_;
  static std::string* digest_;
  static std::string* blob_;
  TempDir dir_{"range"};
};

Registry* RangeFetcherTest::registry_ = nullptr;
PushedImage* RangeFetcherTest::image_ = nullptr;
std::string* RangeFetcherTest::digest_ = nullptr;
std::string* RangeFetcherTest::blob_ = nullptr;

TEST_F(RangeFetcherTest, ReadsEqualTheBlobAtAnyOffsetAndLength) {
  ChunkCache cache(CacheOpts());
  MultiHttp http(4);
  auto f = Fetcher(cache, http);
  std::mt19937_64 rng(7);
  for (int i = 0; i < 40; ++i) {
    uint64_t off = rng() % blob_->size();
    size_t len = 1 + rng() % (3 * kChunk);
    EXPECT_EQ(Read(*f, off, len), blob_->substr(off, len)) << off << "+" << len;
  }
  EXPECT_EQ(Read(*f, blob_->size() - 10, 100), blob_->substr(blob_->size() - 10));
  EXPECT_EQ(Read(*f, blob_->size(), 100), "");
  EXPECT_TRUE(f->verified());
}

TEST_F(RangeFetcherTest, SixtyFourReadersFetchEachChunkOnce) {
  ChunkCache cache(CacheOpts());
  MultiHttp http(8);
  auto f = Fetcher(cache, http);
  size_t log_before = registry_->Requests().size();
  std::set<uint64_t> touched;
  std::vector<std::pair<uint64_t, size_t>> ranges;
  std::mt19937_64 rng(64);
  for (int r = 0; r < 64; ++r) {
    // Overlapping windows over the first half of the blob, so readers collide on chunks.
    uint64_t off = (rng() % (blob_->size() / 2));
    size_t len = 1 + rng() % (kChunk * 3);
    ranges.emplace_back(off, len);
    for (uint64_t c = off / kChunk; c <= (off + len - 1) / kChunk; ++c) touched.insert(c);
  }
  std::atomic<int> wrong{0};
  std::vector<std::thread> readers;
  for (const auto& [off, len] : ranges) {
    readers.emplace_back([&, off = off, len = len] {
      if (Read(*f, off, len) != blob_->substr(off, len)) ++wrong;
    });
  }
  for (auto& t : readers) t.join();
  EXPECT_EQ(wrong, 0);
  auto s = f->Stats();
  EXPECT_EQ(s.chunks_fetched, touched.size()) << "each chunk fetched exactly once";
  uint64_t expected_bytes = 0;
  for (uint64_t c : touched)
    expected_bytes += std::min<uint64_t>(kChunk, blob_->size() - c * kChunk);
  EXPECT_EQ(s.bytes_fetched, expected_bytes);
  // The registry agrees: the blob bytes it served are exactly those chunks.
  EXPECT_EQ(registry_->BlobBytesServedSince(log_before), expected_bytes);
  EXPECT_GT(s.shared_waits, 0u) << "readers collided on chunks (test setup)";
  EXPECT_LE(s.requests, touched.size());
}

TEST_F(RangeFetcherTest, AdjacentMissesMergeIntoOneRequest) {
  ChunkCache cache(CacheOpts());
  MultiHttp http(4);
  auto f = Fetcher(cache, http);
  Read(*f, 0, 4 * kChunk);
  EXPECT_EQ(f->Stats().requests, 1u);
  EXPECT_EQ(f->Stats().chunks_fetched, 4u);
  // Chunks 5 and 7 missing around a cached 6: two requests, one per run.
  Read(*f, 6 * kChunk, 1);
  Read(*f, 5 * kChunk, 3 * kChunk);
  EXPECT_EQ(f->Stats().requests, 4u);
  EXPECT_EQ(f->Stats().chunks_fetched, 7u);
  EXPECT_EQ(f->Stats().chunk_hits, 1u);
}

TEST_F(RangeFetcherTest, ACacheReopenedAfterARestartServesWithoutTheNetwork) {
  {
    ChunkCache cache(CacheOpts());
    MultiHttp http(4);
    Fetcher(cache, http)->FetchAll();
  }
  ChunkCache cache(CacheOpts());
  MultiHttp http(4);
  auto f = Fetcher(cache, http);
  size_t before = registry_->Requests().size();
  EXPECT_EQ(Read(*f, 0, blob_->size()), *blob_);
  EXPECT_EQ(f->Stats().requests, 0u);
  EXPECT_EQ(registry_->BlobBytesServedSince(before), 0u);
}

TEST_F(RangeFetcherTest, WithoutChunkDigestsReadsNeedConsentAndFetchAllVerifiesTheBlob) {
  ChunkCache cache(CacheOpts());
  MultiHttp http(4);
  {
    RangeFetcherOptions o;  // neither digests nor consent
    auto client = std::make_shared<RegistryClient>(Ref(registry_->host()), Plain());
    RangeFetcher strict(client, *digest_, blob_->size(), cache, http, o);
    char c;
    EXPECT_THROW(strict.Read(0, 1, &c), Error);
    strict.FetchAll();
    EXPECT_TRUE(strict.verified());
    EXPECT_EQ(Read(strict, 100, 10), blob_->substr(100, 10));
  }
  EXPECT_TRUE(cache.Contains(*digest_, 0, /*need_verified=*/true));
}

TEST_F(RangeFetcherTest, FlippedBytesAreRetriedAndNeverReturned) {
  FaultProxy proxy(registry_->port());
  ChunkCache cache(CacheOpts());
  MultiHttp http(2);
  auto f = Fetcher(cache, http, proxy.host());
  proxy.Inject(Fault::kFlipByte, 1, 4000);  // inside the first response's body
  EXPECT_EQ(Read(*f, 0, 2 * kChunk), blob_->substr(0, 2 * kChunk));
  EXPECT_EQ(proxy.faults_applied(), 1);
  EXPECT_EQ(f->Stats().verify_failures, 1u);
}

TEST_F(RangeFetcherTest, PersistentCorruptionFailsWithDataLossAndCachesNothing) {
  // Damage the blob in the registry's own storage (restored afterwards): every endpoint and
  // every attempt serves the bad byte.
  std::string path = registry_->BlobDataPath(*digest_);
  std::string original = ReadFile(path);
  struct Restore {
    std::string path, data;
    ~Restore() { WriteFileAtomic(path, data); }
  } restore{path, original};
  std::string bad = original;
  bad[kChunk + 5] ^= 0x40;
  WriteFileAtomic(path, bad);
  ChunkCache cache(CacheOpts());
  MultiHttp http(2);
  auto f = Fetcher(cache, http);
  EXPECT_EQ(Read(*f, 0, 100), blob_->substr(0, 100)) << "the intact chunk still reads";
  std::string out(kChunk, '\0');
  try {
    f->Read(kChunk, kChunk, out.data());
    FAIL() << "corrupted bytes were returned";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kDataLoss) << e.what();
    EXPECT_NE(std::string(e.what()).find(*digest_), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("range"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(cache.Contains(*digest_, 1, false));
  EXPECT_GE(f->Stats().verify_failures, 2u);

  // Without chunk digests the whole-blob check catches it and the cache forgets the blob.
  RangeFetcherOptions o;
  auto client = std::make_shared<RegistryClient>(Ref(registry_->host()), Plain());
  RangeFetcher whole(client, *digest_, blob_->size(), cache, http, o);
  try {
    whole.FetchAll();
    FAIL() << "a corrupted blob passed FetchAll";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kDataLoss) << e.what();
  }
  EXPECT_FALSE(whole.verified());
  EXPECT_EQ(cache.Stats().chunks, 0u);
}

TEST_F(RangeFetcherTest, ServerErrorsAndResetsAreRetried) {
  FaultProxy proxy(registry_->port());
  ChunkCache cache(CacheOpts());
  MultiHttp http(2);
  auto f = Fetcher(cache, http, proxy.host());
  proxy.Inject(Fault::kHttp500, 2);
  EXPECT_EQ(Read(*f, 3 * kChunk, 10), blob_->substr(3 * kChunk, 10));
  proxy.Inject(Fault::kReset, 2);
  EXPECT_EQ(Read(*f, 9 * kChunk, 10), blob_->substr(9 * kChunk, 10));
}

}  // namespace
}  // namespace lazysnap::fetcher
