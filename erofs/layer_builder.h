// OCI layer (tar, tar+gzip, tar+zstd) -> EROFS image, by erofs-utils' own mkfs.erofs.
//
// Why a subprocess and not liberofs in-process: liberofs keeps its configuration and buffer
// state in globals (one build per process at a time, and an error path that exits), while the
// daemon builds layers concurrently and must survive hostile layers. mkfs.erofs reads the tar
// stream from a pipe; we decompress in-process in one pass that also hashes the uncompressed
// tar (the layer's diff ID), writes it out as the blob device for index-only images, and feeds
// any observer (the lazy path's checkpoints). Measured cost of the pipe: see bench/RESULTS.md.
//
// Reproducible: a fixed UUID and build time and sorted-free streaming give the same bytes for the
// same layer. OCI whiteouts become overlayfs whiteouts and opaque xattrs (mkfs --aufs), so images
// of consecutive layers stack under overlayfs.
#pragma once

#include <cstdint>
#include <string>

#include "erofs/layer_stream.h"

namespace lazysnap::erofs {

enum class ImageMode {
  kFull,       // file data inside the image
  kIndexOnly,  // metadata only; file data stays in the uncompressed tar (the blob device)
};

struct BuildOptions {
  std::string layer_path;  // tar, tar.gz or tar.zst; "-" for standard input
  std::string output_path;
  ImageMode mode = ImageMode::kFull;
  // Index-only: where the uncompressed tar is written (mount with device=<this>). Required.
  std::string blob_path;
  std::string compression;  // full images: "" (none), "lz4", "lz4hc" or "zstd"
  std::string uuid = "6c617a79-736e-6170-0000-000000000001";  // fixed for reproducibility
  ByteSink observer;  // optional: sees every uncompressed byte, in order
  uint64_t max_uncompressed = 64ull << 30;
  std::string mkfs_path;  // empty: the erofs-utils built with the project
};

struct BuildResult {
  StreamStats stream;
  std::string diff_id;  // "sha256:..." of the uncompressed tar
  uint64_t image_bytes = 0;
  uint64_t blob_bytes = 0;  // index-only: size of the blob device
};

// Builds the image at output_path (written to a temporary name, renamed when mkfs succeeded).
// Malformed layers throw Error(kInvalidArgument) with mkfs.erofs's own message; nothing is left
// at output_path or blob_path then.
BuildResult BuildLayerImage(const BuildOptions& opts);

// The mkfs.erofs / fsck.erofs this build uses.
std::string DefaultMkfsPath();
std::string DefaultFsckPath();

}  // namespace lazysnap::erofs
