// The lazy index of one OCI layer: everything needed to serve the layer's files without
// downloading it, produced by one streaming pass over the layer (`lazysnap index`).
//
//  - an index-only EROFS image (metadata only; every file's data is a chunk reference into the
//    uncompressed tar, EROFS device 1),
//  - checkpoints every `span` bytes of uncompressed tar, so a read of tar bytes decompresses at
//    most one span: gzip (zran: compressed offset, bit offset, 32 KiB window) or zstd (frame
//    starts: a layer written as many frames, e.g. by pzstd or the seekable format),
//  - the sha256 of every `chunk_size` piece of the compressed blob, so every fetched byte is
//    verified before it is cached or served.
//
// Wire format ("lazysnap layer index v1"), the blob stored in the registry: a zstd frame whose
// content is, little-endian: magic "LZSNIDX1", u32 version (1), then length-prefixed fields (see
// layer_index.cc), then the sha256 of everything before it. Decoding is strict (every count and
// length bounded by what remains, the self-digest checked) and fuzzed: the blob comes from a
// registry and is untrusted even though its own digest was verified.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "erofs/layer_decoder.h"

namespace lazysnap::lazy {

inline constexpr const char* kIndexArtifactType = "application/vnd.lazysnap.index.v1";
inline constexpr const char* kLayerIndexMediaType = "application/vnd.lazysnap.layer-index.v1+zstd";
// The annotation on each index blob's descriptor naming the image layer it indexes.
inline constexpr const char* kIndexedLayerAnnotation = "io.lazysnap.layer.digest";

struct LayerIndex {
  std::string layer_digest;  // "sha256:<hex>" of the compressed blob
  uint64_t layer_size = 0;
  erofs::LayerCompression compression = erofs::LayerCompression::kGzip;
  uint64_t tar_size = 0;
  std::string tar_digest;  // the diff-id
  uint64_t span = 0;       // checkpoint spacing in uncompressed bytes
  uint32_t chunk_size = 0;
  std::vector<std::string> chunk_digests;  // "sha256:<hex>", ceil(layer_size / chunk_size)
  std::vector<erofs::Checkpoint> checkpoints;
  std::string erofs_image;
};

struct IndexBuildOptions {
  uint64_t span = 4ull << 20;         // see README "Choosing the checkpoint span"
  uint32_t chunk_size = 512u * 1024;  // must equal the chunk cache's chunk size
  std::string mkfs_path;              // empty: the configured mkfs.erofs
};

// Builds the index of the layer stored (compressed, as in the registry) at `layer_path`.
// gzip, uncompressed and multi-frame zstd layers can be indexed; a zstd frame holding more than
// 4 spans of tar (zstd has no restart points inside a frame: most zstd layers are one frame)
// throws Error(kFailedPrecondition), malformed layers the builder's errors.
LayerIndex BuildLayerIndex(const std::string& layer_path, const std::string& layer_digest,
                           const IndexBuildOptions& opts = {});

std::string EncodeLayerIndex(const LayerIndex& index);
// Error(kDataLoss) naming what is wrong for anything but a well-formed, self-consistent index.
LayerIndex DecodeLayerIndex(std::string_view blob);

}  // namespace lazysnap::lazy
