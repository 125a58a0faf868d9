// One read-only FUSE filesystem (libfuse3 low-level API) serving a layer's tree from its
// index-only EROFS image and its file data through the image's device (a TarSource: bytes come
// from the registry on demand).
//
// The layer never changes, so the kernel may cache everything forever: entry and attribute
// timeouts are long, files open with keep_cache, directories with cache_readdir, and reads are
// large (the mount's readahead is raised). Overlay whiteouts (0:0 char devices) and
// trusted.overlay.* xattrs pass through, so overlayfs stacks these mounts like unpacked layers.
// Requests run on libfuse's multi-threaded loop: one slow registry read never blocks metadata.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "common/log.h"
#include "erofs/reader.h"
#include "lazy/fd_keeper.h"

namespace lazysnap::lazy {

struct FuseLayerOptions {
  unsigned max_threads = 8;
  double timeout_s = 86400;  // entry/attr cache lifetime
  std::string fsname = "lazysnap";
  unsigned read_ahead_kb = 4096;  // written to the mount's bdi; 0 leaves the kernel default
  bool splice_reads = true;       // reply with bytes spliced from the span store when there
  // Added to every inode number reported in stat: layers stacked under one overlay then never
  // show two different files with one st_ino (tools that spot hardlinks by inode number see
  // the same groups as on an unpacked image).
  uint64_t ino_base = 0;
  // Connection handover (lazy/fd_keeper.h): the session's fd and INIT request go to `keeper`,
  // so the connection outlives this process; `adopt` serves a kept connection instead of
  // mounting (the mount is still in place). Both filesystems here (the tree, and the one-file
  // tar of fuse_blob.h) keep no per-open state in the server, and their inode numbers come from
  // the image: what a dead server handed the kernel, a successor honours.
  FdKeeper* keeper = nullptr;
  std::shared_ptr<KeptFd> adopt;
};

struct FuseLayerStats {
  uint64_t lookups = 0;
  uint64_t reads = 0;
  uint64_t bytes_read = 0;  // file bytes handed to the kernel
  uint64_t errors = 0;      // requests answered with an error other than ENOENT/ENODATA
};

class FuseLayerMount {
 public:
  // Mounts at `mountpoint` (an existing directory) and starts serving. Throws Error naming the
  // mountpoint on failure (nothing stays mounted then).
  FuseLayerMount(const std::string& mountpoint, std::shared_ptr<const erofs::Reader> reader,
                 const FuseLayerOptions& opts, const Logger& log);
  // Unmounts and stops serving. If something still holds the filesystem (an overlay over it),
  // the mount is detached and the connection aborted so that no thread is left behind.
  ~FuseLayerMount();
  FuseLayerMount(const FuseLayerMount&) = delete;
  FuseLayerMount& operator=(const FuseLayerMount&) = delete;

  const std::string& mountpoint() const;
  FuseLayerStats Stats() const;

  struct Impl;  // the mount's state, shared with the request handlers (internal)

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace lazysnap::lazy
