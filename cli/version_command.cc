#include <cstdio>

#include "cli/commands.h"

namespace lazysnap::cli {

int RunVersion(const std::vector<std::string>&) {
  std::printf("lazysnap %s\n", LAZYSNAP_VERSION);
  return 0;
}

}  // namespace lazysnap::cli
