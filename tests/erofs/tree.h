// Test helpers: snapshot a directory tree (lstat + contents + xattrs) so a mounted EROFS image can
// be compared with `tar -x` of the same layer, and RAII mounts that never outlive a test.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace lazysnap::erofs::testing {

struct Node {
  uint32_t mode = 0;
  uint32_t uid = 0, gid = 0;
  uint64_t size = 0;
  int64_t mtime = 0;
  int64_t mtime_nsec = 0;
  uint64_t rdev = 0;
  uint64_t ino = 0;
  uint64_t nlink = 0;
  std::string content;  // regular files: sha256 of the data; symlinks: target
  std::map<std::string, std::string> xattrs;
};

// Relative path ("" = root) -> node. Directory mtimes included.
std::map<std::string, Node> Snapshot(const std::string& root);

// Human-readable differences (empty = equal). Inode numbers are compared as hardlink groups:
// the same paths must share an inode on both sides.
std::vector<std::string> Diff(const std::map<std::string, Node>& want,
                              const std::map<std::string, Node>& got, bool compare_root = true);

// mount(2) that undoes itself (MNT_DETACH) on destruction.
class Mount {
 public:
  Mount(const std::string& source, const std::string& target, const std::string& fstype,
        const std::string& data, unsigned long flags = 0);
  ~Mount();
  Mount(const Mount&) = delete;
  Mount& operator=(const Mount&) = delete;
  const std::string& target() const { return target_; }

 private:
  std::string target_;
};

// Runs a shell command, failing the test (throwing) with its output on non-zero exit.
std::string Sh(const std::string& cmd);

}  // namespace lazysnap::erofs::testing
