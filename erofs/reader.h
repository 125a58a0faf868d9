// A compact userspace EROFS reader: the same on-disk format the kernel mounts, read through
// pluggable I/O so a lazy caller can serve a file from blob bytes it fetches on demand.
// MapRange() says exactly which blob bytes a file range needs before anything is read.
//
// Supported: superblock + device table (extra blob devices), compact and extended inodes,
// FLAT_PLAIN, FLAT_INLINE and CHUNK_BASED layouts (block maps and chunk indexes with device ids,
// as mkfs.erofs --tar=i and --blobdev write them), directories, symlinks, inline and shared
// xattrs, and compressed files (lz4/lz4hc and zstd; compacted and legacy indexes, big
// pclusters; see zdata.h), which MapRange maps to their physical clusters. ztailpacking,
// fragments, lzma/deflate and long xattr name prefixes are refused (Error kFailedPrecondition).
//
// Every offset and size taken from the image is bounds-checked; a corrupt image throws
// Error(kDataLoss). The Reader holds no mutable state, so one instance serves any number of
// threads as long as its BlockSources do (pread-based ones do).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/unique_fd.h"
#include "erofs/zdata.h"

namespace lazysnap::erofs {

class BlockSource {
 public:
  virtual ~BlockSource() = default;
  // Reads exactly `len` bytes at `offset` or throws (offset+len <= Size() is checked by callers).
  virtual void Read(uint64_t offset, size_t len, void* buf) const = 0;
  virtual uint64_t Size() const = 0;
  // Zero-copy readers (a FUSE server splicing into /dev/fuse): when bytes [offset, offset+len)
  // sit in a file at hand, calls use(fd, fd_offset) while they are guaranteed to stay there and
  // returns true. The default (and any source whose bytes are not in a file) returns false.
  using FdUser = std::function<void(int fd, uint64_t fd_offset)>;
  virtual bool LendFd(uint64_t /*offset*/, size_t /*len*/, const FdUser& /*use*/) const {
    return false;
  }
};

class FileBlockSource : public BlockSource {
 public:
  explicit FileBlockSource(const std::string& path);
  void Read(uint64_t offset, size_t len, void* buf) const override;
  uint64_t Size() const override { return size_; }

 private:
  std::string path_;
  UniqueFd fd_;
  uint64_t size_ = 0;
};

class MemoryBlockSource : public BlockSource {
 public:
  explicit MemoryBlockSource(std::string data) : data_(std::move(data)) {}
  void Read(uint64_t offset, size_t len, void* buf) const override;
  uint64_t Size() const override { return data_.size(); }

 private:
  std::string data_;
};

struct Attr {
  uint64_t ino = 0;  // the inode's nid, which is also what the kernel reports as st_ino
  uint32_t mode = 0;
  uint32_t uid = 0, gid = 0;
  uint64_t size = 0;
  int64_t mtime = 0;
  uint32_t mtime_nsec = 0;
  uint32_t nlink = 0;
  uint64_t rdev = 0;  // makedev() form, for char/block devices
};

struct DirEntry {
  std::string name;
  uint64_t ino = 0;
  uint8_t type = 0;  // DT_* (DT_REG, DT_DIR, ...)
};

// One piece of a file range: `length` bytes of the file from `file_offset` live at `offset` on
// device `device` (0 = the metadata image itself, k = extra device k, e.g. the tar blob), taking
// `device_length` bytes there. Plain data: device_length == length. Compressed data: the device
// bytes are one physical cluster that decodes to the whole extent [file_offset, +length), which
// may start before and end after the range asked for.
struct Extent {
  uint64_t file_offset = 0;
  uint32_t device = 0;
  uint64_t offset = 0;
  uint64_t length = 0;
  bool hole = false;  // reads as zeros, no device bytes needed
  uint64_t device_length = 0;
  bool compressed = false;
  bool operator==(const Extent&) const = default;
};

struct DeviceInfo {
  std::string tag;
  uint64_t blocks = 0;
  uint64_t mapped_blkaddr = 0;
};

struct SuperInfo {
  uint32_t block_size = 0;
  uint64_t root_nid = 0;
  uint64_t inodes = 0;
  uint64_t build_time = 0;
  uint32_t build_time_nsec = 0;
  uint32_t feature_compat = 0, feature_incompat = 0;
  uint64_t meta_blkaddr = 0, xattr_blkaddr = 0;
  uint32_t dir_block_size = 0;
  std::vector<DeviceInfo> devices;  // extra devices; index i is device id i+1
};

class Reader {
 public:
  // `devices[i]` backs extra device i+1; may be shorter than the device table (or empty) if only
  // metadata and MapRange are needed. Throws Error(kDataLoss) for a non-EROFS or corrupt image.
  static std::unique_ptr<Reader> Open(std::shared_ptr<const BlockSource> meta,
                                      std::vector<std::shared_ptr<const BlockSource>> devices = {});

  const SuperInfo& super() const { return sb_; }
  uint64_t root_ino() const { return sb_.root_nid; }

  // Absolute or relative-to-root path; symlinks are not followed. Throws kNotFound.
  uint64_t Lookup(const std::string& path) const;
  std::optional<uint64_t> LookupChild(uint64_t dir_ino, const std::string& name) const;
  Attr GetAttr(uint64_t ino) const;
  std::vector<DirEntry> ReadDir(uint64_t ino) const;  // without "." and ".."
  std::string ReadLink(uint64_t ino) const;
  std::vector<std::string> ListXattrs(uint64_t ino) const;  // full names, e.g. "user.foo"
  std::optional<std::string> GetXattr(uint64_t ino, const std::string& name) const;
  // The blob bytes the file range [offset, offset+len) (clamped to the file size) needs, in file
  // order, adjacent plain pieces merged.
  std::vector<Extent> MapRange(uint64_t ino, uint64_t offset, uint64_t len) const;
  // Reads up to `len` bytes (fewer at EOF).
  std::string Read(uint64_t ino, uint64_t offset, uint64_t len) const;
  // When the regular file's range [offset, offset+len) (clamped to the file) is one plain piece
  // of a device that lends its fd (BlockSource::LendFd), calls use(fd, fd_offset, n) with those
  // n bytes held in place and returns true; otherwise false (then use Read).
  using RangeUser = std::function<void(int fd, uint64_t fd_offset, size_t n)>;
  bool LendRange(uint64_t ino, uint64_t offset, uint64_t len, const RangeUser& use) const;

  struct Inode;  // parsed on-disk inode (internal)

 private:
  Reader() = default;
  Inode LoadInode(uint64_t nid) const;
  void ReadMeta(uint64_t offset, size_t len, void* buf) const;
  void ReadDevice(uint32_t device, uint64_t offset, size_t len, void* buf) const;
  std::vector<Extent> Map(const Inode& in, uint64_t offset, uint64_t len) const;
  std::string ReadData(const Inode& in, uint64_t offset, uint64_t len) const;
  std::vector<std::pair<std::string, std::string>> Xattrs(const Inode& in) const;
  uint64_t DirBlocks(const Inode& dir) const;
  internal::ZContext ZCtx() const;
  internal::ZInode ZIn(const Inode& in) const;
  // Calls fn(name, nid, file_type) per dirent of directory block `block` until it returns false;
  // returns false if it did.
  template <typename Fn>
  bool ForEachDirentInBlock(const Inode& dir, uint64_t block, Fn&& fn) const;

  std::shared_ptr<const BlockSource> meta_;
  std::vector<std::shared_ptr<const BlockSource>> devices_;
  SuperInfo sb_;
  uint32_t blkbits_ = 0;
  uint32_t device_id_mask_ = 0;
};

}  // namespace lazysnap::erofs
