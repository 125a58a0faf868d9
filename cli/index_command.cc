// `lazysnap index <ref> [--span BYTES] [--chunk-size BYTES] [--prefetch FILE] [--hosts-dir DIR]
//                 [--plain-http] [--docker-config FILE]`
// Builds the lazy index of every layer of an image (each layer downloaded once, verified, and
// passed through the EROFS index builder with gzip or zstd checkpoints) and pushes the indexes to
// the image's repository as an OCI artifact whose subject is the image manifest. lazysnap-fused
// then finds it through the referrers API or the referrers tag schema. zstd layers written as one
// big frame are skipped (they stay native): containers still start, with those layers unpacked.
// --prefetch adds the image's prefetch list (from `lazysnap prefetch`) to the artifact.
#include <chrono>
#include <cstdio>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/progress.h"
#include "common/error.h"
#include "common/file_util.h"
#include "common/temp_dir.h"
#include "fetcher/registry_client.h"
#include "labels/reference.h"
#include "lazy/index_artifact.h"
#include "lazy/layer_index.h"
#include "lazy/prefetch_list.h"

namespace lazysnap::cli {
namespace {

constexpr const char* kUsage =
    "usage: lazysnap index <ref> [--span BYTES] [--chunk-size BYTES] [--prefetch FILE]\n"
    "                      [--hosts-dir DIR] [--plain-http] [--docker-config FILE]\n"
    "  --span BYTES        uncompressed bytes between gzip checkpoints (default 4 MiB)\n"
    "  --chunk-size BYTES  verification chunk; must equal lazysnap-fused's cache chunk size\n"
    "                      (default 524288)\n"
    "  --prefetch FILE     the image's prefetch list (`lazysnap prefetch`), fetched first by\n"
    "                      every node that mounts its layers\n";

}  // namespace

int RunIndex(const std::vector<std::string>& args) {
  std::string ref_text;
  fetcher::RegistryOptions opts;
  lazy::IndexBuildOptions build;
  std::string prefetch_path, span, chunk_size;
  ArgParser p("lazysnap index", kUsage);
  p.Value("--span", &span).Value("--chunk-size", &chunk_size).Value("--prefetch", &prefetch_path);
  RegistryFlags(p, &opts).Positional(&ref_text);
  if (auto rc = p.Parse(args)) return *rc;
  if (ref_text.empty()) return p.UsageError();
  try {
    if (!span.empty()) build.span = ParseSize(span);
    if (!chunk_size.empty()) {
      uint64_t c = ParseSize(chunk_size);
      if (c > UINT32_MAX) throw Error(ErrorCode::kInvalidArgument, "--chunk-size too large");
      build.chunk_size = static_cast<uint32_t>(c);
    }
    auto ref = labels::ParseReference(ref_text);
    fetcher::RegistryClient client(ref, opts);
    auto img = client.Resolve(ref);
    std::string prefetch;  // re-encoded: checked, and in the canonical form
    if (!prefetch_path.empty()) {
      lazy::PrefetchList list = lazy::ParsePrefetchList(ReadFile(prefetch_path));
      for (const auto& entry : list) {
        bool ours = false;
        for (const auto& l : img.manifest.layers) ours = ours || l.digest == entry.first;
        if (!ours) {
          throw Error(ErrorCode::kInvalidArgument, prefetch_path + " names layer " + entry.first +
                                                       ", which is not a layer of " +
                                                       ref.Canonical());
        }
      }
      prefetch = lazy::EncodePrefetchList(list);
    }
    TempDir tmp("lazysnap-index");
    std::vector<std::pair<std::string, std::string>> indexes;
    uint64_t layer_bytes = 0, index_bytes = 0;
    const size_t n = img.manifest.layers.size();
    for (size_t i = 0; i < n; ++i) {
      const auto& l = img.manifest.layers[i];
      auto t0 = std::chrono::steady_clock::now();
      std::string path = tmp / "layer";
      Progress progress(l.size, "layer " + std::to_string(i + 1) + "/" + std::to_string(n) + " ");
      client.FetchBlobToFile(l.digest, path, l.size, [&](size_t len) { progress.Add(len); });
      progress.Finish();
      try {
        lazy::LayerIndex idx = lazy::BuildLayerIndex(path, l.digest, build);
        std::string enc = lazy::EncodeLayerIndex(idx);
        double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        std::printf(
            "layer %zu/%zu %s  %llu bytes -> index %llu bytes (%.2f%%), %zu spans, %.1f s\n", i + 1,
            n, l.digest.c_str(), static_cast<unsigned long long>(l.size),
            static_cast<unsigned long long>(enc.size()),
            100.0 * static_cast<double>(enc.size()) / static_cast<double>(l.size ? l.size : 1),
            idx.checkpoints.size(), secs);
        std::fflush(stdout);
        layer_bytes += l.size;
        index_bytes += enc.size();
        indexes.emplace_back(l.digest, std::move(enc));
      } catch (const Error& e) {
        if (e.code() != ErrorCode::kFailedPrecondition) throw;
        std::printf("layer %zu/%zu %s  not indexed: %s\n", i + 1, n, l.digest.c_str(), e.what());
      }
    }
    if (indexes.empty()) throw Error(ErrorCode::kFailedPrecondition, "no layer could be indexed");
    std::string digest = lazy::PushIndexArtifact(client, img, indexes, prefetch);
    std::printf(
        "pushed index artifact %s for %s (manifest %s): %zu of %zu layers, %llu bytes "
        "(%.2f%% of the layers)\n",
        digest.c_str(), ref.Canonical().c_str(), img.manifest_digest.c_str(), indexes.size(), n,
        static_cast<unsigned long long>(index_bytes),
        100.0 * static_cast<double>(index_bytes) /
            static_cast<double>(layer_bytes ? layer_bytes : 1));
    if (!prefetch.empty()) std::printf("with the prefetch list of %s\n", prefetch_path.c_str());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lazysnap index: %s\n", e.what());
    const auto* le = dynamic_cast<const Error*>(&e);
    return le && le->code() == ErrorCode::kInvalidArgument ? 2 : 1;
  }
}

}  // namespace lazysnap::cli
