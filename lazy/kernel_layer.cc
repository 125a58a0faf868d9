#include "lazy/kernel_layer.h"

#include <sys/mount.h>

#include <cerrno>
#include <cstring>

#include "common/error.h"

namespace lazysnap::lazy {

KernelLayerMount::KernelLayerMount(const std::string& mountpoint, const std::string& meta_image,
                                   const std::string& blob_dir,
                                   std::shared_ptr<const erofs::BlockSource> tar,
                                   const FuseLayerOptions& opts, const Logger& log)
    : mountpoint_(mountpoint) {
  if (blob_dir.find(',') != std::string::npos) {
    throw Error(ErrorCode::kInvalidArgument, "blob directory has a comma: " + blob_dir);
  }
  try {
    blob_ = std::make_unique<FuseBlobMount>(blob_dir, std::move(tar), opts, log);
  } catch (const std::exception& e) {
    throw Error(ErrorCode::kInternal, std::string("serving the layer's tar: ") + e.what());
  }
  if (opts.adopt) return;  // a kept connection: the EROFS mount over it is still in place
  // mount(2) itself, not mount(8): util-linux would put the image on a loop device, and then
  // `device=` must name block devices too.
  std::string data = "device=" + blob_->file();
  if (::mount(meta_image.c_str(), mountpoint.c_str(), "erofs", MS_RDONLY | MS_NODEV | MS_NOSUID,
              data.c_str()) != 0) {
    int err = errno;
    blob_.reset();
    // EINVAL/ENOTBLK/ENODEV/EOPNOTSUPP: this kernel's EROFS cannot do it (and never will).
    bool refused = err == EINVAL || err == ENOTBLK || err == ENODEV || err == EOPNOTSUPP;
    throw Error(refused ? ErrorCode::kFailedPrecondition : ErrorCode::kInternal,
                "the kernel's EROFS did not mount " + meta_image + " at " + mountpoint +
                    " with its blob on FUSE: " + std::strerror(err));
  }
}

KernelLayerMount::~KernelLayerMount() {
  if (::umount2(mountpoint_.c_str(), 0) != 0) ::umount2(mountpoint_.c_str(), MNT_DETACH);
  blob_.reset();  // a detached EROFS mount still holding the file: the blob detaches and aborts
}

}  // namespace lazysnap::lazy
