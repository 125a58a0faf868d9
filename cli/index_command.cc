// `lazysnap index <ref> [--span BYTES] [--chunk-size BYTES] [--prefetch FILE] [--parallel N]
//                 [--hosts-dir DIR] [--plain-http] [--docker-config FILE]`
// Builds the lazy index of every layer of an image (each layer downloaded once, verified, and
// passed through the EROFS index builder with gzip or zstd checkpoints) and pushes the indexes to
// the image's repository as an OCI artifact whose subject is the image manifest. lazysnap-fused
// then finds it through the referrers API or the referrers tag schema. zstd layers written as one
// big frame are skipped (they stay native): containers still start, with those layers unpacked.
// --prefetch adds the image's prefetch list (from `lazysnap prefetch`) to the artifact.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <mutex>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/progress.h"
#include "common/error.h"
#include "common/file_util.h"
#include "common/parallel.h"
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
    "                      [--parallel N] [--hosts-dir DIR] [--plain-http] [--docker-config FILE]\n"
    "  --span BYTES        uncompressed bytes between gzip checkpoints (default 4 MiB)\n"
    "  --chunk-size BYTES  verification chunk; must equal lazysnap-fused's cache chunk size\n"
    "                      (default 524288)\n"
    "  --prefetch FILE     the image's prefetch list (`lazysnap prefetch`), fetched first by\n"
    "                      every node that mounts its layers\n"
    "  --parallel N        layers fetched and indexed at once (default 3)\n";

// Fetches layer i of n (verified) into `path`, builds its index and prints a line for it;
// returns the encoded index, or "" when the layer cannot be indexed (a zstd layer in one frame:
// it stays native).
std::string IndexOneLayer(const labels::Reference& ref, const fetcher::RegistryOptions& opts,
                          const fetcher::Descriptor& l, const lazy::IndexBuildOptions& build,
                          const std::string& path, size_t i, size_t n,
                          const std::function<void(size_t)>& progress, std::mutex& out_mu) {
  auto t0 = std::chrono::steady_clock::now();
  fetcher::RegistryClient client(ref, opts);  // one per thread (not thread-safe)
  client.FetchBlobToFile(l.digest, path, l.size, progress);
  UnlinkOnExit remove_layer(path);
  std::string line, enc;
  try {
    lazy::LayerIndex idx = lazy::BuildLayerIndex(path, l.digest, build);
    enc = lazy::EncodeLayerIndex(idx);
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    char buf[512];
    std::snprintf(
        buf, sizeof buf,
        "layer %zu/%zu %s  %llu bytes -> index %llu bytes (%.2f%%), %zu spans, %.1f s\n", i + 1, n,
        l.digest.c_str(), static_cast<unsigned long long>(l.size),
        static_cast<unsigned long long>(enc.size()),
        100.0 * static_cast<double>(enc.size()) / static_cast<double>(l.size ? l.size : 1),
        idx.checkpoints.size(), secs);
    line = buf;
  } catch (const Error& e) {
    if (e.code() != ErrorCode::kFailedPrecondition) throw;
    line = "layer " + std::to_string(i + 1) + "/" + std::to_string(n) + " " + l.digest +
           "  not indexed: " + e.what() + "\n";
  }
  std::lock_guard lock(out_mu);
  if (::isatty(2) == 1) std::fputs("\r\033[K", stderr);  // under the progress bar's line
  std::fputs(line.c_str(), stdout);
  std::fflush(stdout);
  return enc;
}

}  // namespace

int RunIndex(const std::vector<std::string>& args) {
  std::string ref_text;
  fetcher::RegistryOptions opts;
  lazy::IndexBuildOptions build;
  std::string prefetch_path, span, chunk_size, parallel;
  ArgParser p("lazysnap index", kUsage);
  p.Value("--span", &span)
      .Value("--chunk-size", &chunk_size)
      .Value("--prefetch", &prefetch_path)
      .Value("--parallel", &parallel);
  RegistryFlags(p, &opts).Positional(&ref_text);
  if (auto rc = p.Parse(args)) return *rc;
  if (ref_text.empty()) return p.UsageError();
  unsigned workers = 3;
  if (!parallel.empty()) {
    char* end = nullptr;
    long v = std::strtol(parallel.c_str(), &end, 10);
    if (*end != '\0' || v < 1 || v > 64)
      return p.UsageError("--parallel wants a number from 1 to 64, not \"" + parallel + "\"");
    workers = static_cast<unsigned>(v);
  }
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
    const size_t n = img.manifest.layers.size();
    uint64_t total = 0;
    for (const auto& l : img.manifest.layers) total += l.size;
    // Layers are fetched and indexed `workers` at a time (each keeps about a core busy with
    // inflate); one progress bar counts them all.
    struct Layer {
      std::string index;  // encoded; empty: not indexed
      std::exception_ptr error;
    };
    std::vector<Layer> out(n);
    std::mutex mu;  // the progress bar and stdout
    Progress progress(total, n > 1 ? std::to_string(n) + " layers " : "layer ");
    RunInParallel(n, workers, [&](size_t i) {
      const auto& l = img.manifest.layers[i];
      try {
        out[i].index = IndexOneLayer(
            ref, opts, l, build, tmp / std::to_string(i), i, n,
            [&](size_t len) {
              std::lock_guard lock(mu);
              progress.Add(len);
            },
            mu);
      } catch (...) {
        out[i].error = std::current_exception();
        return false;
      }
      return true;
    });
    progress.Finish();
    for (const auto& l : out) {
      if (l.error) std::rethrow_exception(l.error);
    }
    std::vector<std::pair<std::string, std::string>> indexes;
    uint64_t layer_bytes = 0, index_bytes = 0;
    for (size_t i = 0; i < n; ++i) {
      if (out[i].index.empty()) continue;
      layer_bytes += img.manifest.layers[i].size;
      index_bytes += out[i].index.size();
      indexes.emplace_back(img.manifest.layers[i].digest, std::move(out[i].index));
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
