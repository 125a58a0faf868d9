// `lazysnap fetch <ref> [--layer N [--range A-B]] [-o FILE] [--hosts-dir DIR] [--plain-http]
//                 [--docker-config FILE]`
// Without --layer: resolves the image and prints its manifest (layers with digest, size, type).
// With --layer N: fetches layer N (0 = bottom), verified against its digest before FILE appears
// (written to FILE.partial, renamed on success); with --range, bytes A..B inclusive of it.
#include <unistd.h>

#include <chrono>
#include <cstdio>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/progress.h"
#include "common/error.h"
#include "common/file_util.h"
#include "fetcher/registry_client.h"
#include "labels/reference.h"

namespace lazysnap::cli {
namespace {

constexpr const char* kUsage =
    "usage: lazysnap fetch <ref> [--layer N [--range A-B]] [-o FILE] [--hosts-dir DIR]\n"
    "                      [--plain-http] [--docker-config FILE]\n";

}  // namespace

int RunFetch(const std::vector<std::string>& args) {
  std::string ref_text, out, range, layer_text;
  fetcher::RegistryOptions opts;
  ArgParser p("lazysnap fetch", kUsage);
  p.Value("--layer", &layer_text).Value("--range", &range).Value("-o|--output", &out);
  RegistryFlags(p, &opts).Positional(&ref_text);
  if (auto rc = p.Parse(args)) return *rc;
  int layer = -1;
  if (!layer_text.empty()) {
    size_t end = 0;
    try {
      layer = std::stoi(layer_text, &end);
    } catch (const std::exception&) {
      end = 0;
    }
    if (end != layer_text.size() || layer < 0)
      return p.UsageError("--layer wants a layer number, got \"" + layer_text + "\"");
  }
  if (ref_text.empty() || (!range.empty() && layer < 0)) return p.UsageError();
  try {
    auto ref = labels::ParseReference(ref_text);
    fetcher::RegistryClient client(ref, opts);
    auto img = client.Resolve(ref);
    if (layer < 0) {
      std::printf("%s\nmanifest %s (%s)\nconfig   %s %llu bytes\n", ref.Canonical().c_str(),
                  img.manifest_digest.c_str(), img.manifest.media_type.c_str(),
                  img.manifest.config.digest.c_str(),
                  static_cast<unsigned long long>(img.manifest.config.size));
      for (size_t i = 0; i < img.manifest.layers.size(); ++i) {
        const auto& l = img.manifest.layers[i];
        std::printf("layer %-3zu %s %12llu  %s\n", i, l.digest.c_str(),
                    static_cast<unsigned long long>(l.size), l.media_type.c_str());
      }
      return 0;
    }
    if (static_cast<size_t>(layer) >= img.manifest.layers.size()) {
      throw Error(ErrorCode::kInvalidArgument,
                  "image has " + std::to_string(img.manifest.layers.size()) + " layers; --layer " +
                      std::to_string(layer) + " does not exist");
    }
    const auto& l = img.manifest.layers[static_cast<size_t>(layer)];
    if (!range.empty()) {
      auto dash = range.find('-');
      if (dash == std::string::npos)
        throw Error(ErrorCode::kInvalidArgument, "--range wants A-B, got " + range);
      uint64_t a = std::stoull(range.substr(0, dash)), b = std::stoull(range.substr(dash + 1));
      if (b < a || b >= l.size) {
        throw Error(ErrorCode::kInvalidArgument, "--range " + range + " is outside the layer (0-" +
                                                     std::to_string(l.size - 1) + ")");
      }
      std::string bytes = client.ReadRange(l.digest, a, b - a + 1);
      if (out.empty() || out == "-") {
        fwrite(bytes.data(), 1, bytes.size(), stdout);
      } else {
        WriteFileAtomic(out, bytes);
      }
      return 0;
    }
    if (out.empty() || out == "-") {
      if (::isatty(1))
        throw Error(ErrorCode::kInvalidArgument,
                    "refusing to write a layer to a terminal; use -o FILE");
      out = "/dev/stdout";
    }
    bool to_file = out != "/dev/stdout";
    std::string tmp = to_file ? out + ".partial" : out;
    Progress progress(l.size);
    client.FetchBlobToFile(l.digest, tmp, l.size, [&](size_t len) { progress.Add(len); });
    progress.Finish();
    if (to_file && std::rename(tmp.c_str(), out.c_str()) != 0) ThrowErrno("rename " + tmp);
    std::fprintf(stderr, "%s: %llu bytes, verified\n", l.digest.c_str(),
                 static_cast<unsigned long long>(l.size));
    return 0;
  } catch (const Error& e) {
    std::fprintf(stderr, "lazysnap fetch: %s\n", e.what());
    return e.code() == ErrorCode::kInvalidArgument ? 2 : 1;
  }
}

}  // namespace lazysnap::cli
