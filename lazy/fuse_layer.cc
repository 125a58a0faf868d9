#define FUSE_USE_VERSION 312
#include "lazy/fuse_layer.h"

#include <dirent.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <future>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "common/error.h"
#include "common/file_util.h"
#include "lazy/fuse_server.h"

namespace lazysnap::lazy {

struct FuseLayerMount::Impl {
  std::string mountpoint;
  std::shared_ptr<const erofs::Reader> reader;
  FuseLayerOptions opts;
  const Logger& log;
  std::unique_ptr<FuseServer> server;
  std::atomic<uint64_t> lookups{0}, reads{0}, bytes_read{0}, errors{0};

  // Directory listings ("." and ".." first) by nid. Readdir finds them by inode, not through a
  // per-open handle: a server that adopts this connection after a crash then answers reads of
  // directories opened before it started. Bounded: cleared when it grows past kMaxDirs (the
  // kernel caches what it read, cache_readdir, so a listing is rarely needed twice).
  static constexpr size_t kMaxDirs = 256;
  std::mutex dirs_mu;
  std::unordered_map<uint64_t, std::shared_ptr<const std::vector<erofs::DirEntry>>> dirs;

  Impl(const Logger& l) : log(l) {}

  std::shared_ptr<const std::vector<erofs::DirEntry>> Listing(uint64_t nid) {
    {
      std::lock_guard lock(dirs_mu);
      if (auto it = dirs.find(nid); it != dirs.end()) return it->second;
    }
    auto entries = std::make_shared<std::vector<erofs::DirEntry>>();
    entries->push_back({".", nid, DT_DIR});
    entries->push_back({"..", nid, DT_DIR});
    for (auto& e : reader->ReadDir(nid)) entries->push_back(std::move(e));
    std::lock_guard lock(dirs_mu);
    if (dirs.size() >= kMaxDirs) dirs.clear();
    dirs.emplace(nid, entries);
    return entries;
  }

  uint64_t Nid(fuse_ino_t ino) const { return ino == FUSE_ROOT_ID ? reader->root_ino() : ino - 2; }
  fuse_ino_t Ino(uint64_t nid) const { return nid == reader->root_ino() ? FUSE_ROOT_ID : nid + 2; }

  struct stat Stat(const erofs::Attr& a) const {
    struct stat st {};
    st.st_ino = opts.ino_base + a.ino;
    st.st_mode = a.mode;
    st.st_nlink = a.nlink;
    st.st_uid = a.uid;
    st.st_gid = a.gid;
    st.st_size = static_cast<off_t>(a.size);
    st.st_rdev = a.rdev;
    st.st_blksize = 4096;
    st.st_blocks = static_cast<blkcnt_t>((a.size + 511) / 512);
    st.st_mtim.tv_sec = a.mtime;
    st.st_mtim.tv_nsec = a.mtime_nsec;
    st.st_atim = st.st_mtim;
    st.st_ctim = st.st_mtim;
    return st;
  }

  void Fail(fuse_req_t req, const std::exception& e, const char* op, uint64_t nid) {
    int err = FuseServer::ErrnoOf(e);
    if (err != ENOENT) {
      errors.fetch_add(1, std::memory_order_relaxed);
      log.Warn("lazy layer request failed", {{"mountpoint", mountpoint},
                                             {"op", op},
                                             {"nid", std::to_string(nid)},
                                             {"error", e.what()}});
    }
    fuse_reply_err(req, err);
  }
};

namespace {

using Impl = FuseLayerMount::Impl;
// Request handlers find the mount's state as the session's userdata.
Impl& I(fuse_req_t req) {
  return *static_cast<Impl*>(fuse_req_userdata(req));
}

void OpInit(void*, fuse_conn_info* conn) {
  FuseServer::InitConnection(conn);
}

void OpLookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  Impl& im = I(req);
  im.lookups.fetch_add(1, std::memory_order_relaxed);
  uint64_t pnid = im.Nid(parent);
  try {
    auto child = im.reader->LookupChild(pnid, name);
    if (!child) {
      // A negative entry cached as long as positive ones: nothing appears later.
      fuse_entry_param e{};
      e.ino = 0;
      e.entry_timeout = im.opts.timeout_s;
      fuse_reply_entry(req, &e);
      return;
    }
    fuse_entry_param e{};
    e.ino = im.Ino(*child);
    e.attr = im.Stat(im.reader->GetAttr(*child));
    e.attr_timeout = im.opts.timeout_s;
    e.entry_timeout = im.opts.timeout_s;
    fuse_reply_entry(req, &e);
  } catch (const std::exception& ex) {
    im.Fail(req, ex, "lookup", pnid);
  }
}

void OpGetattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
  Impl& im = I(req);
  uint64_t nid = im.Nid(ino);
  try {
    struct stat st = im.Stat(im.reader->GetAttr(nid));
    fuse_reply_attr(req, &st, im.opts.timeout_s);
  } catch (const std::exception& ex) {
    im.Fail(req, ex, "getattr", nid);
  }
}

void OpReadlink(fuse_req_t req, fuse_ino_t ino) {
  Impl& im = I(req);
  uint64_t nid = im.Nid(ino);
  try {
    std::string target = im.reader->ReadLink(nid);
    fuse_reply_readlink(req, target.c_str());
  } catch (const std::exception& ex) {
    im.Fail(req, ex, "readlink", nid);
  }
}

void OpOpen(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  if ((fi->flags & O_ACCMODE) != O_RDONLY) {
    fuse_reply_err(req, EROFS);
    return;
  }
  fi->keep_cache = 1;
  fi->noflush = 1;
  fuse_reply_open(req, fi);
}

void OpRead(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info*) {
  Impl& im = I(req);
  uint64_t nid = im.Nid(ino);
  try {
    // Bytes already inflated on local disk go to the kernel by splice, without a copy through
    // this process (libfuse falls back to a copy when splicing is not possible).
    bool lent = im.opts.splice_reads &&
                im.reader->LendRange(nid, static_cast<uint64_t>(off), size,
                                     [&](int fd, uint64_t pos, size_t n) {
                                       FuseServer::ReplyFromFd(req, fd, pos, n);
                                       im.reads.fetch_add(1, std::memory_order_relaxed);
                                       im.bytes_read.fetch_add(n, std::memory_order_relaxed);
                                     });
    if (lent) return;
    std::string data = im.reader->Read(nid, static_cast<uint64_t>(off), size);
    im.reads.fetch_add(1, std::memory_order_relaxed);
    im.bytes_read.fetch_add(data.size(), std::memory_order_relaxed);
    fuse_reply_buf(req, data.data(), data.size());
  } catch (const std::exception& ex) {
    im.Fail(req, ex, "read", nid);
  }
}

void OpOpendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  Impl& im = I(req);
  uint64_t nid = im.Nid(ino);
  try {
    im.Listing(nid);  // a directory that cannot be listed fails here, at open
    fi->fh = 0;       // no per-open state (see Impl::Listing)
    fi->cache_readdir = 1;
    fi->keep_cache = 1;
    fuse_reply_open(req, fi);
  } catch (const std::exception& ex) {
    im.Fail(req, ex, "opendir", nid);
  }
}

void OpReaddir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info*) {
  Impl& im = I(req);
  uint64_t nid = im.Nid(ino);
  try {
    auto entries = im.Listing(nid);
    std::string buf(size, '\0');
    size_t used = 0;
    for (size_t i = static_cast<size_t>(off); i < entries->size(); ++i) {
      const auto& e = (*entries)[i];
      struct stat st {};
      st.st_ino = im.opts.ino_base + e.ino;
      st.st_mode = static_cast<mode_t>(DTTOIF(e.type));
      size_t n = fuse_add_direntry(req, buf.data() + used, size - used, e.name.c_str(), &st,
                                   static_cast<off_t>(i + 1));
      if (n > size - used) break;
      used += n;
    }
    fuse_reply_buf(req, buf.data(), used);
  } catch (const std::exception& ex) {
    im.Fail(req, ex, "readdir", nid);
  }
}

void OpStatfs(fuse_req_t req, fuse_ino_t) {
  Impl& im = I(req);
  struct statvfs sv {};
  sv.f_bsize = 4096;
  sv.f_frsize = 4096;
  uint64_t bytes = 0;
  for (const auto& d : im.reader->super().devices)
    bytes += d.blocks * im.reader->super().block_size;
  sv.f_blocks = bytes / 4096;
  sv.f_files = im.reader->super().inodes;
  sv.f_namemax = 255;
  fuse_reply_statfs(req, &sv);
}

void OpGetxattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) {
  Impl& im = I(req);
  uint64_t nid = im.Nid(ino);
  try {
    auto v = im.reader->GetXattr(nid, name);
    if (!v) {
      fuse_reply_err(req, ENODATA);
    } else if (size == 0) {
      fuse_reply_xattr(req, v->size());
    } else if (size < v->size()) {
      fuse_reply_err(req, ERANGE);
    } else {
      fuse_reply_buf(req, v->data(), v->size());
    }
  } catch (const std::exception& ex) {
    im.Fail(req, ex, "getxattr", nid);
  }
}

void OpListxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  Impl& im = I(req);
  uint64_t nid = im.Nid(ino);
  try {
    std::string names;
    for (const auto& n : im.reader->ListXattrs(nid)) names += n + '\0';
    if (size == 0) {
      fuse_reply_xattr(req, names.size());
    } else if (size < names.size()) {
      fuse_reply_err(req, ERANGE);
    } else {
      fuse_reply_buf(req, names.data(), names.size());
    }
  } catch (const std::exception& ex) {
    im.Fail(req, ex, "listxattr", nid);
  }
}

const fuse_lowlevel_ops kOps = [] {
  fuse_lowlevel_ops ops{};
  ops.init = OpInit;
  ops.lookup = OpLookup;
  ops.getattr = OpGetattr;
  ops.readlink = OpReadlink;
  ops.open = OpOpen;
  ops.read = OpRead;
  ops.opendir = OpOpendir;
  ops.readdir = OpReaddir;
  ops.statfs = OpStatfs;
  ops.getxattr = OpGetxattr;
  ops.listxattr = OpListxattr;
  return ops;
}();

}  // namespace

FuseLayerMount::FuseLayerMount(const std::string& mountpoint,
                               std::shared_ptr<const erofs::Reader> reader,
                               const FuseLayerOptions& opts, const Logger& log)
    : impl_(std::make_unique<Impl>(log)) {
  Impl& im = *impl_;
  im.mountpoint = mountpoint;
  im.reader = std::move(reader);
  im.opts = opts;
  im.server = std::make_unique<FuseServer>(mountpoint, kOps, &im, opts, log);
}

FuseLayerMount::~FuseLayerMount() {
  impl_->server.reset();  // the loop threads use the rest of Impl until they are gone
}

const std::string& FuseLayerMount::mountpoint() const {
  return impl_->mountpoint;
}

FuseLayerStats FuseLayerMount::Stats() const {
  return {impl_->lookups.load(), impl_->reads.load(), impl_->bytes_read.load(),
          impl_->errors.load()};
}

}  // namespace lazysnap::lazy
