// Inflated spans of one lazily served layer, kept on local disk so that reading them again costs
// a pread instead of a fetch-from-cache plus inflate.
//
// The store is one unlinked sparse file (O_TMPFILE in the cache directory) in which a span's
// bytes sit at their offset in the uncompressed tar. It lives exactly as long as the layer is
// served: a crash leaves nothing behind, and a restarted server rebuilds it from the chunk cache,
// where every compressed chunk stays digest-checked. Spans are evicted least recently used by
// punching holes once the store holds more than `max_bytes`; a span being read is never evicted.
// A write the disk refuses (ENOSPC, EIO) disables the store: reads go on from memory, nothing is
// lost.
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <map>
#include <mutex>
#include <string>
#include <string_view>

#include "common/unique_fd.h"

namespace lazysnap::lazy {

struct SpanStoreStats {
  uint64_t bytes = 0;      // inflated bytes on disk now
  uint64_t hits = 0;       // reads served from the store
  uint64_t evictions = 0;  // spans whose holes were punched to stay under the bound
  bool disabled = false;   // a write failed; the store serves what it has, takes nothing new
};

class SpanStore {
 public:
  // Throws Error when `dir` cannot hold an unlinked file.
  SpanStore(const std::string& dir, uint64_t max_bytes);
  SpanStore(const SpanStore&) = delete;
  SpanStore& operator=(const SpanStore&) = delete;

  bool Has(size_t span) const;
  // Copies tar bytes [offset, offset + len), all inside `span`, into `out`; false when the span
  // is not in the store (or the disk failed to give it back).
  bool Read(size_t span, uint64_t offset, size_t len, char* out);
  // Keeps `data`, the whole span starting at tar offset `span_offset`. False when the store is
  // disabled or the disk refused the write.
  bool Put(size_t span, uint64_t span_offset, std::string_view data);
  // Holds a stored span in place (not evicted) until Unpin; false when it is not stored. While
  // pinned, its bytes may be read from fd() at their tar offsets (e.g. spliced).
  bool Pin(size_t span);
  void Unpin(size_t span);
  int fd() const { return fd_.get(); }

  SpanStoreStats Stats() const;

 private:
  struct Entry {
    uint64_t offset = 0;
    uint64_t len = 0;
    unsigned readers = 0;
    std::list<size_t>::iterator pos;
  };
  void EvictLocked();

  UniqueFd fd_;
  uint64_t max_bytes_;
  mutable std::mutex mu_;
  std::map<size_t, Entry> spans_;
  std::list<size_t> lru_;  // most recently used first
  SpanStoreStats stats_;
};

}  // namespace lazysnap::lazy
