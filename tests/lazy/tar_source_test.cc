// TarSource against a real docker-registry: the uncompressed tar of a gzip layer read through
// checkpoints, chunk-verified range fetches and the chunk cache, compared with `gzip -d`.
#include "lazy/tar_source.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mount.h>

#include <cerrno>
#include <cstring>

#include <random>
#include <thread>

#include "common/error.h"
#include "common/file_util.h"
#include "common/sha256.h"
#include "common/temp_dir.h"
#include "common/unique_fd.h"
#include "tests/support/oci_image.h"
#include "tests/support/pseudo_random.h"
#include "tests/support/registry.h"
#include "tests/support/small_disk.h"

namespace lazysnap::lazy {
namespace {

using fetcher::ChunkCache;
using fetcher::ChunkCacheOptions;
using fetcher::MultiHttp;
using fetcher::RangeFetcher;
using fetcher::RangeFetcherOptions;
using fetcher::RegistryClient;
using fetcher::RegistryOptions;
using testing::OciImageBuilder;
using testing::PseudoRandomBytes;
using testing::PushedImage;
using testing::Registry;

constexpr uint32_t kChunk = 256 * 1024;
constexpr uint64_t kSpan = 1 << 20;

// Text that deflate shrinks a lot, so one compressed chunk holds several spans.
std::string Text(size_t n) {
  std::string s;
  for (uint64_t i = 0; s.size() < n; ++i)
    s += "line " + std::to_string(i * 7919 % 100003) + " of text\n";
  s.resize(n);
  return s;
}

class TarSourceTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    registry_ = new Registry();
    OciImageBuilder b;
    b.AddFileLayer({{"data/text", Text(9 << 20)}, {"data/rand", PseudoRandomBytes(5 << 20, 4242)}});
    image_ = new PushedImage(b.Push(registry_->host(), "lazy/app:v1"));
    digest_ = new std::string(image_->layer_digests.back());
    RegistryClient c(Ref(), Plain());
    blob_ = new std::string(c.FetchBlobToString(*digest_, 64 << 20));
    // The reference: the whole tar and checkpoints every kSpan, from one decoding pass.
    TempDir d("tarsrc-setup");
    WriteFileAtomic(d / "layer.gz", *blob_);
    UniqueFd fd(::open((d / "layer.gz").c_str(), O_RDONLY | O_CLOEXEC));
    tar_ = new std::string;
    cps_ = new std::vector<erofs::Checkpoint>;
    erofs::DecodeOptions o;
    o.checkpoint_span = kSpan;
    o.on_checkpoint = [](erofs::Checkpoint&& cp) { cps_->push_back(std::move(cp)); };
    erofs::DecodeLayer(
        fd.get(),
        [](const uint8_t* p, size_t n) { tar_->append(reinterpret_cast<const char*>(p), n); }, o);
  }
  static void TearDownTestSuite() {
    delete cps_;
    delete tar_;
    delete blob_;
    delete digest_;
    delete image_;
    delete registry_;
  }
  static labels::Reference Ref() {
    return labels::ParseReference(registry_->host() + "/lazy/app:v1");
  }
  static RegistryOptions Plain() {
    RegistryOptions o;
    o.plain_http = true;
    o.retry.initial_backoff = std::chrono::milliseconds(20);
    return o;
  }
  static std::vector<std::string> ChunkDigestsOf(const std::string& blob) {
    std::vector<std::string> out;
    for (size_t off = 0; off < blob.size(); off += kChunk)
      out.push_back(Sha256Digest(std::string_view(blob).substr(off, kChunk)));
    return out;
  }
  std::vector<std::string> ChunkDigests() const { return ChunkDigestsOf(*blob_); }
  struct Stack {
    std::unique_ptr<ChunkCache> cache;
    std::unique_ptr<MultiHttp> http;
    std::shared_ptr<RangeFetcher> fetcher;
    std::unique_ptr<TarSource> source;
  };
  // The fetcher of blob `digest` (`size` bytes) in the registry, without a source.
  Stack MakeFetcher(const std::string& digest, uint64_t size, std::vector<std::string> digests,
                    const std::string& cache_name) {
    Stack s;
    ChunkCacheOptions co;
    co.dir = dir_ / cache_name;
    co.chunk_size = kChunk;
    s.cache = std::make_unique<ChunkCache>(co);
    s.http = std::make_unique<MultiHttp>(4);
    RangeFetcherOptions ro;
    ro.chunk_digests = std::move(digests);
    ro.attempts = 2;
    ro.request_timeout_ms = 5000;
    auto client = std::make_shared<RegistryClient>(Ref(), Plain());
    s.fetcher = std::make_shared<RangeFetcher>(client, digest, size, *s.cache, *s.http, ro);
    return s;
  }
  Stack Make(TarSourceOptions opts = {}, std::vector<std::string> digests = {},
             const std::string& cache_name = "cache") {
    Stack s = MakeFetcher(*digest_, blob_->size(), digests.empty() ? ChunkDigests() : digests,
                          cache_name);
    s.source = std::make_unique<TarSource>(s.fetcher, erofs::LayerCompression::kGzip, tar_->size(),
                                           *cps_, opts);
    return s;
  }
  static std::string Read(const TarSource& src, uint64_t off, size_t len) {
    std::string out(len, '\0');
    src.Read(off, len, out.data());
    return out;
  }

  static Registry* registry_;
  static PushedImage* image_;
  static std::string* digest_;
  static std::string* blob_;
  static std::string* tar_;
  static std::vector<erofs::Checkpoint>* cps_;
  TempDir dir_{"tarsrc"};
};

Registry* TarSourceTest::registry_ = nullptr;
PushedImage* TarSourceTest::image_ = nullptr;
std::string* TarSourceTest::digest_ = nullptr;
std::string* TarSourceTest::blob_ = nullptr;
std::string* TarSourceTest::tar_ = nullptr;
std::vector<erofs::Checkpoint>* TarSourceTest::cps_ = nullptr;

TEST_F(TarSourceTest, RandomReadsEqualTheDecompressedTar) {
  ASSERT_GT(cps_->size(), 8u);
  auto s = Make();
  EXPECT_EQ(s.source->Size(), tar_->size());
  std::mt19937_64 rng(7);
  for (int i = 0; i < 200; ++i) {
    uint64_t off = rng() % tar_->size();
    size_t len = 1 + rng() % std::min<uint64_t>(3 << 20, tar_->size() - off);
    ASSERT_EQ(Read(*s.source, off, len), tar_->substr(off, len)) << off << "+" << len;
  }
  // Edges: the first and last byte, a read across every span boundary.
  EXPECT_EQ(Read(*s.source, 0, 1), tar_->substr(0, 1));
  EXPECT_EQ(Read(*s.source, tar_->size() - 1, 1), tar_->substr(tar_->size() - 1));
  for (size_t i = 1; i < cps_->size(); ++i) {
    uint64_t b = (*cps_)[i].out;
    ASSERT_EQ(Read(*s.source, b - 3, 6), tar_->substr(b - 3, 6));
  }
  EXPECT_THROW(Read(*s.source, tar_->size() - 1, 2), Error);
}

// A zstd layer of many frames (pzstd's: 2 MiB frames, each after a skippable frame) is read
// the same way, restarting at frame starts.
TEST_F(TarSourceTest, MultiFrameZstdLayerReadsEqualTheTar) {
  TempDir d("tarsrc-zstd");
  WriteFileAtomic(d / "layer.tar", *tar_);
  ASSERT_EQ(std::system(("pzstd -q -1 -p 2 " + d / "layer.tar" + " -o " + d / "layer.zst").c_str()),
            0);
  const std::string blob = ReadFile(d / "layer.zst");
  RegistryClient c(Ref(), Plain());
  const std::string digest = c.PushBlob(blob);
  std::vector<erofs::Checkpoint> cps;
  erofs::DecodeOptions o;
  o.checkpoint_span = kSpan;
  o.on_checkpoint = [&](erofs::Checkpoint&& cp) { cps.push_back(std::move(cp)); };
  UniqueFd fd(::open((d / "layer.zst").c_str(), O_RDONLY | O_CLOEXEC));
  std::string tar;
  ASSERT_EQ(
      erofs::DecodeLayer(
          fd.get(),
          [&](const uint8_t* p, size_t n) { tar.append(reinterpret_cast<const char*>(p), n); }, o),
      erofs::LayerCompression::kZstd);
  ASSERT_TRUE(tar == *tar_);
  ASSERT_GE(cps.size(), 5u);

  Stack z = MakeFetcher(digest, blob.size(), ChunkDigestsOf(blob), "zstd-cache");
  TarSourceOptions to;
  to.store_dir = d.path();
  TarSource src(z.fetcher, erofs::LayerCompression::kZstd, tar.size(), cps, to);
  std::mt19937_64 rng(11);
  for (int i = 0; i < 60; ++i) {
    uint64_t off = rng() % tar.size();
    size_t len = 1 + rng() % std::min<uint64_t>(3 << 20, tar.size() - off);
    ASSERT_EQ(Read(src, off, len), tar.substr(off, len)) << off << "+" << len;
  }
  for (size_t i = 1; i < cps.size(); ++i) {
    uint64_t b = cps[i].out;
    ASSERT_EQ(Read(src, b - 3, 6), tar.substr(b - 3, 6));
  }
  EXPECT_EQ(src.Stats().spans_inflated, cps.size());  // each once, then from memory or store
  // A zstd table with gzip state is refused.
  auto bad = cps;
  bad[1].bits = 3;
  EXPECT_THROW(TarSource(z.fetcher, erofs::LayerCompression::kZstd, tar.size(), bad), Error);
}

TEST_F(TarSourceTest, ASmallReadFetchesOnlyItsSpan) {
  auto s = Make();
  uint64_t off = tar_->size() / 2;
  EXPECT_EQ(Read(*s.source, off, 4096), tar_->substr(off, 4096));
  auto fs = s.source->FetchStats();
  // The span's compressed bytes rounded out to chunks, never the whole layer.
  EXPECT_LE(fs.bytes_fetched, kSpan + 3 * kChunk) << "layer is " << blob_->size();
  EXPECT_LT(fs.bytes_fetched, blob_->size() / 3);
  EXPECT_EQ(s.source->Stats().spans_inflated, 1u);
}

TEST_F(TarSourceTest, ASequentialReadInflatesEverySpanOnce) {
  TarSourceOptions o;
  o.readahead_spans = 3;
  auto s = Make(o);
  std::string all;
  for (uint64_t off = 0; off < tar_->size(); off += 128 * 1024) {
    all += Read(*s.source, off, std::min<uint64_t>(128 * 1024, tar_->size() - off));
  }
  EXPECT_TRUE(all == *tar_);
  auto st = s.source->Stats();
  EXPECT_EQ(st.spans_inflated, cps_->size());
  EXPECT_GT(st.readahead_spans, 0u);
  EXPECT_LE(s.source->FetchStats().bytes_fetched, blob_->size());
}

TEST_F(TarSourceTest, ReadAheadFetchesRunsOfSpansInFewRequests) {
  TarSourceOptions o;
  o.readahead_spans = 8;
  o.workers = 3;
  o.readahead_fetch_bytes = 16ull << 20;
  auto s = Make(o);
  std::string all;
  for (uint64_t off = 0; off < tar_->size(); off += 256 * 1024) {
    all += Read(*s.source, off, std::min<uint64_t>(256 * 1024, tar_->size() - off));
  }
  EXPECT_TRUE(all == *tar_);
  auto st = s.source->Stats();
  EXPECT_EQ(st.spans_inflated, cps_->size());
  EXPECT_GE(st.readahead_spans, cps_->size() / 2);
  // One request per span would be cps_->size(); batches of adjacent spans need far fewer.
  EXPECT_LE(s.source->FetchStats().requests, cps_->size() / 2) << cps_->size() << " spans";
}

TEST_F(TarSourceTest, TheSpanStoreServesRereadsWithoutInflatingAgain) {
  TempDir store("spanstore");
  TarSourceOptions o;
  o.span_cache_bytes = 2 * kSpan;  // memory holds two spans: rereads must come from the store
  o.store_dir = store.path();
  auto s = Make(o);
  for (int pass = 0; pass < 2; ++pass) {
    std::string all;
    for (uint64_t off = 0; off < tar_->size(); off += 100 * 1000) {
      all += Read(*s.source, off, std::min<uint64_t>(100 * 1000, tar_->size() - off));
    }
    ASSERT_TRUE(all == *tar_) << "pass " << pass;
  }
  auto st = s.source->Stats();
  EXPECT_EQ(st.spans_inflated, cps_->size());
  EXPECT_GT(st.store_hits, 0u);
  EXPECT_EQ(st.store_bytes, tar_->size());
  EXPECT_FALSE(st.store_disabled);
}

TEST_F(TarSourceTest, StoredBytesAreLentAsTheStoresFdAtTarOffsets) {
  TempDir store("spanstore");
  TarSourceOptions o;
  o.store_dir = store.path();
  auto s = Make(o);
  auto never = [](int, uint64_t) { ADD_FAILURE() << "lent bytes that are not stored"; };
  uint64_t off = (*cps_)[2].out + 777;
  EXPECT_FALSE(s.source->LendFd(off, 5000, never)) << "nothing is stored yet";
  ASSERT_EQ(Read(*s.source, off, 10), tar_->substr(off, 10));  // inflates (and stores) span 2
  std::string got(5000, '\0');
  bool used = false;
  EXPECT_TRUE(s.source->LendFd(off, got.size(), [&](int fd, uint64_t pos) {
    used = true;
    EXPECT_EQ(::pread(fd, got.data(), got.size(), static_cast<off_t>(pos)),
              static_cast<ssize_t>(got.size()));
  }));
  EXPECT_TRUE(used);
  EXPECT_TRUE(got == tar_->substr(off, got.size()));
  // A range reaching into a span that is not stored is not lent (Read fetches it).
  uint64_t edge = (*cps_)[3].out - 100;
  EXPECT_FALSE(s.source->LendFd(edge, 200, never));
  auto plain = Make({}, {}, "no-store");
  ASSERT_EQ(Read(*plain.source, off, 10), tar_->substr(off, 10));
  EXPECT_FALSE(plain.source->LendFd(off, 10, never)) << "no store, nothing to lend";
}

TEST_F(TarSourceTest, AFullSpanStoreDiskLosesNothing) {
  TempDir dir("spanstore");
  testing::SmallDisk disk(dir / "small", "2m");
  const std::string& mnt = disk.path();
  TarSourceOptions o;
  o.store_dir = mnt;
  auto s = Make(o);
  std::string all;
  for (uint64_t off = 0; off < tar_->size(); off += 1 << 20) {
    all += Read(*s.source, off, std::min<uint64_t>(1 << 20, tar_->size() - off));
  }
  EXPECT_TRUE(all == *tar_);
  EXPECT_TRUE(s.source->Stats().store_disabled)
      << "2 MiB of tmpfs held a " << tar_->size() << "-byte tar";
  EXPECT_EQ(Read(*s.source, 12345, 1000), tar_->substr(12345, 1000));
}

TEST_F(TarSourceTest, ConcurrentReadersOfOneSpanShareOneInflate) {
  TarSourceOptions o;
  o.readahead_spans = 0;  // reader t ends where reader t+5 starts: that looks sequential
  auto s = Make(o);
  uint64_t base = (*cps_)[3].out;
  std::vector<std::thread> ts;
  std::atomic<int> bad{0};
  for (int t = 0; t < 16; ++t) {
    ts.emplace_back([&, t] {
      uint64_t off = base + t * 1000;
      if (Read(*s.source, off, 5000) != tar_->substr(off, 5000)) bad++;
    });
  }
  for (auto& t : ts) t.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_EQ(s.source->Stats().spans_inflated, 1u);
}

TEST_F(TarSourceTest, BadChunkDigestsAreDataLossNeverWrongBytes) {
  auto digests = ChunkDigests();
  for (auto& d : digests) d = Sha256Digest("not this chunk");
  auto s = Make({}, digests);
  EXPECT_THROW(
      {
        try {
          Read(*s.source, 1000, 10);
        } catch (const Error& e) {
          EXPECT_EQ(e.code(), ErrorCode::kDataLoss) << e.what();
          throw;
        }
      },
      Error);
}

TEST_F(TarSourceTest, ReadsWaitOutARegistryOutageAndFailAfterTheTimeout) {
  TarSourceOptions o;
  o.unavailable_timeout = std::chrono::seconds(30);
  auto s = Make(o);
  EXPECT_EQ(Read(*s.source, 0, 100), tar_->substr(0, 100));
  registry_->Stop();
  std::string got;
  std::thread reader([&] { got = Read(*s.source, tar_->size() - 5000, 5000); });
  std::this_thread::sleep_for(std::chrono::seconds(2));
  registry_->Start();
  reader.join();
  EXPECT_TRUE(got == tar_->substr(tar_->size() - 5000));

  TarSourceOptions quick;
  quick.unavailable_timeout = std::chrono::seconds(1);
  auto q = Make(quick, {}, "cold-cache");
  registry_->Stop();
  try {
    Read(*q.source, tar_->size() / 3, 10);
    ADD_FAILURE() << "read succeeded with the registry down";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kUnavailable) << e.what();
  }
  registry_->Start();
  EXPECT_EQ(Read(*q.source, tar_->size() / 3, 10), tar_->substr(tar_->size() / 3, 10));
}

TEST_F(TarSourceTest, StartReadsAreTheSpansReadFirstInTheOrderFirstRead) {
  ASSERT_GE(cps_->size(), 9u);
  auto span = [](size_t i) {
    uint64_t end = i + 1 < cps_->size() ? (*cps_)[i + 1].out : tar_->size();
    return TarRange{(*cps_)[i].out, end - (*cps_)[i].out};
  };
  TarSourceOptions o;
  o.record_window = std::chrono::milliseconds(1500);
  auto s = Make(o);
  Read(*s.source, span(5).offset + 10, 100);
  Read(*s.source, span(1).offset, 10);
  Read(*s.source, span(5).offset, 10);      // already recorded
  Read(*s.source, span(3).offset - 5, 10);  // spans 2 and 3
  Read(*s.source, span(8).offset + span(8).length - 1, 1);
  TarRange one_to_three{span(1).offset, span(3).offset + span(3).length - span(1).offset};
  std::vector<TarRange> want{span(5), one_to_three, span(8)};
  EXPECT_EQ(s.source->StartReads(), want);
  EXPECT_EQ(s.source->Stats().start_read_spans, 5u);
  std::this_thread::sleep_for(std::chrono::milliseconds(1600));
  Read(*s.source, span(7).offset, 10);  // after the window: not a start read
  EXPECT_EQ(s.source->StartReads(), want);

  TarSourceOptions off;
  off.record_window = std::chrono::milliseconds(0);
  auto n = Make(off, {}, "cache-off");
  Read(*n.source, 0, 10);
  EXPECT_TRUE(n.source->StartReads().empty());
}

TEST_F(TarSourceTest, APrefetchListIsFetchedAheadOfReadersAndServesThemWithoutTheRegistry) {
  // Node one records its start reads.
  auto a = Make();
  const std::vector<std::pair<uint64_t, size_t>> reads = {
      {tar_->size() / 2, 3000}, {100, 50000}, {tar_->size() - 9000, 9000}};
  for (auto [off, len] : reads) Read(*a.source, off, len);
  std::vector<TarRange> list = a.source->StartReads();
  ASSERT_FALSE(list.empty());
  list.push_back({tar_->size() + 10, 5});  // past the end of the tar: cut

  // Node two (its own cache) prefetches them before anything reads.
  TempDir store("spanstore");
  TarSourceOptions o;
  o.store_dir = store.path();
  o.unavailable_timeout = std::chrono::seconds(1);
  auto b = Make(o, {}, "cache-two");
  b.source->Prefetch(list);
  const uint64_t queued = b.source->Stats().prefetch_spans;
  EXPECT_EQ(queued, a.source->Stats().start_read_spans);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (b.source->Stats().prefetched < queued && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ASSERT_EQ(b.source->Stats().prefetched, queued);
  EXPECT_LT(b.source->FetchStats().bytes_fetched, blob_->size() * 3 / 4);

  // The start reads need no registry now: they are served from what the prefetch inflated.
  registry_->Stop();
  std::vector<std::string> got;
  try {
    for (auto [off, len] : reads) got.push_back(Read(*b.source, off, len));
  } catch (const std::exception& e) {
    ADD_FAILURE() << "a prefetched read needed the registry: " << e.what();
  }
  registry_->Start();
  ASSERT_EQ(got.size(), reads.size());
  for (size_t i = 0; i < reads.size(); ++i)
    EXPECT_TRUE(got[i] == tar_->substr(reads[i].first, reads[i].second)) << i;
  EXPECT_EQ(b.source->Stats().spans_inflated, queued);

  // Without a span store the list is cut to half the memory LRU: it never evicts itself.
  TarSourceOptions small;
  small.span_cache_bytes = 3 * kSpan;
  auto c = Make(small, {}, "cache-three");
  c.source->Prefetch(list);
  EXPECT_EQ(c.source->Stats().prefetch_spans, 1u);
}

TEST_F(TarSourceTest, InconsistentCheckpointTablesAreRejected) {
  Stack st = MakeFetcher(*digest_, blob_->size(), ChunkDigests(), "c");
  const auto& f = st.fetcher;
  auto gz = erofs::LayerCompression::kGzip;
  EXPECT_THROW(TarSource(f, gz, tar_->size(), {}), Error);
  auto swapped = *cps_;
  std::swap(swapped[1], swapped[2]);
  EXPECT_THROW(TarSource(f, gz, tar_->size(), swapped), Error);
  auto beyond = *cps_;
  beyond.back().in = blob_->size() + 1;
  EXPECT_THROW(TarSource(f, gz, tar_->size(), beyond), Error);
  EXPECT_THROW(TarSource(f, erofs::LayerCompression::kNone, tar_->size(), {}), Error);
}

}  // namespace
}  // namespace lazysnap::lazy
