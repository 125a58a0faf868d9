// BackgroundFetch against a real docker-registry: the rest of a blob reaches the chunk cache
// (verified), after which reads need no registry; it yields to readers, keeps its rate, backs
// off through an outage and resumes, and stops promptly when destroyed.
#include "lazy/background_fetch.h"

#include <gtest/gtest.h>

#include <thread>

#include "common/error.h"
#include "common/sha256.h"
#include "common/temp_dir.h"
#include "tests/support/pseudo_random.h"
#include "tests/support/registry.h"

namespace lazysnap::lazy {
namespace {

using Clock = std::chrono::steady_clock;
using fetcher::ChunkCache;
using fetcher::MultiHttp;
using fetcher::RangeFetcher;
using fetcher::RegistryClient;

constexpr uint32_t kChunk = 256 * 1024;

class BackgroundFetchTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    registry_ = new testing::Registry();
    blob_ = new std::string(testing::PseudoRandomBytes((12 << 20) + 12345, 77));
    RegistryClient c(Ref(), Plain());
    digest_ = new std::string(c.PushBlob(*blob_));
  }
  static void TearDownTestSuite() {
    delete digest_;
    delete blob_;
    delete registry_;
  }
  static labels::Reference Ref() { return labels::ParseReference(registry_->host() + "/bg/blob"); }
  static fetcher::RegistryOptions Plain() {
    fetcher::RegistryOptions o;
    o.plain_http = true;
    o.retry.initial_backoff = std::chrono::milliseconds(20);
    return o;
  }
  void SetUp() override {
    fetcher::ChunkCacheOptions co;
    co.dir = dir_ / "cache";
    co.chunk_size = kChunk;
    cache_ = std::make_unique<ChunkCache>(co);
    http_ = std::make_unique<MultiHttp>(4);
    fetcher::RangeFetcherOptions ro;
    for (size_t off = 0; off < blob_->size(); off += kChunk)
      ro.chunk_digests.push_back(Sha256Digest(std::string_view(*blob_).substr(off, kChunk)));
    ro.attempts = 1;
    ro.request_timeout_ms = 5000;
    fetcher_ = std::make_shared<RangeFetcher>(std::make_shared<RegistryClient>(Ref(), Plain()),
                                              *digest_, blob_->size(), *cache_, *http_, ro);
  }
  // Waits for `state` up to `limit`.
  static bool WaitFor(const BackgroundFetch& bg, BackgroundState state,
                      std::chrono::seconds limit = std::chrono::seconds(60)) {
    auto until = Clock::now() + limit;
    while (bg.Stats().state != state && Clock::now() < until)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    return bg.Stats().state == state;
  }

  static testing::Registry* registry_;
  static std::string* blob_;
  static std::string* digest_;
  TempDir dir_{"bgfetch"};
  Logger log_{LogLevel::kError};
  std::unique_ptr<ChunkCache> cache_;
  std::unique_ptr<MultiHttp> http_;
  std::shared_ptr<RangeFetcher> fetcher_;
};

testing::Registry* BackgroundFetchTest::registry_ = nullptr;
std::string* BackgroundFetchTest::blob_ = nullptr;
std::string* BackgroundFetchTest::digest_ = nullptr;

TEST_F(BackgroundFetchTest, FetchesTheRestThenReadsNeedNoRegistry) {
  // A reader got the first megabyte already: the background fetch fetches only the rest.
  std::string head(1 << 20, '\0');
  ASSERT_EQ(fetcher_->Read(0, head.size(), head.data()), head.size());
  BackgroundFetchOptions o;
  o.delay = std::chrono::milliseconds(0);
  o.bytes_per_second = 0;
  o.request_bytes = 3 << 20;  // not a multiple of the blob: the last step is short
  BackgroundFetch bg(fetcher_, o, log_);
  ASSERT_TRUE(WaitFor(bg, BackgroundState::kDone)) << bg.Stats().error;
  EXPECT_EQ(bg.Stats().bytes_fetched, blob_->size() - head.size());
  EXPECT_EQ(bg.Stats().position, blob_->size());
  auto s = fetcher_->Stats();
  EXPECT_EQ(s.prefetch_bytes, blob_->size() - head.size());
  EXPECT_EQ(s.bytes_fetched, blob_->size());  // nothing twice
  EXPECT_GT(s.prefetch_requests, 0u);

  registry_->Stop();
  std::string all(blob_->size(), '\0');
  size_t n = 0;
  EXPECT_NO_THROW(n = fetcher_->Read(0, all.size(), all.data()));
  registry_->Start();
  EXPECT_EQ(n, blob_->size());
  EXPECT_TRUE(all == *blob_);
  EXPECT_EQ(fetcher_->Stats().bytes_fetched, blob_->size());
}

TEST_F(BackgroundFetchTest, WaitsItsDelayAndKeepsItsRate) {
  BackgroundFetchOptions o;
  o.delay = std::chrono::milliseconds(400);
  o.bytes_per_second = 8 << 20;  // 12 MiB: at least ~1.5 s
  o.request_bytes = 1 << 20;
  auto t0 = Clock::now();
  BackgroundFetch bg(fetcher_, o, log_);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(bg.Stats().state, BackgroundState::kWaiting);
  EXPECT_EQ(fetcher_->Stats().requests, 0u);
  ASSERT_TRUE(WaitFor(bg, BackgroundState::kDone)) << bg.Stats().error;
  double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  // A lower bound only: a slower machine is never a failure, a rate above the limit is.
  EXPECT_GE(secs, 0.4 + 11.0 / 8.0) << "fetched faster than its limit";
}

TEST_F(BackgroundFetchTest, BacksOffThroughAnOutageAndResumes) {
  BackgroundFetchOptions o;
  o.delay = std::chrono::milliseconds(0);
  o.bytes_per_second = 4 << 20;
  o.request_bytes = 1 << 20;
  registry_->Stop();
  BackgroundFetch bg(fetcher_, o, log_);
  auto until = Clock::now() + std::chrono::seconds(30);
  while (bg.Stats().error.empty() && Clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_FALSE(bg.Stats().error.empty());
  EXPECT_EQ(bg.Stats().state, BackgroundState::kFetching);  // not given up
  registry_->Start();
  ASSERT_TRUE(WaitFor(bg, BackgroundState::kDone)) << bg.Stats().error;
  EXPECT_EQ(bg.Stats().bytes_fetched, blob_->size());
  EXPECT_TRUE(bg.Stats().error.empty());
}

TEST_F(BackgroundFetchTest, YieldsToReadersAndStopsPromptly) {
  BackgroundFetchOptions o;
  o.delay = std::chrono::milliseconds(0);
  o.bytes_per_second = 1 << 20;  // slow: the destructor comes mid-fetch
  o.request_bytes = 256 << 10;
  o.yield_for = std::chrono::milliseconds(1000);
  auto bg = std::make_unique<BackgroundFetch>(fetcher_, o, log_);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  // A reader's request: the background fetch sends nothing for the next yield_for.
  std::string buf(kChunk, '\0');
  fetcher_->Read(blob_->size() - kChunk, buf.size(), buf.data());
  std::this_thread::sleep_for(std::chrono::milliseconds(150));  // its next step sees the reader
  uint64_t prefetched = fetcher_->Stats().prefetch_requests;
  std::this_thread::sleep_for(std::chrono::milliseconds(250));
  EXPECT_EQ(fetcher_->Stats().prefetch_requests, prefetched) << "did not yield to the reader";
  EXPECT_EQ(bg->Stats().state, BackgroundState::kFetching);
  auto t0 = Clock::now();
  bg.reset();
  EXPECT_LT(std::chrono::duration<double>(Clock::now() - t0).count(), 2.0);
  EXPECT_LT(fetcher_->Stats().prefetch_bytes, blob_->size() / 2);
}

}  // namespace
}  // namespace lazysnap::lazy
