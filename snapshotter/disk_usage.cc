#include "snapshotter/disk_usage.h"

#include <fts.h>
#include <sys/stat.h>

#include <cerrno>
#include <set>
#include <utility>

#include "common/error.h"

namespace lazysnap::snapshotter {

Usage DiskUsage(const std::string& dir) {
  std::string path = dir;
  char* roots[] = {path.data(), nullptr};
  FTS* fts = ::fts_open(roots, FTS_PHYSICAL | FTS_XDEV | FTS_NOCHDIR, nullptr);
  if (fts == nullptr) ThrowErrno("disk usage of " + dir);
  Usage usage;
  std::set<std::pair<dev_t, ino_t>> seen;
  while (true) {
    errno = 0;
    FTSENT* e = ::fts_read(fts);
    if (e == nullptr) break;
    if (e->fts_info == FTS_DP) continue;  // directories are visited twice (pre and post order)
    if (e->fts_info == FTS_NS || e->fts_info == FTS_ERR || e->fts_info == FTS_DNR) {
      int err = e->fts_errno;
      std::string where = e->fts_path;
      ::fts_close(fts);
      ThrowErrno("disk usage of " + dir + " at " + where, err);
    }
    const struct stat* st = e->fts_statp;
    if (!seen.emplace(st->st_dev, st->st_ino).second) continue;
    usage.inodes++;
    usage.size += static_cast<int64_t>(st->st_blocks) * 512;
  }
  int err = errno;
  ::fts_close(fts);
  if (err != 0) ThrowErrno("disk usage of " + dir, err);
  return usage;
}

}  // namespace lazysnap::snapshotter
