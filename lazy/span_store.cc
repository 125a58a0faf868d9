#include "lazy/span_store.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

#include "common/error.h"

namespace lazysnap::lazy {
namespace {

UniqueFd OpenUnlinked(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd >= 0) return UniqueFd(fd);
  if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL) {
    ThrowErrno("span store: creating an unlinked file in " + dir);
  }
  // Filesystems without O_TMPFILE: create, then unlink at once.
  std::string path = dir + "/.spans.XXXXXX";
  fd = ::mkostemp(path.data(), O_CLOEXEC);
  if (fd < 0) ThrowErrno("span store: creating " + path);
  ::unlink(path.c_str());
  return UniqueFd(fd);
}

bool PreadAll(int fd, char* out, size_t len, uint64_t offset) {
  while (len > 0) {
    ssize_t n = ::pread(fd, out, len, static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    out += n;
    len -= static_cast<size_t>(n);
    offset += static_cast<uint64_t>(n);
  }
  return true;
}

bool PwriteAll(int fd, const char* data, size_t len, uint64_t offset) {
  while (len > 0) {
    ssize_t n = ::pwrite(fd, data, len, static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n;
    len -= static_cast<size_t>(n);
    offset += static_cast<uint64_t>(n);
  }
  return true;
}

}  // namespace

SpanStore::SpanStore(const std::string& dir, uint64_t max_bytes)
    : fd_(OpenUnlinked(dir)), max_bytes_(max_bytes) {}

bool SpanStore::Has(size_t span) const {
  std::lock_guard lock(mu_);
  return spans_.count(span) != 0;
}

bool SpanStore::Read(size_t span, uint64_t offset, size_t len, char* out) {
  std::map<size_t, Entry>::iterator it;
  {
    std::lock_guard lock(mu_);
    it = spans_.find(span);
    if (it == spans_.end() || offset < it->second.offset ||
        offset + len > it->second.offset + it->second.len) {
      return false;
    }
    it->second.readers++;  // pinned: not evicted while we read
    lru_.splice(lru_.begin(), lru_, it->second.pos);
  }
  bool ok = PreadAll(fd_.get(), out, len, offset);
  std::lock_guard lock(mu_);
  it->second.readers--;
  if (ok) stats_.hits++;
  return ok;
}

bool SpanStore::Pin(size_t span) {
  std::lock_guard lock(mu_);
  auto it = spans_.find(span);
  if (it == spans_.end()) return false;
  it->second.readers++;
  lru_.splice(lru_.begin(), lru_, it->second.pos);
  return true;
}

void SpanStore::Unpin(size_t span) {
  std::lock_guard lock(mu_);
  auto it = spans_.find(span);
  if (it != spans_.end() && it->second.readers > 0) {
    it->second.readers--;
    stats_.hits++;
  }
}

bool SpanStore::Put(size_t span, uint64_t span_offset, std::string_view data) {
  {
    std::lock_guard lock(mu_);
    if (stats_.disabled || spans_.count(span)) return false;
  }
  if (!PwriteAll(fd_.get(), data.data(), data.size(), span_offset)) {
    // Full or failing disk: give back what was written and stop taking spans.
    ::fallocate(fd_.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                static_cast<off_t>(span_offset), static_cast<off_t>(data.size()));
    std::lock_guard lock(mu_);
    stats_.disabled = true;
    return false;
  }
  std::lock_guard lock(mu_);
  lru_.push_front(span);
  spans_[span] = Entry{span_offset, data.size(), 0, lru_.begin()};
  stats_.bytes += data.size();
  EvictLocked();
  return true;
}

void SpanStore::EvictLocked() {
  auto it = lru_.end();
  while (stats_.bytes > max_bytes_ && it != lru_.begin()) {
    --it;
    auto e = spans_.find(*it);
    if (e->second.readers > 0) continue;
    ::fallocate(fd_.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                static_cast<off_t>(e->second.offset), static_cast<off_t>(e->second.len));
    stats_.bytes -= e->second.len;
    stats_.evictions++;
    spans_.erase(e);
    it = lru_.erase(it);
  }
}

SpanStoreStats SpanStore::Stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

}  // namespace lazysnap::lazy
