// Layer -> EROFS build benchmark, all in one run on the same layer:
//   lazysnap full / full+lz4 / index-only  (erofs::BuildLayer: our zlib inflate + pipe to mkfs)
//   mkfs.erofs --tar=f --ungzip            (mkfs.erofs decompressing by itself, no pipe)
//   baseline: tar -xzf to a directory, then mkfs.erofs from that directory
// and the image sizes. Ratios are baseline time / mode time (higher = faster than baseline).
// Usage: erofs_build_bench [--layer L.tar.gz] [--runs N]
//   without --layer: a rootfs-like layer is made from /bin/busybox and parts of /usr/share.
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/process.h"
#include "common/temp_dir.h"
#include "erofs/layer_builder.h"

using Clock = std::chrono::steady_clock;
using namespace lazysnap;

namespace {

uint64_t FileSize(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
}

uint64_t DuBytes(const std::string& dir) {
  std::string out = RunCommandOrThrow({"du", "-sb", dir});
  return std::stoull(out);
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

struct Row {
  std::string name;
  std::vector<double> secs;
  uint64_t bytes = 0;  // image (+ blob) bytes on disk
  std::string note;
};

void Sync() {
  RunCommandOrThrow({"sync"});
}

}  // namespace

int main(int argc, char** argv) {
  std::string layer;
  int runs = 3;
  for (int i = 1; i < argc; ++i) {
    if (!strcmp(argv[i], "--layer") && i + 1 < argc) {
      layer = argv[++i];
    } else if (!strcmp(argv[i], "--runs") && i + 1 < argc) {
      runs = std::max(1, atoi(argv[++i]));
    } else {
      fprintf(stderr, "usage: erofs_build_bench [--layer L.tar.gz] [--runs N]\n");
      return 2;
    }
  }
  try {
    TempDir tmp("erofs-bench");
    if (layer.empty()) {
      layer = tmp / "layer.tar.gz";
      RunCommandOrThrow(
          {"/bin/sh", "-c",
           "tar --format=posix -C / -cf - bin/busybox usr/share/doc "
           "usr/share/zoneinfo usr/share/common-licenses 2>/dev/null | gzip -6 -n > " +
               layer});
    }
    const std::string mkfs = MKFS_EROFS;
    const std::vector<std::string> fixed = {"--aufs", "-T0", "--mkfs-time",
                                            std::string("-U") + erofs::kImageUuid, "--quiet"};
    uint64_t tar_bytes = 0;
    std::vector<Row> rows = {{"lazysnap full"},
                             {"lazysnap full lz4hc"},
                             {"lazysnap index-only (+tar blob)"},
                             {"mkfs.erofs --tar=f --ungzip"},
                             {"baseline tar -xzf + mkfs.erofs dir"}};
    for (int run = 0; run < runs; ++run) {
      auto timed = [&](Row& row, const std::function<void()>& fn) {
        Sync();
        auto t0 = Clock::now();
        fn();
        Sync();
        row.secs.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
      };
      timed(rows[0], [&] {
        auto r = erofs::BuildLayerFromFile(layer, tmp / "full.erofs");
        tar_bytes = r.tar_size;
      });
      rows[0].bytes = FileSize(tmp / "full.erofs");
      timed(rows[1], [&] {
        erofs::BuildOptions o;
        o.compression = erofs::DataCompression::kLz4;
        erofs::BuildLayerFromFile(layer, tmp / "lz4.erofs", o);
      });
      rows[1].bytes = FileSize(tmp / "lz4.erofs");
      timed(rows[2], [&] {
        erofs::BuildOptions o;
        o.mode = erofs::ImageMode::kIndexOnly;
        o.blob_path = tmp / "blob.tar";
        erofs::BuildLayerFromFile(layer, tmp / "idx.erofs", o);
      });
      rows[2].bytes = FileSize(tmp / "idx.erofs") + FileSize(tmp / "blob.tar");
      rows[2].note = "meta " + std::to_string(FileSize(tmp / "idx.erofs")) + " B";
      timed(rows[3], [&] {
        std::vector<std::string> argv = {mkfs, "--tar=f", "--ungzip"};
        argv.insert(argv.end(), fixed.begin(), fixed.end());
        argv.push_back(tmp / "ungzip.erofs");
        SpawnOptions so;
        so.stdin_path = layer;
        auto p = Subprocess::Spawn(argv, so);
        if (p.Wait() != 0) throw Error(ErrorCode::kInternal, "mkfs --ungzip failed");
      });
      rows[3].bytes = FileSize(tmp / "ungzip.erofs");
      timed(rows[4], [&] {
        RunCommandOrThrow({"rm", "-rf", tmp / "x"});
        RunCommandOrThrow({"mkdir", tmp / "x"});
        RunCommandOrThrow({"tar", "--numeric-owner", "-xpzf", layer, "-C", tmp / "x"});
        std::vector<std::string> argv = {mkfs};
        argv.insert(argv.end(), fixed.begin() + 1, fixed.end());
        argv.push_back(tmp / "dir.erofs");
        argv.push_back(tmp / "x");
        RunCommandOrThrow(argv);
      });
      rows[4].bytes = FileSize(tmp / "dir.erofs");
      rows[4].note = "+ extracted dir " + std::to_string(DuBytes(tmp / "x")) + " B";
    }
    double base = Median(rows[4].secs);
    printf("layer %s: %llu bytes gzip, %llu bytes tar; %d run(s), median\n", layer.c_str(),
           static_cast<unsigned long long>(FileSize(layer)),
           static_cast<unsigned long long>(tar_bytes), runs);
    printf("| mode | time s (median) | tar MB/s | output MB | speedup vs baseline | note |\n");
    printf("|---|---|---|---|---|---|\n");
    for (const Row& r : rows) {
      double s = Median(r.secs);
      printf("| %s | %.2f | %.0f | %.1f | %.2fx | %s |\n", r.name.c_str(), s,
             static_cast<double>(tar_bytes) / 1e6 / s, static_cast<double>(r.bytes) / 1e6, base / s,
             r.note.c_str());
    }
    return 0;
  } catch (const std::exception& e) {
    fprintf(stderr, "erofs_build_bench: %s\n", e.what());
    return 1;
  }
}
