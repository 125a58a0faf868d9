// A layer served by the kernel: its index-only EROFS image (a local file, the metadata) mounted
// by the kernel's EROFS driver, file-backed, with the layer's uncompressed tar as the blob device
// -- the one file of a FuseBlobMount, so file data is still fetched on demand. The kernel answers
// lookups, stat, readdir and xattrs without a FUSE round trip (measured: `find` 3-4x faster than
// the FUSE tree, bench/RESULTS.md). Needs a kernel whose EROFS takes a FUSE file as a file-backed
// device (Linux 6.12+); the constructor throws otherwise and the caller serves the tree instead.
#pragma once

#include <memory>
#include <string>

#include "common/log.h"
#include "erofs/reader.h"
#include "lazy/fuse_blob.h"
#include "lazy/fuse_layer.h"

namespace lazysnap::lazy {

struct ErofsMountOptions {
  // EROFS reads the blob with direct I/O (Linux 6.13+; buffered where the kernel lacks it): the
  // layer's bytes are cached once, in EROFS's page cache, instead of also in the blob file's.
  // Measured (bench/RESULTS.md round 5): warm sequential reads 1.0-1.3x of native instead of
  // 1.3-1.5x, but start-heavy containers reach their first output 10-35% later (buffered, the
  // blob file's read-ahead brings the neighbouring files of the tar in too), hence off.
  bool directio = false;
  // The EROFS mount's read-ahead (its bdi); with direct I/O the size of each read sent to the
  // blob server. 0 leaves the kernel's default (128 KiB: four times the round trips).
  unsigned read_ahead_kb = 512;
};

class KernelLayerMount {
 public:
  // Mounts the blob at `blob_dir` (an existing, comma-free directory), then `meta_image` at
  // `mountpoint`. Throws Error (nothing stays mounted then): kFailedPrecondition when the kernel
  // refuses such a mount at all, kInternal for anything else. With opts.adopt, both mounts are
  // those of a dead server, whose kept blob connection this one serves (lazy/fd_keeper.h).
  KernelLayerMount(const std::string& mountpoint, const std::string& meta_image,
                   const std::string& blob_dir, std::shared_ptr<const erofs::BlockSource> tar,
                   const FuseLayerOptions& opts, const ErofsMountOptions& erofs_opts,
                   const Logger& log);
  // Unmounts the EROFS mount (detached when busy), then the blob.
  ~KernelLayerMount();
  KernelLayerMount(const KernelLayerMount&) = delete;
  KernelLayerMount& operator=(const KernelLayerMount&) = delete;

  FuseLayerStats Stats() const { return blob_->Stats(); }
  bool directio() const { return directio_; }  // as the kernel's mount table says

 private:
  std::string mountpoint_;
  std::unique_ptr<FuseBlobMount> blob_;
  bool directio_ = false;
};

}  // namespace lazysnap::lazy
