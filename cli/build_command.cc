// `lazysnap build --tar LAYER[.gz|.zst] -o OUT.erofs [--index-only --blob OUT.tar]
//                 [-z lz4|lz4hc|zstd]`
// Turns one OCI layer into an EROFS image (erofs/layer_builder.h): full, or index-only with the
// uncompressed tar written to --blob (mount the image with device=<blob>).
#include <cstdio>

#include "cli/commands.h"
#include "common/error.h"
#include "erofs/layer_builder.h"

namespace lazysnap::cli {
namespace {

constexpr const char* kUsage =
    "usage: lazysnap build --tar LAYER[.gz|.zst] -o OUT.erofs [-z lz4|lz4hc|zstd]\n"
    "       lazysnap build --tar LAYER[.gz|.zst] -o OUT.erofs --index-only --blob OUT.tar\n";

}  // namespace

int RunBuild(const std::vector<std::string>& args) {
  erofs::BuildOptions o;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&]() -> const std::string* { return i + 1 < args.size() ? &args[++i] : nullptr; };
    const std::string* v = nullptr;
    if (a == "--index-only") {
      o.mode = erofs::ImageMode::kIndexOnly;
      continue;
    }
    if (a == "--tar" && (v = value())) {
      o.layer_path = *v;
    } else if (a == "-o" && (v = value())) {
      o.output_path = *v;
    } else if (a == "--blob" && (v = value())) {
      o.blob_path = *v;
    } else if (a == "-z" && (v = value())) {
      o.compression = *v;
    } else {
      std::fprintf(stderr, "lazysnap build: bad argument \"%s\"\n%s", a.c_str(), kUsage);
      return 2;
    }
  }
  if (o.layer_path.empty() || o.output_path.empty() ||
      (o.mode == erofs::ImageMode::kIndexOnly) != !o.blob_path.empty()) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  try {
    erofs::BuildResult r = erofs::BuildLayerImage(o);
    std::printf("built %s (%s, %llu bytes) from %s (%s, %llu bytes -> %llu uncompressed)\n",
                o.output_path.c_str(),
                o.mode == erofs::ImageMode::kIndexOnly ? "index-only" : "full",
                static_cast<unsigned long long>(r.image_bytes), o.layer_path.c_str(),
                erofs::CompressionName(r.stream.compression),
                static_cast<unsigned long long>(r.stream.compressed_bytes),
                static_cast<unsigned long long>(r.stream.uncompressed_bytes));
    std::printf("diff id %s\n", r.diff_id.c_str());
    if (!o.blob_path.empty()) {
      std::printf("blob device %s; mount: mount -t erofs -o ro,device=%s %s DIR\n",
                  o.blob_path.c_str(), o.blob_path.c_str(), o.output_path.c_str());
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lazysnap build: %s\n", e.what());
    return 1;
  }
}

}  // namespace lazysnap::cli
