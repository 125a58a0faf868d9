// Throughput of the lazy read path without FUSE or containerd: one gzip layer in a real
// docker-registry on 127.0.0.1, read sequentially through TarSource (range fetches, chunk
// verification, chunk cache, inflate from checkpoints, span store), cold (empty caches) and warm
// (page cache dropped, span store kept), against `curl` of the whole blob measured in the same run.
// It isolates the fetch/inflate pipeline that lazy_read_bench measures end to end.
//
// usage: tar_source_bench [--mb 120] [--span 4M] [--runs 3] [--text] [--workers N]
//                         [--readahead N] [--fetch-mb N] [--no-store]
#include <fcntl.h>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>

#include "common/error.h"
#include "common/file_util.h"
#include "common/process.h"
#include "common/sha256.h"
#include "common/temp_dir.h"
#include "common/unique_fd.h"
#include "erofs/layer_decoder.h"
#include "fetcher/chunk_cache.h"
#include "fetcher/multi_http.h"
#include "fetcher/range_fetcher.h"
#include "fetcher/registry_client.h"
#include "labels/reference.h"
#include "lazy/tar_source.h"
#include "tests/support/oci_image.h"
#include "tests/support/pseudo_random.h"
#include "tests/support/registry.h"

using namespace lazysnap;
using Clock = std::chrono::steady_clock;

namespace {

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

void DropCaches() {
  ::sync();
  UniqueFd fd(::open("/proc/sys/vm/drop_caches", O_WRONLY | O_CLOEXEC));
  if (!fd) ThrowErrno("open /proc/sys/vm/drop_caches (run as root)");
  (void)!::write(fd.get(), "3", 1);
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Mostly-compressible data like real layers (text with numbers, ~4:1 under gzip -6).
std::string Text(size_t n) {
  std::string s;
  s.reserve(n + 64);
  for (uint64_t i = 0; s.size() < n; ++i)
    s += "line " + std::to_string(i * 7919 % 1000003) + " value " + std::to_string(i * i % 9973) +
         "\n";
  s.resize(n);
  return s;
}

uint64_t ParseSize(const std::string& s) {
  uint64_t v = std::stoull(s);
  if (s.back() == 'M') v <<= 20;
  if (s.back() == 'K') v <<= 10;
  return v;
}

}  // namespace

int main(int argc, char** argv) try {
  uint64_t mb = 120, span = 4 << 20;
  int runs = 3;
  bool text = false, store = true;
  lazy::TarSourceOptions to;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) throw Error(ErrorCode::kInvalidArgument, a + " needs a value");
      return argv[++i];
    };
    if (a == "--mb")
      mb = std::stoull(next());
    else if (a == "--span")
      span = ParseSize(next());
    else if (a == "--runs")
      runs = std::stoi(next());
    else if (a == "--text")
      text = true;
    else if (a == "--no-store")
      store = false;
    else if (a == "--workers")
      to.workers = static_cast<unsigned>(std::stoul(next()));
    else if (a == "--readahead")
      to.readahead_spans = static_cast<unsigned>(std::stoul(next()));
    else if (a == "--fetch-mb")
      to.readahead_fetch_bytes = std::stoull(next()) << 20;
    else
      throw Error(ErrorCode::kInvalidArgument, "unknown argument " + a);
  }
  testing::Registry reg;
  testing::OciImageBuilder b;
  std::string data = text ? Text(mb << 20) : testing::PseudoRandomBytes(mb << 20, 7);
  b.AddFileLayer({{"data/file", data}});
  data.clear();
  testing::PushedImage img = b.Push(reg.host(), "bench/tarsrc:v1");
  const std::string digest = img.layer_digests.back();
  auto ref = labels::ParseReference(img.ref);
  fetcher::RegistryOptions ropts;
  ropts.plain_http = true;
  std::string blob = fetcher::RegistryClient(ref, ropts).FetchBlobToString(digest, 4ull << 30);

  TempDir dir("tarsrc-bench");
  WriteFileAtomic(dir / "layer.gz", blob);
  std::vector<erofs::Checkpoint> cps;
  uint64_t tar_size = 0;
  {
    UniqueFd fd(::open((dir / "layer.gz").c_str(), O_RDONLY | O_CLOEXEC));
    erofs::DecodeOptions o;
    o.checkpoint_span = span;
    o.on_checkpoint = [&](erofs::Checkpoint&& cp) { cps.push_back(std::move(cp)); };
    erofs::DecodeLayer(
        fd.get(), [&](const uint8_t*, size_t n) { tar_size += n; }, o);
  }
  const uint32_t chunk = 512 * 1024;
  std::vector<std::string> digests;
  for (size_t off = 0; off < blob.size(); off += chunk)
    digests.push_back(Sha256Digest(std::string_view(blob).substr(off, chunk)));
  std::string url = "http://" + reg.host() + "/v2/" + ref.path + "/blobs/" + digest;
  std::printf(
      "tar_source_bench: %s data, tar %.1f MB, blob %.1f MB, span %llu KiB, %zu "
      "checkpoints, workers %u, readahead %u spans, fetch batch %llu MiB, store %s\n",
      text ? "text" : "incompressible", tar_size / 1e6, blob.size() / 1e6,
      static_cast<unsigned long long>(span >> 10), cps.size(), to.workers, to.readahead_spans,
      static_cast<unsigned long long>(to.readahead_fetch_bytes >> 20), store ? "on" : "off");
  std::fflush(stdout);

  std::vector<double> curl_s, cold_s, warm_s;
  lazy::TarSourceStats last{};
  for (int run = 0; run < runs; ++run) {
    auto t0 = Clock::now();
    auto r = RunCommand({"curl", "-sf", "-o", "/dev/null", url}, std::chrono::minutes(2));
    curl_s.push_back(Seconds(t0, Clock::now()));
    if (r.exit_code != 0) throw Error(ErrorCode::kInternal, "curl failed: " + r.output);

    TempDir rd("tarsrc-run");
    MakeDirs(rd / "spans");
    fetcher::ChunkCacheOptions co;
    co.dir = rd / "cache";
    auto cache = std::make_unique<fetcher::ChunkCache>(co);
    fetcher::MultiHttp http(8);
    fetcher::RangeFetcherOptions fo;
    fo.chunk_digests = digests;
    fo.max_request_bytes = 16ull << 20;
    auto client = std::make_shared<fetcher::RegistryClient>(ref, ropts);
    auto rf =
        std::make_shared<fetcher::RangeFetcher>(client, digest, blob.size(), *cache, http, fo);
    lazy::TarSourceOptions o = to;
    o.span_cache_bytes = 32ull << 20;
    if (store) o.store_dir = rd / "spans";
    lazy::TarSource src(rf, erofs::LayerCompression::kGzip, tar_size, cps, o);
    std::vector<char> buf(1 << 20);
    for (int pass = 0; pass < 2; ++pass) {
      DropCaches();
      auto t1 = Clock::now();
      for (uint64_t off = 0; off < tar_size; off += buf.size()) {
        size_t n = std::min<uint64_t>(buf.size(), tar_size - off);
        src.Read(off, n, buf.data());
      }
      (pass == 0 ? cold_s : warm_s).push_back(Seconds(t1, Clock::now()));
    }
    last = src.Stats();
  }
  double c = Median(curl_s), cold = Median(cold_s), warm = Median(warm_s);
  std::printf("  curl whole blob (baseline)  %.3f s  %6.0f MB/s\n", c, blob.size() / 1e6 / c);
  std::printf("  TarSource cold              %.3f s  %6.0f MB/s of tar  %.2fx curl\n", cold,
              tar_size / 1e6 / cold, cold / c);
  std::printf("  TarSource warm              %.3f s  %6.0f MB/s of tar  %.2fx curl\n", warm,
              tar_size / 1e6 / warm, warm / c);
  std::printf(
      "  last run: fetch %.0f ms, inflate %.0f ms (summed over threads), spans inflated "
      "%llu, read ahead %llu, store hits %llu\n",
      last.fetch_us / 1e3, last.inflate_us / 1e3,
      static_cast<unsigned long long>(last.spans_inflated),
      static_cast<unsigned long long>(last.readahead_spans),
      static_cast<unsigned long long>(last.store_hits));
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "tar_source_bench: %s\n", e.what());
  return 1;
}
