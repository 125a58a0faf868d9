#include "lazy/layer_index.h"

#include <zstd.h>

#include <algorithm>
#include <cstring>
#include <memory>

#include "common/error.h"
#include "common/sha256.h"
#include "erofs/layer_builder.h"
#include "labels/digest.h"

namespace lazysnap::lazy {
namespace {

constexpr char kMagic[8] = {'L', 'Z', 'S', 'N', 'I', 'D', 'X', '1'};
constexpr uint32_t kVersion = 1;
// Bounds a decoder enforces before allocating: far above any real layer's index (a 10 GiB layer
// with 1 MiB spans has 10,240 windows = 320 MiB raw; EROFS metadata of a million files ~100 MiB).
constexpr uint64_t kMaxDecoded = 1ull << 30;
constexpr uint32_t kWindow = 32768;
// A zstd layer is indexed when no frame holds more than this many spans of tar.
constexpr uint64_t kMaxZstdSpanFactor = 4;

class Writer {
 public:
  void U8(uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void U32(uint32_t v) { Raw(&v, 4); }
  void U64(uint64_t v) { Raw(&v, 8); }
  void Bytes(std::string_view s) {
    U64(s.size());
    out_.append(s);
  }
  void Raw(const void* p, size_t n) { out_.append(static_cast<const char*>(p), n); }
  std::string& str() { return out_; }

 private:
  std::string out_;
};

class Cursor {
 public:
  explicit Cursor(std::string_view s) : s_(s) {}
  uint8_t U8() { return static_cast<uint8_t>(*Take(1)); }
  uint32_t U32() {
    uint32_t v;
    std::memcpy(&v, Take(4), 4);
    return v;
  }
  uint64_t U64() {
    uint64_t v;
    std::memcpy(&v, Take(8), 8);
    return v;
  }
  std::string Bytes(const char* what, uint64_t max) {
    uint64_t n = U64();
    if (n > max || n > s_.size() - pos_) Bad(std::string(what) + " length out of bounds");
    return std::string(Take(n), n);
  }
  const char* Take(uint64_t n) {
    if (n > s_.size() - pos_) Bad("truncated");
    const char* p = s_.data() + pos_;
    pos_ += n;
    return p;
  }
  size_t pos() const { return pos_; }
  size_t remaining() const { return s_.size() - pos_; }
  [[noreturn]] static void Bad(const std::string& why) {
    throw Error(ErrorCode::kDataLoss, "layer index: " + why);
  }

 private:
  std::string_view s_;
  size_t pos_ = 0;
};

std::string HexToRaw(const std::string& digest) {
  labels::Digest d = labels::ParseDigest(digest, "chunk digest");
  std::string raw(32, '\0');
  for (size_t i = 0; i < 32; ++i)
    raw[i] = static_cast<char>(std::stoi(d.hex.substr(2 * i, 2), nullptr, 16));
  return raw;
}

void CheckDigest(const std::string& d, const char* what) {
  try {
    labels::Digest p = labels::ParseDigest(d, what);
    if (p.algorithm != "sha256") Cursor::Bad(std::string(what) + " is not sha256");
  } catch (const Error& e) {
    Cursor::Bad(e.what());
  }
}

// zstd restarts only at frame boundaries: a layer of one big frame (what most tools write) would
// make every read decompress the whole layer, so it is left to the native pull.
void RefuseLongZstdFrames(const LayerIndex& idx) {
  const uint64_t max_gap = kMaxZstdSpanFactor * idx.span;
  for (size_t i = 0; i < idx.checkpoints.size(); ++i) {
    uint64_t end = i + 1 < idx.checkpoints.size() ? idx.checkpoints[i + 1].out : idx.tar_size;
    uint64_t gap = end - idx.checkpoints[i].out;
    if (gap > max_gap) {
      throw Error(ErrorCode::kFailedPrecondition,
                  "layer " + idx.layer_digest + " is zstd with " + std::to_string(gap >> 20) +
                      " MiB of tar in one frame at tar offset " +
                      std::to_string(idx.checkpoints[i].out) +
                      ": zstd restarts only between frames, so random access needs frames of at "
                      "most " +
                      std::to_string(max_gap >> 20) +
                      " MiB (e.g. pzstd or the seekable format); it is pulled natively");
    }
  }
}

}  // namespace

LayerIndex BuildLayerIndex(const std::string& layer_path, const std::string& layer_digest,
                           const IndexBuildOptions& opts) {
  if (opts.span < 64 * 1024) throw Error(ErrorCode::kInvalidArgument, "index span below 64 KiB");
  if (opts.chunk_size < 4096) throw Error(ErrorCode::kInvalidArgument, "chunk size below 4 KiB");
  LayerIndex idx;
  idx.layer_digest = layer_digest;
  idx.span = opts.span;
  idx.chunk_size = opts.chunk_size;

  // The compressed blob: its chunk digests, and a check that it is the layer it claims to be.
  std::string blob;
  {
    Sha256 whole;
    FILE* f = std::fopen(layer_path.c_str(), "rb");
    if (f == nullptr) ThrowErrno("open " + layer_path);
    std::string chunk(opts.chunk_size, '\0');
    size_t n;
    while ((n = std::fread(chunk.data(), 1, chunk.size(), f)) > 0) {
      whole.Update(chunk.data(), n);
      idx.chunk_digests.push_back(Sha256Digest(std::string_view(chunk.data(), n)));
      idx.layer_size += n;
    }
    bool err = std::ferror(f);
    std::fclose(f);
    if (err) ThrowErrno("read " + layer_path);
    std::string actual = whole.FinishDigest();
    if (actual != layer_digest) {
      throw Error(ErrorCode::kDataLoss,
                  "layer " + layer_path + " hashes to " + actual + ", expected " + layer_digest);
    }
  }

  {
    FILE* f = std::fopen(layer_path.c_str(), "rb");
    if (f == nullptr) ThrowErrno("open " + layer_path);
    char head[4] = {};
    size_t got = std::fread(head, 1, sizeof head, f);
    std::fclose(f);
    idx.compression = erofs::DetectLayerCompression(std::string_view(head, got));
  }
  std::string image_path = layer_path + ".erofs";
  erofs::BuildOptions b;
  b.mode = erofs::ImageMode::kIndexOnly;
  b.discard_blob = true;
  b.mkfs_path = opts.mkfs_path;
  b.decode.checkpoint_span = opts.span;
  b.decode.on_checkpoint = [&](erofs::Checkpoint&& cp) {
    idx.checkpoints.push_back(std::move(cp));
  };
  erofs::BuildResult r = erofs::BuildLayerFromFile(layer_path, image_path, b);
  idx.tar_size = r.tar_size;
  idx.tar_digest = r.tar_digest;
  FILE* f = std::fopen(image_path.c_str(), "rb");
  if (f == nullptr) ThrowErrno("open " + image_path);
  char buf[1 << 16];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) idx.erofs_image.append(buf, n);
  std::fclose(f);
  ::unlink(image_path.c_str());
  if (idx.compression == erofs::LayerCompression::kZstd) RefuseLongZstdFrames(idx);
  return idx;
}

std::string EncodeLayerIndex(const LayerIndex& idx) {
  Writer w;
  w.Raw(kMagic, sizeof kMagic);
  w.U32(kVersion);
  w.Bytes(idx.layer_digest);
  w.U64(idx.layer_size);
  w.U8(static_cast<uint8_t>(idx.compression));
  w.U64(idx.tar_size);
  w.Bytes(idx.tar_digest);
  w.U64(idx.span);
  w.U32(idx.chunk_size);
  w.U64(idx.chunk_digests.size());
  for (const auto& d : idx.chunk_digests) w.Raw(HexToRaw(d).data(), 32);
  w.U64(idx.checkpoints.size());
  for (const auto& cp : idx.checkpoints) {
    w.U64(cp.in);
    w.U8(cp.bits);
    w.U64(cp.out);
    w.Bytes(cp.window);
  }
  w.Bytes(idx.erofs_image);
  Sha256 h;
  h.Update(w.str());
  auto self = h.Finish();
  w.Raw(self.data(), self.size());

  const std::string& plain = w.str();
  std::string out(ZSTD_compressBound(plain.size()), '\0');
  size_t z = ZSTD_compress(out.data(), out.size(), plain.data(), plain.size(), 9);
  if (ZSTD_isError(z)) {
    throw Error(ErrorCode::kInternal, std::string("zstd: ") + ZSTD_getErrorName(z));
  }
  out.resize(z);
  return out;
}

LayerIndex DecodeLayerIndex(std::string_view blob) {
  // Decompress with a hard output bound, whatever the frame header claims.
  std::string plain;
  {
    std::unique_ptr<ZSTD_DCtx, size_t (*)(ZSTD_DCtx*)> dctx(ZSTD_createDCtx(), ZSTD_freeDCtx);
    ZSTD_inBuffer in{blob.data(), blob.size(), 0};
    std::string buf(1 << 17, '\0');
    // Checked before appending, and grown by hand: std::string's own doubling would turn a
    // buffer near the bound into a 2 GiB allocation.
    auto keep = [&](size_t n) {
      if (n > kMaxDecoded - plain.size()) Cursor::Bad("decodes to more than 1 GiB");
      if (plain.size() + n > plain.capacity()) {
        std::string grown;
        grown.reserve(std::min<uint64_t>(
            kMaxDecoded, std::max<uint64_t>(plain.size() + n, 2 * uint64_t{plain.capacity()})));
        grown.append(plain);
        plain.swap(grown);
      }
      plain.append(buf.data(), n);
    };
    size_t ret = 1;
    while (in.pos < in.size) {
      ZSTD_outBuffer out{buf.data(), buf.size(), 0};
      ret = ZSTD_decompressStream(dctx.get(), &out, &in);
      if (ZSTD_isError(ret)) Cursor::Bad(std::string("zstd: ") + ZSTD_getErrorName(ret));
      keep(out.pos);
      if (ret == 0 && in.pos < in.size) Cursor::Bad("trailing bytes after the zstd frame");
      if (out.pos == 0 && in.pos == in.size) break;
    }
    for (;;) {  // flush what the decoder still holds
      ZSTD_outBuffer out{buf.data(), buf.size(), 0};
      if (ret == 0) break;
      ret = ZSTD_decompressStream(dctx.get(), &out, &in);
      if (ZSTD_isError(ret)) Cursor::Bad(std::string("zstd: ") + ZSTD_getErrorName(ret));
      keep(out.pos);
      if (out.pos == 0 && ret != 0) Cursor::Bad("truncated zstd frame");
    }
  }
  if (plain.size() < sizeof kMagic + 4 + 32) Cursor::Bad("too short");
  {
    Sha256 h;
    h.Update(plain.data(), plain.size() - 32);
    auto d = h.Finish();
    if (std::memcmp(d.data(), plain.data() + plain.size() - 32, 32) != 0)
      Cursor::Bad("self-digest mismatch (corrupt index)");
  }
  Cursor c(std::string_view(plain).substr(0, plain.size() - 32));
  if (std::memcmp(c.Take(sizeof kMagic), kMagic, sizeof kMagic) != 0) Cursor::Bad("bad magic");
  if (uint32_t v = c.U32(); v != kVersion) Cursor::Bad("unsupported version " + std::to_string(v));
  LayerIndex idx;
  idx.layer_digest = c.Bytes("layer digest", 200);
  CheckDigest(idx.layer_digest, "layer digest");
  idx.layer_size = c.U64();
  uint8_t comp = c.U8();
  if (comp != static_cast<uint8_t>(erofs::LayerCompression::kNone) &&
      comp != static_cast<uint8_t>(erofs::LayerCompression::kGzip) &&
      comp != static_cast<uint8_t>(erofs::LayerCompression::kZstd))
    Cursor::Bad("unsupported layer compression " + std::to_string(comp));
  idx.compression = static_cast<erofs::LayerCompression>(comp);
  idx.tar_size = c.U64();
  idx.tar_digest = c.Bytes("tar digest", 200);
  CheckDigest(idx.tar_digest, "tar digest");
  idx.span = c.U64();
  idx.chunk_size = c.U32();
  if (idx.chunk_size < 4096 || idx.chunk_size > (64u << 20)) Cursor::Bad("bad chunk size");
  if (idx.layer_size == 0) Cursor::Bad("empty layer");
  uint64_t nchunks = c.U64();
  if (nchunks != (idx.layer_size + idx.chunk_size - 1) / idx.chunk_size)
    Cursor::Bad("chunk digest count does not match the layer size");
  if (nchunks > c.remaining() / 32) Cursor::Bad("chunk digests truncated");
  idx.chunk_digests.reserve(nchunks);
  for (uint64_t i = 0; i < nchunks; ++i) {
    idx.chunk_digests.push_back("sha256:" +
                                HexEncode(reinterpret_cast<const uint8_t*>(c.Take(32)), 32));
  }
  uint64_t ncp = c.U64();
  if (ncp > c.remaining() / 17) Cursor::Bad("checkpoints truncated");
  for (uint64_t i = 0; i < ncp; ++i) {
    erofs::Checkpoint cp;
    cp.in = c.U64();
    cp.bits = c.U8();
    cp.out = c.U64();
    cp.window = c.Bytes("checkpoint window", kWindow);
    if (cp.bits > 7) Cursor::Bad("checkpoint bit offset above 7");
    if (cp.in > idx.layer_size || cp.out > idx.tar_size) Cursor::Bad("checkpoint out of bounds");
    if (i == 0 ? cp.out != 0
               : cp.out <= idx.checkpoints.back().out || cp.in < idx.checkpoints.back().in)
      Cursor::Bad("checkpoints not ascending from tar offset 0");
    idx.checkpoints.push_back(std::move(cp));
  }
  if (idx.compression != erofs::LayerCompression::kNone && idx.checkpoints.empty())
    Cursor::Bad(std::string(erofs::LayerCompressionName(idx.compression)) +
                " layer without checkpoints");
  if (idx.compression == erofs::LayerCompression::kZstd) {
    for (const auto& cp : idx.checkpoints) {
      if (cp.bits != 0 || !cp.window.empty()) Cursor::Bad("zstd checkpoint with gzip state");
    }
  }
  if (idx.compression == erofs::LayerCompression::kNone) {
    if (!idx.checkpoints.empty()) Cursor::Bad("checkpoints on an uncompressed layer");
    if (idx.tar_size != idx.layer_size) Cursor::Bad("uncompressed layer: tar size != layer size");
  }
  idx.erofs_image = c.Bytes("EROFS image", kMaxDecoded);
  constexpr uint32_t kErofsMagic = 0xE0F5E1E2;
  uint32_t magic = 0;
  if (idx.erofs_image.size() < 1024 + 128) Cursor::Bad("EROFS image too short");
  std::memcpy(&magic, idx.erofs_image.data() + 1024, 4);
  if (magic != kErofsMagic) Cursor::Bad("EROFS image has no EROFS superblock");
  if (c.remaining() != 0) Cursor::Bad("trailing bytes");
  return idx;
}

}  // namespace lazysnap::lazy
