#include "lazy/kernel_layer.h"

#include <sys/mount.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>
#include <sstream>

#include "common/error.h"
#include "common/file_util.h"

namespace lazysnap::lazy {
namespace {

std::set<std::string> ErofsBdis() {
  std::set<std::string> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/sys/class/bdi", ec)) {
    std::string name = e.path().filename().string();
    if (name.starts_with("erofs")) out.insert(name);
  }
  return out;
}

// Whether the EROFS mount at `mountpoint` reads its devices with direct I/O, as its super
// options in /proc/self/mountinfo say (the way to know it for a mount adopted from a dead server).
bool MountedWithDirectio(const std::string& mountpoint) {
  std::string info;
  try {
    info = ReadFile("/proc/self/mountinfo");
  } catch (const std::exception&) {
    return false;
  }
  bool found = false;
  size_t pos = 0;
  while (pos < info.size()) {
    size_t end = info.find('\n', pos);
    if (end == std::string::npos) end = info.size();
    std::string line = info.substr(pos, end - pos);
    pos = end + 1;
    // "id parent major:minor root mountpoint opts [optional...] - fstype source superopts"
    std::istringstream fields(line);
    std::string id, parent, dev, root, mp;
    fields >> id >> parent >> dev >> root >> mp;
    if (mp != mountpoint) continue;
    size_t dash = line.find(" - ");
    if (dash == std::string::npos) continue;
    std::istringstream tail(line.substr(dash + 3));
    std::string fstype, source, superopts;
    tail >> fstype >> source >> superopts;
    // The last mount on a mountpoint is the one that is seen.
    found = fstype == "erofs" && ("," + superopts + ",").find(",directio,") != std::string::npos;
  }
  return found;
}

}  // namespace

KernelLayerMount::KernelLayerMount(const std::string& mountpoint, const std::string& meta_image,
                                   const std::string& blob_dir,
                                   std::shared_ptr<const erofs::BlockSource> tar,
                                   const FuseLayerOptions& opts,
                                   const ErofsMountOptions& erofs_opts, const Logger& log)
    : mountpoint_(mountpoint) {
  if (blob_dir.find(',') != std::string::npos) {
    throw Error(ErrorCode::kInvalidArgument, "blob directory has a comma: " + blob_dir);
  }
  try {
    blob_ = std::make_unique<FuseBlobMount>(blob_dir, std::move(tar), opts, log);
  } catch (const std::exception& e) {
    throw Error(ErrorCode::kInternal, std::string("serving the layer's tar: ") + e.what());
  }
  if (opts.adopt) {  // a kept connection: the EROFS mount over it is still in place
    directio_ = MountedWithDirectio(mountpoint);
    return;
  }
  // mount(2) itself, not mount(8): util-linux would put the image on a loop device, and then
  // `device=` must name block devices too.
  std::string data = "device=" + blob_->file();
  auto mount = [&](const std::string& options) {
    return ::mount(meta_image.c_str(), mountpoint.c_str(), "erofs",
                   MS_RDONLY | MS_NODEV | MS_NOSUID, options.c_str()) == 0;
  };
  std::set<std::string> bdis_before;
  if (erofs_opts.read_ahead_kb) bdis_before = ErofsBdis();
  directio_ = erofs_opts.directio && mount(data + ",directio");
  if (!directio_ && !mount(data)) {
    int err = errno;
    blob_.reset();
    // EINVAL/ENOTBLK/ENODEV/EOPNOTSUPP: this kernel's EROFS cannot do it (and never will).
    bool refused = err == EINVAL || err == ENOTBLK || err == ENODEV || err == EOPNOTSUPP;
    throw Error(refused ? ErrorCode::kFailedPrecondition : ErrorCode::kInternal,
                "the kernel's EROFS did not mount " + meta_image + " at " + mountpoint +
                    " with its blob on FUSE: " + std::strerror(err));
  }
  if (directio_) directio_ = MountedWithDirectio(mountpoint);
  if (erofs_opts.directio && !directio_)
    log.Debug("this kernel's EROFS has no directio; the blob is read buffered");
  if (erofs_opts.read_ahead_kb) {
    // The mount's bdi is named "erofs-<n>", not after the mount: it is the one that appeared
    // while mounting. Another EROFS mount made at the same moment gets the same window.
    for (const std::string& bdi : ErofsBdis()) {
      if (!bdis_before.count(bdi)) {
        WriteKernelAttribute("/sys/class/bdi/" + bdi + "/read_ahead_kb",
                             std::to_string(erofs_opts.read_ahead_kb));
      }
    }
  }
}

KernelLayerMount::~KernelLayerMount() {
  if (::umount2(mountpoint_.c_str(), 0) != 0) ::umount2(mountpoint_.c_str(), MNT_DETACH);
  blob_.reset();  // a detached EROFS mount still holding the file: the blob detaches and aborts
}

}  // namespace lazysnap::lazy
