// A directory made under $TMPDIR (or /tmp) and removed with everything in it on destruction.
// Removal never crosses into mounts: anything still mounted below is lazily unmounted first.
#pragma once

#include <string>

namespace lazysnap {

class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "lazysnap");
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  TempDir(TempDir&& other) noexcept;
  TempDir& operator=(TempDir&&) = delete;
  ~TempDir();

  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// A path field of /proc/self/mountinfo as a path (the kernel escapes spaces etc. as \ooo octal).
std::string UnescapeMountPath(const std::string& s);

// Unmounts (MNT_DETACH) every mount at or below `dir`, deepest first. Returns how many.
int UnmountAllBelow(const std::string& dir);

}  // namespace lazysnap
