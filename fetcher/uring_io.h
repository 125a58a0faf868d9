// Positional file I/O through io_uring for every thread of a process component (a ring per
// concurrent caller): a batch of reads (all the chunks of one range) is one submission and one
// wait, many requests in flight per caller.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <span>

namespace lazysnap::fetcher {

struct UringOp {
  enum class Kind { kRead, kWrite, kFdatasync };
  Kind kind = Kind::kRead;
  int fd = -1;
  void* buf = nullptr;  // kWrite reads from it
  size_t len = 0;
  uint64_t offset = 0;
  // Bytes transferred (reads stop early only at end of file), or -errno.
  ssize_t result = 0;
};

class UringIo {
 public:
  // `depth`: submission queue entries per ring; larger batches are submitted in rounds.
  explicit UringIo(unsigned depth = 256);
  ~UringIo();
  UringIo(const UringIo&) = delete;
  UringIo& operator=(const UringIo&) = delete;

  // Submits every op and waits until all completed. Short transfers are continued until the
  // whole length moved or a read hit end of file; results land in each op.
  void Run(std::span<UringOp> ops);

  // Convenience single ops; throw Error naming `what` on failure.
  size_t Pread(int fd, void* buf, size_t len, uint64_t offset);
  void PwriteAll(int fd, const void* buf, size_t len, uint64_t offset);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lazysnap::fetcher
