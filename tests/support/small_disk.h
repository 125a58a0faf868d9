// A tmpfs of a given size mounted at `path` for the life of the object: a disk that fills up, for
// the tests of what a full disk does. Needs root; unmounted (lazily) even when the test fails.
#pragma once

#include <sys/mount.h>

#include <string>

#include "common/error.h"
#include "common/file_util.h"

namespace lazysnap::testing {

class SmallDisk {
 public:
  // `size`: tmpfs's size= option ("16k", "1m").
  SmallDisk(std::string path, const std::string& size) : path_(std::move(path)) {
    MakeDirs(path_);
    if (::mount("tmpfs", path_.c_str(), "tmpfs", 0, ("size=" + size).c_str()) != 0)
      ThrowErrno("mount a " + size + " tmpfs at " + path_);
  }
  ~SmallDisk() { ::umount2(path_.c_str(), MNT_DETACH); }
  SmallDisk(const SmallDisk&) = delete;
  SmallDisk& operator=(const SmallDisk&) = delete;

  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace lazysnap::testing
