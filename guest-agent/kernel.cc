#include "guest-agent/kernel.h"

#include <sys/stat.h>

#include <fstream>
#include <sstream>

#include "common/error.h"

namespace lazysnap::guest {

KernelFeatures ProbeKernelFeatures(const std::string& filesystems_path,
                                   const std::string& fuse_device) {
  KernelFeatures f;
  f.filesystems_path = filesystems_path;
  f.fuse_device = fuse_device;
  std::ifstream in(filesystems_path);
  if (!in) {
    throw Error(ErrorCode::kFailedPrecondition,
                "cannot read " + filesystems_path + " (is /proc mounted?)");
  }
  std::string line;
  while (std::getline(in, line)) {
    // "nodev\toverlay" or "\terofs": the name is the last field.
    std::istringstream fields(line);
    std::string word, name;
    while (fields >> word) name = word;
    if (name == "overlay") f.overlay = true;
    if (name == "erofs") f.erofs = true;
    if (name == "fuse") f.fuse = true;
  }
  struct stat st;
  if (f.fuse && (::stat(fuse_device.c_str(), &st) != 0 || !S_ISCHR(st.st_mode))) f.fuse = false;
  return f;
}

}  // namespace lazysnap::guest
