#include "erofs/layer_decoder.h"

#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "common/error.h"

namespace lazysnap::erofs {
namespace {

constexpr size_t kChunk = 256 * 1024;

// Reads up to `len` bytes, retrying short reads; returns 0 only at EOF.
size_t ReadSome(int fd, uint8_t* buf, size_t len) {
  for (;;) {
    ssize_t n = ::read(fd, buf, len);
    if (n >= 0) return static_cast<size_t>(n);
    if (errno != EINTR) ThrowErrno("read layer stream");
  }
}

// Fills `buf` as far as the stream allows (so magic sniffing sees 4 bytes even from a pipe).
size_t ReadFull(int fd, uint8_t* buf, size_t len) {
  size_t got = 0;
  while (got < len) {
    size_t n = ReadSome(fd, buf + got, len - got);
    if (n == 0) break;
    got += n;
  }
  return got;
}

void DecodeGzip(int fd, std::vector<uint8_t>& in, size_t in_len, const ByteSink& sink) {
  z_stream zs{};
  if (inflateInit2(&zs, 15 + 16) != Z_OK) throw Error(ErrorCode::kInternal, "inflateInit2 failed");
  std::unique_ptr<z_stream, void (*)(z_stream*)> guard(&zs, [](z_stream* z) { inflateEnd(z); });
  std::vector<uint8_t> out(kChunk);
  zs.next_in = in.data();
  zs.avail_in = static_cast<uInt>(in_len);
  bool eof = false;
  bool member_done = false;  // true between members: trailing bytes may start another member
  for (;;) {
    if (zs.avail_in == 0 && !eof) {
      size_t n = ReadSome(fd, in.data(), in.size());
      if (n == 0) {
        eof = true;
      } else {
        zs.next_in = in.data();
        zs.avail_in = static_cast<uInt>(n);
      }
    }
    if (zs.avail_in == 0 && eof) {
      if (member_done) return;
      throw Error(ErrorCode::kDataLoss, "gzip layer is truncated (stream ends mid-member)");
    }
    if (member_done) {
      // Another member follows (pigz and some registries write several).
      if (inflateReset(&zs) != Z_OK) throw Error(ErrorCode::kInternal, "inflateReset failed");
      member_done = false;
    }
    zs.next_out = out.data();
    zs.avail_out = static_cast<uInt>(out.size());
    int rc = inflate(&zs, Z_NO_FLUSH);
    size_t produced = out.size() - zs.avail_out;
    if (produced) sink(out.data(), produced);
    if (rc == Z_STREAM_END) {
      member_done = true;
    } else if (rc == Z_BUF_ERROR) {
      if (zs.avail_in != 0 && produced == 0)
        throw Error(ErrorCode::kDataLoss, "gzip layer: inflate made no progress");
    } else if (rc != Z_OK) {
      throw Error(ErrorCode::kDataLoss,
                  std::string("gzip layer is corrupt: ") + (zs.msg ? zs.msg : "inflate error"));
    }
  }
}

void DecodeZstd(int fd, std::vector<uint8_t>& in, size_t in_len, const ByteSink& sink) {
  std::unique_ptr<ZSTD_DCtx, size_t (*)(ZSTD_DCtx*)> ctx(ZSTD_createDCtx(), ZSTD_freeDCtx);
  if (!ctx) throw Error(ErrorCode::kResourceExhausted, "ZSTD_createDCtx failed");
  // Bound the window so a hostile frame header cannot make us allocate gigabytes (128 MiB
  // is zstd's --long=27 default; registries do not produce larger).
  ZSTD_DCtx_setParameter(ctx.get(), ZSTD_d_windowLogMax, 27);
  std::vector<uint8_t> out(ZSTD_DStreamOutSize());
  ZSTD_inBuffer ib{in.data(), in_len, 0};
  size_t last = 0;  // ZSTD_decompressStream's hint: 0 means a frame just ended
  bool eof = false;
  for (;;) {
    if (ib.pos == ib.size && !eof) {
      size_t n = ReadSome(fd, in.data(), in.size());
      if (n == 0) {
        eof = true;
      } else {
        ib = {in.data(), n, 0};
      }
    }
    if (ib.pos == ib.size && eof) {
      if (last == 0) return;
      throw Error(ErrorCode::kDataLoss, "zstd layer is truncated (stream ends mid-frame)");
    }
    ZSTD_outBuffer ob{out.data(), out.size(), 0};
    last = ZSTD_decompressStream(ctx.get(), &ob, &ib);
    if (ZSTD_isError(last))
      throw Error(ErrorCode::kDataLoss,
                  std::string("zstd layer is corrupt: ") + ZSTD_getErrorName(last));
    if (ob.pos) sink(out.data(), ob.pos);
  }
}

}  // namespace

const char* LayerCompressionName(LayerCompression c) {
  switch (c) {
    case LayerCompression::kGzip:
      return "gzip";
    case LayerCompression::kZstd:
      return "zstd";
    case LayerCompression::kNone:
      break;
  }
  return "none";
}

LayerCompression DetectLayerCompression(std::string_view head) {
  if (head.size() >= 2 && static_cast<uint8_t>(head[0]) == 0x1f &&
      static_cast<uint8_t>(head[1]) == 0x8b)
    return LayerCompression::kGzip;
  if (head.size() >= 4 && head.substr(0, 4) == std::string_view("\x28\xb5\x2f\xfd", 4))
    return LayerCompression::kZstd;
  return LayerCompression::kNone;
}

LayerCompression DecodeLayer(int fd, const ByteSink& sink) {
  std::vector<uint8_t> in(kChunk);
  size_t n = ReadFull(fd, in.data(), 4);
  LayerCompression c =
      DetectLayerCompression(std::string_view(reinterpret_cast<const char*>(in.data()), n));
  switch (c) {
    case LayerCompression::kGzip:
      DecodeGzip(fd, in, n, sink);
      break;
    case LayerCompression::kZstd:
      DecodeZstd(fd, in, n, sink);
      break;
    case LayerCompression::kNone:
      if (n) sink(in.data(), n);
      while ((n = ReadSome(fd, in.data(), in.size())) > 0) sink(in.data(), n);
      break;
  }
  return c;
}

}  // namespace lazysnap::erofs
