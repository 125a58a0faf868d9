// Layer -> EROFS build throughput and image sizes, with the classic path measured in the same run:
//   full (lazysnap)        : BuildLayerImage, tar.gz -> full EROFS (our inflate, piped mkfs)
//   index-only (lazysnap)  : BuildLayerImage, tar.gz -> index-only EROFS + uncompressed tar blob
//   mkfs --ungzip (ref)    : mkfs.erofs --tar=f --ungzip reading the tar.gz itself (the pipe's
//   cost) classic (baseline)     : tar -xzf into a directory, then mkfs.erofs from the directory
// The layer is a tar.gz of real files from this machine (default /usr/lib/python3.11 and
// /usr/bin, ~500 MiB) or --layer FILE.
// Usage: erofs_build_bench [--layer FILE.tar.gz] [--runs N]
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "common/file_util.h"
#include "common/process.h"
#include "common/temp_dir.h"
#include "erofs/layer_builder.h"

using namespace lazysnap;
using Clock = std::chrono::steady_clock;

namespace {

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

uint64_t FileSize(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
}

void DropCaches() {
  RunCommand({"sh", "-c", "sync; echo 3 > /proc/sys/vm/drop_caches"});
}

}  // namespace

int main(int argc, char** argv) {
  std::string layer;
  int runs = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--layer") layer = argv[i + 1];
    if (a == "--runs") runs = std::stoi(argv[i + 1]);
  }
  TempDir dir("erofs-bench");
  if (layer.empty()) {
    layer = dir / "layer.tar.gz";
    RunCommandOrThrow({"tar", "-czf", layer, "-C", "/", "usr/lib/python3.11", "usr/bin"},
                      std::chrono::minutes(20));
  }
  const std::string mkfs = erofs::DefaultMkfsPath();
  struct Row {
    const char* name;
    std::vector<double> secs;
    uint64_t image = 0, extra = 0;
  };
  std::vector<Row> rows = {{"full (lazysnap build)", {}},
                           {"index-only (lazysnap build)", {}},
                           {"mkfs.erofs --tar=f --ungzip (reference)", {}},
                           {"tar -xzf + mkfs.erofs DIR (baseline)", {}}};
  uint64_t uncompressed = 0;
  for (int r = 0; r < runs; ++r) {
    for (size_t k = 0; k < rows.size(); ++k) {
      std::string out = dir / ("out" + std::to_string(k) + ".erofs");
      std::string blob = dir / "blob.tar";
      std::string tree = dir / "tree";
      ::unlink(out.c_str());
      DropCaches();
      auto t0 = Clock::now();
      if (k < 2) {
        erofs::BuildOptions o;
        o.layer_path = layer;
        o.output_path = out;
        if (k == 1) {
          o.mode = erofs::ImageMode::kIndexOnly;
          o.blob_path = blob;
        }
        auto res = erofs::BuildLayerImage(o);
        uncompressed = res.stream.uncompressed_bytes;
        if (k == 1) rows[k].extra = res.blob_bytes;
      } else if (k == 2) {
        RunCommandOrThrow(
            {"sh", "-c",
             mkfs + " --quiet --tar=f --aufs --ungzip -T0 --mkfs-time " + out + " < " + layer},
            std::chrono::minutes(20));
      } else {
        MakeDirs(tree);
        RunCommandOrThrow({"tar", "-xzf", layer, "-C", tree}, std::chrono::minutes(20));
        RunCommandOrThrow({mkfs, "--quiet", "-T0", "--mkfs-time", out, tree},
                          std::chrono::minutes(20));
      }
      rows[k].secs.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
      rows[k].image = FileSize(out);
      if (k == 3) RunCommandOrThrow({"rm", "-rf", tree});
    }
  }
  double in_mb = static_cast<double>(FileSize(layer)) / 1e6;
  double un_mb = static_cast<double>(uncompressed) / 1e6;
  std::printf("layer %s: %.1f MB gzip, %.1f MB uncompressed; median of %d, page cache dropped\n\n",
              layer.c_str(), in_mb, un_mb, runs);
  std::printf("| path | time (s) | MB/s (uncompressed) | image MB | vs baseline time |\n");
  std::printf("|---|---|---|---|---|\n");
  double base = Median(rows[3].secs);
  for (const auto& row : rows) {
    double t = Median(row.secs);
    std::printf(
        "| %s | %.2f | %.0f | %.1f%s | %.2fx |\n", row.name, t, un_mb / t,
        static_cast<double>(row.image) / 1e6,
        row.extra ? (" (+ " + std::to_string(row.extra / 1000000) + " MB tar blob)").c_str() : "",
        t / base);
  }
  return 0;
}
