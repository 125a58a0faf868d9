// libFuzzer entry for the layer input path: the bytes are a layer (tar, tar.gz or tar.zst, as
// sniffed), decoded by DecodeLayer and validated by TarScanner exactly as BuildLayer does before
// mkfs.erofs sees anything. Every failure must be a lazysnap::Error; decompression must stay
// bounded (zstd window limit) and never hang; every gzip checkpoint must reproduce the bytes
// after it.
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/unique_fd.h"
#include "erofs/layer_decoder.h"
#include "erofs/tar_scanner.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  lazysnap::UniqueFd fd(::memfd_create("layer", MFD_CLOEXEC));
  if (!fd) return 0;
  if (size && ::write(fd.get(), data, size) != static_cast<ssize_t>(size)) return 0;
  ::lseek(fd.get(), 0, SEEK_SET);
  lazysnap::erofs::TarScanner scanner;
  uint64_t total = 0;
  try {
    lazysnap::erofs::DecodeLayer(fd.get(), [&](const uint8_t* p, size_t n) {
      total += n;
      // Decompression bombs are the caller's disk budget; keep fuzz runs short.
      if (total > (64u << 20))
        throw lazysnap::Error(lazysnap::ErrorCode::kResourceExhausted, "big");
      scanner.Feed(p, n);
    });
    scanner.Finish();
    (void)lazysnap::erofs::NormalizePath("./a//b/");
  } catch (const lazysnap::Error&) {
  }
  return 0;
}
