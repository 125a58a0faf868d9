// libFuzzer entry for the layer input path: the bytes are a layer (tar, tar.gz or tar.zst, as
// sniffed), decoded by DecodeLayer and validated by TarScanner exactly as BuildLayer does before
// mkfs.erofs sees anything. Every failure must be a lazysnap::Error; decompression must stay
// bounded (zstd window limit) and never hang; every gzip or zstd checkpoint must reproduce the
// bytes after it.
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/unique_fd.h"
#include "erofs/layer_decoder.h"
#include "erofs/tar_scanner.h"

namespace {

// Decompression bombs are the caller's disk budget; keep fuzz runs short.
constexpr uint64_t kMaxDecoded = 64u << 20;
constexpr size_t kKeptPrefix = 1u << 20;  // decoded bytes kept to compare the inflaters with

// Counts decoded bytes (throwing past kMaxDecoded) and keeps exactly the first kKeptPrefix of
// them, whatever sizes the inflater hands them in.
void Take(const uint8_t* p, size_t n, uint64_t& total, std::string& prefix) {
  total += n;
  if (total > kMaxDecoded) throw lazysnap::Error(lazysnap::ErrorCode::kResourceExhausted, "big");
  if (prefix.size() < kKeptPrefix)
    prefix.append(reinterpret_cast<const char*>(p), std::min(n, kKeptPrefix - prefix.size()));
}

// Every checkpoint DecodeLayer (zlib) reported must give, through InflateFromCheckpoint (ISA-L),
// the bytes DecodeLayer produced after it: the two inflaters must agree. Where the stream is
// corrupt further on, the span inflate may stop earlier but never differ. zstd checkpoints (frame
// starts) likewise through DecodeZstdFrames.
void CheckCheckpoints(const uint8_t* data, size_t size, bool zstd,
                      const std::vector<lazysnap::erofs::Checkpoint>& cps, const std::string& plain,
                      bool complete) {
  lazysnap::erofs::CompressedReader read = [&](uint64_t off, uint8_t* buf, size_t len) -> size_t {
    if (off >= size) return 0;
    size_t n = std::min<size_t>(len, size - off);
    std::memcpy(buf, data + off, n);
    return n;
  };
  for (const auto& cp : cps) {
    if (cp.out >= plain.size()) continue;
    size_t len = std::min<size_t>(64 << 10, plain.size() - cp.out);
    std::string got;
    try {
      got = zstd ? lazysnap::erofs::DecodeZstdFrames(read, cp.in, len)
                 : lazysnap::erofs::InflateFromCheckpoint(cp, read, cp.out, len);
    } catch (const lazysnap::Error&) {
      if (complete) __builtin_trap();  // zlib inflated it all, ISA-L refused
      continue;
    }
    if (got.size() > len || plain.compare(cp.out, got.size(), got) != 0) __builtin_trap();
    if (complete && got.size() != len) __builtin_trap();
  }
}

// Without checkpoints, gzip is decoded by ISA-L instead of zlib: the same stream must give the
// same bytes and the same verdict where zlib finished it (an inflater may stop at a different
// point of a corrupt stream, never with other bytes).
void CheckFastDecode(int fd, const std::string& plain, bool decoded, uint64_t total) {
  if (total > kMaxDecoded) return;  // cut short above: no verdict to compare
  ::lseek(fd, 0, SEEK_SET);
  std::string fast;
  uint64_t fast_total = 0;
  bool fast_ok = false;
  try {
    lazysnap::erofs::DecodeLayer(fd,
                                 [&](const uint8_t* p, size_t n) { Take(p, n, fast_total, fast); });
    fast_ok = true;
  } catch (const lazysnap::Error&) {
  }
  size_t common = std::min(fast.size(), plain.size());
  if (fast.compare(0, common, plain, 0, common) != 0) __builtin_trap();
  if (decoded && (!fast_ok || fast_total != total || fast != plain)) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  lazysnap::UniqueFd fd(::memfd_create("layer", MFD_CLOEXEC));
  if (!fd) return 0;
  if (size && ::write(fd.get(), data, size) != static_cast<ssize_t>(size)) return 0;
  ::lseek(fd.get(), 0, SEEK_SET);
  lazysnap::erofs::TarScanner scanner;
  uint64_t total = 0;
  std::vector<lazysnap::erofs::Checkpoint> cps;
  std::string plain;  // the first kKeptPrefix decoded bytes
  bool decoded = false, scanned = true;
  lazysnap::erofs::DecodeOptions opts;
  opts.checkpoint_span = 16 << 10;
  opts.on_checkpoint = [&](lazysnap::erofs::Checkpoint&& cp) {
    if (cps.size() < 8) cps.push_back(std::move(cp));
  };
  try {
    lazysnap::erofs::DecodeLayer(
        fd.get(),
        [&](const uint8_t* p, size_t n) {
          Take(p, n, total, plain);
          if (scanned) {
            try {
              scanner.Feed(p, n);
            } catch (const lazysnap::Error&) {
              scanned = false;  // not a tar; the gzip stream is still checked below
            }
          }
        },
        opts);
    decoded = true;
    if (scanned) scanner.Finish();
    (void)lazysnap::erofs::NormalizePath("./a//b/");
  } catch (const lazysnap::Error&) {
  }
  bool zstd = lazysnap::erofs::DetectLayerCompression(std::string_view(
                  reinterpret_cast<const char*>(data), std::min<size_t>(size, 4))) ==
              lazysnap::erofs::LayerCompression::kZstd;
  CheckCheckpoints(data, size, zstd, cps, plain, decoded);
  CheckFastDecode(fd.get(), plain, decoded, total);
  return 0;
}
