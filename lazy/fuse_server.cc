#include "lazy/fuse_server.h"

#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <cerrno>
#include <chrono>
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
  if (!WriteKernelAttribute(abort, "1")) {
    log.Warn("could not abort a FUSE connection",
             {{"path", abort}, {"error", std::strerror(errno)}});
  }
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
  // libfuse serves an open /dev/fuse fd given as "/dev/fd/N" (and owns it from then on).
  std::string target =
      opts.adopt ? "/dev/fd/" + std::to_string(opts.adopt->fd.release()) : mountpoint;
  if (fuse_session_mount(se_, target.c_str()) != 0) {
    fuse_session_destroy(se_);
    throw Error(ErrorCode::kFailedPrecondition, "cannot mount FUSE at " + mountpoint);
  }
  try {
    KeepOrAdopt(opts);
  } catch (...) {
    if (!opts.adopt) fuse_session_unmount(se_);
    fuse_session_destroy(se_);
    throw;
  }
  unsigned threads = opts.max_threads;
  bool clone_fd = !opts.keeper;
  loop_ = std::thread([this, threads, clone_fd] {
    fuse_loop_config* cfg = fuse_loop_cfg_create();
    fuse_loop_cfg_set_clone_fd(cfg, clone_fd ? 1 : 0);
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
    WriteKernelAttribute(bdi, std::to_string(opts.read_ahead_kb));
  }
}

void FuseServer::KeepOrAdopt(const FuseLayerOptions& opts) {
  if (opts.adopt) {
    fuse_buf init{};
    std::string request = opts.adopt->data;
    init.mem = request.data();
    init.size = request.size();
    fuse_session_process_buf(se_, &init);
    // struct fuse_out_header with error = FUSE_NOTIFY_RESEND (7), unique 0: a notification.
    struct {
      uint32_t len;
      int32_t error;
      uint64_t unique;
    } resend{16, 7, 0};
    if (::write(fuse_session_fd(se_), &resend, sizeof resend) != sizeof resend) {
      log_.Warn("the kernel did not resend the requests a dead server had read (Linux < 6.9?)",
                {{"mountpoint", mountpoint_}, {"error", std::strerror(errno)}});
    }
    keeper_ = opts.keeper;
    return;
  }
  if (!opts.keeper) return;
  // The kernel queued INIT at mount time: it is the first request. Keep it for a successor.
  fuse_buf init{};
  int n = fuse_session_receive_buf(se_, &init);
  if (n <= 0) {
    free(init.mem);
    throw Error(ErrorCode::kInternal, "no FUSE INIT request on " + mountpoint_);
  }
  std::string request(static_cast<const char*>(init.mem), init.size);
  fuse_session_process_buf(se_, &init);
  free(init.mem);
  try {
    opts.keeper->Put(mountpoint_, fuse_session_fd(se_), request);
    keeper_ = opts.keeper;
  } catch (const std::exception& e) {
    log_.Warn("FUSE connection not kept: it ends with this process",
              {{"mountpoint", mountpoint_}, {"error", e.what()}});
  }
}

FuseServer::~FuseServer() {
  if (keeper_) {
    try {
      keeper_->Drop(mountpoint_);
    } catch (const std::exception&) {
    }
  }
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
