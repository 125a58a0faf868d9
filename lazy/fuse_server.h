// A mounted libfuse3 low-level session with its multi-threaded loop: the part every lazysnap
// FUSE filesystem shares (the layer tree of fuse_layer.h, the one-file tar of fuse_blob.h).
//
// Mounting starts the loop before anything touches the mountpoint (a stat of it is a request
// the loop must answer). Destruction unmounts; when something still holds the filesystem (an
// overlay over it) the mount is detached and the connection aborted through fusectl, so no loop
// thread is left behind.
//
// With opts.keeper, the session's fd and the connection's INIT request are kept there (see
// lazy/fd_keeper.h); with opts.adopt, a kept connection is served instead of a new mount: its
// INIT request is replayed into the new session (libfuse answers nothing before INIT; the reply
// finds no waiter in the kernel and is dropped) and the kernel is asked to resend the requests
// a dead server had read (FUSE_NOTIFY_RESEND). All loop threads then read the one kept fd: a
// cloned fd's unanswered requests would die with its process (the kernel ends them when the fd
// closes) instead of waiting to be resent.
#pragma once

#ifndef FUSE_USE_VERSION
#define FUSE_USE_VERSION 312
#endif
#include <fuse_lowlevel.h>
#include <sys/types.h>

#include <string>
#include <thread>

#include "common/log.h"
#include "lazy/fuse_layer.h"

namespace lazysnap::lazy {

class FuseServer {
 public:
  // Uses opts.fsname, max_threads and read_ahead_kb. Throws Error naming the mountpoint on
  // failure (nothing stays mounted then).
  FuseServer(const std::string& mountpoint, const fuse_lowlevel_ops& ops, void* userdata,
             const FuseLayerOptions& opts, const Logger& log);
  ~FuseServer();
  FuseServer(const FuseServer&) = delete;
  FuseServer& operator=(const FuseServer&) = delete;

  const std::string& mountpoint() const { return mountpoint_; }

  // The init handler both filesystems use: splice replies, no writeback cache, large reads.
  static void InitConnection(fuse_conn_info* conn);
  // errno for an exception from a request handler (Error codes mapped; EIO otherwise).
  static int ErrnoOf(const std::exception& e);
  // Answers a read with `n` bytes of `fd` at `pos`, spliced into /dev/fuse where the kernel
  // allows it (libfuse copies otherwise); no SPLICE_MOVE, so the pages stay in fd's page cache.
  static void ReplyFromFd(fuse_req_t req, int fd, uint64_t pos, size_t n);

 private:
  void KeepOrAdopt(const FuseLayerOptions& opts);

  std::string mountpoint_;
  const Logger& log_;
  FdKeeper* keeper_ = nullptr;
  fuse_session* se_ = nullptr;
  std::thread loop_;
  dev_t dev_ = 0;
};

}  // namespace lazysnap::lazy
