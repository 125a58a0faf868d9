#include "fetcher/uring_io.h"

#include <liburing.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

#include "common/error.h"

namespace lazysnap::fetcher {

namespace {

// One Run() call: the reaper counts its completions down and wakes the caller at zero.
struct Batch {
  std::mutex mu;
  std::condition_variable done;
  size_t pending = 0;
};

struct Pending {
  UringOp* op;
  Batch* batch;
  size_t submitted_len;  // this round's length (a continuation moves less than op->len)
};

}  // namespace

struct UringIo::Impl {
  io_uring ring{};
  std::mutex submit_mu;  // one submitter at a time; the reaper only touches the completion side
  std::thread reaper;

  void Reap() {
    for (;;) {
      io_uring_cqe* cqe = nullptr;
      int rc = io_uring_wait_cqe(&ring, &cqe);
      if (rc == -EINTR) continue;
      if (rc < 0) continue;  // nothing sensible to do; the ring stays usable
      auto* p = static_cast<Pending*>(io_uring_cqe_get_data(cqe));
      int res = cqe->res;
      io_uring_cqe_seen(&ring, cqe);
      if (p == nullptr) return;  // the shutdown NOP
      p->op->result = res;
      Batch* b = p->batch;
      std::lock_guard lock(b->mu);
      if (--b->pending == 0) b->done.notify_all();
    }
  }

  // Queues one round of ops, submitting early whenever the SQ ring fills.
  void SubmitRound(std::vector<Pending>& round) {
    std::lock_guard lock(submit_mu);
    size_t i = 0;
    while (i < round.size()) {
      io_uring_sqe* sqe = io_uring_get_sqe(&ring);
      if (sqe == nullptr) {
        int rc = io_uring_submit(&ring);
        if (rc < 0 && rc != -EBUSY && rc != -EAGAIN) ThrowErrno("io_uring_submit", -rc);
        continue;
      }
      Pending& p = round[i++];
      UringOp* op = p.op;
      switch (op->kind) {
        case UringOp::Kind::kRead:
          io_uring_prep_read(sqe, op->fd, op->buf, static_cast<unsigned>(p.submitted_len),
                             op->offset);
          break;
        case UringOp::Kind::kWrite:
          io_uring_prep_write(sqe, op->fd, op->buf, static_cast<unsigned>(p.submitted_len),
                              op->offset);
          break;
        case UringOp::Kind::kFdatasync:
          io_uring_prep_fsync(sqe, op->fd, IORING_FSYNC_DATASYNC);
          break;
      }
      io_uring_sqe_set_data(sqe, &p);
    }
    for (;;) {
      int rc = io_uring_submit(&ring);
      if (rc >= 0) break;
      if (rc != -EBUSY && rc != -EAGAIN && rc != -EINTR) ThrowErrno("io_uring_submit", -rc);
    }
  }
};

UringIo::UringIo(unsigned depth) : impl_(std::make_unique<Impl>()) {
  io_uring_params params{};
  int rc = io_uring_queue_init_params(std::max(depth, 8u), &impl_->ring, &params);
  if (rc < 0) ThrowErrno("io_uring_queue_init (is io_uring disabled by sysctl?)", -rc);
  impl_->reaper = std::thread([this] { impl_->Reap(); });
}

UringIo::~UringIo() {
  {
    std::lock_guard lock(impl_->submit_mu);
    io_uring_sqe* sqe = io_uring_get_sqe(&impl_->ring);
    while (sqe == nullptr) {
      io_uring_submit(&impl_->ring);
      sqe = io_uring_get_sqe(&impl_->ring);
    }
    io_uring_prep_nop(sqe);
    io_uring_sqe_set_data(sqe, nullptr);
    io_uring_submit(&impl_->ring);
  }
  impl_->reaper.join();
  io_uring_queue_exit(&impl_->ring);
}

void UringIo::Run(std::span<UringOp> ops) {
  // Per-op progress so short transfers continue where they stopped.
  std::vector<size_t> done(ops.size(), 0);
  std::vector<UringOp> rounds(ops.begin(), ops.end());
  std::vector<size_t> active(ops.size());
  for (size_t i = 0; i < ops.size(); ++i) active[i] = i;
  for (auto& op : ops) op.result = 0;

  while (!active.empty()) {
    Batch batch;
    std::vector<Pending> round;
    round.reserve(active.size());
    for (size_t i : active) {
      UringOp& r = rounds[i];
      const UringOp& orig = ops[i];
      r = orig;
      if (orig.kind != UringOp::Kind::kFdatasync) {
        r.buf = static_cast<char*>(orig.buf) + done[i];
        r.offset = orig.offset + done[i];
        r.len = orig.len - done[i];
      }
      // One read/write moves at most 2 GiB-ish; keep rounds well below the 32-bit limit.
      round.push_back({&r, &batch, std::min<size_t>(r.len, 1u << 30)});
    }
    batch.pending = round.size();
    impl_->SubmitRound(round);
    {
      std::unique_lock lock(batch.mu);
      batch.done.wait(lock, [&] { return batch.pending == 0; });
    }
    std::vector<size_t> next;
    for (size_t k = 0; k < active.size(); ++k) {
      size_t i = active[k];
      ssize_t res = rounds[i].result;
      if (res == -EINTR || res == -EAGAIN) {
        next.push_back(i);
        continue;
      }
      if (res < 0) {
        ops[i].result = res;
        continue;
      }
      if (ops[i].kind == UringOp::Kind::kFdatasync) {
        ops[i].result = 0;
        continue;
      }
      done[i] += static_cast<size_t>(res);
      ops[i].result = static_cast<ssize_t>(done[i]);
      bool eof = res == 0 && ops[i].kind == UringOp::Kind::kRead;
      if (done[i] < ops[i].len && !eof) {
        if (res == 0) {  // a write that moves nothing would spin forever
          ops[i].result = -EIO;
          continue;
        }
        next.push_back(i);
      }
    }
    active = std::move(next);
  }
}

size_t UringIo::Pread(int fd, void* buf, size_t len, uint64_t offset) {
  UringOp op{UringOp::Kind::kRead, fd, buf, len, offset, 0};
  Run({&op, 1});
  if (op.result < 0) ThrowErrno("io_uring read", static_cast<int>(-op.result));
  return static_cast<size_t>(op.result);
}

void UringIo::PwriteAll(int fd, const void* buf, size_t len, uint64_t offset) {
  UringOp op{UringOp::Kind::kWrite, fd, const_cast<void*>(buf), len, offset, 0};
  Run({&op, 1});
  if (op.result < 0) ThrowErrno("io_uring write", static_cast<int>(-op.result));
}

}  // namespace lazysnap::fetcher
