// What the guest kernel can mount, read from /proc/filesystems (plus /dev/fuse for FUSE): the
// agent checks before mounting anything so that a kernel built without a feature yields an error
// naming that feature instead of an errno from deep inside a half-done mount.
//
// A filesystem built as a module that is not loaded yet is not listed; the agent does not
// modprobe. Kata guest kernels build erofs, overlay and fuse in.
#pragma once

#include <string>

namespace lazysnap::guest {

struct KernelFeatures {
  bool overlay = false;
  bool erofs = false;
  bool fuse = false;  // "fuse" listed and the device node present
  std::string filesystems_path;
  std::string fuse_device;
};

// Error(kFailedPrecondition) when the list cannot be read.
KernelFeatures ProbeKernelFeatures(const std::string& filesystems_path = "/proc/filesystems",
                                   const std::string& fuse_device = "/dev/fuse");

}  // namespace lazysnap::guest
