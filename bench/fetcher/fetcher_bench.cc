// Fetcher benchmarks against a real docker-registry on 127.0.0.1, every baseline measured in the
// same run:
//   (a) cold full-blob fetch of a ~300 MB blob: RegistryClient::FetchBlob (verified, to /dev/null)
//       and RangeFetcher::FetchAll (into the chunk cache, verified) vs `curl -o /dev/null`;
//   (b) p50/p99 latency of cold 4 KiB and 1 MiB random range reads through the RangeFetcher (new
//       cache each read set) vs a single plain range GET per read (RegistryClient::ReadRange);
//   (c) warm-cache read throughput: ChunkCache::Get (io_uring, batches in flight) vs a pread
//       thread pool reading the same chunks of the same files.
// Usage: fetcher_bench [--blob-mb N] [--runs N] [--reads N] [--threads N]
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "common/file_util.h"
#include "common/process.h"
#include "common/sha256.h"
#include "common/temp_dir.h"
#include "common/unique_fd.h"
#include "fetcher/chunk_cache.h"
#include "fetcher/multi_http.h"
#include "fetcher/range_fetcher.h"
#include "fetcher/registry_client.h"
#include "labels/reference.h"
#include "tests/support/registry.h"

using namespace lazysnap;
using Clock = std::chrono::steady_clock;

namespace {

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

double Percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

// Monolithic upload (POST, then PUT with the digest) with curl, outside the code under test.
void UploadBlob(const std::string& host, const std::string& repo, const std::string& path,
                const std::string& digest) {
  auto r = RunCommandOrThrow(
      {"curl", "-sS", "-i", "-X", "POST", "http://" + host + "/v2/" + repo + "/blobs/uploads/"});
  auto loc = r.find("Location: ");
  if (loc == std::string::npos) loc = r.find("location: ");
  std::string url = r.substr(loc + 10, r.find('\r', loc) - loc - 10);
  if (url.starts_with("/")) url = "http://" + host + url;
  url += (url.find('?') == std::string::npos ? "?" : "&") + std::string("digest=") + digest;
  RunCommandOrThrow({"curl", "-sS", "-f", "-X", "PUT", "-H",
                     "Content-Type: application/octet-stream", "--data-binary", "@" + path, url});
}

fetcher::RegistryOptions Plain() {
  fetcher::RegistryOptions o;
  o.plain_http = true;
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  size_t blob_mb = 300;
  int runs = 3, reads = 200, threads = 16;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--blob-mb") blob_mb = std::stoul(argv[i + 1]);
    if (a == "--runs") runs = std::stoi(argv[i + 1]);
    if (a == "--reads") reads = std::stoi(argv[i + 1]);
    if (a == "--threads") threads = std::stoi(argv[i + 1]);
  }
  TempDir dir("fetcher-bench");
  testing::Registry registry;
  const std::string repo = "bench/blob";
  const uint64_t size = blob_mb << 20;

  // A blob of incompressible bytes.
  std::string blob_path = dir / "blob";
  std::string digest;
  {
    std::mt19937_64 rng(42);
    std::string data(size, '\0');
    for (size_t i = 0; i + 8 <= size; i += 8) {
      uint64_t v = rng();
      std::memcpy(&data[i], &v, 8);
    }
    digest = Sha256Digest(data);
    WriteFileAtomic(blob_path, data);
  }
  UploadBlob(registry.host(), repo, blob_path, digest);
  ::unlink(blob_path.c_str());
  auto ref = labels::ParseReference(registry.host() + "/" + repo + ":x");
  std::string url = "http://" + registry.host() + "/v2/" + repo + "/blobs/" + digest;
  std::printf("blob %s, %zu MiB, registry %s, %d runs\n\n", digest.c_str(), blob_mb,
              registry.host().c_str(), runs);

  // (a) full-blob fetch.
  std::vector<double> t_curl, t_client, t_fetchall;
  for (int r = 0; r < runs; ++r) {
    auto t0 = Clock::now();
    RunCommandOrThrow({"curl", "-sS", "-f", "-o", "/dev/null", url});
    t_curl.push_back(Seconds(t0, Clock::now()));

    fetcher::RegistryClient client(ref, Plain());
    t0 = Clock::now();
    client.FetchBlob(
        digest, [](long, const char*, size_t) { return true; }, nullptr, size);
    t_client.push_back(Seconds(t0, Clock::now()));

    TempDir cdir("fetchall");
    fetcher::ChunkCacheOptions co;
    co.dir = cdir / "cache";
    fetcher::ChunkCache cache(co);
    fetcher::MultiHttp http(8);
    fetcher::RangeFetcher f(std::make_shared<fetcher::RegistryClient>(ref, Plain()), digest, size,
                            cache, http, {});
    t0 = Clock::now();
    f.FetchAll();
    cache.Flush();
    t_fetchall.push_back(Seconds(t0, Clock::now()));
  }
  double mb = static_cast<double>(size) / 1e6;
  std::printf("(a) cold full-blob fetch, median of %d\n", runs);
  std::printf("  %-44s %7.3f s  %7.0f MB/s\n", "curl -o /dev/null (baseline)", Median(t_curl),
              mb / Median(t_curl));
  std::printf("  %-44s %7.3f s  %7.0f MB/s  ratio %.2fx curl time\n",
              "RegistryClient::FetchBlob (sha256-verified)", Median(t_client),
              mb / Median(t_client), Median(t_client) / Median(t_curl));
  std::printf("  %-44s %7.3f s  %7.0f MB/s  ratio %.2fx curl time\n",
              "RangeFetcher::FetchAll -> chunk cache (fsync)", Median(t_fetchall),
              mb / Median(t_fetchall), Median(t_fetchall) / Median(t_curl));

  // (b) cold random range reads.
  std::printf("\n(b) cold random range reads, %d reads each (fresh cache, distinct chunks)\n",
              reads);
  std::printf("  %-12s %-38s %9s %9s\n", "read", "path", "p50 ms", "p99 ms");
  for (size_t read_len : {size_t{4096}, size_t{1} << 20}) {
    for (uint32_t chunk : {64u * 1024, 512u * 1024}) {
      TempDir cdir("cold");
      fetcher::ChunkCacheOptions co;
      co.dir = cdir / "cache";
      co.chunk_size = chunk;
      fetcher::ChunkCache cache(co);
      fetcher::MultiHttp http(8);
      fetcher::RangeFetcherOptions fo;
      fo.allow_unverified = true;  // no index here; verification cost is a sha256 per chunk
      fetcher::RangeFetcher f(std::make_shared<fetcher::RegistryClient>(ref, Plain()), digest, size,
                              cache, http, fo);
      std::mt19937_64 rng(chunk + read_len);
      std::vector<double> lat;
      std::string buf(read_len, '\0');
      uint64_t span = std::max<uint64_t>(chunk, read_len) * 2;
      for (int i = 0; i < reads; ++i) {
        // Reads land in distinct, never-cached regions so every one is a miss.
        uint64_t region = (static_cast<uint64_t>(i) * 7919) % (size / span);
        uint64_t off = region * span + rng() % (span / 2);
        auto t0 = Clock::now();
        f.Read(off, read_len, buf.data());
        lat.push_back(Seconds(t0, Clock::now()) * 1000);
      }
      char label[64];
      std::snprintf(label, sizeof(label), "RangeFetcher, %u KiB chunks", chunk / 1024);
      std::printf("  %-12s %-38s %9.2f %9.2f\n", read_len == 4096 ? "4 KiB" : "1 MiB", label,
                  Percentile(lat, 0.5), Percentile(lat, 0.99));
    }
    fetcher::RegistryClient client(ref, Plain());
    std::mt19937_64 rng(read_len);
    std::vector<double> lat;
    for (int i = 0; i < reads; ++i) {
      uint64_t off = rng() % (size - read_len);
      auto t0 = Clock::now();
      client.ReadRange(digest, off, read_len);
      lat.push_back(Seconds(t0, Clock::now()) * 1000);
    }
    std::printf("  %-12s %-38s %9.2f %9.2f\n", read_len == 4096 ? "4 KiB" : "1 MiB",
                "plain range GET (baseline)", Percentile(lat, 0.5), Percentile(lat, 0.99));
  }

  // (c) warm cache throughput: io_uring vs pread thread pool over the same chunks.
  {
    TempDir cdir("warm");
    fetcher::ChunkCacheOptions co;
    co.dir = cdir / "cache";
    co.chunk_size = 512 * 1024;
    fetcher::ChunkCache cache(co);
    {
      fetcher::MultiHttp http(8);
      fetcher::RangeFetcher f(std::make_shared<fetcher::RegistryClient>(ref, Plain()), digest, size,
                              cache, http, {});
      f.FetchAll();
    }
    cache.Flush();
    const uint32_t cs = cache.chunk_size();
    const uint64_t nchunks = (size + cs - 1) / cs;
    std::vector<uint64_t> order(nchunks);
    for (uint64_t i = 0; i < nchunks; ++i) order[i] = i;
    std::shuffle(order.begin(), order.end(), std::mt19937_64(9));
    auto len_of = [&](uint64_t i) { return std::min<uint64_t>(cs, size - i * cs); };
    const int passes = 3;
    std::vector<double> t_uring, t_pread;
    // Same bytes in flight for both: `threads` preads, or threads/8 io_uring submitters with
    // 8-chunk batches. Buffers are allocated before the clock starts.
    const int uring_threads = std::max(1, threads / 8);
    std::vector<std::vector<std::string>> ubufs(uring_threads,
                                                std::vector<std::string>(8, std::string(cs, 'u')));
    std::vector<std::string> pbufs(threads, std::string(cs, 'p'));
    for (int r = 0; r < runs; ++r) {
      std::atomic<uint64_t> next{0};
      auto t0 = Clock::now();
      std::vector<std::thread> ths;
      for (int t = 0; t < uring_threads; ++t) {
        ths.emplace_back([&, t] {
          for (;;) {
            uint64_t start = next.fetch_add(8);
            if (start >= nchunks * passes) return;
            std::vector<fetcher::ChunkCache::ChunkRead> rd;
            for (uint64_t k = start; k < std::min(start + 8, nchunks * passes); ++k) {
              uint64_t idx = order[k % nchunks];
              rd.push_back({idx, ubufs[t][rd.size()].data(), len_of(idx), false});
            }
            if (cache.Get(digest, rd, true) != rd.size()) {
              std::fprintf(stderr, "cache miss in the warm pass\n");
              std::exit(1);
            }
          }
        });
      }
      for (auto& t : ths) t.join();
      t_uring.push_back(Seconds(t0, Clock::now()));

      UniqueFd fd(::open((co.dir + "/blobs/" + digest.substr(7)).c_str(), O_RDONLY));
      next = 0;
      ths.clear();
      t0 = Clock::now();
      for (int t = 0; t < threads; ++t) {
        ths.emplace_back([&, t] {
          for (;;) {
            uint64_t k = next.fetch_add(1);
            if (k >= nchunks * passes) return;
            uint64_t idx = order[k % nchunks];
            if (::pread(fd.get(), pbufs[t].data(), len_of(idx), static_cast<off_t>(idx * cs)) < 0) {
              std::perror("pread");
              std::exit(1);
            }
          }
        });
      }
      for (auto& t : ths) t.join();
      t_pread.push_back(Seconds(t0, Clock::now()));
    }
    double total_mb = mb * passes;
    std::printf(
        "\n(c) warm cache reads, %u KiB chunks, %d reads in flight, %d passes, median of "
        "%d\n",
        cs / 1024, threads, passes, runs);
    char label[64];
    std::snprintf(label, sizeof(label), "pread pool, %d threads (baseline)", threads);
    std::printf("  %-44s %7.0f MB/s\n", label, total_mb / Median(t_pread));
    std::snprintf(label, sizeof(label), "ChunkCache::Get, io_uring, %d x 8-chunk batches",
                  uring_threads);
    std::printf("  %-44s %7.0f MB/s  ratio %.2fx pread throughput\n", label,
                total_mb / Median(t_uring), Median(t_pread) / Median(t_uring));
  }
  return 0;
}
