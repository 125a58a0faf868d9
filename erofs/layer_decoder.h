// OCI layer media types differ only in the outer compression (tar, tar+gzip, tar+zstd). The
// decoder sniffs the magic bytes and inflates in-process, so that whoever consumes the tar can
// also observe every uncompressed byte in the same pass (digest, gzip checkpoints later).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace lazysnap::erofs {

enum class LayerCompression { kNone, kGzip, kZstd };

const char* LayerCompressionName(LayerCompression c);

// Guesses from the first bytes: gzip (1f 8b), zstd frame (28 b5 2f fd), otherwise plain tar.
LayerCompression DetectLayerCompression(std::string_view head);

using ByteSink = std::function<void(const uint8_t* data, size_t len)>;

// A place in a gzip stream where inflating can restart (zlib's zran technique): the deflate block
// boundary at compressed byte `in` (with `bits` bits of the previous byte still unused), which
// produces uncompressed byte `out` onwards, given the 32 KiB of output before it (`window`).
// The lazy path keeps these so a read of tar bytes needs only the compressed bytes after the
// nearest checkpoint, not the whole layer.
struct GzipCheckpoint {
  uint64_t in = 0;
  uint8_t bits = 0;
  uint64_t out = 0;
  std::string window;
};

struct DecodeOptions {
  // gzip only: report a checkpoint at the stream start and then whenever at least this many
  // uncompressed bytes passed since the previous one (0: none).
  uint64_t checkpoint_span = 0;
  std::function<void(GzipCheckpoint&&)> on_checkpoint;
};

// Reads `fd` to EOF, decompresses as detected and hands the plain bytes to `sink` in order.
// gzip is inflated with ISA-L, or with zlib when checkpoints are wanted (its block stops find
// them).
// Concatenated gzip members and zstd frames are accepted. A truncated or corrupt stream throws
// Error(kDataLoss); read errors throw as ThrowErrno does. Returns the detected compression.
LayerCompression DecodeLayer(int fd, const ByteSink& sink, const DecodeOptions& opts = {});

// Random access into a gzip layer: reads compressed bytes at an offset into `buf`, returning how
// many (0 at the end of the blob).
using CompressedReader = std::function<size_t(uint64_t offset, uint8_t* buf, size_t len)>;

// Uncompressed bytes [offset, offset + len) of the gzip stream, inflated from checkpoint `cp`
// (cp.out <= offset; the nearest one below `offset` is the cheapest). Fewer bytes at the end of
// the stream. Corrupt or truncated data throw Error(kDataLoss).
std::string InflateFromCheckpoint(const GzipCheckpoint& cp, const CompressedReader& read,
                                  uint64_t offset, size_t len);

}  // namespace lazysnap::erofs
