// A read-only FUSE filesystem holding one file, `tar`: a layer's uncompressed tar served from a
// BlockSource (a TarSource: bytes come from the registry on demand). The kernel's EROFS driver
// mounts a layer's index-only image with this file as its blob device (kernel_layer.h), so the
// kernel answers every metadata request and only file data crosses FUSE.
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "common/log.h"
#include "erofs/reader.h"
#include "lazy/fuse_layer.h"

namespace lazysnap::lazy {

class FuseBlobMount {
 public:
  static constexpr const char* kFileName = "tar";

  // Mounts at `mountpoint` (an existing directory). Throws Error on failure.
  FuseBlobMount(const std::string& mountpoint, std::shared_ptr<const erofs::BlockSource> blob,
                const FuseLayerOptions& opts, const Logger& log);
  ~FuseBlobMount();
  FuseBlobMount(const FuseBlobMount&) = delete;
  FuseBlobMount& operator=(const FuseBlobMount&) = delete;

  std::string file() const { return mountpoint_ + "/" + kFileName; }
  FuseLayerStats Stats() const;

  struct Impl;  // shared with the request handlers (internal)

 private:
  std::string mountpoint_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lazysnap::lazy
