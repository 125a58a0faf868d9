// Rewrites, in the tar stream on its way to mkfs.erofs, every header whose path names the layer
// root with slashes ("/", "//", "./", "/./", the ustar prefix included) to "." and recomputes its
// checksum. Why: mkfs.erofs 1.8.6 strips trailing slashes from a header's path with
// `while (path[j - 1] == '/') path[--j] = '\0';`, which for a path of only slashes runs off the
// front of the buffer: SIGSEGV or SIGBUS (exit 139/135). umoci insert writes "/" as a layer's first
// entry. "." is the spelling mkfs.erofs takes for the root, and the header keeps its 512 bytes, so
// no stream offset moves (index-only images point into the original tar, which the blob and the
// digest keep as it came: only mkfs.erofs sees the rewrite).
//
// Not rewritten: PAX 'x' path= and GNU 'L' long names. mkfs.erofs does not strip those, and a PAX
// path "/" or a 'L' name of 150 slashes builds fine (tests/erofs/tar_root_fix_test.cc).
//
// Streaming: bytes go in as they come, in chunks of any size, and a chunk goes out in one piece
// unless a header in it is rewritten; a header cut across chunks is held back until its 512 bytes
// are in. Entry boundaries follow TarScanner's reading: header, data padded to 512 (a PAX 'x'
// size= overrides the next entry's size), 'x' / 'g' / 'L' / 'K' records skipped as data. The input
// is untrusted: from a header whose checksum or size does not parse (or a malformed PAX record),
// and from the first zero block on, everything passes through unchanged; TarScanner, which sees
// the same bytes, rejects what is malformed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "erofs/layer_decoder.h"

namespace lazysnap::erofs {

class TarRootFix {
 public:
  explicit TarRootFix(ByteSink out) : out_(std::move(out)) {}

  // Passes `data` on to the sink, rewritten, possibly holding back the start of a header.
  void Feed(const uint8_t* data, size_t len);
  // The stream ended: emits a partial header still held back, unchanged.
  void Flush();

  uint64_t rewritten() const { return rewritten_; }  // headers rewritten so far

 private:
  enum class State { kHeader, kData, kPax, kPass };
  // Reads the complete header in hdr_ and sets what follows; true if it rewrote hdr_.
  bool OnHeader();
  void OnPaxRecord();

  ByteSink out_;
  State state_ = State::kHeader;
  uint8_t hdr_[512];
  size_t hdr_fill_ = 0;
  uint64_t remaining_ = 0;  // data (+ padding) bytes of the current entry or record still to pass
  uint64_t pax_left_ = 0;   // of which PAX record bytes still to keep
  std::string pax_;
  bool next_size_set_ = false;  // a PAX size= for the next entry
  uint64_t next_size_ = 0;
  uint64_t rewritten_ = 0;
};

// True if a tar path names the layer root: not empty, and every '/'-separated component is empty
// or "." ("/", "//", ".", "./", "/./.").
bool IsTarRootPath(std::string_view path);

}  // namespace lazysnap::erofs
