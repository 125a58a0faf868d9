#include "erofs/layer_builder.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <optional>
#include <set>
#include <vector>

#include "common/error.h"
#include "common/file_util.h"
#include "common/process.h"
#include "common/sha256.h"
#include "common/temp_dir.h"
#include "common/unique_fd.h"
#include "erofs/reader.h"
#include "erofs/tar_root_fix.h"
#include "erofs/tar_scanner.h"

namespace lazysnap::erofs {
namespace {

std::string Tail(const std::string& s, size_t n = 2000) {
  return s.size() <= n ? s : "..." + s.substr(s.size() - n);
}

// Blocks SIGPIPE for this thread while writing to the child, so a child that exits early shows
// up as EPIPE instead of killing the process; a SIGPIPE raised meanwhile is consumed.
class SigpipeGuard {
 public:
  SigpipeGuard() {
    sigemptyset(&set_);
    sigaddset(&set_, SIGPIPE);
    sigset_t pending;
    sigpending(&pending);
    was_pending_ = sigismember(&pending, SIGPIPE) == 1;
    pthread_sigmask(SIG_BLOCK, &set_, &old_);
  }
  ~SigpipeGuard() {
    if (!was_pending_) {
      struct timespec zero {};
      while (sigtimedwait(&set_, nullptr, &zero) == SIGPIPE) {
      }
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }

 private:
  sigset_t set_, old_;
  bool was_pending_ = false;
};

// Writes everything to the non-blocking pipe; false if the reader went away (EPIPE).
bool WriteToChild(int fd, const uint8_t* data, size_t len, std::chrono::milliseconds stall) {
  while (len > 0) {
    ssize_t n = ::write(fd, data, len);
    if (n > 0) {
      data += n;
      len -= static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EPIPE) return false;
    if (n < 0 && errno != EAGAIN) ThrowErrno("write to mkfs.erofs");
    pollfd p{fd, POLLOUT, 0};
    int rc = ::poll(&p, 1, static_cast<int>(stall.count()));
    if (rc == 0)
      throw Error(ErrorCode::kUnavailable, "mkfs.erofs stopped reading the layer for " +
                                               std::to_string(stall.count()) + " ms");
    if (rc < 0 && errno != EINTR) ThrowErrno("poll mkfs.erofs pipe");
  }
  return true;
}

class BlobWriter {
 public:
  explicit BlobWriter(const std::string& path) : path_(path) {
    fd_.reset(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (!fd_) ThrowErrno("create blob " + path);
  }
  void Write(const uint8_t* data, size_t len) {
    while (len > 0) {
      ssize_t n = ::write(fd_.get(), data, len);
      if (n < 0) {
        if (errno == EINTR) continue;
        ThrowErrno("write blob " + path_);
      }
      data += n;
      len -= static_cast<size_t>(n);
    }
  }
  void Close() {
    if (::fsync(fd_.get()) != 0) ThrowErrno("fsync blob " + path_);
    fd_.reset();
  }

 private:
  std::string path_;
  UniqueFd fd_;
};

// CRC-32C as EROFS uses it for the superblock: reflected, no final inversion.
uint32_t Crc32c(uint32_t crc, const uint8_t* p, size_t len) {
  while (len--) {
    crc ^= *p++;
    for (int i = 0; i < 8; ++i) crc = (crc >> 1) ^ ((crc & 1) ? 0x82F63B78u : 0);
  }
  return crc;
}

// mkfs.erofs gives directories that the tar only implies (the root when there is no "./" entry,
// parents of deeper paths) mode 0777. tar -x and containerd's applier create them 0755, and a
// world-writable container root would be a hole, so patch i_mode (le16 at byte 4 of both inode
// forms; inodes carry no checksum) of every implied directory that mkfs left at 0777.
void FixImpliedDirModes(const std::string& image, const std::set<std::string>& explicit_dirs) {
  auto reader = Reader::Open(std::make_shared<FileBlockSource>(image));
  const SuperInfo& sb = reader->super();
  UniqueFd fd(::open(image.c_str(), O_RDWR | O_CLOEXEC));
  if (!fd) ThrowErrno("open " + image);
  std::vector<std::pair<uint64_t, std::string>> todo = {{reader->root_ino(), ""}};
  while (!todo.empty()) {
    auto [ino, path] = todo.back();
    todo.pop_back();
    Attr a = reader->GetAttr(ino);
    if ((a.mode & 07777) == 0777 && !explicit_dirs.count(path)) {
      uint64_t off = sb.meta_blkaddr * sb.block_size + ino * 32 + 4;
      uint16_t mode = static_cast<uint16_t>(S_IFDIR | 0755);
      uint8_t le[2] = {static_cast<uint8_t>(mode & 0xff), static_cast<uint8_t>(mode >> 8)};
      if (::pwrite(fd.get(), le, 2, static_cast<off_t>(off)) != 2) ThrowErrno("patch " + image);
    }
    for (const DirEntry& e : reader->ReadDir(ino))
      if (e.type == DT_DIR) todo.emplace_back(e.ino, path.empty() ? e.name : path + "/" + e.name);
  }
  // Inodes may share block 0 with the superblock, whose checksum covers the rest of that block.
  constexpr uint32_t kSbChecksumFeature = 0x1;
  if ((sb.feature_compat & kSbChecksumFeature) && sb.block_size > 1024) {
    std::vector<uint8_t> blk(sb.block_size - 1024);
    if (::pread(fd.get(), blk.data(), blk.size(), 1024) != static_cast<ssize_t>(blk.size()))
      ThrowErrno("read superblock of " + image);
    memset(blk.data() + 4, 0, 4);
    uint32_t crc = Crc32c(~0u, blk.data(), blk.size());
    uint8_t le[4] = {static_cast<uint8_t>(crc), static_cast<uint8_t>(crc >> 8),
                     static_cast<uint8_t>(crc >> 16), static_cast<uint8_t>(crc >> 24)};
    if (::pwrite(fd.get(), le, 4, 1024 + 4) != 4) ThrowErrno("patch checksum of " + image);
  }
  if (::fsync(fd.get()) != 0) ThrowErrno("fsync " + image);
}

// Renames `from` over `to` and makes the rename durable (fsync of the directory).
void Publish(const std::string& from, const std::string& to) {
  if (::rename(from.c_str(), to.c_str()) != 0) ThrowErrno("rename " + from + " to " + to);
  size_t slash = to.rfind('/');
  std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : to.substr(0, slash));
  UniqueFd d(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!d || ::fsync(d.get()) != 0) ThrowErrno("fsync directory " + dir);
}

// The free bytes of the filesystem holding `path` when they are under 1 MiB (less than
// mkfs.erofs's write buffers: a write of the image can have failed for lack of space), else
// nullopt.
std::optional<uint64_t> NearlyFull(const std::string& path) {
  std::string dir = path.substr(0, path.rfind('/') == std::string::npos ? 0 : path.rfind('/'));
  struct statvfs vfs {};
  if (::statvfs(dir.empty() ? "." : dir.c_str(), &vfs) != 0) return std::nullopt;
  uint64_t free_bytes = static_cast<uint64_t>(vfs.f_bavail) * vfs.f_frsize;
  if (free_bytes >= (1u << 20)) return std::nullopt;
  return free_bytes;
}

}  // namespace

std::string DefaultMkfsPath() {
  return LAZYSNAP_MKFS_EROFS;
}

BuildResult BuildLayer(int fd, const std::string& image_path, const BuildOptions& opts) {
  if (opts.mode == ImageMode::kIndexOnly && opts.blob_path.empty() && !opts.discard_blob)
    throw Error(ErrorCode::kInvalidArgument, "index-only build needs a blob path");
  if (opts.mode == ImageMode::kIndexOnly && opts.compression != DataCompression::kNone)
    throw Error(ErrorCode::kInvalidArgument, "index-only images cannot compress data");

  TempDir tmp("lazysnap-mkfs");
  const std::string partial = image_path + ".partial";
  const std::string blob_partial = opts.blob_path + ".partial";
  const std::string log = tmp / "mkfs.log";
  std::vector<std::string> argv = {opts.mkfs_path.empty() ? DefaultMkfsPath() : opts.mkfs_path,
                                   opts.mode == ImageMode::kFull ? "--tar=f" : "--tar=i",
                                   "--aufs",
                                   "-T0",
                                   "--mkfs-time",
                                   std::string("-U") + kImageUuid,
                                   "-d1"};
  if (opts.mode == ImageMode::kFull) argv.push_back("-b4096");
  if (opts.compression == DataCompression::kLz4) argv.push_back("-zlz4hc");
  if (opts.compression == DataCompression::kZstd) argv.push_back("-zzstd");
  argv.push_back(partial);

  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) ThrowErrno("pipe");
  UniqueFd rd(p[0]), wr(p[1]);
  ::fcntl(wr.get(), F_SETPIPE_SZ, 1 << 20);  // fewer wakeups; failure is harmless
  SpawnOptions so;
  so.stdin_path = "/proc/self/fd/" + std::to_string(rd.get());
  so.stdout_path = log;
  so.stderr_path = "=stdout";
  ::unlink(partial.c_str());
  Subprocess child = Subprocess::Spawn(argv, so);
  rd.reset();
  if (::fcntl(wr.get(), F_SETFL, O_NONBLOCK) != 0) ThrowErrno("fcntl O_NONBLOCK");

  auto fail_cleanup = [&] { ::unlink(partial.c_str()); };
  auto child_error = [&](const std::string& why) {
    std::string out;
    try {
      out = ReadFile(log);
    } catch (const Error&) {
    }
    // mkfs.erofs reports a full disk as whatever failed after the short write (a bad checksum,
    // EBADMSG): asked before the partial image is removed, the disk tells which it was.
    std::optional<uint64_t> free_bytes = NearlyFull(partial);
    fail_cleanup();
    if (free_bytes) {
      return Error(ErrorCode::kResourceExhausted,
                   "no space left for the EROFS image " + image_path + " (" +
                       std::to_string(*free_bytes) + " bytes free there when mkfs.erofs failed, " +
                       why + "): " + Tail(out));
    }
    return Error(ErrorCode::kInvalidArgument,
                 "mkfs.erofs rejected the layer (" + why + "): " + Tail(out));
  };

  BuildResult res;
  Sha256 sha;
  TarScanner scanner;
  std::optional<BlobWriter> blob;
  bool child_gone = false;
  try {
    SigpipeGuard sigpipe;
    if (opts.mode == ImageMode::kIndexOnly && !opts.discard_blob) blob.emplace(blob_partial);
    bool ended = false;  // the end-of-archive blocks went out: mkfs.erofs gets nothing more
    // Everything mkfs.erofs reads goes through `root_fix` (a "/" entry would crash it).
    TarRootFix root_fix([&](const uint8_t* data, size_t len) {
      if (len && !child_gone && !WriteToChild(wr.get(), data, len, opts.stall_timeout))
        child_gone = true;
    });
    auto forward = [&](const uint8_t* data, size_t len) { root_fix.Feed(data, len); };
    auto sink = [&](const uint8_t* data, size_t len) {
      uint64_t start = scanner.offset();
      scanner.Feed(data, len);
      sha.Update(data, len);
      res.tar_size += len;
      if (opts.observer) opts.observer(data, len);
      if (blob) blob->Write(data, len);
      if (ended) return;
      if (!scanner.saw_end_marker()) return forward(data, len);
      // Whatever follows the first zero block was not validated, so mkfs.erofs must not see it:
      // forward up to that block, then a second zero block, then nothing.
      static const uint8_t kZeroBlock[512] = {};
      forward(data, static_cast<size_t>(scanner.end_offset() - start));
      forward(kZeroBlock, sizeof(kZeroBlock));
      ended = true;
    };
    res.input_compression = DecodeLayer(fd, sink, opts.decode);
    scanner.Finish();
    if (!scanner.saw_end_marker() && !child_gone) {
      // mkfs.erofs wants the end-of-archive blocks; the blob/digest keep the stream as it came.
      static const uint8_t kEnd[1024] = {};
      forward(kEnd, sizeof(kEnd));
    }
    root_fix.Flush();
    if (blob) blob->Close();
  } catch (...) {
    wr.reset();
    child.Stop(std::chrono::seconds(2));
    fail_cleanup();
    if (blob) ::unlink(blob_partial.c_str());
    throw;
  }
  wr.reset();
  std::optional<int> rc = child.Wait(opts.stall_timeout);
  if (!rc) {
    child.Stop(std::chrono::seconds(2));
    fail_cleanup();
    if (blob) ::unlink(blob_partial.c_str());
    throw Error(ErrorCode::kUnavailable, "mkfs.erofs did not finish in time");
  }
  if (*rc != 0 || child_gone) {
    if (blob) ::unlink(blob_partial.c_str());
    throw child_error("exit status " + std::to_string(*rc));
  }
  try {
    FixImpliedDirModes(partial, scanner.explicit_dirs());
    struct stat st;
    if (::stat(partial.c_str(), &st) != 0) ThrowErrno("stat " + partial);
    res.image_size = static_cast<uint64_t>(st.st_size);
    // The blob first: an image never appears without the blob it refers to.
    if (blob) Publish(blob_partial, opts.blob_path);
    Publish(partial, image_path);
  } catch (...) {
    fail_cleanup();
    if (blob) ::unlink(blob_partial.c_str());
    throw;
  }
  res.tar_digest = sha.FinishDigest();
  res.entries = scanner.entries();
  return res;
}

BuildResult BuildLayerFromFile(const std::string& layer_path, const std::string& image_path,
                               const BuildOptions& opts) {
  UniqueFd fd(::open(layer_path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) ThrowErrno("open layer " + layer_path);
  return BuildLayer(fd.get(), image_path, opts);
}

}  // namespace lazysnap::erofs
