#include "common/temp_dir.h"

#include <sys/mount.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "common/error.h"

namespace lazysnap {
std::string UnescapeMountPath(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      out.push_back(static_cast<char>(std::stoi(s.substr(i + 1, 3), nullptr, 8)));
      i += 3;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

TempDir::TempDir(const std::string& prefix) {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/" + prefix + ".XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) ThrowErrno("mkdtemp " + tmpl);
  path_ = tmpl;
}

TempDir::TempDir(TempDir&& other) noexcept : path_(std::move(other.path_)) {
  other.path_.clear();
}

TempDir::~TempDir() {
  if (path_.empty()) return;
  UnmountAllBelow(path_);
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

int UnmountAllBelow(const std::string& dir) {
  std::ifstream in("/proc/self/mountinfo");
  std::vector<std::string> targets;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string id, parent, devno, root, mountpoint;
    fields >> id >> parent >> devno >> root >> mountpoint;
    mountpoint = UnescapeMountPath(mountpoint);
    if (mountpoint == dir || mountpoint.starts_with(dir + "/")) targets.push_back(mountpoint);
  }
  // Deepest first; a path mounted several times appears several times and is unmounted each time.
  std::sort(targets.begin(), targets.end(),
            [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
  int n = 0;
  for (const auto& t : targets) {
    if (::umount2(t.c_str(), MNT_DETACH) == 0) ++n;
  }
  return n;
}

}  // namespace lazysnap
