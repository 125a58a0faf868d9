// Streaming decompression of OCI layer blobs (tar, tar+gzip, tar+zstd), done in-process rather
// than by mkfs.erofs so the same single pass can feed observers: the uncompressed-tar digest
// (diff ID), the index-only blob device, and later the lazy path's decompression checkpoints.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

namespace lazysnap::erofs {

enum class LayerCompression { kNone, kGzip, kZstd };

// From the first bytes of a blob (magic numbers), not from media types, which lie more often.
LayerCompression DetectCompression(const unsigned char* head, size_t len);
const char* CompressionName(LayerCompression c);

// Receives uncompressed bytes in order; return false to stop (the stream then throws kAborted
// as Error(kResourceExhausted)).
using ByteSink = std::function<bool(const char* data, size_t len)>;

struct StreamStats {
  LayerCompression compression = LayerCompression::kNone;
  uint64_t compressed_bytes = 0;
  uint64_t uncompressed_bytes = 0;
};

// Reads `fd` to its end, decompressing as detected. Truncated or corrupt streams throw
// Error(kInvalidArgument) naming `what` and the offset; `max_uncompressed` bounds the output
// (a decompression bomb throws Error(kResourceExhausted)).
StreamStats DecompressLayer(int fd, const std::string& what, const ByteSink& sink,
                            uint64_t max_uncompressed = 64ull << 30);

}  // namespace lazysnap::erofs
