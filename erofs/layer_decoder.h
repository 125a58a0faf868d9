// OCI layer media types differ only in the outer compression (tar, tar+gzip, tar+zstd). The
// decoder sniffs the magic bytes and inflates in-process, so that whoever consumes the tar can
// also observe every uncompressed byte in the same pass (digest, gzip checkpoints later).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string_view>

namespace lazysnap::erofs {

enum class LayerCompression { kNone, kGzip, kZstd };

const char* LayerCompressionName(LayerCompression c);

// Guesses from the first bytes: gzip (1f 8b), zstd frame (28 b5 2f fd), otherwise plain tar.
LayerCompression DetectLayerCompression(std::string_view head);

using ByteSink = std::function<void(const uint8_t* data, size_t len)>;

// Reads `fd` to EOF, decompresses as detected and hands the plain bytes to `sink` in order.
// Concatenated gzip members and zstd frames are accepted. A truncated or corrupt stream throws
// Error(kDataLoss); read errors throw as ThrowErrno does. Returns the detected compression.
LayerCompression DecodeLayer(int fd, const ByteSink& sink);

}  // namespace lazysnap::erofs
