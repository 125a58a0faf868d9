// Validates a tar stream as it flows to mkfs.erofs, without buffering file data. mkfs.erofs
// reports hostile input only as an exit code and a terse log line (or, for a truncated stream,
// may just stop); the scanner turns it into an Error that names the entry and the problem, and
// rejects what we must never materialise: entries whose path or hardlink target leaves the
// layer root ("../"), absurd sizes, bad checksums, header-only entries that carry data.
#pragma once

#include <cstddef>
#include <cstdint>
#include <set>
#include <string>

namespace lazysnap::erofs {

class TarScanner {
 public:
  // Throws Error(kInvalidArgument) at the first bad header.
  void Feed(const uint8_t* data, size_t len);
  // Throws Error(kDataLoss) if the stream ended inside a header or an entry's data. A stream that
  // ends on a header boundary without the end-of-archive blocks is accepted (many layer writers
  // omit them).
  void Finish() const;

  bool saw_end_marker() const { return state_ == State::kEnd; }
  // Stream offset just past the first end-of-archive (zero) block; valid once saw_end_marker().
  // Nothing after it is validated, so nothing after it may reach mkfs.erofs.
  uint64_t end_offset() const { return end_offset_; }
  // Directories the layer declares itself (NormalizePath form; "" is the root). The others that
  // the image will hold were implied by deeper paths.
  const std::set<std::string>& explicit_dirs() const { return explicit_dirs_; }
  uint64_t entries() const { return entries_; }
  uint64_t offset() const { return offset_; }

  // Largest entry size accepted (also bounds PAX "size").
  static constexpr uint64_t kMaxEntrySize = uint64_t{1} << 40;
  // Largest PAX / GNU long-name record kept in memory.
  static constexpr uint64_t kMaxMetaRecord = 1 << 20;

 private:
  enum class State { kHeader, kData, kMeta, kEnd };
  void OnHeader();
  void OnMetaRecord();
  [[noreturn]] void Fail(const std::string& what) const;

  State state_ = State::kHeader;
  uint8_t hdr_[512];
  size_t hdr_fill_ = 0;
  uint64_t remaining_ = 0;  // data (+ padding) bytes of the current entry still to pass
  uint64_t data_left_ = 0;  // of which real data (for error messages)
  char meta_type_ = 0;
  std::string meta_;
  // Overrides collected from PAX 'x' / GNU 'L' / 'K' records for the next real entry.
  std::string next_path_, next_link_;
  bool next_size_set_ = false;
  uint64_t next_size_ = 0;
  std::string current_name_;
  uint64_t entries_ = 0;
  uint64_t offset_ = 0;  // bytes consumed so far
  uint64_t header_offset_ = 0;
  uint64_t end_offset_ = 0;
  std::set<std::string> explicit_dirs_;
};

// "./a//b/" -> "a/b"; "/", "." and "./" -> "" (the root).
std::string NormalizePath(const std::string& path);

// A numeric header field: octal (NUL/space terminated) or GNU base-256 (high bit of the first byte
// set). False if unparsable.
bool ParseTarNumber(const uint8_t* p, size_t n, uint64_t* out);

// True if `path` (a tar entry name) has a ".." component. Leading "/" and "./" are fine.
bool EscapesRoot(const std::string& path);

}  // namespace lazysnap::erofs
