// `lazysnap prefetch <ref> [--socket SOCKET] [--output FILE]`
// Writes the prefetch list of an image (lazy/prefetch_list.h): the tar ranges lazysnap-fused
// recorded as its layers' start reads while a container of the image started on this node. Push
// it with the index (`lazysnap index <ref> --prefetch FILE`) and every node that pulls the image
// lazily fetches those ranges first.
#include <cstdio>
#include <map>

#include "cli/args.h"
#include "cli/commands.h"
#include "common/error.h"
#include "common/file_util.h"
#include "labels/reference.h"
#include "lazy/control.h"
#include "lazy/prefetch_list.h"

namespace lazysnap::cli {
namespace {

constexpr const char* kUsage =
    "usage: lazysnap prefetch <ref> [--socket SOCKET] [--output FILE]\n"
    "  writes the start reads lazysnap-fused recorded for the image's lazily mounted layers\n"
    "  (run a container of the image first) as a prefetch list for `lazysnap index --prefetch`;\n"
    "  to stdout without --output\n";

}  // namespace

int RunPrefetch(const std::vector<std::string>& args) {
  std::string socket = "/run/lazysnap/fused.sock", output, ref_text;
  ArgParser p("lazysnap prefetch", kUsage);
  p.Value("--socket", &socket).Value("-o|--output", &output).Positional(&ref_text);
  if (auto rc = p.Parse(args)) return *rc;
  if (ref_text.empty()) return p.UsageError();
  try {
    std::string want = labels::ParseReference(ref_text).Canonical();
    nlohmann::json reply =
        lazy::CallControl(socket, {{"op", "start-reads"}}, std::chrono::seconds(10));
    lazy::PrefetchList list;
    uint64_t bytes = 0;
    size_t ranges = 0;
    for (const auto& l : reply.at("layers")) {
      if (labels::ParseReference(l.at("image").get<std::string>()).Canonical() != want) continue;
      std::vector<lazy::TarRange> rs;
      for (const auto& r : l.at("ranges")) rs.push_back({r.at(0), r.at(1)});
      if (rs.empty()) continue;
      // A layer mounted more than once (two snapshots of it): the mount that read the most.
      auto& slot = list[l.at("layer").get<std::string>()];
      if (rs.size() > slot.size()) slot = std::move(rs);
    }
    for (const auto& [layer, rs] : list) {
      ranges += rs.size();
      for (const auto& r : rs) bytes += r.length;
    }
    if (list.empty()) {
      throw Error(ErrorCode::kNotFound, "lazysnap-fused recorded no reads of " + want +
                                            " (is a container of it running lazily here?)");
    }
    std::string enc = lazy::EncodePrefetchList(list);
    if (output.empty()) {
      std::printf("%s\n", enc.c_str());
    } else {
      WriteFileAtomic(output, enc + "\n", 0644);
    }
    std::fprintf(stderr, "prefetch list of %s: %zu layers, %zu ranges, %.1f MB of tar\n",
                 want.c_str(), list.size(), ranges, static_cast<double>(bytes) / 1e6);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lazysnap prefetch: %s\n", e.what());
    return 1;
  }
}

}  // namespace lazysnap::cli
