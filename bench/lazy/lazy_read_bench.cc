// lazy_read_bench: read throughput of a lazily mounted layer vs a native overlayfs pull, in the
// same run. One image (busybox layer + a layer holding one FILE_MB file of incompressible bytes)
// on a local docker-registry; per run and per checkpoint span:
//   native: fresh containerd (CRI, overlayfs snapshotter), full CRI pull, the image's top snapshot
//           mounted with `ctr snapshots view`; page cache dropped; FILE read twice (page cache
//           dropped before each read: both read the disk).
//   lazy:   the image indexed once per span (`lazysnap index --span S`, into its own repository so
//           each span has its own index artifact); fresh lazysnap-fused (empty chunk cache) +
//           lazysnapd ([lazy] on) + containerd; CRI pull (no layer bytes); same view mount; page
//           cache dropped; cold read (bytes come from the registry); page cache dropped again; warm
//           read (bytes come from lazysnap's chunk cache).
// Reads are `cat FILE > /dev/null` style: read(2) of 128 KiB until EOF. Prints medians and the
// ratios against the native reads of the same run.
//
// usage: lazy_read_bench [--runs N] [--file-mb MB] [--spans 1M,4M,8M] [--fused-config 'K = V']...
#include <fcntl.h>
#include <sys/mount.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/file_util.h"
#include "common/process.h"
#include "common/temp_dir.h"
#include "common/unique_fd.h"
#include "tests/support/containerd.h"
#include "tests/support/cri_client.h"
#include "tests/support/fused.h"
#include "tests/support/lazysnapd.h"
#include "tests/support/oci_image.h"
#include "tests/support/pseudo_random.h"
#include "tests/support/registry.h"

using namespace lazysnap;
using namespace lazysnap::testing;
using Clock = std::chrono::steady_clock;

namespace {

constexpr const char* kFile = "data/big";

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

void DropCaches() {
  ::sync();
  int fd = ::open("/proc/sys/vm/drop_caches", O_WRONLY);
  if (fd < 0) ThrowErrno("open /proc/sys/vm/drop_caches (run as root)");
  (void)!::write(fd, "3", 1);
  ::close(fd);
}

// Reads `path` to EOF in 128 KiB read(2)s (what cat does); seconds, and checks the size.
double TimedRead(const std::string& path, uint64_t want) {
  std::vector<char> buf(128 << 10);
  auto t0 = Clock::now();
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) ThrowErrno("open " + path);
  uint64_t total = 0;
  for (;;) {
    ssize_t n = ::read(fd.get(), buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) ThrowErrno("read " + path);
    if (n == 0) break;
    total += static_cast<uint64_t>(n);
  }
  double s = Seconds(t0, Clock::now());
  if (total != want)
    throw Error(ErrorCode::kInternal, "read " + std::to_string(total) + " bytes of " + path +
                                          ", want " + std::to_string(want));
  return s;
}

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

// Mounts a read-only view of the image's top snapshot at `target` (`ctr snapshots view --target`
// prints the mount command).
void MountView(const Containerd& c, const std::string& snapshotter, const std::string& target) {
  MakeDirs(target);
  std::string printed =
      c.CtrOrThrow({"snapshots", "--snapshotter", snapshotter, "view", "--target", target,
                    "bench-view", c.TopCommittedSnapshot(snapshotter, "k8s.io")},
                   60, "k8s.io");
  std::string cmd = printed.substr(0, printed.find('\n'));
  if (!cmd.starts_with("mount "))
    throw Error(ErrorCode::kInternal, "ctr snapshots view printed: " + printed);
  RunCommandOrThrow({"sh", "-c", cmd});
}

struct SpanResult {
  std::string name;
  uint64_t span = 0;
  double index_s = 0;
  uint64_t index_bytes = 0, file_layer_index_bytes = 0;
  double index_pct = 0, file_layer_index_pct = 0;
  std::vector<double> cold, warm;
  uint64_t fetched = 0, requests = 0;  // fused status after the cold read, file layer
  nlohmann::json status_after_warm;
};

uint64_t ParseSpan(const std::string& s) {
  size_t pos = 0;
  uint64_t v = std::stoull(s, &pos);
  std::string unit = s.substr(pos);
  if (unit == "K" || unit == "KiB") return v << 10;
  if (unit == "M" || unit == "MiB") return v << 20;
  if (unit.empty()) return v;
  throw Error(ErrorCode::kInvalidArgument, "bad span \"" + s + "\"");
}

// `lazysnap index` output: "layer 2/2 sha256:...  N bytes -> index M bytes (P%), S spans, T s"
// and "pushed index artifact ...: ..., B bytes (P% of the layers)".
void ParseIndexOutput(const std::string& out, const std::string& file_layer, SpanResult* r) {
  std::istringstream in(out);
  std::string line;
  while (std::getline(in, line)) {
    if (line.find(file_layer) != std::string::npos && line.find("-> index ") != std::string::npos) {
      unsigned long long bytes = 0;
      double pct = 0;
      if (std::sscanf(line.c_str() + line.find("-> index "), "-> index %llu bytes (%lf%%", &bytes,
                      &pct) == 2) {
        r->file_layer_index_bytes = bytes;
        r->file_layer_index_pct = pct;
      }
    }
    auto at = line.find("layers, ");
    if (line.starts_with("pushed index artifact") && at != std::string::npos) {
      unsigned long long bytes = 0;
      double pct = 0;
      if (std::sscanf(line.c_str() + at, "layers, %llu bytes (%lf%%", &bytes, &pct) == 2) {
        r->index_bytes = bytes;
        r->index_pct = pct;
      }
    }
  }
}

int Run(int argc, char** argv) {
  int runs = 3;
  uint64_t file_mb = 120;
  std::string spans_arg = "1M,4M,8M";
  std::string fused_config;  // extra [lazy] keys, e.g. "readahead_threads = 4"
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) throw Error(ErrorCode::kInvalidArgument, a + " needs a value");
      return argv[++i];
    };
    if (a == "--runs")
      runs = std::stoi(next());
    else if (a == "--file-mb")
      file_mb = std::stoull(next());
    else if (a == "--spans")
      spans_arg = next();
    else if (a == "--fused-config")
      fused_config += next() + "\n";
    else
      throw Error(ErrorCode::kInvalidArgument,
                  "unknown argument " + a +
                      " (usage: lazy_read_bench [--runs N] [--file-mb MB] [--spans 1M,4M,8M]"
                      " [--fused-config 'KEY = VALUE']...)");
  }
  const uint64_t file_bytes = file_mb << 20;
  std::vector<SpanResult> spans;
  {
    std::istringstream in(spans_arg);
    std::string s;
    while (std::getline(in, s, ',')) spans.push_back({.name = s, .span = ParseSpan(s)});
  }

  Registry reg;
  std::fprintf(stderr, "building the image (busybox + %llu MiB incompressible file)\n",
               static_cast<unsigned long long>(file_mb));
  OciImageBuilder b;
  b.AddBusyboxLayer();
  b.AddFileLayer({{kFile, PseudoRandomBytes(file_bytes, 42)}});
  b.SetCmd({"/bin/sh"});
  std::map<std::string, PushedImage> images;  // span name -> the image in its own repository
  for (const auto& s : spans) {
    std::string repo = "read/span-" + s.name;
    std::transform(repo.begin(), repo.end(), repo.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    images[s.name] = b.Push(reg.host(), repo + ":v1");
  }
  PushedImage native_img = b.Push(reg.host(), "read/native:v1");
  const std::string file_layer = native_img.layer_digests.back();
  const uint64_t file_layer_size = native_img.layer_sizes.back();

  for (auto& s : spans) {
    std::fprintf(stderr, "lazysnap index --span %s\n", s.name.c_str());
    auto t0 = Clock::now();
    auto r = RunCommand({LazysnapCliBinary(), "index", images[s.name].ref, "--plain-http", "--span",
                         std::to_string(s.span)},
                        std::chrono::minutes(10));
    s.index_s = Seconds(t0, Clock::now());
    if (r.exit_code != 0) throw Error(ErrorCode::kInternal, "lazysnap index failed: " + r.output);
    ParseIndexOutput(r.output, file_layer, &s);
  }

  std::vector<double> native_cold, native_warm;
  for (int run = 0; run < runs; ++run) {
    {
      std::fprintf(stderr, "run %d: native overlayfs\n", run + 1);
      LazysnapdProcess daemon("log_level = \"warn\"\n", "");
      Containerd c({.snapshotter_socket = daemon.socket(),
                    .cri = true,
                    .mirror_host = reg.host(),
                    .sandbox_image = reg.host() + "/pause:none",
                    .cri_snapshotter = "overlayfs"});
      CriImageClient(c.address()).Pull(native_img.ref);
      TempDir mnt("read-native");
      MountView(c, "overlayfs", mnt / "view");
      std::string path = mnt / ("view/" + std::string(kFile));
      DropCaches();
      native_cold.push_back(TimedRead(path, file_bytes));
      DropCaches();
      native_warm.push_back(TimedRead(path, file_bytes));
      ::umount2((mnt / "view").c_str(), MNT_DETACH);
    }
    // A cold read must find the layer remote: the background fetch (on by default, 10 s after
    // the mount) would fetch it during the runs. Off unless --fused-config sets it.
    if (fused_config.find("background_fetch") == std::string::npos)
      fused_config += "background_fetch = false\n";
    for (auto& s : spans) {
      std::fprintf(stderr, "run %d: lazy, span %s\n", run + 1, s.name.c_str());
      FusedProcess fused({reg.host()}, 60, fused_config);
      LazysnapdProcess daemon("log_level = \"warn\"\n" + fused.config(), "");
      Containerd c({.snapshotter_socket = daemon.socket(),
                    .cri = true,
                    .mirror_host = reg.host(),
                    .sandbox_image = reg.host() + "/pause:none"});
      CriImageClient(c.address()).Pull(images[s.name].ref);
      auto st = fused.Status();
      if (st["layers"].size() != 2)
        throw Error(ErrorCode::kInternal,
                    "lazysnap-fused serves " + std::to_string(st["layers"].size()) +
                        " layers, want 2 (a layer was unpacked natively?): " + st.dump());
      TempDir mnt("read-lazy");
      MountView(c, "lazysnap", mnt / "view");
      std::string path = mnt / ("view/" + std::string(kFile));
      DropCaches();
      s.cold.push_back(TimedRead(path, file_bytes));
      nlohmann::json after_cold = fused.Status();
      for (const auto& l : after_cold["layers"]) {
        if (l.value("layer", "") != file_layer) continue;
        s.fetched = l.value("bytes_fetched", uint64_t{0});
        s.requests = l.value("requests", uint64_t{0});
      }
      DropCaches();
      s.warm.push_back(TimedRead(path, file_bytes));
      nlohmann::json after_warm = fused.Status();
      for (const auto& l : after_warm["layers"]) {
        if (l.value("layer", "") == file_layer) s.status_after_warm = l;
      }
      ::umount2((mnt / "view").c_str(), MNT_DETACH);
    }
  }

  const double mb = static_cast<double>(file_bytes) / 1e6;
  double nc = Median(native_cold), nw = Median(native_warm);
  std::printf(
      "lazy read throughput: %llu MiB incompressible file (file layer %.1f MB gzip), %d runs, "
      "registry %s\n\n",
      static_cast<unsigned long long>(file_mb), static_cast<double>(file_layer_size) / 1e6, runs,
      reg.host().c_str());
  std::printf(
      "| read | span | time s (median of %d) | MB/s | time vs native 1st read | vs native 2nd "
      "read | layer bytes fetched MB | range requests |\n|---|---|---|---|---|---|---|---|\n",
      runs);
  std::printf(
      "| native overlayfs, 1st read (baseline) | - | %.3f | %.0f | 1.00x | %.2fx | - | - |\n", nc,
      mb / nc, nc / nw);
  std::printf(
      "| native overlayfs, 2nd read (baseline) | - | %.3f | %.0f | %.2fx | 1.00x | - | - |\n", nw,
      mb / nw, nw / nc);
  for (const auto& s : spans) {
    double c = Median(s.cold), w = Median(s.warm);
    std::printf(
        "| lazy cold (empty chunk cache) | %s | %.3f | %.0f | %.2fx | %.2fx | %.1f | %llu |\n",
        s.name.c_str(), c, mb / c, c / nc, c / nw, static_cast<double>(s.fetched) / 1e6,
        static_cast<unsigned long long>(s.requests));
    std::printf("| lazy warm (chunk cache) | %s | %.3f | %.0f | %.2fx | %.2fx | - | - |\n",
                s.name.c_str(), w, mb / w, w / nc, w / nw);
  }
  std::printf(
      "\n| span | lazysnap index s | index bytes (file layer) | %% of file layer | index bytes "
      "(image) | %% of layers |\n|---|---|---|---|---|---|\n");
  for (const auto& s : spans) {
    std::printf("| %s | %.2f | %llu | %.3f%% | %llu | %.3f%% |\n", s.name.c_str(), s.index_s,
                static_cast<unsigned long long>(s.file_layer_index_bytes), s.file_layer_index_pct,
                static_cast<unsigned long long>(s.index_bytes), s.index_pct);
  }
  std::printf(
      "\nratios: time / native time of the same run (targets: cold <= 2x, warm <= 1.2x); cold vs "
      "the native read right after the pull (1st), warm vs the repeated native read (2nd)\n");
  for (const auto& s : spans) {
    double c = Median(s.cold), w = Median(s.warm);
    std::printf("  span %-4s cold %.2fx %s (%.2fx vs native 2nd read)   warm %.2fx %s\n",
                s.name.c_str(), c / nc, c / nc <= 2.0 ? "(met)" : "(MISSED)", c / nw, w / nw,
                w / nw <= 1.2 ? "(met)" : "(MISSED)");
  }
  std::printf("\nper-run seconds:\n  native 1st:");
  for (double v : native_cold) std::printf(" %.3f", v);
  std::printf("\n  native 2nd:");
  for (double v : native_warm) std::printf(" %.3f", v);
  for (const auto& s : spans) {
    std::printf("\n  lazy %s cold:", s.name.c_str());
    for (double v : s.cold) std::printf(" %.3f", v);
    std::printf("\n  lazy %s warm:", s.name.c_str());
    for (double v : s.warm) std::printf(" %.3f", v);
  }
  std::printf(
      "\n\nlazysnap-fused status of the file layer after the last warm read (span %s): %s\n",
      spans.empty() ? "-" : spans.back().name.c_str(),
      spans.empty() ? "{}" : spans.back().status_after_warm.dump().c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return Run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lazy_read_bench: %s\n", e.what());
    return 1;
  }
}
