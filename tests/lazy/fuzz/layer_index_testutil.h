// Helpers shared by the layer index fuzz entry, its seed generator and layer_index_test: a small
// synthetic index that DecodeLayerIndex accepts, field-by-field equality, and the wire format's
// outer layers (self-digest + zstd frame) so tests and the fuzzer can hand the decoder plain
// payloads that pass the digest check.
#pragma once

#include <zstd.h>

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

#include "common/sha256.h"
#include "erofs/layer_decoder.h"
#include "lazy/layer_index.h"

namespace lazysnap::lazy::index_test {

inline bool SameCheckpoint(const erofs::Checkpoint& a, const erofs::Checkpoint& b) {
  return a.in == b.in && a.bits == b.bits && a.out == b.out && a.window == b.window;
}

inline bool SameIndex(const LayerIndex& a, const LayerIndex& b) {
  return a.layer_digest == b.layer_digest && a.layer_size == b.layer_size &&
         a.compression == b.compression && a.tar_size == b.tar_size &&
         a.tar_digest == b.tar_digest && a.span == b.span && a.chunk_size == b.chunk_size &&
         a.chunk_digests == b.chunk_digests &&
         std::equal(a.checkpoints.begin(), a.checkpoints.end(), b.checkpoints.begin(),
                    b.checkpoints.end(), SameCheckpoint) &&
         a.erofs_image == b.erofs_image;
}

// Bytes that pass the decoder's EROFS check: the superblock magic 0xE0F5E1E2 (little-endian) at
// offset 1024, `size` >= 1152.
inline std::string FakeErofsImage(size_t size = 2048) {
  std::string img(size, '\0');
  const unsigned char magic[4] = {0xE2, 0xE1, 0xF5, 0xE0};
  for (size_t i = 0; i < 4 && 1024 + i < size; ++i) img[1024 + i] = static_cast<char>(magic[i]);
  for (size_t i = 1152; i < size; ++i) img[i] = static_cast<char>(i * 31);
  return img;
}

inline std::string Filler(size_t n, char seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>(seed + static_cast<char>(i % 61));
  return s;
}

// A self-consistent index: 10000-byte layer in 4 KiB chunks (3 digests); gzip with three
// ascending checkpoints (the first at tar offset 0), or uncompressed (tar == layer, none).
inline LayerIndex SyntheticIndex(erofs::LayerCompression c = erofs::LayerCompression::kGzip,
                                 size_t window = 64) {
  LayerIndex x;
  x.layer_digest = Sha256Digest("synthetic layer");
  x.layer_size = 10000;
  x.compression = c;
  x.tar_digest = Sha256Digest("synthetic tar");
  x.span = 64 * 1024;
  x.chunk_size = 4096;
  for (int i = 0; i < 3; ++i) x.chunk_digests.push_back(Sha256Digest("chunk " + std::to_string(i)));
  if (c == erofs::LayerCompression::kNone) {
    x.tar_size = x.layer_size;
  } else {
    x.tar_size = 200000;
    x.checkpoints.push_back({.in = 10, .bits = 0, .out = 0, .window = ""});
    x.checkpoints.push_back({.in = 4000, .bits = 3, .out = 70000, .window = Filler(window, 'a')});
    x.checkpoints.push_back({.in = 8000, .bits = 7, .out = 140000, .window = Filler(window, 'A')});
  }
  x.erofs_image = FakeErofsImage();
  return x;
}

// `plain` (a payload without its trailing self-digest) as a registry blob: sha256 appended, one
// zstd frame.
inline std::string SealPayload(std::string_view plain) {
  std::string p(plain);
  Sha256 h;
  h.Update(p);
  auto d = h.Finish();
  p.append(reinterpret_cast<const char*>(d.data()), d.size());
  std::string out(ZSTD_compressBound(p.size()), '\0');
  size_t z = ZSTD_compress(out.data(), out.size(), p.data(), p.size(), 1);
  if (ZSTD_isError(z)) throw std::logic_error(ZSTD_getErrorName(z));
  out.resize(z);
  return out;
}

// The inverse, for trusted blobs only (EncodeLayerIndex output: one frame with its content size).
inline std::string OpenPayload(std::string_view blob) {
  unsigned long long n = ZSTD_getFrameContentSize(blob.data(), blob.size());
  if (n == ZSTD_CONTENTSIZE_ERROR || n == ZSTD_CONTENTSIZE_UNKNOWN || n < 32)
    throw std::logic_error("not an encoded layer index");
  std::string p(n, '\0');
  size_t r = ZSTD_decompress(p.data(), p.size(), blob.data(), blob.size());
  if (ZSTD_isError(r) || r != n) throw std::logic_error("not an encoded layer index");
  p.resize(n - 32);
  return p;
}

}  // namespace lazysnap::lazy::index_test
