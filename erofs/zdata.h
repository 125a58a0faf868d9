// Reading compressed EROFS files (full images built with lz4/lz4hc or zstd): the logical-cluster
// index formats (compacted 4B/2B and legacy full 8B indexes, incl. big pclusters), extent lookup
// as the kernel's zmap.c does it, and decompression of the physical clusters. ztailpacking,
// fragments (packed inode) and lzma/deflate are refused with Error(kFailedPrecondition); mkfs.erofs
// uses none of them unless asked to (-E ztailpacking/fragments, -z lzma/deflate).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace lazysnap::erofs::internal {

struct ZContext {
  unsigned blkbits = 12;
  bool zero_padding =
      false;  // EROFS_FEATURE_INCOMPAT_ZERO_PADDING: data right-aligned in pclusters
  // Reads metadata-image bytes, bounds-checked (throws Error(kDataLoss) past the end).
  std::function<void(uint64_t offset, size_t len, void* buf)> read;
};

struct ZInode {
  uint64_t nid = 0;
  uint64_t tail = 0;  // byte offset just past the on-disk inode and its inline xattrs
  uint64_t size = 0;
  bool legacy = false;  // EROFS_INODE_COMPRESSED_FULL (8-byte indexes) vs compacted
};

struct ZExtent {
  uint64_t la = 0, llen = 0;  // logical (file) range the cluster decodes to
  uint64_t pa = 0, plen = 0;  // physical cluster in the image
};

// The extents covering file bytes [offset, offset + len), clamped to the file size.
std::vector<ZExtent> MapCompressed(const ZContext& ctx, const ZInode& inode, uint64_t offset,
                                   uint64_t len);

// File bytes [offset, offset + len), clamped to the file size.
std::string ReadCompressed(const ZContext& ctx, const ZInode& inode, uint64_t offset, uint64_t len);

}  // namespace lazysnap::erofs::internal
