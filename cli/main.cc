// `lazysnap`: the command-line tool for people. Each subcommand lives in its own file and is
// listed once in kCommands below.
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "cli/commands.h"

namespace {

struct Command {
  const char* name;
  const char* summary;
  int (*run)(const std::vector<std::string>& args);
};

constexpr Command kCommands[] = {
    {"build", "build an EROFS image (full or index-only) from an OCI layer tar[.gz|.zst]",
     lazysnap::cli::RunBuild},
    {"cache", "show or prune the local chunk cache", lazysnap::cli::RunCache},
    {"fetch", "show an image's manifest, fetch a layer or a byte range of it",
     lazysnap::cli::RunFetch},
    {"index", "index an image's layers for lazy pulls and push the index to its registry",
     lazysnap::cli::RunIndex},
    {"inspect", "show an EROFS image's tree, or a file's attributes and blob ranges",
     lazysnap::cli::RunInspect},
    {"mount", "mount an indexed image read-only and lazily (through lazysnap-fused)",
     lazysnap::cli::RunMount},
    {"prefetch", "write the start reads recorded for an image as a prefetch list (for index)",
     lazysnap::cli::RunPrefetch},
    {"status", "show what lazysnap-fused serves (per-layer bytes fetched/served, cache)",
     lazysnap::cli::RunStatus},
    {"umount", "unmount what `lazysnap mount` mounted", lazysnap::cli::RunUmount},
    {"version", "print the version", lazysnap::cli::RunVersion},
};

void Usage(FILE* out) {
  std::fprintf(out, "usage: lazysnap <command> [args]\n\ncommands:\n");
  for (const auto& c : kCommands) std::fprintf(out, "  %-10s %s\n", c.name, c.summary);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::strcmp(argv[1], "-h") == 0 || std::strcmp(argv[1], "--help") == 0) {
    Usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  std::vector<std::string> args(argv + 2, argv + argc);
  for (const auto& c : kCommands) {
    if (std::strcmp(argv[1], c.name) == 0) return c.run(args);
  }
  std::fprintf(stderr, "lazysnap: unknown command \"%s\"\n", argv[1]);
  Usage(stderr);
  return 2;
}
