#include "erofs/zdata.h"

#include <lz4.h>
#include <zstd.h>

#include <algorithm>
#include <memory>
#include <vector>

#include "common/error.h"

namespace lazysnap::erofs::internal {
namespace {

// On-disk constants (fs/erofs/erofs_fs.h).
constexpr unsigned kTypePlain = 0, kTypeHead1 = 1, kTypeNonhead = 2, kTypeHead2 = 3;
constexpr uint16_t kAdviseCompacted2B = 0x1, kAdviseBigPcluster1 = 0x2, kAdviseBigPcluster2 = 0x4,
                   kAdviseInlinePcluster = 0x8, kAdviseInterlaced = 0x10, kAdviseFragment = 0x20;
constexpr uint32_t kD0Cblkcnt = 1u << 11;
constexpr unsigned kAlgLz4 = 0, kAlgZstd = 3;
constexpr uint64_t kMaxPcluster = 1u << 20;  // Z_EROFS_PCLUSTER_MAX_SIZE
// Largest decompressed prefix of one extent we materialise (bounds a hostile extent's cost). A
// legitimate extent decodes from at most a 1 MiB pcluster; lz4's ratio limit (~255:1) puts it
// under 256 MiB.
constexpr uint64_t kMaxExtentRead = 256u << 20;

uint16_t Le16(const uint8_t* p) {
  return static_cast<uint16_t>(p[0] | p[1] << 8);
}
uint32_t Le32(const uint8_t* p) {
  return uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24;
}

[[noreturn]] void Corrupt(const ZInode& in, const std::string& what) {
  throw Error(ErrorCode::kDataLoss,
              "corrupt EROFS image: compressed nid " + std::to_string(in.nid) + ": " + what);
}
[[noreturn]] void Unsupported(const ZInode& in, const std::string& what) {
  throw Error(ErrorCode::kFailedPrecondition, "EROFS nid " + std::to_string(in.nid) + ": " + what +
                                                  " is not supported by the userspace reader");
}

struct LCluster {
  unsigned type = 0;
  uint32_t clusterofs = 0;
  uint32_t delta0 = 0;
  uint32_t compressedblks = 0;  // from a D0_CBLKCNT non-head lcluster (big pclusters)
  uint64_t pblk = 0;
};

class Mapper {
 public:
  Mapper(const ZContext& ctx, const ZInode& in) : ctx_(ctx), in_(in) {
    uint64_t hpos = (in.tail + 7) / 8 * 8;
    uint8_t h[8];
    ctx.read(hpos, 8, h);
    if (h[7] & 0x80) Unsupported(in, "a whole-file fragment (packed inode)");
    advise_ = Le16(h + 4);
    algs_[0] = h[6] & 15;
    algs_[1] = h[6] >> 4;
    lbits_ = ctx.blkbits + (h[7] & 7);
    if (advise_ & kAdviseInlinePcluster) Unsupported(in, "ztailpacking");
    if (advise_ & kAdviseFragment) Unsupported(in, "a tail fragment (packed inode)");
    if (lbits_ > (in.legacy ? 30u : 14u)) Corrupt(in, "logical cluster size too large");
    if (!in.legacy && !(advise_ & kAdviseBigPcluster1) != !(advise_ & kAdviseBigPcluster2))
      Corrupt(in, "inconsistent big pcluster flags of compacted indexes");
    totalidx_ = (in.size + (uint64_t{1} << lbits_) - 1) >> lbits_;
    ebase_ = hpos + 8;
    if (in.legacy) ebase_ += 8;  // Z_EROFS_FULL_INDEX_ALIGN: header + 8 bytes of padding
  }

  uint64_t lcluster_size() const { return uint64_t{1} << lbits_; }

  LCluster Load(uint64_t lcn) const {
    if (lcn >= totalidx_) Corrupt(in_, "logical cluster " + std::to_string(lcn) + " out of range");
    return in_.legacy ? LoadFull(lcn) : LoadCompact(lcn);
  }

  // The extent holding file offset `pos`: [la, end), its head lcluster and algorithm.
  struct Extent {
    uint64_t la = 0, end = 0;
    uint64_t pa = 0, plen = 0;
    unsigned headtype = 0;
  };

  Extent MapAt(uint64_t pos) const {
    const uint64_t lcn = pos >> lbits_;
    const uint32_t endoff = static_cast<uint32_t>(pos & (lcluster_size() - 1));
    LCluster l = Load(lcn);
    Extent e;
    uint64_t head_lcn = lcn;
    LCluster head = l;
    if (l.type != kTypeNonhead && endoff >= l.clusterofs) {
      e.end = ScanEnd(lcn + 1);
    } else {
      uint64_t dist;
      if (l.type != kTypeNonhead) {
        if (lcn == 0) Corrupt(in_, "first logical cluster starts after offset 0");
        e.end = (lcn << lbits_) | l.clusterofs;
        dist = 1;
      } else {
        e.end = ScanEnd(lcn + 1);
        dist = l.delta0;
      }
      // Walk back to the head lcluster (bounded: each step moves back by >= 1).
      for (;;) {
        if (dist == 0 || dist > head_lcn) Corrupt(in_, "bad lookback distance");
        head_lcn -= dist;
        head = Load(head_lcn);
        if (head.type != kTypeNonhead) break;
        dist = head.delta0;
      }
    }
    e.la = (head_lcn << lbits_) | head.clusterofs;
    e.end = std::min(e.end, in_.size);
    if (e.end <= e.la || pos < e.la || pos >= e.end) Corrupt(in_, "inconsistent extent");
    e.headtype = head.type;
    e.pa = head.pblk << ctx_.blkbits;
    e.plen = CompressedLen(head_lcn, head.type);
    return e;
  }

  unsigned Algorithm(unsigned headtype) const {
    return headtype == kTypeHead2 ? algs_[1] : algs_[0];
  }
  bool interlaced() const { return advise_ & kAdviseInterlaced; }

 private:
  // The end of the extent continuing into lcluster `lcn`: the next head's start, or EOF.
  uint64_t ScanEnd(uint64_t lcn) const {
    for (; lcn < totalidx_; ++lcn) {
      LCluster l = Load(lcn);
      if (l.type != kTypeNonhead) return (lcn << lbits_) | l.clusterofs;
    }
    return in_.size;
  }

  uint64_t CompressedLen(uint64_t head_lcn, unsigned headtype) const {
    bool big1 = advise_ & kAdviseBigPcluster1, big2 = advise_ & kAdviseBigPcluster2;
    uint64_t lcn = head_lcn + 1;
    if ((headtype == kTypeHead1 && !big1) ||
        ((headtype == kTypePlain || headtype == kTypeHead2) && !big2) ||
        (lcn << lbits_) >= in_.size)
      return lcluster_size();
    LCluster l = Load(lcn);
    if (l.type == kTypeNonhead && l.delta0 == 1 && l.compressedblks) {
      uint64_t plen = uint64_t{l.compressedblks} << ctx_.blkbits;
      if (plen > kMaxPcluster) Corrupt(in_, "physical cluster too large");
      return plen;
    }
    if (l.type != kTypeNonhead) return lcluster_size();  // a 1-block pcluster
    Corrupt(in_, "big pcluster without a block count");
  }

  LCluster LoadFull(uint64_t lcn) const {
    uint8_t d[8];
    ctx_.read(ebase_ + lcn * 8, 8, d);
    LCluster l;
    l.type = Le16(d) & 3;
    if (l.type == kTypeNonhead) {
      l.clusterofs = static_cast<uint32_t>(lcluster_size());
      l.delta0 = Le16(d + 4);
      if (l.delta0 & kD0Cblkcnt) {
        if (!(advise_ & (kAdviseBigPcluster1 | kAdviseBigPcluster2)))
          Corrupt(in_, "block count without big pclusters");
        l.compressedblks = l.delta0 & ~kD0Cblkcnt;
        l.delta0 = 1;
      }
    } else {
      l.clusterofs = Le16(d + 2);
      if (l.clusterofs >= lcluster_size()) Corrupt(in_, "cluster offset out of range");
      l.pblk = Le32(d + 4);
    }
    return l;
  }

  static unsigned Decode(unsigned lobits, const uint8_t* in, unsigned pos, unsigned* type) {
    uint32_t v = Le32(in + pos / 8) >> (pos & 7);
    *type = (v >> lobits) & 3;
    return v & ((1u << lobits) - 1);
  }

  LCluster LoadCompact(uint64_t lcn) const {
    const unsigned c4_initial = ((32 - ebase_ % 32) / 4) & 7;
    uint64_t c2 = 0;
    if ((advise_ & kAdviseCompacted2B) && c4_initial < totalidx_)
      c2 = (totalidx_ - c4_initial) / 16 * 16;
    uint64_t pos = ebase_;
    unsigned shift = 2;  // compacted 4B
    uint64_t i = lcn;
    if (i >= c4_initial) {
      pos += uint64_t{c4_initial} * 4;
      i -= c4_initial;
      if (i < c2) {
        shift = 1;
      } else {
        pos += c2 * 2;
        i -= c2;
      }
    }
    pos += i << shift;
    unsigned vcnt;
    if (shift == 2) {
      vcnt = 2;
    } else if (lbits_ <= 12) {
      vcnt = 16;
    } else {
      Corrupt(in_, "compacted 2B indexes need 4 KiB logical clusters");
    }
    const unsigned pack = vcnt << shift;
    const unsigned lobits = std::max(lbits_, 12u);
    const unsigned encodebits = (pack - 4) * 8 / vcnt;
    const unsigned bytes = static_cast<unsigned>(pos & (pack - 1));
    uint8_t in[32 + 4] = {};
    ctx_.read(pos - bytes, pack, in);
    int idx = static_cast<int>(bytes >> shift);
    const bool big = advise_ & kAdviseBigPcluster1;
    unsigned type;
    unsigned lo = Decode(lobits, in, encodebits * idx, &type);
    LCluster l;
    l.type = type;
    if (type == kTypeNonhead) {
      l.clusterofs = static_cast<uint32_t>(lcluster_size());
      if (lo & kD0Cblkcnt) {
        if (!big) Corrupt(in_, "block count without big pclusters");
        l.compressedblks = lo & ~kD0Cblkcnt;
        l.delta0 = 1;
        return l;
      }
      if (idx + 1 != static_cast<int>(vcnt)) {
        l.delta0 = lo;
        return l;
      }
      // The last lcluster of a pack stores delta[1]; delta[0] comes from its predecessor.
      lo = Decode(lobits, in, encodebits * (idx - 1), &type);
      if (type != kTypeNonhead) {
        lo = 0;
      } else if (lo & kD0Cblkcnt) {
        lo = 1;
      }
      l.delta0 = lo + 1;
      return l;
    }
    l.clusterofs = lo;
    if (l.clusterofs >= lcluster_size()) Corrupt(in_, "cluster offset out of range");
    // The pack stores one base block address; count the pclusters before this one.
    int64_t nblk = 0;
    if (!big) {
      nblk = 1;
      while (idx > 0) {
        --idx;
        lo = Decode(lobits, in, encodebits * idx, &type);
        if (type == kTypeNonhead) idx -= static_cast<int>(lo);
        if (idx >= 0) ++nblk;
      }
    } else {
      while (idx > 0) {
        --idx;
        lo = Decode(lobits, in, encodebits * idx, &type);
        if (type == kTypeNonhead) {
          if (lo & kD0Cblkcnt) {
            --idx;
            nblk += lo & ~kD0Cblkcnt;
            continue;
          }
          if (lo <= 1) Corrupt(in_, "big pcluster with a plain delta of 1");
          idx -= static_cast<int>(lo) - 2;
          continue;
        }
        ++nblk;
      }
    }
    l.pblk = uint64_t{Le32(in + pack - 4)} + static_cast<uint64_t>(nblk);
    return l;
  }

  const ZContext& ctx_;
  const ZInode& in_;
  uint16_t advise_ = 0;
  unsigned algs_[2] = {0, 0};
  unsigned lbits_ = 12;
  uint64_t totalidx_ = 0;
  uint64_t ebase_ = 0;
};

// Where compressed data begins in a pcluster: after the zero padding that right-aligns it.
size_t SkipPadding(const ZContext& ctx, const ZInode& in, const std::string& pcl) {
  if (!ctx.zero_padding) return 0;
  size_t first = pcl.find_first_not_of('\0');
  if (first == std::string::npos) Corrupt(in, "all-zero physical cluster");
  return first;
}

// The first `want` decompressed bytes of the extent whose pcluster is `pcl`.
std::string Decompress(const ZContext& ctx, const ZInode& in, const Mapper& m,
                       const Mapper::Extent& e, const std::string& pcl, uint64_t want) {
  std::string out(want, '\0');
  if (e.headtype == kTypePlain) {
    // Stored uncompressed; "interlaced" pclusters are rotated so block-aligned data stay aligned.
    if (e.end - e.la > pcl.size()) Corrupt(in, "plain extent larger than its pcluster");
    uint64_t rot = m.interlaced() ? (e.la & ((uint64_t{1} << ctx.blkbits) - 1)) : 0;
    for (uint64_t j = 0; j < want; ++j) out[j] = pcl[(rot + j) % pcl.size()];
    return out;
  }
  size_t pad = SkipPadding(ctx, in, pcl);
  switch (m.Algorithm(e.headtype)) {
    case kAlgLz4: {
      int n = LZ4_decompress_safe_partial(pcl.data() + pad, out.data(),
                                          static_cast<int>(pcl.size() - pad),
                                          static_cast<int>(want), static_cast<int>(want));
      if (n < 0 || static_cast<uint64_t>(n) != want) Corrupt(in, "lz4 data do not decompress");
      return out;
    }
    case kAlgZstd: {
      std::unique_ptr<ZSTD_DCtx, size_t (*)(ZSTD_DCtx*)> z(ZSTD_createDCtx(), ZSTD_freeDCtx);
      if (!z) throw Error(ErrorCode::kResourceExhausted, "ZSTD_createDCtx failed");
      ZSTD_DCtx_setParameter(z.get(), ZSTD_d_windowLogMax, 24);
      ZSTD_inBuffer ib{pcl.data() + pad, pcl.size() - pad, 0};
      ZSTD_outBuffer ob{out.data(), want, 0};
      while (ob.pos < want) {
        size_t before_in = ib.pos, before_out = ob.pos;
        size_t rc = ZSTD_decompressStream(z.get(), &ob, &ib);
        if (ZSTD_isError(rc)) Corrupt(in, std::string("zstd: ") + ZSTD_getErrorName(rc));
        if (rc == 0 && ob.pos < want) Corrupt(in, "zstd frame shorter than its extent");
        if (ib.pos == before_in && ob.pos == before_out) Corrupt(in, "zstd data truncated");
      }
      return out;
    }
    default:
      Unsupported(in, "compression algorithm " + std::to_string(m.Algorithm(e.headtype)));
  }
}

}  // namespace

std::vector<ZExtent> MapCompressed(const ZContext& ctx, const ZInode& inode, uint64_t offset,
                                   uint64_t len) {
  std::vector<ZExtent> out;
  if (offset >= inode.size || len == 0) return out;
  const uint64_t end = offset + std::min(len, inode.size - offset);
  Mapper m(ctx, inode);
  for (uint64_t pos = offset; pos < end;) {
    Mapper::Extent e = m.MapAt(pos);
    if (e.plen == 0 || e.plen > kMaxPcluster) Corrupt(inode, "bad physical cluster length");
    if (out.size() >= (1u << 20)) Corrupt(inode, "too many extents in one mapping");
    out.push_back(ZExtent{e.la, e.end - e.la, e.pa, e.plen});
    pos = e.end;
  }
  return out;
}

std::string ReadCompressed(const ZContext& ctx, const ZInode& inode, uint64_t offset,
                           uint64_t len) {
  std::string out;
  if (offset >= inode.size || len == 0) return out;
  const uint64_t end = offset + std::min(len, inode.size - offset);
  Mapper m(ctx, inode);
  // No reserve(end - offset): a hostile size must not allocate before any extent is valid.
  uint64_t pos = offset;
  while (pos < end) {
    Mapper::Extent e = m.MapAt(pos);
    if (e.plen == 0 || e.plen > kMaxPcluster) Corrupt(inode, "bad physical cluster length");
    std::string pcl(e.plen, '\0');
    ctx.read(e.pa, pcl.size(), pcl.data());
    uint64_t upto = std::min(e.end, end);
    if (upto - e.la > kMaxExtentRead) Corrupt(inode, "extent too large to decompress");
    std::string data = Decompress(ctx, inode, m, e, pcl, upto - e.la);
    out.append(data, pos - e.la, upto - pos);
    pos = upto;
  }
  return out;
}

}  // namespace lazysnap::erofs::internal
