// Positional file I/O through one io_uring shared by every thread of a process component:
// callers block only on their own requests while requests from all threads are in flight together,
// and a batch of reads (all the chunks of one range) costs one submission.
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
  // `depth`: submission queue entries; more requests than that are submitted in rounds.
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
