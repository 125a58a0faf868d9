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

// Guesses from the first bytes: gzip (1f 8b), zstd (a frame, 28 b5 2f fd, or a skippable frame,
// 5? 2a 4d 18), otherwise plain tar.
LayerCompression DetectLayerCompression(std::string_view head);

using ByteSink = std::function<void(const uint8_t* data, size_t len)>;

// A place in a compressed layer where decompressing can restart. gzip (zlib's zran technique):
// the deflate block boundary at compressed byte `in` (with `bits` bits of the previous byte still
// unused), which produces uncompressed byte `out` onwards, given the 32 KiB of output before it
// (`window`). zstd: the start of a frame at compressed byte `in`, producing byte `out` onwards
// (frames are independent: `bits` 0, no window).
// The lazy path keeps these so a read of tar bytes needs only the compressed bytes after the
// nearest checkpoint, not the whole layer.
struct Checkpoint {
  uint64_t in = 0;
  uint8_t bits = 0;
  uint64_t out = 0;
  std::string window;
};

struct DecodeOptions {
  // Report a checkpoint at the stream start and then at the first restart point (gzip: deflate
  // block boundary; zstd: frame boundary) after at least this many uncompressed bytes since the
  // previous one (0: none). A zstd layer of one frame has only the first.
  uint64_t checkpoint_span = 0;
  std::function<void(Checkpoint&&)> on_checkpoint;
};

// Reads `fd` to EOF, decompresses as detected and hands the plain bytes to `sink` in order.
// gzip is inflated with ISA-L, or with zlib when checkpoints are wanted (its block stops find
// them).
// Concatenated gzip members and zstd frames are accepted. A truncated or corrupt stream throws
// Error(kDataLoss); read errors throw as ThrowErrno does. Returns the detected compression.
LayerCompression DecodeLayer(int fd, const ByteSink& sink, const DecodeOptions& opts = {});

// Random access into a compressed layer: reads compressed bytes at an offset into `buf`, returning
// how many (0 at the end of the blob).
using CompressedReader = std::function<size_t(uint64_t offset, uint8_t* buf, size_t len)>;

// Uncompressed bytes [offset, offset + len) of the gzip stream, inflated from checkpoint `cp`
// (cp.out <= offset; the nearest one below `offset` is the cheapest). Fewer bytes at the end of
// the stream. Corrupt or truncated data throw Error(kDataLoss).
std::string InflateFromCheckpoint(const Checkpoint& cp, const CompressedReader& read,
                                  uint64_t offset, size_t len);

// The first `len` uncompressed bytes of the zstd frames starting at compressed offset `in` (a
// zstd checkpoint's `in`); fewer at the end of the stream. Corrupt data, a frame cut short by the
// end of the blob, or a frame window above 128 MiB throw Error(kDataLoss).
std::string DecodeZstdFrames(const CompressedReader& read, uint64_t in, size_t len);

}  // namespace lazysnap::erofs
