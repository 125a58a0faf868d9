#include "lazy/fuse_server.h"

#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <future>
#include <vector>

#include "common/error.h"
#include "common/file_util.h"

namespace lazysnap::lazy {
namespace {

// Aborts a FUSE connection through fusectl (mounting it if the host has not), which fails every
// pending and future request of that connection with ENOTCONN and ends the server's reads.
void AbortConnection(dev_t dev, const Logger& log) {
  const std::string dir = "/sys/fs/fuse/connections";
  std::string abort = dir + "/" + std::to_string(minor(dev)) + "/abort";
  if (!PathExists(abort)) ::mount("fusectl", dir.c_str(), "fusectl", 0, nullptr);
  FILE* f = std::fopen(abort.c_str(), "w");
  if (f == nullptr) {
    log.Warn("could not abort a FUSE connection",
             {{"path", abort}, {"error", std::strerror(errno)}});
    return;
  }
  std::fputs("1", f);
  std::fclose(f);
}

}  // namespace

void FuseServer::InitConnection(fuse_conn_info* conn) {
  // Reads come in large pieces; the kernel may keep pages across opens (layers never change).
  if (conn->capable & FUSE_CAP_SPLICE_WRITE) conn->want |= FUSE_CAP_SPLICE_WRITE;
  conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
  conn->max_readahead = 4u << 20;
}

int FuseServer::ErrnoOf(const std::exception& e) {
  if (const auto* le = dynamic_cast<const Error*>(&e)) {
    switch (le->code()) {
      case ErrorCode::kNotFound:
        return ENOENT;
      case ErrorCode::kInvalidArgument:
        return EINVAL;
      case ErrorCode::kResourceExhausted:
        return ENOMEM;
      default:
        return EIO;  // unreachable registry past the timeout, failed verification, ...
    }
  }
  if (dynamic_cast<const std::bad_alloc*>(&e)) return ENOMEM;
  return EIO;
}

void FuseServer::ReplyFromFd(fuse_req_t req, int fd, uint64_t pos, size_t n) {
  fuse_bufvec bv = FUSE_BUFVEC_INIT(n);
  bv.buf[0].flags = static_cast<fuse_buf_flags>(FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK);
  bv.buf[0].fd = fd;
  bv.buf[0].pos = static_cast<off_t>(pos);
  fuse_reply_data(req, &bv, fuse_buf_copy_flags{});
}

FuseServer::FuseServer(const std::string& mountpoint, const fuse_lowlevel_ops& ops, void* userdata,
                       const FuseLayerOptions& opts, const Logger& log)
    : mountpoint_(mountpoint), log_(log) {
  std::string o = "ro,allow_other,default_permissions,fsname=" + opts.fsname + ",subtype=lazysnap";
  std::vector<std::string> argv_s = {"lazysnap-fused", "-o", o};
  std::vector<char*> argv;
  for (auto& s : argv_s) argv.push_back(s.data());
  fuse_args args = FUSE_ARGS_INIT(static_cast<int>(argv.size()), argv.data());
  se_ = fuse_session_new(&args, &ops, sizeof ops, userdata);
  fuse_opt_free_args(&args);  // libfuse copied what it keeps
  if (se_ == nullptr)
    throw Error(ErrorCode::kInternal, "fuse_session_new failed for " + mountpoint);
  if (fuse_session_mount(se_, mountpoint.c_str()) != 0) {
    fuse_session_destroy(se_);
    throw Error(ErrorCode::kFailedPrecondition, "cannot mount FUSE at " + mountpoint);
  }
  unsigned threads = opts.max_threads;
  loop_ = std::thread([this, threads] {
    fuse_loop_config* cfg = fuse_loop_cfg_create();
    fuse_loop_cfg_set_clone_fd(cfg, 1);
    fuse_loop_cfg_set_max_threads(cfg, threads);
    fuse_loop_cfg_set_idle_threads(cfg, 2);
    fuse_session_loop_mt(se_, cfg);
    fuse_loop_cfg_destroy(cfg);
  });
  // Only now: a stat of the mountpoint is a request the loop must answer.
  struct stat st {};
  if (::stat(mountpoint.c_str(), &st) == 0) dev_ = st.st_dev;
  // The kernel's default readahead (128 KiB) makes a sequential reader pay one round trip per
  // 128 KiB; a larger window lets it ask for whole spans.
  if (opts.read_ahead_kb && dev_) {
    std::string bdi = "/sys/class/bdi/" + std::to_string(major(dev_)) + ":" +
                      std::to_string(minor(dev_)) + "/read_ahead_kb";
    if (FILE* f = std::fopen(bdi.c_str(), "w")) {
      std::fprintf(f, "%u", opts.read_ahead_kb);
      std::fclose(f);
    }
  }
}

FuseServer::~FuseServer() {
  fuse_session_exit(se_);
  // A plain umount ends the connection (the loop's reads fail with ENODEV); if the filesystem is
  // busy, detach it and abort the connection so the loop threads return.
  if (::umount2(mountpoint_.c_str(), 0) != 0) {
    ::umount2(mountpoint_.c_str(), MNT_DETACH);
    if (dev_) AbortConnection(dev_, log_);
  }
  auto done = std::async(std::launch::async, [this] { loop_.join(); });
  if (done.wait_for(std::chrono::seconds(3)) != std::future_status::ready) {
    if (dev_) AbortConnection(dev_, log_);
    done.wait();
  }
  fuse_session_unmount(se_);  // closes the device fd; the mount itself is gone already
  fuse_session_destroy(se_);
}

}  // namespace lazysnap::lazy
