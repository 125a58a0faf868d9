#include "erofs/reader.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/error.h"
#include "erofs/zdata.h"

namespace lazysnap::erofs {
namespace {

// On-disk constants (kernel include/uapi... fs/erofs/erofs_fs.h).
constexpr uint32_t kMagic = 0xE0F5E1E2;
constexpr uint64_t kSuperOffset = 1024;
constexpr unsigned kLayoutFlatPlain = 0, kLayoutCompressedFull = 1, kLayoutFlatInline = 2,
                   kLayoutCompressed = 3, kLayoutChunkBased = 4;
constexpr uint16_t kChunkFormatBlkbitsMask = 0x1f, kChunkFormatIndexes = 0x20;
constexpr uint32_t kNullAddr = 0xffffffff;
constexpr uint32_t kFeatureZeroPadding = 0x1;
constexpr size_t kDirentSize = 12;
constexpr uint64_t kMaxDirSize = 256ull << 20;     // refuse to parse larger directories
constexpr uint64_t kMaxReadChunk = 1ull << 30;     // one Read() call
constexpr uint64_t kMaxExtentsPerCall = 1u << 20;  // MapRange output bound

uint16_t Le16(const uint8_t* p) {
  return static_cast<uint16_t>(p[0] | p[1] << 8);
}
uint32_t Le32(const uint8_t* p) {
  return uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24;
}
uint64_t Le64(const uint8_t* p) {
  return uint64_t{Le32(p)} | uint64_t{Le32(p + 4)} << 32;
}

[[noreturn]] void Corrupt(const std::string& what) {
  throw Error(ErrorCode::kDataLoss, "corrupt EROFS image: " + what);
}

uint64_t MulOrDie(uint64_t a, uint64_t b, const char* what) {
  uint64_t r;
  if (__builtin_mul_overflow(a, b, &r)) Corrupt(std::string(what) + " overflows");
  return r;
}
uint64_t AddOrDie(uint64_t a, uint64_t b, const char* what) {
  uint64_t r;
  if (__builtin_add_overflow(a, b, &r)) Corrupt(std::string(what) + " overflows");
  return r;
}

uint8_t ErofsFtToDt(uint8_t ft) {
  static const uint8_t kMap[] = {DT_UNKNOWN, DT_REG,  DT_DIR,  DT_CHR,
                                 DT_BLK,     DT_FIFO, DT_SOCK, DT_LNK};
  if (ft >= sizeof(kMap)) return DT_UNKNOWN;
  return kMap[ft];
}

const char* XattrPrefix(uint8_t index) {
  switch (index) {
    case 1:
      return "user.";
    case 2:
      return "system.posix_acl_access";
    case 3:
      return "system.posix_acl_default";
    case 4:
      return "trusted.";
    case 6:
      return "security.";
  }
  return nullptr;
}

}  // namespace

struct Reader::Inode {
  uint64_t nid = 0;
  uint64_t pos = 0;  // byte offset of the on-disk inode in the metadata image
  unsigned layout = 0;
  uint32_t isize = 0;        // 32 or 64
  uint32_t xattr_isize = 0;  // inline xattr area that follows the inode
  uint32_t raw = 0;          // i_u: raw_blkaddr / rdev / chunk format
  Attr attr;
  uint64_t tail() const { return pos + isize + xattr_isize; }
};

// ---- BlockSources ----

FileBlockSource::FileBlockSource(const std::string& path) : path_(path) {
  fd_.reset(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd_) ThrowErrno("open " + path);
  struct stat st;
  if (::fstat(fd_.get(), &st) != 0) ThrowErrno("stat " + path);
  size_ = static_cast<uint64_t>(st.st_size);
}

void FileBlockSource::Read(uint64_t offset, size_t len, void* buf) const {
  auto* p = static_cast<uint8_t*>(buf);
  while (len > 0) {
    ssize_t n = ::pread(fd_.get(), p, len, static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      ThrowErrno("read " + path_);
    }
    if (n == 0) throw Error(ErrorCode::kDataLoss, "short read from " + path_);
    p += n;
    len -= static_cast<size_t>(n);
    offset += static_cast<uint64_t>(n);
  }
}

void MemoryBlockSource::Read(uint64_t offset, size_t len, void* buf) const {
  if (offset > data_.size() || len > data_.size() - offset)
    throw Error(ErrorCode::kDataLoss, "read beyond the end of an in-memory image");
  memcpy(buf, data_.data() + offset, len);
}

// ---- Reader ----

void Reader::ReadMeta(uint64_t offset, size_t len, void* buf) const {
  ReadDevice(0, offset, len, buf);
}

void Reader::ReadDevice(uint32_t device, uint64_t offset, size_t len, void* buf) const {
  const BlockSource* src = nullptr;
  if (device == 0) {
    src = meta_.get();
  } else if (device <= devices_.size() && devices_[device - 1]) {
    src = devices_[device - 1].get();
  } else {
    throw Error(ErrorCode::kFailedPrecondition,
                "EROFS data lives on device " + std::to_string(device) + ", which was not given");
  }
  if (offset > src->Size() || len > src->Size() - offset)
    Corrupt("reference to bytes [" + std::to_string(offset) + ", +" + std::to_string(len) +
            ") beyond the end of device " + std::to_string(device) + " (" +
            std::to_string(src->Size()) + " bytes)");
  src->Read(offset, len, buf);
}

std::unique_ptr<Reader> Reader::Open(std::shared_ptr<const BlockSource> meta,
                                     std::vector<std::shared_ptr<const BlockSource>> devices) {
  std::unique_ptr<Reader> r(new Reader());
  r->meta_ = std::move(meta);
  r->devices_ = std::move(devices);
  uint8_t sb[128];
  if (r->meta_->Size() < kSuperOffset + sizeof(sb)) Corrupt("too small for a superblock");
  r->ReadMeta(kSuperOffset, sizeof(sb), sb);
  if (Le32(sb) != kMagic) Corrupt("bad superblock magic");
  SuperInfo& s = r->sb_;
  s.feature_compat = Le32(sb + 8);
  uint32_t blkbits = sb[12];
  if (blkbits < 9 || blkbits > 16) Corrupt("unsupported block size 2^" + std::to_string(blkbits));
  r->blkbits_ = blkbits;
  s.block_size = 1u << blkbits;
  s.root_nid = Le16(sb + 14);
  s.inodes = Le64(sb + 16);
  s.build_time = Le64(sb + 24);
  s.build_time_nsec = Le32(sb + 32);
  s.meta_blkaddr = Le32(sb + 40);
  s.xattr_blkaddr = Le32(sb + 44);
  s.feature_incompat = Le32(sb + 80);
  uint16_t extra_devices = Le16(sb + 86);
  uint16_t devt_slotoff = Le16(sb + 88);
  uint8_t dirblkbits = sb[90];
  if (dirblkbits > 4) Corrupt("absurd directory block size");
  s.dir_block_size = s.block_size << dirblkbits;
  // Long xattr name prefixes (sb[91]) are not loaded: entries using them are refused (Xattrs).
  if (s.build_time_nsec >= 1000000000u) Corrupt("build time nanoseconds out of range");
  if (extra_devices) {
    // 128-byte device slots: tag[64], blocks, mapped_blkaddr, reserved.
    uint64_t pos = uint64_t{devt_slotoff} * 128;
    for (uint32_t i = 0; i < extra_devices; ++i, pos += 128) {
      uint8_t slot[128];
      r->ReadMeta(pos, sizeof(slot), slot);
      DeviceInfo d;
      d.tag.assign(reinterpret_cast<const char*>(slot), strnlen(reinterpret_cast<char*>(slot), 64));
      d.blocks = Le32(slot + 64);
      d.mapped_blkaddr = Le32(slot + 68);
      s.devices.push_back(std::move(d));
    }
  }
  uint32_t n = extra_devices + 1;  // kernel: roundup_pow_of_two(ndevs + 1) - 1
  uint32_t p2 = 1;
  while (p2 < n) p2 <<= 1;
  r->device_id_mask_ = p2 - 1;
  Inode root = r->LoadInode(s.root_nid);
  if (!S_ISDIR(root.attr.mode)) Corrupt("root inode is not a directory");
  return r;
}

Reader::Inode Reader::LoadInode(uint64_t nid) const {
  Inode in;
  in.nid = nid;
  in.pos = AddOrDie(MulOrDie(sb_.meta_blkaddr, sb_.block_size, "meta_blkaddr"),
                    MulOrDie(nid, 32, "nid"), "inode position");
  uint8_t d[64];
  ReadMeta(in.pos, 32, d);
  uint16_t format = Le16(d);
  bool extended = format & 1;
  in.layout = (format >> 1) & 7;
  if (in.layout > kLayoutChunkBased) Corrupt("nid " + std::to_string(nid) + ": unknown layout");
  in.isize = extended ? 64 : 32;
  uint16_t icount = Le16(d + 2);
  in.xattr_isize = icount ? 12 + 4 * (uint32_t{icount} - 1) : 0;
  Attr& a = in.attr;
  a.ino = nid;
  a.mode = Le16(d + 4);
  in.raw = Le32(d + 16);
  if (extended) {
    ReadMeta(in.pos + 32, 32, d + 32);
    a.size = Le64(d + 8);
    a.uid = Le32(d + 24);
    a.gid = Le32(d + 28);
    a.mtime = static_cast<int64_t>(Le64(d + 32));
    a.mtime_nsec = Le32(d + 40);
    a.nlink = Le32(d + 44);
  } else {
    a.nlink = Le16(d + 6);
    a.size = Le32(d + 8);
    // Compact inodes carry mtime as an offset from the build time (0 in older images).
    a.mtime = static_cast<int64_t>(sb_.build_time + Le32(d + 12));
    a.mtime_nsec = sb_.build_time_nsec;
    a.uid = Le16(d + 24);
    a.gid = Le16(d + 26);
  }
  if (a.mtime_nsec >= 1000000000u) Corrupt("nid " + std::to_string(nid) + ": bad mtime nsec");
  if (S_ISCHR(a.mode) || S_ISBLK(a.mode)) {
    // new_decode_dev()
    uint32_t dev = in.raw;
    a.rdev = makedev((dev & 0xfff00) >> 8, (dev & 0xff) | ((dev >> 12) & 0xfff00));
  }
  switch (a.mode & S_IFMT) {
    case S_IFREG:
    case S_IFDIR:
    case S_IFLNK:
    case S_IFCHR:
    case S_IFBLK:
    case S_IFIFO:
    case S_IFSOCK:
      break;
    default:
      Corrupt("nid " + std::to_string(nid) + ": bad file type in mode");
  }
  if (in.tail() > meta_->Size()) Corrupt("nid " + std::to_string(nid) + " beyond the image");
  return in;
}

internal::ZContext Reader::ZCtx() const {
  internal::ZContext ctx;
  ctx.blkbits = blkbits_;
  ctx.zero_padding = sb_.feature_incompat & kFeatureZeroPadding;
  ctx.read = [this](uint64_t off, size_t n, void* buf) { ReadMeta(off, n, buf); };
  return ctx;
}

internal::ZInode Reader::ZIn(const Inode& in) const {
  return internal::ZInode{in.nid, in.tail(), in.attr.size, in.layout == kLayoutCompressedFull};
}

std::vector<Extent> Reader::Map(const Inode& in, uint64_t offset, uint64_t len) const {
  std::vector<Extent> out;
  const Attr& a = in.attr;
  if (offset >= a.size || len == 0) return out;
  uint64_t end = std::min<uint64_t>(a.size, offset + std::min<uint64_t>(len, a.size - offset));
  const uint64_t bs = sb_.block_size;
  auto push = [&](uint64_t foff, uint32_t dev, uint64_t doff, uint64_t n, bool hole) {
    if (!out.empty()) {
      Extent& l = out.back();
      if (l.hole == hole && l.file_offset + l.length == foff &&
          (hole || (l.device == dev && l.offset + l.length == doff))) {
        l.length += n;
        if (!hole) l.device_length += n;
        return;
      }
    }
    if (out.size() >= kMaxExtentsPerCall) Corrupt("too many extents in one mapping");
    out.push_back(Extent{foff, dev, hole ? 0 : doff, n, hole, hole ? 0 : n, false});
  };
  switch (in.layout) {
    case kLayoutFlatPlain:
    case kLayoutFlatInline: {
      uint64_t nblocks = (a.size + bs - 1) / bs;
      uint64_t lastblk = in.layout == kLayoutFlatInline ? nblocks - 1 : nblocks;
      uint64_t plain_end = std::min(end, lastblk * bs);
      if (offset < plain_end) {
        uint64_t base = MulOrDie(in.raw, bs, "raw_blkaddr");
        push(offset, 0, AddOrDie(base, offset, "data offset"), plain_end - offset, false);
      }
      if (end > lastblk * bs) {
        uint64_t from = std::max(offset, lastblk * bs);
        uint64_t tail_len = a.size - lastblk * bs;
        // The kernel requires the inline tail to sit in the inode's own metadata block.
        if ((in.tail() % bs) + tail_len > bs)
          Corrupt("nid " + std::to_string(in.nid) + ": inline data crosses a block boundary");
        push(from, 0, in.tail() + (from - lastblk * bs), end - from, false);
      }
      break;
    }
    case kLayoutChunkBased: {
      uint16_t fmt = static_cast<uint16_t>(in.raw & 0xffff);
      if (fmt & ~(kChunkFormatBlkbitsMask | kChunkFormatIndexes))
        Corrupt("nid " + std::to_string(in.nid) + ": unknown chunk format bits");
      unsigned chunkbits = blkbits_ + (fmt & kChunkFormatBlkbitsMask);
      if (chunkbits > 48) Corrupt("absurd chunk size");
      bool indexes = fmt & kChunkFormatIndexes;
      uint64_t unit = indexes ? 8 : 4;
      uint64_t base = (in.tail() + unit - 1) / unit * unit;
      uint64_t chunk = uint64_t{1} << chunkbits;
      for (uint64_t c = offset >> chunkbits; (c << chunkbits) < end; ++c) {
        uint8_t idx[8];
        ReadMeta(AddOrDie(base, MulOrDie(c, unit, "chunk index"), "chunk index"), unit, idx);
        uint32_t dev = 0;
        uint32_t blk = indexes ? Le32(idx + 4) : Le32(idx);
        if (indexes) dev = Le16(idx + 2) & device_id_mask_;
        uint64_t cstart = c << chunkbits;
        uint64_t from = std::max(offset, cstart), to = std::min(end, cstart + chunk);
        if (blk == kNullAddr) {
          push(from, 0, 0, to - from, true);
          continue;
        }
        uint64_t pa = MulOrDie(blk, bs, "chunk blkaddr") + (from - cstart);
        if (dev == 0 && !sb_.devices.empty()) {
          // Flat multi-device addressing: a device mapped into the global block space.
          for (size_t i = 0; i < sb_.devices.size(); ++i) {
            const DeviceInfo& d = sb_.devices[i];
            if (!d.mapped_blkaddr) continue;
            uint64_t start = d.mapped_blkaddr * bs, length = d.blocks * bs;
            if (pa >= start && pa < start + length) {
              pa -= start;
              dev = static_cast<uint32_t>(i + 1);
              break;
            }
          }
        }
        if (dev > sb_.devices.size())
          Corrupt("nid " + std::to_string(in.nid) + ": chunk on unknown device " +
                  std::to_string(dev));
        push(from, dev, pa, to - from, false);
      }
      break;
    }
    case kLayoutCompressedFull:
    case kLayoutCompressed:
      for (const internal::ZExtent& z : internal::MapCompressed(ZCtx(), ZIn(in), offset, len))
        out.push_back(Extent{z.la, 0, z.pa, z.llen, false, z.plen, true});
      break;
  }
  return out;
}

std::string Reader::ReadData(const Inode& in, uint64_t offset, uint64_t len) const {
  if (len > kMaxReadChunk) len = kMaxReadChunk;
  if (in.layout == kLayoutCompressed || in.layout == kLayoutCompressedFull)
    return internal::ReadCompressed(ZCtx(), ZIn(in), offset, len);
  std::vector<Extent> ext = Map(in, offset, len);
  uint64_t total = 0;
  for (const Extent& e : ext) total += e.length;
  std::string out(total, '\0');
  for (const Extent& e : ext) {
    if (e.hole) continue;
    ReadDevice(e.device, e.offset, e.length, out.data() + (e.file_offset - offset));
  }
  return out;
}

template <typename Fn>
bool Reader::ForEachDirentInBlock(const Inode& dir, uint64_t block, Fn&& fn) const {
  std::string blk = ReadData(dir, block * sb_.dir_block_size, sb_.dir_block_size);
  const auto* b = reinterpret_cast<const uint8_t*>(blk.data());
  size_t blen = blk.size();
  if (blen < kDirentSize) Corrupt("directory block too short");
  uint16_t first = Le16(b + 8);
  if (first < kDirentSize || first % kDirentSize || first > blen) Corrupt("bad dirent table");
  size_t count = first / kDirentSize;
  for (size_t i = 0; i < count; ++i) {
    const uint8_t* d = b + i * kDirentSize;
    size_t nameoff = Le16(d + 8);
    size_t nameend = i + 1 < count ? Le16(d + kDirentSize + 8) : blen;
    if (nameoff < first || nameend > blen || nameend <= nameoff) Corrupt("bad dirent name offset");
    size_t len = nameend - nameoff;
    // The last name of a block runs to the block end, NUL-padded.
    if (i + 1 == count) len = strnlen(reinterpret_cast<const char*>(b + nameoff), len);
    if (len == 0 || len > 255) Corrupt("bad dirent name length");
    std::string_view name(reinterpret_cast<const char*>(b + nameoff), len);
    if (!fn(name, Le64(d), d[10])) return false;
  }
  return true;
}

uint64_t Reader::DirBlocks(const Inode& dir) const {
  if (!S_ISDIR(dir.attr.mode)) throw Error(ErrorCode::kInvalidArgument, "not a directory");
  if (dir.attr.size > kMaxDirSize) Corrupt("directory too large");
  return (dir.attr.size + sb_.dir_block_size - 1) / sb_.dir_block_size;
}

std::vector<DirEntry> Reader::ReadDir(uint64_t ino) const {
  std::vector<DirEntry> out;
  Inode dir = LoadInode(ino);
  for (uint64_t blk = 0, n = DirBlocks(dir); blk < n; ++blk) {
    ForEachDirentInBlock(dir, blk, [&](std::string_view name, uint64_t nid, uint8_t ft) {
      if (name != "." && name != "..")
        out.push_back(DirEntry{std::string(name), nid, ErofsFtToDt(ft)});
      return true;
    });
  }
  return out;
}

std::optional<uint64_t> Reader::LookupChild(uint64_t dir_ino, const std::string& name) const {
  Inode dir = LoadInode(dir_ino);
  uint64_t n = DirBlocks(dir);
  if (n == 0) return std::nullopt;
  // Names are sorted (bytewise) across the whole directory, as the kernel relies on too: binary
  // search the blocks by their first name, then scan the one block that can hold `name`.
  auto first_name = [&](uint64_t blk) {
    std::string first;
    ForEachDirentInBlock(dir, blk, [&](std::string_view nm, uint64_t, uint8_t) {
      first = nm;
      return false;
    });
    return first;
  };
  uint64_t lo = 0, hi = n - 1;
  while (lo < hi) {
    uint64_t mid = lo + (hi - lo + 1) / 2;
    if (std::string_view(first_name(mid)) <= std::string_view(name)) {
      lo = mid;
    } else {
      hi = mid - 1;
    }
  }
  std::optional<uint64_t> found;
  ForEachDirentInBlock(dir, lo, [&](std::string_view nm, uint64_t nid, uint8_t) {
    if (nm == name) found = nid;
    return !found && nm < std::string_view(name);
  });
  return found;
}

uint64_t Reader::Lookup(const std::string& path) const {
  uint64_t ino = sb_.root_nid;
  size_t pos = 0;
  while (pos < path.size()) {
    size_t slash = path.find('/', pos);
    if (slash == std::string::npos) slash = path.size();
    std::string comp = path.substr(pos, slash - pos);
    pos = slash + 1;
    if (comp.empty() || comp == ".") continue;
    std::optional<uint64_t> next = LookupChild(ino, comp);
    if (!next) throw Error(ErrorCode::kNotFound, "no such file in EROFS image: " + path);
    ino = *next;
  }
  return ino;
}

Attr Reader::GetAttr(uint64_t ino) const {
  return LoadInode(ino).attr;
}

std::string Reader::ReadLink(uint64_t ino) const {
  Inode in = LoadInode(ino);
  if (!S_ISLNK(in.attr.mode)) throw Error(ErrorCode::kInvalidArgument, "not a symlink");
  if (in.attr.size == 0 || in.attr.size > 4095) Corrupt("bad symlink length");
  return ReadData(in, 0, in.attr.size);
}

std::vector<std::pair<std::string, std::string>> Reader::Xattrs(const Inode& in) const {
  std::vector<std::pair<std::string, std::string>> out;
  if (in.xattr_isize == 0) return out;
  if (in.xattr_isize < 12) Corrupt("bad xattr area");
  std::string area(in.xattr_isize, '\0');
  ReadMeta(in.pos + in.isize, area.size(), area.data());
  const auto* p = reinterpret_cast<const uint8_t*>(area.data());
  uint8_t shared = p[4];
  size_t pos = 12;
  if (pos + 4ull * shared > area.size()) Corrupt("shared xattr ids beyond the xattr area");
  // Reads one entry (header, name, value) through `read(off, len, buf)`; returns its size.
  auto parse = [&](auto&& read, uint64_t off) -> uint64_t {
    uint8_t h[4];
    read(off, 4, h);
    uint8_t name_len = h[0], index = h[1];
    uint16_t value_size = Le16(h + 2);
    std::string nv(size_t{name_len} + value_size, '\0');
    read(off + 4, nv.size(), nv.data());
    if (index & 0x80)
      throw Error(ErrorCode::kFailedPrecondition, "long xattr name prefixes are not supported");
    const char* prefix = XattrPrefix(index);
    if (prefix) {
      std::string name = prefix + nv.substr(0, name_len);
      out.emplace_back(std::move(name), nv.substr(name_len));
    }  // unknown indexes (lustre) are not exposed, as the kernel does
    return (4 + nv.size() + 3) / 4 * 4;
  };
  for (uint8_t i = 0; i < shared; ++i) {
    uint64_t id = Le32(p + 12 + 4 * i);
    uint64_t off = AddOrDie(MulOrDie(sb_.xattr_blkaddr, sb_.block_size, "xattr_blkaddr"),
                            MulOrDie(id, 4, "shared xattr id"), "shared xattr");
    parse([&](uint64_t o, size_t n, void* buf) { ReadMeta(o, n, buf); }, off);
  }
  pos += 4ull * shared;
  while (pos + 4 <= area.size()) {
    pos += parse(
        [&](uint64_t o, size_t n, void* buf) {
          if (o > area.size() || n > area.size() - o) Corrupt("inline xattr beyond its area");
          memcpy(buf, area.data() + o, n);
        },
        pos);
  }
  return out;
}

std::vector<std::string> Reader::ListXattrs(uint64_t ino) const {
  std::vector<std::string> names;
  for (auto& [k, v] : Xattrs(LoadInode(ino))) names.push_back(k);
  return names;
}

std::optional<std::string> Reader::GetXattr(uint64_t ino, const std::string& name) const {
  for (auto& [k, v] : Xattrs(LoadInode(ino)))
    if (k == name) return v;
  return std::nullopt;
}

std::vector<Extent> Reader::MapRange(uint64_t ino, uint64_t offset, uint64_t len) const {
  Inode in = LoadInode(ino);
  if (!S_ISREG(in.attr.mode) && !S_ISLNK(in.attr.mode) && !S_ISDIR(in.attr.mode)) return {};
  return Map(in, offset, len);
}

bool Reader::LendRange(uint64_t ino, uint64_t offset, uint64_t len, const RangeUser& use) const {
  Inode in = LoadInode(ino);
  if (!S_ISREG(in.attr.mode) || offset >= in.attr.size || len == 0) return false;
  uint64_t n = std::min(len, in.attr.size - offset);
  std::vector<Extent> ext = Map(in, offset, n);
  if (ext.size() != 1) return false;
  const Extent& e = ext.front();
  if (e.hole || e.compressed || e.device == 0 || e.file_offset != offset || e.length < n ||
      e.device > devices_.size() || !devices_[e.device - 1]) {
    return false;
  }
  const BlockSource& src = *devices_[e.device - 1];
  if (e.offset > src.Size() || n > src.Size() - e.offset) return false;  // Read() reports it
  return src.LendFd(e.offset, static_cast<size_t>(n),
                    [&](int fd, uint64_t pos) { use(fd, pos, static_cast<size_t>(n)); });
}

std::string Reader::Read(uint64_t ino, uint64_t offset, uint64_t len) const {
  Inode in = LoadInode(ino);
  if (S_ISDIR(in.attr.mode)) throw Error(ErrorCode::kInvalidArgument, "is a directory");
  if (!S_ISREG(in.attr.mode) && !S_ISLNK(in.attr.mode)) return {};
  return ReadData(in, offset, len);
}

}  // namespace lazysnap::erofs
