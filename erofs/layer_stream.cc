#include "erofs/layer_stream.h"

#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "common/error.h"

namespace lazysnap::erofs {

namespace {

constexpr size_t kInBuf = 256 * 1024;
constexpr size_t kOutBuf = 1024 * 1024;

// Reads up to `len` bytes; 0 at end of file.
size_t ReadSome(int fd, unsigned char* buf, size_t len, const std::string& what) {
  for (;;) {
    ssize_t n = ::read(fd, buf, len);
    if (n >= 0) return static_cast<size_t>(n);
    if (errno != EINTR) ThrowErrno("reading " + what);
  }
}

class Output {
 public:
  Output(const ByteSink& sink, uint64_t max, const std::string& what, StreamStats* stats)
      : sink_(sink), max_(max), what_(what), stats_(stats) {}
  void Emit(const char* data, size_t len) {
    if (len == 0) return;
    stats_->uncompressed_bytes += len;
    if (stats_->uncompressed_bytes > max_) {
      throw Error(ErrorCode::kResourceExhausted,
                  what_ + ": uncompressed layer exceeds " + std::to_string(max_) + " bytes");
    }
    if (!sink_(data, len)) {
      throw Error(ErrorCode::kResourceExhausted, what_ + ": the consumer stopped reading");
    }
  }

 private:
  const ByteSink& sink_;
  uint64_t max_;
  const std::string& what_;
  StreamStats* stats_;
};

void Gunzip(int fd, const std::string& what, std::vector<unsigned char>& in, size_t have,
            Output& out, StreamStats* stats) {
  z_stream zs{};
  if (inflateInit2(&zs, 15 + 16) != Z_OK) throw Error(ErrorCode::kInternal, "inflateInit2");
  struct End {
    z_stream* z;
    ~End() { inflateEnd(z); }
  } end{&zs};
  std::vector<unsigned char> obuf(kOutBuf);
  bool stream_done = false;
  for (;;) {
    if (have == 0) {
      have = ReadSome(fd, in.data(), in.size(), what);
      stats->compressed_bytes += have;
      if (have == 0) break;
    }
    zs.next_in = in.data();
    zs.avail_in = static_cast<uInt>(have);
    while (zs.avail_in > 0) {
      if (stream_done) {
        // Concatenated gzip members are one stream (RFC 1952); anything else after the end is
        // trailing garbage.
        if (zs.next_in[0] != 0x1f) {
          throw Error(ErrorCode::kInvalidArgument,
                      what + ": garbage after the gzip stream at compressed offset " +
                          std::to_string(zs.total_in));
        }
        inflateReset(&zs);
        stream_done = false;
      }
      zs.next_out = obuf.data();
      zs.avail_out = static_cast<uInt>(obuf.size());
      int rc = inflate(&zs, Z_NO_FLUSH);
      if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR) {
        throw Error(ErrorCode::kInvalidArgument,
                    what + ": corrupt gzip stream near compressed offset " +
                        std::to_string(zs.total_in) + ": " + (zs.msg ? zs.msg : "inflate error"));
      }
      out.Emit(reinterpret_cast<const char*>(obuf.data()), obuf.size() - zs.avail_out);
      if (rc == Z_STREAM_END) stream_done = true;
      if (rc == Z_BUF_ERROR && zs.avail_out != 0) break;  // needs more input
    }
    have = 0;
  }
  if (!stream_done) {
    throw Error(ErrorCode::kInvalidArgument, what + ": truncated gzip stream (" +
                                                 std::to_string(stats->compressed_bytes) +
                                                 " compressed bytes)");
  }
}

void Unzstd(int fd, const std::string& what, std::vector<unsigned char>& in, size_t have,
            Output& out, StreamStats* stats) {
  ZSTD_DCtx* dctx = ZSTD_createDCtx();
  if (dctx == nullptr) throw Error(ErrorCode::kInternal, "ZSTD_createDCtx");
  struct Free {
    ZSTD_DCtx* d;
    ~Free() { ZSTD_freeDCtx(d); }
  } free_ctx{dctx};
  // Bound the window a hostile frame can demand (zstd's default limit is 128 MiB; 2^27).
  ZSTD_DCtx_setParameter(dctx, ZSTD_d_windowLogMax, 27);
  std::vector<char> obuf(kOutBuf);
  size_t last = 1;  // 0 once a frame ended exactly at the input's end
  for (;;) {
    if (have == 0) {
      have = ReadSome(fd, in.data(), in.size(), what);
      stats->compressed_bytes += have;
      if (have == 0) break;
    }
    ZSTD_inBuffer ib{in.data(), have, 0};
    bool full = true;
    // Until the input is used up and the decoder returned with room to spare (nothing held back).
    while (ib.pos < ib.size || full) {
      ZSTD_outBuffer ob{obuf.data(), obuf.size(), 0};
      last = ZSTD_decompressStream(dctx, &ob, &ib);
      if (ZSTD_isError(last)) {
        throw Error(ErrorCode::kInvalidArgument,
                    what + ": corrupt zstd stream: " + ZSTD_getErrorName(last));
      }
      out.Emit(obuf.data(), ob.pos);
      full = ob.pos == ob.size;
    }
    have = 0;
  }
  // 0: the last frame ended exactly at the end of the input.
  if (last != 0) {
    throw Error(ErrorCode::kInvalidArgument, what + ": truncated zstd stream (" +
                                                 std::to_string(stats->compressed_bytes) +
                                                 " compressed bytes)");
  }
}

}  // namespace

LayerCompression DetectCompression(const unsigned char* head, size_t len) {
  if (len >= 2 && head[0] == 0x1f && head[1] == 0x8b) return LayerCompression::kGzip;
  if (len >= 4 && head[0] == 0x28 && head[1] == 0xb5 && head[2] == 0x2f && head[3] == 0xfd) {
    return LayerCompression::kZstd;
  }
  return LayerCompression::kNone;
}

const char* CompressionName(LayerCompression c) {
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

StreamStats DecompressLayer(int fd, const std::string& what, const ByteSink& sink,
                            uint64_t max_uncompressed) {
  StreamStats stats;
  std::vector<unsigned char> in(kInBuf);
  // Fill enough to see the magic number.
  size_t have = 0;
  while (have < 4) {
    size_t n = ReadSome(fd, in.data() + have, in.size() - have, what);
    if (n == 0) break;
    have += n;
  }
  stats.compressed_bytes = have;
  stats.compression = DetectCompression(in.data(), have);
  Output out(sink, max_uncompressed, what, &stats);
  switch (stats.compression) {
    case LayerCompression::kGzip:
      Gunzip(fd, what, in, have, out, &stats);
      break;
    case LayerCompression::kZstd:
      Unzstd(fd, what, in, have, out, &stats);
      break;
    case LayerCompression::kNone:
      out.Emit(reinterpret_cast<const char*>(in.data()), have);
      for (;;) {
        size_t n = ReadSome(fd, in.data(), in.size(), what);
        if (n == 0) break;
        stats.compressed_bytes += n;
        out.Emit(reinterpret_cast<const char*>(in.data()), n);
      }
      break;
  }
  return stats;
}

}  // namespace lazysnap::erofs
